"""A snapshot is made of what a guest's boot run left in its memory and printed: every number
in it is hostile. Baking one into a module (preinit.bake) and restoring one must refuse what
lies outside the snapshot's memory or past the bake's bounds, before anything is allocated for
it or written, and a module bake does not know is refused, not half-baked."""
from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
import wasmtime

from boxer_py.runtime.preinit import bake, snapshot
from boxer_py.runtime.preinit.snapshot import Snapshot

# wasm-ld's layout in miniature: global 0 the stack pointer, data at 1024, memory exported.
MODULE = """
(module
  (global $sp (mut i32) (i32.const 65536))
  (memory (export "memory") 2 100)
  (data (i32.const 1024) "initial data")
  (func (export "sp") (result i32) (global.get $sp)))"""


def good() -> Snapshot:
    page = bytearray(b"\x07" * 4096)
    page[:7] = b"changed"
    return Snapshot(memory_size=3 * 65536, pages=((2 * 65536, 4096),), data=page, stack_pointer=60000,
                    callable=1, args=2, function=3, inbox=2 * 65536 + 100, inbox_size=64)


def instantiate(wasm: bytes) -> tuple[wasmtime.Store, wasmtime.Instance]:
    store = wasmtime.Store()
    return store, wasmtime.Instance(store, wasmtime.Module(store.engine, wasm), [])


def test_a_baked_module_starts_as_the_snapshot():
    wasm = bytes(wasmtime.wat2wasm(MODULE))
    store, instance = instantiate(bake.bake(wasm, good()))
    memory = instance.exports(store)["memory"]
    data = memory.read(store, 0, memory.data_len(store))
    assert memory.data_len(store) == 3 * 65536  # the snapshot's size, not the module's 2 pages
    assert data[1024:1036] == b"initial data" and data[2 * 65536:2 * 65536 + 7] == b"changed"
    assert data[2 * 65536 + 7:2 * 65536 + 4096] == b"\x07" * (4096 - 7) and not any(data[2 * 65536 + 4096:])
    assert instance.exports(store)["sp"](store) == 60000


@pytest.mark.parametrize("change", [
    {"memory_size": 65536 + 1}, {"memory_size": 0}, {"memory_size": 1 << 40},
    {"pages": ((3 * 65536, 4096),)}, {"pages": ((100, 4096),)},
    {"pages": ((0, 4096), (0, 4096)), "data": bytearray(8192)},
    {"pages": ((0, 8192),)}, {"stack_pointer": 4 * 65536}, {"stack_pointer": -1},
    {"inbox": 3 * 65536 - 10}, {"inbox_size": 1 << 33}, {"inbox": -5},
], ids=["odd-size", "no-memory", "huge", "page-outside", "unaligned", "overlap", "data-short",
        "sp-outside", "sp-negative", "inbox-past-end", "inbox-huge", "inbox-negative"])
def test_hostile_numbers_are_refused(change):
    bad = replace(good(), **change)
    with pytest.raises(ValueError):
        snapshot.check(bad)
    with pytest.raises(ValueError):
        bake.bake(bytes(wasmtime.wat2wasm(MODULE)), bad)


def test_a_snapshot_larger_than_the_bake_bound_is_not_baked():
    big = replace(good(), memory_size=bake.MAX_MEMORY + 65536)
    snapshot.check(big)  # a run may still restore it
    with pytest.raises(ValueError, match="not baked"):
        bake.bake(bytes(wasmtime.wat2wasm(MODULE)), big)


def test_a_damaged_snapshot_file_is_not_loaded(tmp_path):
    path = tmp_path / "s.snap"
    saved = snapshot.save(path, good())
    assert snapshot.load(path).digest == saved.digest == hashlib.sha256(path.read_bytes()[:-32]).hexdigest()
    body = good().to_bytes().replace(b'"inbox": 131172', b'"inbox": 999999999')
    path.write_bytes(body + hashlib.sha256(body).digest())  # checksummed, but pointing outside
    assert snapshot.load(path) is None


@pytest.mark.parametrize("wat", [
    '(module (global (mut i32) (i32.const 0)) (memory 1) (data "passive"))',
    '(module (global $g i32 (i32.const 5)) (global (mut i32) (global.get $g)) (memory 1))',
    '(module (global (mut i32) (i32.const 0)) (memory 1 2))',
    '(module (import "m" "mem" (memory 1)) (global (mut i32) (i32.const 0)))',
    '(module (global i32 (i32.const 0)) (memory 4))',
], ids=["passive-segment", "global-not-const", "max-below-snapshot", "imported-memory", "no-stack-pointer"])
def test_modules_bake_does_not_know_are_refused(wat):
    with pytest.raises(ValueError):
        bake.bake(bytes(wasmtime.wat2wasm(wat)), good())
