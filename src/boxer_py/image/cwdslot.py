"""Where a wasi-libc program keeps its current directory: `__wasilibc_cwd`, found statically.

wasi-libc emulates the current directory inside the guest: it keeps it in the global
`__wasilibc_cwd` (initially a pointer to the string "/"), ignores PWD, and resolves every
relative path against it. No WASI call sets it, so whoever starts a program in a working
directory points that global at the directory: the launcher after instantiation
(runtime/wasi/cwd.py), a standalone module in its data (registry/standalone.py).

The global is found among the module's data words that point at the string "/": the one
that code references by address; libc's getcwd/chdir are what reference it. Code names an
address as `i32.const addr` or as `i32.const 0` + a load/store with `offset=addr`, and the
linker may leave either immediate padded to 5 bytes (wasm-ld does unless asked to compress
relocations, as zig cc does), so both the minimal and padded LEBs count.
"""
from __future__ import annotations

import array
import re
import sys

from boxer_py.image.wasmbin import read_sleb, read_uleb, sleb, uleb

# Bumped whenever find_cwd_slot learns to find more, so results cached by an older one are redone.
FINDER_VERSION = 3
_BLOCK = 4096   # words


def _padded(value: int) -> bytes:
    """The 5-byte LEB a linker writes for a relocated 32-bit immediate (same for signed and
    unsigned while the value is below 2**31, as addresses in a 32-bit memory are here)."""
    return bytes([(value >> shift) & 0x7F | 0x80 for shift in (0, 7, 14, 21)] + [(value >> 28) & 0x7F])


def _referenced(code: bytes, address: int) -> bool:
    """Whether code names `address`: `i32.const address`, or `i32.const 0` then a load or
    store (opcodes 0x28-0x3e, alignment 0-3) with `offset=address`, minimal or padded."""
    if any(b"\x41" + enc in code for enc in (sleb(address), _padded(address))):
        return True
    offsets = b"|".join(re.escape(enc) for enc in (uleb(address), _padded(address)))
    return re.search(rb"\x41(?:\x00|\x80\x80\x80\x80\x00)[\x28-\x3e][\x00-\x03](?:" + offsets + rb")", code) is not None


def _sections(wasm: bytes) -> dict[int, tuple[int, int]]:
    pos, found = 8, {}
    while pos < len(wasm):
        sid = wasm[pos]
        size, pos = read_uleb(wasm, pos + 1)
        if sid:
            found[sid] = (pos, pos + size)
        pos += size
    return found


def _memory_image(wasm: bytes, start: int, end: int) -> bytearray:
    """The initial linear memory, from the active data segments with constant offsets."""
    count, pos = read_uleb(wasm, start)
    segments = []
    for _ in range(count):
        flag, pos = read_uleb(wasm, pos)
        if flag == 1:  # passive: no address
            size, pos = read_uleb(wasm, pos)
            pos += size
            continue
        if flag == 2:
            _, pos = read_uleb(wasm, pos)
        if wasm[pos] != 0x41:  # not i32.const: an offset we cannot know statically
            return bytearray()
        offset, pos = read_sleb(wasm, pos + 1)
        pos += 1  # end
        size, pos = read_uleb(wasm, pos)
        segments.append((offset, wasm[pos:pos + size]))
        pos += size
    if not segments:
        return bytearray()
    end = max(o + len(d) for o, d in segments)
    # A linker lays data out densely; a module whose segments would span far more memory than
    # they hold (an offset near 4 GiB, a negative one) comes from an image that is not to be
    # looked into, nor allocated for (a push reads the entrypoint of any image).
    if min(o for o, _ in segments) < 0 or end > (16 << 20) + 4 * sum(len(d) for _, d in segments):
        return bytearray()
    memory = bytearray(end)
    for offset, data in segments:
        memory[offset:offset + len(data)] = data
    return memory


def find_cwd_slot(wasm: bytes) -> int | None:
    """The address of wasi-libc's `__wasilibc_cwd` in `wasm`, or None if there is none to find."""
    try:
        sections = _sections(wasm)
        if 11 not in sections or 10 not in sections:
            return None
        memory = _memory_image(wasm, *sections[11])
        code = wasm[slice(*sections[10])]
    except IndexError:
        return None
    memory += bytes(-len(memory) % 4)
    slashes = {m.start() for m in re.finditer(rb"/\0", memory)}
    words = array.array("I", bytes(memory))
    if sys.byteorder != "little":
        words.byteswap()
    # The words that hold one of those addresses, in address order: a snapshot's memory is 40 MB
    # and few of its words do, so a block is looked at word by word only once one of its words
    # is known (in C) to be such an address.
    pointers = []
    for start in range(0, len(words), _BLOCK):
        block = words[start:start + _BLOCK]
        if not slashes.isdisjoint(block):
            pointers += [(start + i) * 4 for i, word in enumerate(block) if word in slashes]
    # A pre-initialised (snapshot) memory also holds pointers into its heap, e.g. at wide
    # strings "/usr..." whose UTF-32 "/" reads as "/\0": a C string "/" is looked for first.
    wide = {a for a in pointers if memory[words[a // 4] + 2:words[a // 4] + 4] == b"\0\0"}
    for group in ([a for a in pointers if a not in wide], pointers):
        candidates = [a for a in group if _referenced(code, a)]
        if candidates:
            return candidates[0] if len(candidates) == 1 else None
    return None
