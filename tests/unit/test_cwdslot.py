"""image/cwdslot.py finds wasi-libc's working-directory global among the words of a large
initial memory (a pre-initialised CPython's is 40 MB): the words that point at a "/" string
are looked for block by block, and only the one that code reads counts."""
from __future__ import annotations

import struct

import wasmtime

from boxer_py.image.cwdslot import find_cwd_slot


def _data(at: int, raw: bytes) -> str:
    escaped = "".join(f"\\{b:02x}" for b in raw)
    return f'(data (i32.const {at}) "{escaped}")'


def _module(slash: int, slot: int, decoys: list[int], read: int | None = None) -> bytes:
    segments = [_data(slash, b"/\0"), _data(slot, struct.pack("<I", slash))]
    segments += [_data(at, struct.pack("<I", slash)) for at in decoys]
    return wasmtime.wat2wasm(f"""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 4)
  {" ".join(segments)}
  (func (export "_start") (call $exit (i32.load8_u (i32.load (i32.const {slot if read is None else read}))))))
""")


def test_the_slot_is_found_in_any_block_of_a_large_memory():
    # 4 pages: 65,536 words, 16 blocks of 4,096; pointers in several, at a block's first and last word too
    for slash, slot, decoys in [(1024, 200_000, [16_384, 4 * 4096 * 3, 262_140]),
                                (250_000, 16_380, [0, 16_384, 131_072]),
                                (8, 262_140, [4, 65_536 - 4]),
                                (1024, 200_000, [])]:
        assert find_cwd_slot(_module(slash, slot, decoys)) == slot
    assert find_cwd_slot(_module(1024, 200_000, [16_384], read=100_000)) is None, "no pointer that code reads"
