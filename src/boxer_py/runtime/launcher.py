"""Runs an image under Wasmtime: the image's rootfs as `/`, a private writable copy per run.

The guest gets exactly: its argv and env, the per-run copy of the rootfs (thrown away
after), the mounts it was given, and stdio. No sockets unless `-p`/`--allow-net` give some (net/),
no other host path (Wasmtime's WASI refuses a symlink that leaves a preopen), no host
environment variable.

Three parts, each owning one thing: `Programs` (programs.py) what stays warm between runs
(engines, compiled modules, snapshots), `Sandbox` (sandbox.py) one guest's world and the call
into it, and this module the run as `boxer run` sees it: the command, the writable layer and
mounts, whether it resumes a snapshot, what it hands back (/out, the error).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import wasmtime

from boxer_py.errors import BoxerError, RunError
from boxer_py.image.config import DEFAULT_PATH
from boxer_py.image.hostfs import remove_tree
from boxer_py.image.imagefile import Image
from boxer_py.image.rootfs import resolve, unpack
from boxer_py.runtime import argv as argvs
from boxer_py.runtime import inputs, interrupt, mounts, reactor, shellrun, verified, winsize
from boxer_py.runtime.argv import Command, find_program, resolve_argv
from boxer_py.runtime.engines import names
from boxer_py.runtime.interrupt import Interrupts
from boxer_py.runtime.modcache import WASMTIME_VERSION, Loaded, wasm_stack
from boxer_py.runtime.net.policy import Network
from boxer_py.runtime.output import MAX_OUT_BYTES, collect, python_error
from boxer_py.runtime.preinit import snapshot as preinit
from boxer_py.runtime.preinit.bake import Baker
from boxer_py.runtime.preinit.snapshot import Snapshot
from boxer_py.runtime.programs import ModuleKey, Programs
from boxer_py.runtime.sandbox import Aim, Another, Exports, Resume, Sandbox
from boxer_py.runtime.spec import TIMEOUT_EXIT_CODE, Limits, Mount, RunResult, RunSpec
from boxer_py.runtime.wasi import clock as wasiclock
from boxer_py.runtime.wasi import readonly
from boxer_py.runtime.workspace import Workspaces, sweep_dead


class Launcher:
    """Runs images under Wasmtime, with a module and snapshot cache in `cache_dir`. Session is
    the friendlier face; a Launcher serves any number of images and threads."""

    def __init__(self, cache_dir: str | Path, preinit: bool = True, bake: bool | None = None, epochs: bool = True):
        """`epochs=False`: Wasmtime engines without epoch checks (faster CPU-bound guests), for a
        process that runs one command and may end to stop it: every run then stops by ending
        the process, reporting through its spec's `on_stop` (exitwatch.py; cli/run.py decides)."""
        self.cache_dir = Path(cache_dir)
        self.preinit = preinit  # False: every run starts its interpreter from scratch
        bake = os.environ.get("BOXER_BAKE") != "0" if bake is None else bake  # preinit.bake; a CPU-bound suite turns it off
        self.programs = Programs(self.cache_dir, wasiclock.Deadlines(), preinit,
                                 Baker(self.cache_dir / "modules") if bake else None, epochs)
        self.baker, self.deadlines = self.programs.baker, self.programs.deadlines
        self.runs = self.cache_dir / "runs"
        self.workspaces = Workspaces(self.runs, self.cache_dir / "spares")
        self.sandbox = Sandbox(self.programs.engines, self.deadlines, release=self.workspaces.drop_later)
        self.images = verified.Opened(self.cache_dir / "verified")
        self.sweep()

    def open(self, path: str | Path) -> Image:
        """Read an image file, checking every digest unless this very file was checked before
        (verified.py); the same file unchanged is read once per launcher."""
        return self.images.read(path)

    def rootfs(self, image: Image) -> Path:
        """The image's filesystem, unpacked once per image id into the cache (read-only to runs)."""
        target = self.cache_dir / "rootfs" / image.id.replace(":", "-")
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        try:
            unpack(image, tmp)
            os.rename(tmp, target)
        except OSError as e:
            remove_tree(tmp)
            if not target.is_dir():
                raise RunError(f"cannot unpack the image into the cache ({e.strerror or e})") from None
        except BaseException:
            remove_tree(tmp)
            raise
        return target

    def preinitialised(self, image: Image) -> tuple[Command, Resume, Interrupts | None] | None:
        """For the page: the program the default command starts, the snapshot a plain run of it
        resumes and its Ctrl-C/SIGWINCH words (interrupt.py); None: from scratch or a shell line."""
        env, workdir = argvs.environment(image, RunSpec())
        base = self.rootfs(image)
        argv = self._plan(image, base, resolve_argv(image, RunSpec()), env, workdir)
        if isinstance(argv, str):
            return None
        command = self._command(image, base, argv, env, workdir)
        resume = self._resume(image, base, command.program, command.argv, command.env, workdir,
                              RunSpec(tuple(command.argv)))
        if resume is None or (loaded := self.programs.resumable(image, base, command.program)) is None:
            return None
        engine = self.programs.engine(loaded.stack)
        return command, resume, interrupt.for_run(threading.Event(), engine.engine, engine.ticker, loaded, base,
                                                  command.argv[0], self.cache_dir, True)

    def run(self, image: Image, spec: RunSpec = RunSpec()) -> RunResult:
        """Run to completion in a fresh sandbox. Safe to call from several threads at once."""
        config = image.spec.config
        env, workdir = argvs.environment(image, spec)
        base = self.rootfs(image)
        command = self._plan(image, base, resolve_argv(image, spec), env, workdir)  # a program's argv, or a shell line
        shared = self.programs.fixed(("read-only", image.id), lambda: reactor.read_only(config.labels, base))
        window = winsize.WindowSize(self.runs, 1) if spec.tty and spec.stream and spec.resize and os.isatty(1) else None
        if window is not None:  # -t: the size of the terminal, followed
            spec, env = replace(spec, mounts=(*spec.mounts, window.mount())), {**env, **window.env()}
        layout = (workdir, spec.output_dir, tuple((m.guest, m.host.is_file()) for m in spec.mounts))  # made below
        try:
            tmp = self.workspaces.take(image.id, base, [host for _, host in shared], layout)
        except BaseException:
            if window is not None:
                window.close()
            raise
        copies: list[mounts.FileMount] = []  # single-file mounts (copied in, pinned, written back)
        dirs: list[Mount] = []
        try:
            root = tmp / "rootfs"
            try:
                resolve(root, workdir).mkdir(parents=True, exist_ok=True)
                out_dir = resolve(root, spec.output_dir) if spec.output_dir else None
                if out_dir is not None:
                    out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RunError(f"{workdir}: cannot make the working or output directory in the image "
                               f"({e.strerror or e})") from None
            for m in mounts.check(spec.mounts, root, shared):
                copied = mounts.copy_file(m, root)
                copies, dirs = (copies + [copied], dirs) if copied else (copies, dirs + [m])
            spec = replace(spec, mounts=tuple(dirs))
            self.workspaces.seal(tmp, as_taken=not copies)  # a file mount's copy changed the layer
            files = inputs.check(spec.files, spec.limits.disk)  # after the seal: a layer with them is not handed on
            inputs.place(root, files, [m.guest for m in spec.mounts] + [guest for guest, _ in shared])
            pinned = [c.pinned() for c in copies]
            if spec.on_stop is not None:  # stopped from outside: hand back what a finished run does
                spec = replace(spec, on_stop=functools.partial(self._stopped, spec.on_stop, spec, tmp, copies))
            while True:
                try:
                    if isinstance(command, str):  # each program the shell starts: in this container, one after another
                        if spec.ready is not None:
                            other = spec.ready()
                            spec = replace(spec, ready=None)
                            if other is not None:
                                raise Another(other)
                        result = shellrun.run(command, root, env, workdir, spec, lambda argv, env, workdir, one:
                                              self._start(image, base, root, tmp, shared, pinned, None, argv, env,
                                                          workdir, one))
                    else:
                        result = self._start(image, base, root, tmp, shared, pinned, window, command, env, workdir,
                                             spec)
                    break
                except Another as another:  # before any guest ran: that command, in this layer (spec.ready)
                    spec = replace(spec, command=another.command, ready=None)
                    command = self._plan(image, base, resolve_argv(image, spec), env, workdir)
            return self._finish(result, spec, root, copies)
        finally:
            for copy in copies:
                copy.close()
            if window is not None:
                window.close()
            self.workspaces.give_back(tmp)

    def _plan(self, image: Image, base: Path, argv: list[str], env: dict[str, str], workdir: str) -> list[str] | str:
        """shellrun.plan, whether a command is a script of the image found once per image."""
        path = env.get("PATH", DEFAULT_PATH)
        return shellrun.plan(base, argv, env, workdir, lambda name: self.programs.fixed(
            ("script", image.id, name, path, workdir), lambda: shellrun.is_script(base, workdir, path, name)))

    def _command(self, image: Image, base: Path, argv: list[str], env: dict[str, str], workdir: str) -> argvs.Command:
        """argvs.start of a command of the image, its program and `#!` interpreter found once per image."""
        return argvs.start(base, argv, env, workdir, functools.partial(self.programs.image_program, image, base),
                           functools.partial(self.programs.image_interpreter, image, base))

    @staticmethod
    def _finish(result: RunResult, spec: RunSpec, root: Path, copies: list[mounts.FileMount]) -> RunResult:
        """What a run hands back once its guest is over: single-file mounts written back, /out."""
        for copy in copies:
            copy.write_back(result)
        if spec.output_dir:
            # Resolved again: the guest may have replaced the directory by a symlink.
            try:
                out_dir = resolve(root, spec.output_dir)
            except (BoxerError, OSError):
                out_dir, result.files_truncated = None, True
            if out_dir is not None and not out_dir.is_symlink() and out_dir.is_dir():
                budget = min(x for x in (spec.limits.max_output, spec.limits.disk, MAX_OUT_BYTES)
                             if x is not None)
                result.files, result.files_truncated = collect(out_dir, spec.output_dir, budget)
        return result

    def _aim(self, image: Image, base: Path, env: dict[str, str], workdir: str, spec: RunSpec, made: argvs.Command,
             resume: Resume, command: tuple[str, ...]) -> Aim:
        """How another command (RunSpec.ready's) runs in the instance made ready for `made`, which
        resumes `resume`: in place when it starts the same program with the same environment
        from the same snapshot (only its argv and request differ); else Another, and run() plans
        it from its start in the same layer. `env`: the run's, before the program's own."""
        try:
            argv = self._plan(image, base, resolve_argv(image, replace(spec, command=command)), env, workdir)
            if isinstance(argv, list):
                other = self._command(image, base, argv, env, workdir)
                again = self._resume(image, base, other.program, other.argv, other.env, workdir, spec) \
                    if (other.program, other.env, other.argv[0]) == (made.program, made.env, made.argv[0]) else None
                if again is not None and again.module is resume.module and again.snapshot is resume.snapshot \
                        and (again.baked, again.cwd_slot) == (resume.baked, resume.cwd_slot):
                    return Aim(command, other.argv, again.message)
        except BoxerError:
            pass  # as it would from its start: it says so there
        raise Another(command)

    def _stopped(self, report: Callable[[RunResult], None], spec: RunSpec, layer: Path,
                 copies: list[mounts.FileMount], result: RunResult) -> None:
        """A run stopped by ending its process (exitwatch.py): finished as a run that ended, its
        writable layer removed (never handed on: its guest may still be writing), then reported.
        What the still-running guest makes during the removal stays for the next sweep."""
        try:
            self._finish(result, spec, layer / "rootfs", copies)
        finally:
            remove_tree(layer)
            report(result)

    def _start(self, image: Image, base: Path, root: Path, tmp: Path, shared: list[tuple[str, Path]],
               pinned: list[readonly.Pinned], window: winsize.WindowSize | None, argv: list[str],
               env: dict[str, str], workdir: str, spec: RunSpec) -> RunResult:
        """One program of the image in the run's container `root`: the run's command, or one
        that a shell-form command starts (shellrun)."""
        started = self._command(image, base, argv, env, workdir)
        retarget = None if spec.ready is None else functools.partial(self._aim, image, base, env, workdir, spec, started)
        argv, env, program = started.argv, started.env, started.program
        resume = self._resume(image, base, program, argv, env, workdir, spec)
        loaded = resume.module if resume else self.programs.for_program(image, base, program, argv[0])
        argv = argv if resume else reactor.with_pythonpath(loaded.module, argv, env, workdir)
        engine = self.programs.engine(loaded.stack)
        source = self.programs.resumable(image, base, program)  # a baked module's flags are where its source's are
        cpython = source is not None and (source is loaded or resume is not None)
        interrupts = interrupt.for_run(spec.interrupt, engine.engine, engine.ticker,
                                       source if cpython else loaded,  # type: ignore[arg-type]
                                       base, argv[0], self.cache_dir, cpython,  # Ctrl-C
                                       lambda: engine.guard(interrupt.CALIBRATION_TIMEOUT,
                                                            f"{argv[0]}: finding its Ctrl-C words"))
        if window is not None and spec.resize is not None:
            window.follow(spec.resize, interrupts.resized if interrupts else None)
        result = self.sandbox.run(root, loaded, argv, env, workdir, spec, tmp, image.spec.config.labels, shared,
                                  resume=resume, interrupts=interrupts, pinned=pinned,
                                  retarget=None if retarget is None or resume is None else functools.partial(retarget, resume))
        if result.exit_code not in (0, TIMEOUT_EXIT_CODE) and posixpath.basename(argv[0]).startswith("python"):
            result.error = python_error(result.stderr)  # a MemoryError under a cap is the cap's doing:
            result.out_of_memory |= spec.limits.memory is not None and (result.error or {}).get("type") == "MemoryError"
        return result

    def held(self) -> tuple[list[tuple[ModuleKey, str, int | None]], list[str]]:
        """What this launcher keeps in memory, for preload() in another process (Programs.held);
        the image files it read are `images.paths()`."""
        return self.programs.held()

    def preload(self, modules: list[tuple[ModuleKey, str, int | None]], snapshots: list[str],
                images: Sequence[str] = ()) -> int:
        """Load what held() listed elsewhere from the cache only (Programs.preload), and read
        the image files `images` (nothing here runs a guest nor compiles). Returns how many
        modules and snapshots were new."""
        for path in images:
            if path not in self.images.paths():
                try:
                    self.open(path)
                except BoxerError:
                    pass  # gone or changed meanwhile: its next run reads it and says so
        return self.programs.preload(modules, snapshots)

    def sweep(self) -> None:
        """Remove what runs of processes that have died left in the cache (workspace.sweep_dead); never
        raises (a launcher must start whatever an earlier run left behind)."""
        for where in (self.runs, self.workspaces.spares):
            try:
                sweep_dead(where)
            except Exception:  # noqa: BLE001 - what cannot be removed now is tried again next time
                pass

    def settle(self) -> None:
        """Wait until the writable layers of finished runs are removed (that happens in the
        background, after each run has returned)."""
        self.workspaces.settle()

    def close(self) -> None:
        """Settle and remove the copies kept ready for the next runs; also done at exit."""
        self.workspaces.close()

    def _resume(self, image: Image, base: Path, program: Path, argv: list[str], env: dict[str, str],
                workdir: str, spec: RunSpec) -> Resume | None:
        """How to start this run from a snapshot of its interpreter, or None if it cannot be:
        the program is not the image's CPython, CPython would start differently, a mount over
        CPython's own files. Only the resumable module is compiled for such runs, not the
        program itself. Mounts are directories preopened after the image's own, so a snapshot
        booted with empty directories at the same guest paths (one per set of mount points)
        holds the same descriptor table as the run, which then attaches the real ones."""
        if spec.network.enabled or not preinit.eligible(argv):  # slots would be numbered differently
            return None
        startup = {**image.spec.config.env_dict(), **preinit.startup_env(env)}
        points = tuple(m.guest for m in spec.mounts)
        if preinit.over_python(points, startup):
            return None
        module = self.programs.resumable(image, base, program)
        if module is None:
            return None
        message = preinit.request(argv, env, workdir)
        digest = self.programs.digest_file(program, base)
        key = hashlib.sha256(json.dumps([preinit.VERSION, self.programs.guest_digest(), WASMTIME_VERSION, image.id,
                                         digest, argv[0], startup, *([points] if points else [])]).encode()).hexdigest()
        snapshot, reused = self.programs.snapshot(key, lambda: self._boot(  # its argv only made for a boot
            image, module, preinit.boot_argv(argv[0], preinit.preimports(image.spec.config.labels)), startup, points))
        if snapshot is None or len(message) > snapshot.inbox_size:
            return None
        baked = self.programs.baked(module, snapshot, program, reused)
        return Resume(baked or module, snapshot, message, baked is not None, module.cwd_slot)

    def boot(self, key: str, image: Image, module: Loaded, argv: list[str], startup: dict[str, str],
             points: tuple[str, ...] = ()) -> tuple[Snapshot | None, bool]:
        """The snapshot `key` of the image's CPython (`module`, made resumable) once `argv` has
        run in it (preinit.boot_argv, or the interpreter's kernel), with `startup` as its
        environment and empty directories at the mount `points`; and whether this launcher had
        it already. From memory, the cache, or a boot run in a sandbox like the runs' own; None
        if the interpreter would not boot (its runs start from scratch)."""
        return self.programs.snapshot(key, lambda: self._boot(image, module, argv, startup, points))

    def _boot(self, image: Image, module: Loaded, argv: list[str], startup: dict[str, str],
              points: tuple[str, ...]) -> Snapshot | None:
        base = self.rootfs(image)
        shared = reactor.read_only(image.spec.config.labels, base)
        captured: list[tuple[bytes, int]] = []  # the boot run's memory and stack pointer at its end

        def keep(store: wasmtime.Store, exports: Exports) -> None:
            memory = preinit.memory_of(store, preinit.export_of(exports, "memory", wasmtime.Memory))
            captured.append((memory, preinit.export_of(exports, preinit.STACK_POINTER, wasmtime.Global).value(store)))

        self.runs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{os.getpid()}.", dir=self.runs) as empty:
            stand_ins = tuple(Mount(Path(empty), point, True) for point in points)  # the runs' mounts go here
            spec = RunSpec(tuple(argv), env=startup, mounts=stand_ins, limits=Limits(timeout=120), output_dir=None)
            tmp = self.workspaces.take(image.id, base, [host for _, host in shared])
            try:
                result = self.sandbox.run(tmp / "rootfs", module, argv, startup, "/", spec, tmp,
                                          image.spec.config.labels, shared, keep=keep)
            finally:
                self.workspaces.give_back(tmp)
        if result.exit_code != 0 or not captured:
            return None
        memory, stack_pointer = captured[0]
        engine = self.programs.engine(module.stack)
        store = wasmtime.Store(engine.engine)
        store.set_wasi(wasmtime.WasiConfig())
        exports = engine.linker.instantiate(store, module.module).exports(store)
        try:
            return preinit.capture(memory, stack_pointer, result.stdout,
                                   preinit.memory_of(store, preinit.export_of(exports, "memory", wasmtime.Memory)))
        except ValueError:
            return None

    def run_in(self, root: Path, argv: list[str], env: dict[str, str], workdir: str, stdin: bytes = b"",
               limits: Limits = Limits(), labels: dict[str, str] | None = None,
               tap: Callable[[bytes], None] | None = None, network: Network = Network()) -> RunResult:
        """Run a program of a rootfs in place, so its writes stay: a build's RUN step. The
        program is read from `root` itself (which the build is changing), not from an image.
        `tap` is told its output as written (progress); `network`: `build --allow-net`, else none."""
        started = argvs.start(root, argv, env, workdir, functools.partial(find_program, root))
        argv, env, program = started.argv, started.env, started.program
        stack = wasm_stack(labels or {}, names(lambda name: find_program(root, name, DEFAULT_PATH, "/")[1], program))
        loaded = self.programs.engine(stack).modules.load(program.read_bytes())
        argv = reactor.with_pythonpath(loaded.module, argv, env, workdir)
        spec = RunSpec(tuple(argv), env=env, workdir=workdir, stdin=stdin, limits=limits, output_dir=None,
                       on_stdout=tap, on_stderr=tap, network=network)
        self.runs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{os.getpid()}.", dir=self.runs) as tmp:
            return self.sandbox.run(root, loaded, argv, env, workdir, spec, Path(tmp), labels)
