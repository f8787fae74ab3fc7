"""The friendly API for agents: one warm sandbox factory per image.

    from boxer_py import Session
    box = Session("hello.wasm")
    result = box.run_python("print(6 * 7)", timeout=5, memory="256m")
    result.exit_code, result.stdout          # 0, b"42\\n"

A Session reads and verifies the image once, keeps the compiled module and the unpacked
rootfs warm, and is safe to use from many threads: every run still gets a fresh sandbox.
Threads of one process do not run guests side by side faster than one after another (the
GIL); `Session(image, workers=N)` hands runs to N worker processes instead (see workers).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from boxer_py.api.workers import Workers
from boxer_py.image.imagefile import Image
from boxer_py.image.store import Store, default_cache_dir
from boxer_py.runtime import inputs
from boxer_py.runtime.interpreter import Interpreter
from boxer_py.runtime.launcher import Launcher
from boxer_py.runtime.net.policy import Network
from boxer_py.runtime.spec import Limits, Mount, RunResult, RunSpec


class Session:
    """One image, opened and checked once, kept warm; every run a fresh sandbox."""

    def __init__(self, image: str | Path | Image, cache_dir: str | Path | None = None,
                 launcher: Launcher | None = None, workers: int = 0):
        """`workers`: 0 runs guests in this process; N > 0 in N processes of their own (for
        runs side by side on several cores), which needs the image as a file or tag."""
        self.launcher = launcher or Launcher(cache_dir or default_cache_dir())
        self.workers: Workers | None = None
        if not isinstance(image, Image):  # a file, or a tag in the local store
            path = Store(self.launcher.cache_dir / "images").locate(image)
            image = self.launcher.open(path)
            if workers:
                self.workers = Workers(workers, self.launcher, Path(path).resolve(), image.id)
        elif workers:
            raise ValueError("workers need the image as a file or a tag, not an opened Image")
        self.image = image
        self.launcher.rootfs(self.image)

    def run(self, command: Sequence[str] = (), *, stdin: bytes | str | None = None,
            env: Mapping[str, str] | None = None, mounts: Sequence[Mount | str] = (), workdir: str | None = None,
            entrypoint: Sequence[str] | None = None, timeout: float | None = None,
            memory: str | int | None = None, max_output: str | int | None = None,
            disk: str | int | None = None, output_dir: str | None = "/out",
            files: Mapping[str, bytes | str] | None = None,
            on_stdout: Callable[[bytes], object] | None = None, on_stderr: Callable[[bytes], object] | None = None,
            cancel: threading.Event | None = None, ports: Sequence[str] = (), allow_net: Sequence[str] = (),
            allow_net_ca: str | Path | None = None,
            on_listen: Callable[[list[dict[str, object]]], None] | None = None) -> RunResult:
        """Run `command` (or the image's CMD) in a fresh sandbox and return its result.

        `files`: {guest path: content} put into the run's writable layer before it starts.
        `on_stdout`/`on_stderr`: called with each chunk of output as the guest writes it (up
        to `max_output`, then the kept tail at the end), on the thread running the guest; what
        they raise is raised here once the guest has ended. `cancel`: set it from another
        thread to stop the guest at once (exit code 130, as Ctrl-C). `ports`: `boxer run -p`
        specs ("127.0.0.1:8080:80", "0:80" for a free port); `allow_net`: `--allow-net` rules
        ("api.example.com:443"); `on_listen` is told the bound host ports before the guest starts."""
        limits = Limits.parse(timeout, memory, max_output, disk)
        spec = RunSpec(
            command=tuple(command), entrypoint=None if entrypoint is None else tuple(entrypoint),
            env=dict(env or {}), workdir=workdir,
            mounts=tuple(m if isinstance(m, Mount) else Mount.parse(m) for m in mounts),
            stdin=stdin.encode() if isinstance(stdin, str) else stdin,
            limits=limits, output_dir=output_dir, files=inputs.check(files or {}, limits.disk),
            on_stdout=on_stdout, on_stderr=on_stderr, cancel=cancel,
            network=Network.parse(tuple(ports), tuple(allow_net), allow_net_ca), on_listen=on_listen,
        )
        if self.workers is None or on_stdout or on_stderr or cancel or on_listen:  # callbacks stay in this process
            return self.launcher.run(self.image, spec)
        # host paths as this process means them, whatever the worker's working directory
        absolute = tuple(replace(m, host=m.host.absolute()) for m in spec.mounts)
        stdin = str(Path(spec.stdin).absolute()) if isinstance(spec.stdin, str) and spec.stdin != "-" else spec.stdin
        return self.workers.run(replace(spec, mounts=absolute, stdin=stdin))

    def run_python(self, code: str, **options: Any) -> RunResult:
        """Run Python source with the image's `python` (the code is passed as `-c`)."""
        return self.run(("python", "-c", code), **options)

    def interpreter(self, *, env: Mapping[str, str] | None = None, workdir: str | None = None,
                    timeout: float | None = None, memory: str | int | None = None,
                    max_output: str | int | None = None, disk: str | int | None = None,
                    from_snapshot: bytes | None = None) -> Interpreter:
        """A live Python interpreter in its own sandbox whose globals persist between
        `run(code)` calls (see Interpreter). The limits here are its totals: time and output
        over all its calls, memory and disk at any moment; each call may ask for less.
        `from_snapshot`: start from an earlier `Interpreter.snapshot()` of this image."""
        return Interpreter(self.launcher, self.image, env=env, workdir=workdir,
                           limits=Limits.parse(timeout, memory, max_output, disk), from_snapshot=from_snapshot)

    def close(self) -> None:
        """Wait for finished runs' writable layers to be removed and drop the copies kept
        ready for the next runs (also done at exit); end the workers. The session stays
        usable (workers start again on the next run)."""
        if self.workers is not None:
            self.workers.close()
        self.launcher.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
