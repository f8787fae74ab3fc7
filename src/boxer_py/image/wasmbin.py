"""The WebAssembly binary format, as little of it as boxer reads and edits: LEB128 numbers
and the module's sections."""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

MAGIC = b"\0asm\x01\0\0\0"
TYPE, IMPORT, FUNCTION, GLOBAL, EXPORT, CODE = 1, 2, 3, 6, 7, 10


class Bytes(Protocol):
    """What the readers index: bytes, or an image file's mmap."""

    def __getitem__(self, index: int, /) -> int: ...


def read_uleb(data: Bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def read_sleb(data: Bytes, pos: int) -> tuple[int, int]:
    value, end = read_uleb(data, pos)
    if data[end - 1] & 0x40:  # the sign bit of the last byte
        value -= 1 << (7 * (end - pos))
    return value, end


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def name(text: str) -> bytes:
    data = text.encode()
    return uleb(len(data)) + data


def sections(wasm: bytes) -> list[tuple[int, bytes]]:
    """(id, payload) of every section in order, custom sections (id 0) included."""
    if wasm[:8] != MAGIC:
        raise ValueError("not a WebAssembly 1.0 module")
    pos, found = 8, []
    while pos < len(wasm):
        size, start = read_uleb(wasm, pos + 1)
        if start + size > len(wasm):
            raise ValueError("a section runs past the end of the module")
        found.append((wasm[pos], wasm[start:start + size]))
        pos = start + size
    return found


def section(wasm: bytes, sid: int) -> bytes:
    """The payload of the section `sid` (the last one, as `dict(sections(wasm))` has it; b""
    when there is none), copying nothing else of a large module; ValueError as `sections`."""
    if wasm[:8] != MAGIC:
        raise ValueError("not a WebAssembly 1.0 module")
    pos, found = 8, (0, 0)
    while pos < len(wasm):
        size, start = read_uleb(wasm, pos + 1)
        if start + size > len(wasm):
            raise ValueError("a section runs past the end of the module")
        if wasm[pos] == sid:
            found = (start, start + size)
        pos = start + size
    return wasm[found[0]:found[1]]


def custom_name(payload: bytes) -> str | None:
    """The name a custom section's payload starts with; None when it is not a UTF-8 name that
    fits in the payload."""
    try:
        size, pos = read_uleb(payload, 0)
        if pos + size > len(payload):
            return None
        return bytes(payload[pos:pos + size]).decode()
    except (IndexError, UnicodeDecodeError):
        return None


def without_custom(wasm: bytes, drop: Callable[[str], bool]) -> bytes:
    """`wasm` without the custom sections whose name `drop` accepts. Every other section is
    kept byte for byte, its header included (its size as the producer encoded it), and in
    order, so nothing before the first dropped section moves: the same input gives the same
    bytes."""
    if wasm[:8] != MAGIC:
        raise ValueError("not a WebAssembly 1.0 module")
    pos, kept = 8, [MAGIC]
    while pos < len(wasm):
        size, start = read_uleb(wasm, pos + 1)
        if start + size > len(wasm):
            raise ValueError("a section runs past the end of the module")
        name = custom_name(wasm[start:start + size]) if wasm[pos] == 0 else None
        if name is None or not drop(name):
            kept.append(wasm[pos:start + size])
        pos = start + size
    return b"".join(kept)


def assemble(parts: list[tuple[int, bytes]]) -> bytes:
    return MAGIC + b"".join(bytes([sid]) + uleb(len(payload)) + payload for sid, payload in parts)


def append(payload: bytes, *items: bytes) -> bytes:
    """A vector section's payload with `items` added at its end (existing indices stay)."""
    count, pos = read_uleb(payload, 0) if payload else (0, 0)
    return uleb(count + len(items)) + payload[pos:] + b"".join(items)


def count(payload: bytes) -> int:
    return read_uleb(payload, 0)[0] if payload else 0


def import_entries(payload: bytes) -> list[tuple[str, str, int]]:
    """(module, name, kind) of each entry of an import section, in order (kind: 0 function,
    1 table, 2 memory, 3 global, 4 tag); names not in UTF-8 are shown with U+FFFD."""
    total, pos = read_uleb(payload, 0) if payload else (0, 0)
    entries = []
    for _ in range(total):
        names = []
        for _ in range(2):  # module and field names
            size, pos = read_uleb(payload, pos)
            names.append(bytes(payload[pos:pos + size]).decode("utf-8", "replace"))
            pos += size
        kind = payload[pos]
        pos += 1
        entries.append((names[0], names[1], kind))
        if kind == 0:  # function: a type index
            _, pos = read_uleb(payload, pos)
        elif kind in (1, 2):  # table (reftype + limits) or memory (limits)
            pos += kind == 1
            flags = payload[pos]
            _, pos = read_uleb(payload, pos + 1)
            if flags & 1:
                _, pos = read_uleb(payload, pos)
        elif kind == 3:  # global: valtype + mutability
            pos += 2
        else:  # tag: attribute + type index
            _, pos = read_uleb(payload, pos + 1)
    return entries


def export_entries(payload: bytes) -> list[tuple[bytes, int, int]]:
    """(name, kind, index) of each entry of an export section, in order (kind as for imports)."""
    total, pos = read_uleb(payload, 0) if payload else (0, 0)
    out = []
    for _ in range(total):
        size, pos = read_uleb(payload, pos)
        label = bytes(payload[pos:pos + size])
        kind = payload[pos + size]
        index, pos = read_uleb(payload, pos + size + 1)
        out.append((label, kind, index))
    return out


def imports(payload: bytes) -> dict[int, int]:
    """How many of the import section's entries are of each kind (0 function, 1 table,
    2 memory, 3 global, 4 tag): imports come first in their kind's index space."""
    kinds: dict[int, int] = {}
    for _, _, kind in import_entries(payload):
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds
