"""Compiled modules, cached on disk by content so a second run does not recompile.

Key: the module's sha256 plus the wasmtime version and engine settings. Each entry keeps
the sha256 of its compiled bytes beside it; wasmtime trusts what it deserializes, so an
entry that fails the check (truncated, flipped bits, half written) is rebuilt, never used.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from importlib.metadata import version

from .wasicwd import find_cwd_slot

ENGINE_SETTINGS = "epoch"
WASMTIME_VERSION = version("wasmtime")


def new_engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True
    return wasmtime.Engine(config)


@dataclass(frozen=True)
class Loaded:
    module: wasmtime.Module
    digest: str
    cwd_slot: int | None


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class ModuleCache:
    def __init__(self, engine: wasmtime.Engine, directory: Path):
        self.engine = engine
        self.directory = directory

    def load(self, wasm: bytes) -> Loaded:
        digest = hashlib.sha256(wasm).hexdigest()
        key = f"{digest}-wasmtime{WASMTIME_VERSION}-{ENGINE_SETTINGS}"
        compiled, meta_path = self.directory / f"{key}.cwasm", self.directory / f"{key}.json"
        loaded = self._from_cache(compiled, meta_path, digest)
        if loaded is not None:
            return loaded
        module = wasmtime.Module(self.engine, wasm)
        serialized = bytes(module.serialize())
        meta = {"sha256": hashlib.sha256(serialized).hexdigest(), "cwd_slot": find_cwd_slot(wasm)}
        self.directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(compiled, serialized)
        _atomic_write(meta_path, json.dumps(meta).encode())
        return Loaded(module, digest, meta["cwd_slot"])

    def _from_cache(self, compiled: Path, meta_path: Path, digest: str) -> Loaded | None:
        try:
            meta = json.loads(meta_path.read_text())
            if hashlib.sha256(compiled.read_bytes()).hexdigest() != meta["sha256"]:
                return None
            module = wasmtime.Module.deserialize_file(self.engine, str(compiled))
            slot = meta["cwd_slot"]
            return Loaded(module, digest, slot if isinstance(slot, int) else None)
        except (OSError, ValueError, KeyError, TypeError, wasmtime.WasmtimeError):
            return None
