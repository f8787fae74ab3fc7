"""What a launcher keeps warm between runs: the Wasmtime engines (one per wasm stack size), the
compiled programs of each image, the image's CPython made resumable, its snapshots and the
modules with a snapshot baked in. All of it is found again from the cache directory by
another process (`held`/`preload`: the run server), and none of it depends on one run:
the per-run launch (sandbox.py) only reads from here.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import wasmtime

from boxer_py.errors import RunError
from boxer_py.image.config import DEFAULT_PATH
from boxer_py.image.imagefile import Image
from boxer_py.image.rootfs import within
from boxer_py.runtime.argv import find_program, with_interpreter
from boxer_py.runtime.engines import Engine, Engines, names
from boxer_py.runtime.modcache import Loaded, wasm_stack
from boxer_py.runtime.outcome import reason
from boxer_py.runtime.preinit import bake
from boxer_py.runtime.preinit import snapshot as preinit
from boxer_py.runtime.preinit.bake import Baker
from boxer_py.runtime.preinit.snapshot import Snapshot
from boxer_py.runtime.wasi import clock as wasiclock

T = TypeVar("T")
FIXED = 4096  # answers Programs.fixed keeps
_UNKNOWN = object()
ModuleKey = tuple[str, object]  # (image id, program path), ("preinit", (digest, stack)) or ("baked", key)


@dataclass
class Programs:
    """The engines, compiled modules and snapshots of one launcher (thread-safe)."""

    cache_dir: Path
    deadlines: wasiclock.Deadlines  # every engine's linkers end sleeps at their run's deadline
    preinit: bool = True            # False: every run starts its interpreter from scratch
    baker: Baker | None = None      # preinit.bake: snapshots baked into their module, in the background
    epochs: bool = True             # False: engines without epoch interruption (exitwatch.py)
    engines: Engines = field(init=False)
    _loaded: dict[ModuleKey, Loaded] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fixed: dict[Hashable, Any] = field(default_factory=dict)  # see fixed
    _snapshots: dict[str, Snapshot | None] = field(default_factory=dict)
    _snapshot_lock: threading.Lock = field(default_factory=threading.Lock)  # held through a boot run
    _guest_digest: str | None = None  # see guest_digest

    def __post_init__(self) -> None:
        self.engines = Engines(self.cache_dir / "modules", self.deadlines, self.epochs)

    def engine(self, stack: int | None) -> Engine:
        """The engine (with its linkers and ticker) for modules compiled with this wasm stack."""
        return self.engines.get(stack)

    def digest_file(self, program: Path, base: Path) -> str:
        """The sha256 of an unpacked image's program (remembered per rootfs)."""
        return self.engine(None).modules.digest_file(program, base)

    def image_program(self, image: Image, base: Path, name: str, path: str = DEFAULT_PATH,
                      workdir: str = "/") -> tuple[str, Path]:
        """argv.find_program in an image's unpacked rootfs, which never changes: found once."""
        return self.fixed(("program", image.id, name, path, workdir), lambda: find_program(base, name, path, workdir))

    def fixed(self, key: Hashable, find: Callable[[], T]) -> T:
        """What `find` finds in an image's unpacked rootfs (`key` names the image and the
        question): that rootfs never changes, so each is found once (a run then skips the
        path lookups and reads its command's start took). At most FIXED answers are kept: a
        long-lived run server asked for ever new commands forgets them all and starts again."""
        found = self._fixed.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = find()
            with self._lock:
                if len(self._fixed) >= FIXED:
                    self._fixed.clear()
                self._fixed[key] = found
        return found

    def image_interpreter(self, image: Image, base: Path, name: str, path: str = DEFAULT_PATH,
                          workdir: str = "/") -> list[str]:
        """argv.with_interpreter of the command `name` in an image's unpacked rootfs."""
        return list(self.fixed(("interpreter", image.id, name, path, workdir),
                               lambda: tuple(with_interpreter(base, [name], path, workdir))))

    def stack(self, image: Image, base: Path, program: Path) -> int | None:
        """The max_wasm_stack the image's labels ask for `program` (see wasm_stack)."""
        return wasm_stack(image.spec.config.labels, names(lambda guest: self.image_program(image, base, guest)[1], program))

    def module(self, image: Image, base: Path, program: Path, name: str) -> Loaded:
        """The compiled `program` of the (read-only) unpacked image; kept in memory per image."""
        key = (image.id, program)
        with self._lock:
            loaded = self._loaded.get(key)
        if loaded is None:
            try:
                loaded = self.engine(self.stack(image, base, program)).modules.load_file(program, base)
            except wasmtime.WasmtimeError as e:
                raise RunError(f"{name}: {within(base, program)} is not a valid WebAssembly program "
                               f"({reason(e)})", 126) from None
            with self._lock:
                self._loaded[key] = loaded
        return loaded

    def for_program(self, image: Image, base: Path, program: Path, name: str) -> Loaded:
        """What a run that starts from scratch instantiates: the resumable module when the
        program is the image's CPython (it runs `_start` exactly as the original does, and one
        compile of a 100 MB runtime serves both kinds of runs), else the program itself."""
        return self.resumable(image, base, program) or self.module(image, base, program, name)

    def cpython(self, image: Image, base: Path) -> tuple[str, Path, Loaded] | None:
        """The image's CPython that boxer can pre-initialise: its guest path, host path and
        resumable module; None if the base has none (or pre-initialisation is off)."""
        name = preinit.program(image.spec.config.labels)
        if name is None:
            return None
        program = self.image_program(image, base, name)[1]
        module = self.resumable(image, base, program)
        return None if module is None else (name, program, module)

    def resumable(self, image: Image, base: Path, program: Path) -> Loaded | None:
        """The image's CPython made resumable (compiled once, kept per digest), if `program` is
        that CPython and pre-initialisation is on; else None."""
        guest = preinit.program(image.spec.config.labels)
        if not (self.preinit and guest):
            return None
        try:
            if self.image_program(image, base, guest)[1] != program:
                return None
        except RunError:
            return None
        digest = self.digest_file(program, base)
        stack = self.stack(image, base, program)
        with self._lock:
            module = self._loaded.get(("preinit", (digest, stack)))
        if module is None:
            try:
                module = self.engine(stack).modules.derived(digest, f"preinit{preinit.VERSION}",
                                                            lambda: preinit.resumable(program.read_bytes()))
            except (ValueError, IndexError, wasmtime.WasmtimeError):
                return None  # not a module preinit can edit: the ordinary path says what is wrong
            with self._lock:
                self._loaded[("preinit", (digest, stack))] = module
        return module

    def snapshot(self, key: str, boot: Callable[[], Snapshot | None]) -> tuple[Snapshot | None, bool]:
        """The snapshot for `key` (None: the interpreter would not boot, its runs start from
        scratch) and whether this launcher had it already: from memory, the cache, or `boot`
        (a boot run, in a sandbox like the runs' own), saved to the cache."""
        with self._snapshot_lock:
            if key in self._snapshots:
                return self._snapshots[key], True
            path = self._snapshot_path(key)
            made = preinit.load(path)
            if made is None:
                booted = boot()
                made = None if booted is None else preinit.save(path, booted)
            self._snapshots[key] = made
            return made, False

    def guest_digest(self) -> str:
        """The digest of preinit's guest code (part of every snapshot key), hashed once."""
        if self._guest_digest is None:
            self._guest_digest = preinit.code_digest()
        return self._guest_digest

    def _snapshot_path(self, key: str) -> Path:
        return self.cache_dir / "preinit" / f"{key}.snap"

    def baked(self, module: Loaded, snapshot: Snapshot, program: Path, reused: bool) -> Loaded | None:
        """The snapshot baked into its module, from memory or the cache; if there is none, a
        snapshot used again in this launcher is baked in the background (preinit.bake)."""
        key = ("baked", hashlib.sha256(f"{module.digest} {snapshot.digest}".encode()).hexdigest())
        name, modules = f"{key[1]}+bake{bake.VERSION}", self.engine(module.stack).modules
        keep = lambda loaded: self._loaded.__setitem__(key, loaded)  # noqa: E731 (one item: atomic)
        found = self._loaded.get(key)
        if found is None and self.baker is not None and snapshot.digest:
            found = modules.cached(name)
            if found is not None:
                keep(found)
            elif reused:
                self.baker.want(bake.Job(name, modules, lambda: bake.bake(preinit.resumable(program.read_bytes()), snapshot), keep))
        return found

    def held(self) -> tuple[list[tuple[ModuleKey, str, int | None]], list[str]]:
        """What is kept in memory (compiled modules, snapshots), as keys with which preload()
        in another process finds the same things in the shared cache."""
        with self._lock:
            modules = [(key, loaded.digest, loaded.stack) for key, loaded in self._loaded.items()]
        with self._snapshot_lock:
            snapshots = [key for key, snapshot in self._snapshots.items() if snapshot is not None]
        return modules, snapshots

    def preload(self, modules: list[tuple[ModuleKey, str, int | None]], snapshots: list[str]) -> int:
        """Load into memory what held() listed elsewhere, from the cache only: nothing is
        compiled nor run here (the run server forks runs from a launcher that must not have
        started Wasmtime's compiler or WASI threads). Returns how many were new."""
        self.guest_digest()  # hashed here once, not in each run forked from here
        new = 0
        for key, digest, stack in modules:
            if key not in self._loaded and (loaded := self.engine(stack).modules.cached(digest)) is not None:
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
