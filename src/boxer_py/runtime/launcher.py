"""Runs an image under Wasmtime: the image's rootfs as `/`, a private writable copy per run.

The guest gets exactly: its argv and env, the per-run copy of the rootfs (thrown away
after), the mounts it was given, and stdio. No sockets, no other host path, no host
environment variable.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import posixpath
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import wasmtime

from boxer_py.errors import BoxerError, RunError
from boxer_py.image.config import DEFAULT_PATH
from boxer_py.image.hostfs import remove_tree
from boxer_py.image.imagefile import Image
from boxer_py.image.rootfs import resolve, unpack, within
from boxer_py.runtime import argv as argvs
from boxer_py.runtime import inputs, interrupt, mounts, reactor, shellrun, verified, watchdog, winsize
from boxer_py.runtime.argv import Command, find_program, resolve_argv
from boxer_py.runtime.engines import Engines, names
from boxer_py.runtime.interrupt import Interrupts
from boxer_py.runtime.modcache import WASMTIME_VERSION, Loaded, wasm_stack
from boxer_py.runtime.net import host as nethost
from boxer_py.runtime.net.policy import Network
from boxer_py.runtime.outcome import reason as _reason
from boxer_py.runtime.outcome import record
from boxer_py.runtime.output import Sink, collect, python_error
from boxer_py.runtime.preinit import bake
from boxer_py.runtime.preinit import snapshot as preinit
from boxer_py.runtime.preinit.bake import Baker
from boxer_py.runtime.preinit.snapshot import Snapshot
from boxer_py.runtime.runwatch import DiskWatch
from boxer_py.runtime.spec import TIMEOUT_EXIT_CODE, TRAP_EXIT_CODE, Limits, Mount, RunResult, RunSpec
from boxer_py.runtime.ticker import Ticker
from boxer_py.runtime.wasi import clock as wasiclock
from boxer_py.runtime.wasi import readonly, terminal
from boxer_py.runtime.wasi.cwd import set_cwd
from boxer_py.runtime.workspace import Workspaces, sweep_dead

OOM_MARGIN = 4 << 20
MAX_FILES_BYTES = 256 << 20  # /out files returned when no --max-output is set
# Under a memory limit (see _execute): instances, tables, and each table's elements (a
# funcref takes 8 to 16 bytes of host memory), so tables together stay under a quarter of it.
MAX_INSTANCES = 4
MAX_TABLES = 4
TABLE_ELEMENT_SHARE = 256
MIN_TABLE_ELEMENTS = 1 << 16

Exports = Mapping[str, object]  # an instance's exports by name (wasmtime's InstanceExports)
Keep = Callable[[wasmtime.Store, Exports], None]  # told the store and exports once a run has ended
ModuleKey = tuple[str, object]  # (image id, program path) or ("preinit", (digest, stack)): see _module, _resumable


@dataclass(frozen=True)
class Resume:
    """Start a run from a pre-initialised interpreter (see preinit)."""
    module: Loaded         # the program made resumable, or that with the snapshot baked in
    snapshot: Snapshot
    message: bytes         # the run's request, for the guest's inbox
    baked: bool = False


class Launcher:
    """Runs images under one Wasmtime engine, with a module and snapshot cache in `cache_dir`.
    Session is the friendlier face; a Launcher serves any number of images and threads."""

    def __init__(self, cache_dir: str | Path, preinit: bool = True, bake: bool | None = None):
        self.cache_dir = Path(cache_dir)
        self.preinit = preinit  # False: every run starts its interpreter from scratch
        bake = os.environ.get("BOXER_BAKE") != "0" if bake is None else bake  # preinit.bake; a CPU-bound suite turns it off
        self.baker = Baker(self.cache_dir / "modules") if bake else None
        self.deadlines = wasiclock.Deadlines()
        self._engine = Engines(self.cache_dir / "modules", self.deadlines).get
        self.modules = self._engine(None).modules  # digests of programs (whatever engine runs them)
        self.terminals = terminal.Terminals()
        self._loaded: dict[ModuleKey, Loaded] = {}
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot | None] = {}
        self._programs: dict[tuple[str, str, str, str], tuple[str, Path]] = {}  # see _image_program
        self._guest_digest: str | None = None  # see _guest
        self._snapshot_lock = threading.Lock()
        self.runs = self.cache_dir / "runs"
        self.workspaces = Workspaces(self.runs, self.cache_dir / "spares")
        self.sweep()

    def _stack(self, image: Image, base: Path, program: Path) -> int | None:
        """The max_wasm_stack the image's labels ask for `program` (see wasm_stack)."""
        return wasm_stack(image.spec.config.labels, names(lambda guest: self._image_program(image, base, guest, DEFAULT_PATH, "/")[1], program))

    def open(self, path: str | Path) -> Image:
        """Read an image file, checking every digest unless this very file was checked before (verified.py)."""
        return verified.read(path, self.cache_dir / "verified")

    def _module(self, image: Image, base: Path, program: Path, name: str) -> Loaded:
        """The compiled `program` of the (read-only) unpacked image; kept in memory per image."""
        key = (image.id, program)
        with self._lock:
            loaded = self._loaded.get(key)
        if loaded is None:
            try:
                loaded = self._engine(self._stack(image, base, program)).modules.load_file(program, base)
            except wasmtime.WasmtimeError as e:
                raise RunError(f"{name}: {within(base, program)} is not a valid WebAssembly program "
                               f"({_reason(e)})", 126) from None
            with self._lock:
                self._loaded[key] = loaded
        return loaded

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
        argv = shellrun.plan(base, resolve_argv(image, RunSpec()), env, workdir)
        if isinstance(argv, str):
            return None
        command = argvs.start(base, argv, env, workdir, functools.partial(self._image_program, image, base))
        resume = self._resume(image, base, command.program, command.argv, command.env, workdir,
                              RunSpec(tuple(command.argv)), reactor.read_only(image.spec.config.labels, base))
        if resume is None or (loaded := self._resumable(image, base, command.program)) is None:
            return None
        engine = self._engine(loaded.stack)
        return command, resume, interrupt.for_run(threading.Event(), engine.engine, engine.ticker, loaded, base,
                                                  command.argv[0], self.cache_dir, True)

    def run(self, image: Image, spec: RunSpec = RunSpec()) -> RunResult:
        """Run to completion in a fresh sandbox. Safe to call from several threads at once."""
        config = image.spec.config
        env, workdir = argvs.environment(image, spec)
        base = self.rootfs(image)
        command = shellrun.plan(base, resolve_argv(image, spec), env, workdir)  # a program's argv, or a shell line
        shared = reactor.read_only(config.labels, base)
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
            self.workspaces.seal(tmp)
            files = inputs.check(spec.files, spec.limits.disk)  # after the seal: a layer with them is not handed on
            inputs.place(root, files, [m.guest for m in spec.mounts] + [guest for guest, _ in shared])
            pinned = [c.pinned() for c in copies]
            if isinstance(command, str):  # each program the shell starts: in this container, one after another
                result = shellrun.run(command, root, env, workdir, spec, lambda argv, env, workdir, one: self._start(
                    image, base, root, tmp, shared, pinned, None, argv, env, workdir, one))
            else:
                result = self._start(image, base, root, tmp, shared, pinned, window, command, env, workdir, spec)
            for copy in copies:
                copy.write_back(result)
            if spec.output_dir:
                # Resolved again: the guest may have replaced the directory by a symlink.
                try:
                    out_dir = resolve(root, spec.output_dir)
                except (BoxerError, OSError):
                    out_dir, result.files_truncated = None, True
                if out_dir is not None and not out_dir.is_symlink() and out_dir.is_dir():
                    budget = min(x for x in (spec.limits.max_output, spec.limits.disk, MAX_FILES_BYTES)
                                 if x is not None)
                    result.files, result.files_truncated = collect(out_dir, spec.output_dir, budget)
            return result
        finally:
            for copy in copies:
                copy.close()
            if window is not None:
                window.close()
            self.workspaces.give_back(tmp)

    def _start(self, image: Image, base: Path, root: Path, tmp: Path, shared: list[tuple[str, Path]],
               pinned: list[readonly.Pinned], window: winsize.WindowSize | None, argv: list[str],
               env: dict[str, str], workdir: str, spec: RunSpec) -> RunResult:
        """One program of the image in the run's container `root`: the run's command, or one
        that a shell-form command starts (shellrun)."""
        started = argvs.start(base, argv, env, workdir, functools.partial(self._image_program, image, base))
        argv, env, program = started.argv, started.env, started.program
        resume = self._resume(image, base, program, argv, env, workdir, spec, shared)
        loaded = resume.module if resume else self._program_module(image, base, program, argv[0])
        argv = argv if resume else reactor.with_pythonpath(loaded.module, argv, env, workdir)
        engine = self._engine(loaded.stack)
        source = self._resumable(image, base, program)  # a baked module's flags are where its source's are
        cpython = source is not None and (source is loaded or resume is not None)
        interrupts = interrupt.for_run(spec.interrupt, engine.engine, engine.ticker, source if cpython else loaded,  # type: ignore[arg-type]
                                       base, argv[0], self.cache_dir, cpython)  # Ctrl-C
        if window is not None and spec.resize is not None:
            window.follow(spec.resize, interrupts.resized if interrupts else None)
        result = self._sandbox(root, loaded, argv, env, workdir, spec, tmp, image.spec.config.labels, shared,
                               resume=resume, interrupts=interrupts, pinned=pinned)
        if result.exit_code not in (0, TIMEOUT_EXIT_CODE) and posixpath.basename(argv[0]).startswith("python"):
            result.error = python_error(result.stderr)  # a MemoryError under a cap is the cap's doing:
            result.out_of_memory |= spec.limits.memory is not None and (result.error or {}).get("type") == "MemoryError"
        return result

    def held(self) -> tuple[list[tuple[ModuleKey, str, int | None]], list[str]]:
        """What this launcher keeps in memory (compiled modules, snapshots), as keys with
        which preload() in another process finds the same things in the shared cache."""
        with self._lock:
            modules = [(key, loaded.digest, loaded.stack) for key, loaded in self._loaded.items()]
        with self._snapshot_lock:
            snapshots = [key for key, snapshot in self._snapshots.items() if snapshot is not None]
        return modules, snapshots

    def preload(self, modules: list[tuple[ModuleKey, str, int | None]], snapshots: list[str]) -> int:
        """Load into memory what held() listed elsewhere, from the cache only: nothing is
        compiled nor run here (the run server forks runs from a launcher that must not have
        started Wasmtime's compiler or WASI threads). Returns how many were new."""
        self._guest()  # hashed here once, not in each run forked from here
        new = 0
        for key, digest, stack in modules:
            if key not in self._loaded and (loaded := self._engine(stack).modules.cached(digest)) is not None:
                with self._lock:
                    self._loaded[key] = loaded
                new += 1
        for name in snapshots:
            snapshot = None if name in self._snapshots else preinit.load(self._snapshot_path(name))
            if snapshot is not None:
                with self._snapshot_lock:
                    self._snapshots[name] = snapshot
                new += 1
        return new

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
                workdir: str, spec: RunSpec, shared: list[tuple[str, Path]]) -> Resume | None:
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
        module = self._resumable(image, base, program)
        if module is None:
            return None
        message = preinit.request(argv, env, workdir)
        digest = self.modules.digest_file(program, base)
        key = hashlib.sha256(json.dumps([preinit.VERSION, self._guest(), WASMTIME_VERSION, image.id, digest,
                                         argv[0], startup, *([points] if points else [])]).encode()).hexdigest()
        with self._snapshot_lock:
            reused = key in self._snapshots
            if not reused:
                self._snapshots[key] = self._snapshot(key, image, base, module, argv[0], startup, shared, points)
            snapshot = self._snapshots[key]
        if snapshot is None or len(message) > snapshot.inbox_size:
            return None
        baked = self._baked(module, snapshot, program, reused)
        return Resume(baked or module, snapshot, message, baked is not None)

    def _baked(self, module: Loaded, snapshot: Snapshot, program: Path, reused: bool) -> Loaded | None:
        """The snapshot baked into its module, from memory or the cache; if there is none, a
        snapshot used again in this launcher is baked in the background (preinit.bake)."""
        key = ("baked", hashlib.sha256(f"{module.digest} {snapshot.digest}".encode()).hexdigest())
        name, modules = f"{key[1]}+bake{bake.VERSION}", self._engine(module.stack).modules
        keep = lambda loaded: self._loaded.__setitem__(key, loaded)  # noqa: E731 (one item: atomic)
        found = self._loaded.get(key)
        if found is None and self.baker is not None and snapshot.digest:
            found = modules.cached(name)
            if found is not None:
                keep(found)
            elif reused:
                self.baker.want(bake.Job(name, modules, lambda: bake.bake(preinit.resumable(program.read_bytes()), snapshot), keep))
        return found

    def _resumable(self, image: Image, base: Path, program: Path) -> Loaded | None:
        """The image's CPython made resumable (compiled once, kept per digest), if `program` is
        that CPython and pre-initialisation is on; else None."""
        guest = preinit.program(image.spec.config.labels)
        if not (self.preinit and guest):
            return None
        try:
            if self._image_program(image, base, guest, DEFAULT_PATH, "/")[1] != program:
                return None
        except RunError:
            return None
        digest = self.modules.digest_file(program, base)
        stack = self._stack(image, base, program)
        with self._lock:
            module = self._loaded.get(("preinit", (digest, stack)))
        if module is None:
            try:
                module = self._engine(stack).modules.derived(digest, f"preinit{preinit.VERSION}",
                                                             lambda: preinit.resumable(program.read_bytes()))
            except (ValueError, IndexError, wasmtime.WasmtimeError):
                return None  # not a module preinit can edit: the ordinary path says what is wrong
            with self._lock:
                self._loaded[("preinit", (digest, stack))] = module
        return module

    def _program_module(self, image: Image, base: Path, program: Path, name: str) -> Loaded:
        """What a run that starts from scratch instantiates: the resumable module when the
        program is the image's CPython (it runs `_start` exactly as the original does, and one
        compile of a 100 MB runtime serves both kinds of runs), else the program itself."""
        return self._resumable(image, base, program) or self._module(image, base, program, name)

    def _snapshot(self, key: str, image: Image, base: Path, module: Loaded, argv0: str,
                  startup: dict[str, str], shared: list[tuple[str, Path]], points: tuple[str, ...] = (),
                  boot: list[str] | None = None) -> Snapshot | None:
        """The snapshot for `key`, from the cache or made by a boot run (`boot`, preinit's by
        default) in a sandbox like the runs' own; None if the interpreter would not boot (such
        runs start from scratch)."""
        path = self._snapshot_path(key)
        cached = preinit.load(path)
        if cached is not None:
            return cached
        argv = boot or preinit.boot_argv(argv0, preinit.preimports(image.spec.config.labels))
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
                result = self._sandbox(tmp / "rootfs", module, argv, startup, "/", spec, tmp,
                                       image.spec.config.labels, shared, keep=keep)
            finally:
                self.workspaces.give_back(tmp)
        if result.exit_code != 0 or not captured:
            return None
        memory, stack_pointer = captured[0]
        engine = self._engine(module.stack)
        store = wasmtime.Store(engine.engine)
        store.set_wasi(wasmtime.WasiConfig())
        exports = engine.linker.instantiate(store, module.module).exports(store)
        try:
            snapshot = preinit.capture(memory, stack_pointer, result.stdout,
                                       preinit.memory_of(store, preinit.export_of(exports, "memory", wasmtime.Memory)))
        except ValueError:
            return None
        return preinit.save(path, snapshot)

    def _guest(self) -> str:
        """The digest of preinit's guest code (part of every snapshot key), hashed once."""
        if self._guest_digest is None:
            self._guest_digest = preinit.guest_digest()
        return self._guest_digest

    def _snapshot_path(self, key: str) -> Path:
        return self.cache_dir / "preinit" / f"{key}.snap"

    def run_in(self, root: Path, argv: list[str], env: dict[str, str], workdir: str, stdin: bytes = b"",
               limits: Limits = Limits(), labels: dict[str, str] | None = None,
               tap: Callable[[bytes], None] | None = None, network: Network = Network()) -> RunResult:
        """Run a program of a rootfs in place, so its writes stay: a build's RUN step. The
        program is read from `root` itself (which the build is changing), not from an image.
        `tap` is told its output as written (progress); `network`: `build --allow-net`, else none."""
        started = argvs.start(root, argv, env, workdir, functools.partial(find_program, root))
        argv, env, program = started.argv, started.env, started.program
        stack = wasm_stack(labels or {}, names(lambda name: find_program(root, name, DEFAULT_PATH, "/")[1], program))
        loaded = self._engine(stack).modules.load(program.read_bytes())
        argv = reactor.with_pythonpath(loaded.module, argv, env, workdir)
        spec = RunSpec(tuple(argv), env=env, workdir=workdir, stdin=stdin, limits=limits, output_dir=None,
                       on_stdout=tap, on_stderr=tap, network=network)
        self.runs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{os.getpid()}.", dir=self.runs) as tmp:
            return self._sandbox(root, loaded, argv, env, workdir, spec, Path(tmp), labels)

    def _sandbox(self, root: Path, loaded: Loaded, argv: list[str], env: dict[str, str], workdir: str,
                 spec: RunSpec, tmp: Path, labels: dict[str, str] | None = None,
                 shared: Sequence[tuple[str, Path]] = (), resume: Resume | None = None,
                 keep: Keep | None = None, interrupts: Interrupts | None = None,
                 pinned: Sequence[readonly.Pinned] = ()) -> RunResult:
        """The guest's whole world: `root` as /, the mounts, argv, env and stdio; nothing else."""
        cap = spec.limits.max_output
        stdout = Sink(cap, 1 if spec.stream else None, spec.on_stdout)
        stderr = Sink(cap, 2 if spec.stream else None, spec.on_stderr)
        wasi = wasmtime.WasiConfig()
        wasi.argv = argv
        wasi.preopen_dir(str(root), "/", not spec.read_only)
        mounted = [m.guest for m in spec.mounts]  # checked by run(); run_in and boot runs have none
        shown = [(g, h) for g, h in shared if not reactor.covered(g, mounted)]
        extra = [*shown, *reactor.aliases(labels or {}, root, mounted, shared)]
        for guest, host in extra:
            wasi.preopen_dir(str(host), guest, False)
        for m in spec.mounts:
            wasi.preopen_dir(str(m.host), m.guest, not m.read_only)
        net = None
        if spec.network.enabled:  # socket slots after every other preopen (net/wasi.py)
            env = dict(env)
            net = self._engine(loaded.stack).networking.prepare(wasi, len(extra) + len(spec.mounts), tmp, env, spec.network, spec.on_listen,
                                                                        spec.on_refused)
        wasi.env = list(env.items())
        if spec.stdin == "-":
            wasi.inherit_stdin()
        elif isinstance(spec.stdin, bytes):
            (tmp / "stdin").write_bytes(spec.stdin)
            wasi.stdin_file = str(tmp / "stdin")
        elif spec.stdin:
            path, held = watchdog.stdin_path(spec.stdin)  # never a FIFO that would block right here
            try:
                wasi.stdin_file = path
            finally:
                for fd in held:
                    os.close(fd)
        else:
            wasi.stdin_file = os.devnull
        # -t: a terminal is handed over as it is, so the guest's isatty() is true (Wasmtime
        # says so only of this process's own descriptors); what goes there is not captured.
        for fd, sink, inherit in ((1, stdout, wasi.inherit_stdout), (2, stderr, wasi.inherit_stderr)):
            if spec.tty and spec.stream and os.isatty(fd):
                inherit()
                continue
            setattr(wasi, "stdout_custom" if fd == 1 else "stderr_custom", sink)
            if net is not None:  # the guest's writes go to the sink from the run's own thread (net/wasi.py)
                net.stdio[fd] = sink
        timeout = spec.limits.timeout
        ro = readonly.guard(spec.read_only, len(extra), [m.read_only for m in spec.mounts], pinned)  # EROFS there
        try:
            if timeout is not None and spec.mounts:  # see watchdog.Backstop
                with watchdog.Backstop(time.monotonic() + timeout, [m.host for m in spec.mounts]):
                    result = self._execute(loaded, wasi, argv, workdir, spec, root, resume, keep, net, interrupts, ro)
            else:
                result = self._execute(loaded, wasi, argv, workdir, spec, root, resume, keep, net, interrupts, ro)
        finally:
            if net is not None:
                self._engine(loaded.stack).networking.finish(net)
        if net is not None:
            result.network = net.summary()
        result.stdout, result.stderr = stdout.finish(), stderr.finish()
        result.stdout_truncated, result.stderr_truncated = stdout.truncated, stderr.truncated
        result.stdout_dropped, result.stderr_dropped = stdout.dropped, stderr.dropped
        for sink in (stdout, stderr):
            if sink.error is not None:  # the guest has ended; the caller's callback failed
                raise sink.error
        return result

    def _execute(self, loaded: Loaded, wasi: wasmtime.WasiConfig, argv: list[str], workdir: str, spec: RunSpec,
                 root: Path, resume: Resume | None = None, keep: Keep | None = None,
                 net: nethost.Net | None = None, interrupts: Interrupts | None = None,
                 read_only: readonly.Guard | None = None) -> RunResult:
        limits, on_start, name = spec.limits, spec.on_start, argv[0]
        engine = self._engine(loaded.stack)
        editor = terminal.editor(spec.tty and spec.stdin == "-" and net is None, spec.interrupt, argv)  # -it: a REPL's lines
        tty = (lambda e: terminal.linker(e, self.deadlines, self.terminals)) if editor else None  # -it: fd_read of stdin is the line editor's
        linker = engine.linker_for(net is not None, tty, read_only is not None)  # read-only: writes answer EROFS
        store = wasmtime.Store(engine.engine)
        store.set_wasi(wasi)
        if limits.memory is not None:
            # Wasmtime's limits are per memory and per table: one memory and few, bounded
            # tables keep all of them together near the limit (a module with 64 memories, or
            # a table grown by 1e8 elements, would otherwise take gigabytes).
            store.set_limits(memory_size=limits.memory, memories=1, instances=MAX_INSTANCES, tables=MAX_TABLES,
                             table_elements=max(MIN_TABLE_ELEMENTS, limits.memory // TABLE_ELEMENT_SHARE))
        deadline = None if limits.timeout is None else time.monotonic() + limits.timeout
        watch = None
        if limits.disk is not None or spec.cancel is not None or interrupts is not None:
            watch = DiskWatch(root, limits.disk, deadline, self.deadlines, spec.cancel, interrupts=interrupts)
            watch.install(store)
        else:
            ticks = (1 << 62) if limits.timeout is None else max(1, math.ceil(limits.timeout / Ticker.TICK))
            store.set_epoch_deadline(ticks)
        started = time.perf_counter()
        result = RunResult(exit_code=0)
        try:
            instance = (linker or engine.linker).instantiate(store, loaded.module)
        except wasmtime.WasmtimeError as e:
            if limits.memory is not None and "count too high" in str(e):
                return RunResult(TRAP_EXIT_CODE, out_of_memory=True,
                                 trap=f"cannot start under a memory limit: {_reason(e)} (at most one memory, "
                                      f"{MAX_TABLES} tables)")
            if limits.memory is not None and "memory" in str(e):
                return RunResult(TRAP_EXIT_CODE, out_of_memory=True, trap=f"needs more memory than the {limits.memory}-byte limit")
            raise RunError(f"{name}: cannot start: {_reason(e)}", 126) from None
        exports = instance.exports(store)
        found = exports["memory"] if "memory" in exports else None
        memory = found if isinstance(found, wasmtime.Memory) else None  # not a memory: none to measure
        if interrupts is not None:
            interrupts.memory = memory
        if net is not None:
            engine.networking.attach(store, memory, net, name)
        if read_only is not None:
            engine.read_only.attach(store, memory, read_only)
        if resume is not None:  # the guest changes to its workdir itself
            start = preinit.restore(store, exports, resume.snapshot, resume.message, resume.baked)
            if start is None:
                return RunResult(TRAP_EXIT_CODE, out_of_memory=True, trap=f"needs more memory than the {limits.memory}-byte limit")
            result.preinitialised = True
        else:
            if workdir != "/" and loaded.cwd_slot is not None and memory is not None:
                set_cwd(store, memory, loaded.cwd_slot, workdir)
            start = reactor.entry(store, exports)
        if start is None:
            raise RunError(f"{name}: not a WASI command (no _start) nor a reactor (no run)", 126)
        if on_start is not None:
            on_start()
        self.deadlines.set(deadline, spec.cancel, interrupts)
        if editor is not None:
            self.terminals.set(editor, self.terminals.plain(engine.engine, store, memory), interrupts.deliver if interrupts else None)
        cpu = time.thread_time()
        with engine.ticker:
            try:
                result.exit_code = start()
            except (wasmtime.ExitTrap, wasmtime.Trap, wasmtime.WasmtimeError, wasiclock.Expired) as e:
                # wasmtime-py raises from a frame that holds the exception: drop the traceback so
                # the cycle (and the store in it) is freed now, not by a GC pass at exit.
                e.__traceback__ = None
                record(e, result, limits, self.deadlines.expired, spec.cancel)
                interrupt.settle(interrupts, result)
            finally:
                self.deadlines.set(None)
                self.terminals.set(None)
                engine.read_only.detach()
        result.cpu_ms = (time.thread_time() - cpu) * 1000
        result.peak_memory = 0 if memory is None else memory.data_len(store)
        if keep is not None:
            keep(store, exports)
        result.duration_ms = (time.perf_counter() - started) * 1000
        if watch is not None and limits.disk is not None and (watch.full or watch.over()):
            result.disk_full = True
            if not result.timed_out:
                result.exit_code, result.trap = TRAP_EXIT_CODE, f"wrote more than the {limits.disk}-byte disk limit"
        if limits.memory is not None and memory is not None and result.exit_code != 0:
            # wasmtime refuses a grow past the limit silently (memory.grow returns -1), so the
            # sign is a guest that failed while within one growth step of its cap.
            result.out_of_memory = memory.data_len(store) + OOM_MARGIN >= limits.memory
        return result

    def _image_program(self, image: Image, base: Path, name: str, path: str, workdir: str) -> tuple[str, Path]:
        """_find_program in an image's unpacked rootfs, which never changes: found once."""
        key = (image.id, name, path, workdir)
        program = self._programs.get(key)
        if program is None:
            program = self._programs[key] = find_program(base, name, path, workdir)
        return program
