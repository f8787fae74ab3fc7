"""Merging a shim module into a WASI program so that some of the program's imports resolve to
the shim's exports: the standalone export's linker (registry/standalone.py) and the alias
layer of a pushed program (image/aliaslink.py). Instructions are image/wasmcode.py's.

The program keeps its one memory, its globals, types, tables, data and exports. The shim
(toolchain/vfs, compiled position-independent) shares that memory at `base`: its static data
and stack lie past the program's initial memory, whose minimum grows to hold them, so the
program's sbrk-based malloc never meets them. The shim's own imports of the real host
functions and the program's imports it does not answer become the merged module's imports.

The program's code is rewritten only where it calls an import that the shim now answers:
imports are laid out so that every other function keeps its index (padded with duplicates
of a real import when the shim needs fewer), and only function bodies that contain such a
call's bytes are decoded at all (a 6 MB CPython code section: about 2 s of CPU).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from boxer_py.image.cwdslot import find_cwd_slot
from boxer_py.image.wasmbin import MAGIC, read_sleb, read_uleb, sleb, uleb
from boxer_py.image.wasmbin import name as encoded
from boxer_py.image.wasmcode import VALTYPES, LinkError, call_pattern, calls_run, rewrite_body, skip_code, uleb_end

__all__ = ["LinkError", "Module", "call_pattern", "map_elements", "merge", "merge_module", "parse", "rewrite_body"]
PAGE = 65536


@dataclass
class Import:
    module: str
    name: str
    kind: int
    desc: bytes          # the raw import description after the kind byte
    type: int = -1       # for functions: the type index


@dataclass
class Module:
    types: list[bytes] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    functions: list[int] = field(default_factory=list)
    tables: bytes = b""
    memories: list[tuple[int, int | None]] = field(default_factory=list)
    globals: list[bytes] = field(default_factory=list)
    exports: list[tuple[str, int, int]] = field(default_factory=list)
    start: int | None = None
    elements: bytes = b""
    code: list[bytes] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)
    tags: bytes = b""
    customs: list[tuple[str, bytes]] = field(default_factory=list)
    ids: set[int] = field(default_factory=set)   # the ids of the sections it has

    def imported(self, kind: int) -> list[Import]:
        return [i for i in self.imports if i.kind == kind]


def _name(data: bytes, pos: int) -> tuple[str, int]:
    size, pos = read_uleb(data, pos)
    return data[pos:pos + size].decode("utf-8", "replace"), pos + size


def _limits(data: bytes, pos: int) -> tuple[int, int | None, int]:
    flags = data[pos]
    if flags & ~1:
        raise LinkError("a shared or 64-bit memory or table")
    low, pos = read_uleb(data, pos + 1)
    high = None
    if flags & 1:
        high, pos = read_uleb(data, pos)
    return low, high, pos


def _expr_end(data: bytes, pos: int) -> int:
    """The position after a constant expression's `end`."""
    return skip_code(data, pos, stop_at_end=True)


def _vector(payload: bytes, item_end) -> list[bytes]:
    count, pos = read_uleb(payload, 0)
    items = []
    for _ in range(count):
        end = item_end(payload, pos)
        items.append(payload[pos:end])
        pos = end
    return items


def _functype_end(data: bytes, pos: int) -> int:
    if data[pos] != 0x60:
        raise LinkError("a type other than a function type (GC proposal)")
    pos += 1
    for _ in range(2):
        count, pos = read_uleb(data, pos)
        for _ in range(count):
            if data[pos] not in VALTYPES:
                raise LinkError("a value type outside WebAssembly 2.0")
            pos += 1
    return pos


def _global_end(data: bytes, pos: int) -> int:
    return _expr_end(data, pos + 2)


def _sized_end(data: bytes, pos: int) -> int:
    size, pos = read_uleb(data, pos)
    return pos + size


def _data_end(data: bytes, pos: int) -> int:
    flag, pos = read_uleb(data, pos)
    if flag == 2:
        _, pos = read_uleb(data, pos)
    if flag in (0, 2):
        pos = _expr_end(data, pos)
    return _sized_end(data, pos)


def parse(wasm: bytes) -> Module:
    if wasm[:8] != MAGIC:
        raise LinkError("not a WebAssembly 1.0 module")
    module, pos = Module(), 8
    while pos < len(wasm):
        sid = wasm[pos]
        size, start = read_uleb(wasm, pos + 1)
        payload, pos = wasm[start:start + size], start + size
        module.ids.add(sid)
        if sid == 0:
            name, at = _name(payload, 0)
            module.customs.append((name, payload[at:]))
        elif sid == 1:
            module.types = _vector(payload, _functype_end)
        elif sid == 2:
            count, at = read_uleb(payload, 0)
            for _ in range(count):
                mod, at = _name(payload, at)
                name, at = _name(payload, at)
                kind, begin = payload[at], at + 1
                type_index = -1
                if kind == 0:
                    type_index, at = read_uleb(payload, begin)
                elif kind == 1:
                    at = _limits(payload, begin + 1)[2]
                elif kind == 2:
                    at = _limits(payload, begin)[2]
                elif kind == 3:
                    at = begin + 2
                else:
                    raise LinkError("an imported exception tag")
                module.imports.append(Import(mod, name, kind, payload[begin:at], type_index))
        elif sid == 3:
            count, at = read_uleb(payload, 0)
            for _ in range(count):
                index, at = read_uleb(payload, at)
                module.functions.append(index)
        elif sid == 4:
            module.tables = payload
        elif sid == 5:
            count, at = read_uleb(payload, 0)
            for _ in range(count):
                low, high, at = _limits(payload, at)
                module.memories.append((low, high))
        elif sid == 6:
            module.globals = _vector(payload, _global_end)
        elif sid == 7:
            count, at = read_uleb(payload, 0)
            for _ in range(count):
                name, at = _name(payload, at)
                kind = payload[at]
                index, at = read_uleb(payload, at + 1)
                module.exports.append((name, kind, index))
        elif sid == 8:
            module.start = read_uleb(payload, 0)[0]
        elif sid == 9:
            module.elements = payload
        elif sid == 10:
            module.code = _vector(payload, _sized_end)
        elif sid == 11:
            module.data = _vector(payload, _data_end)
        elif sid == 13:
            module.tags = payload
        elif sid != 12:
            raise LinkError(f"an unknown section {sid}")
    return module


# ---- merging ----

SHIM_STACK = 64 * 1024
_WASI = "wasi_snapshot_preview1"
_SHIM_GLOBALS = ("__stack_pointer", "__memory_base", "__table_base")


def _shim_memory_size(shim: Module) -> int:
    for name, payload in shim.customs:
        if name == "dylink.0":
            pos = 0
            while pos < len(payload):
                kind = payload[pos]
                size, pos = read_uleb(payload, pos + 1)
                if kind == 1:
                    return read_uleb(payload, pos)[0]
                pos += size
    raise LinkError("the shim is not position-independent (no dylink.0 memory info)")


def _active(address: int, data: bytes) -> bytes:
    return b"\0\x41" + sleb(address) + b"\x0b" + uleb(len(data)) + data


def _patch_word(segments: list[bytes], address: int, value: int) -> bool:
    """Writes a 32-bit word into the active data segment that holds `address`."""
    for i, segment in enumerate(segments):
        if segment[:2] != b"\0\x41":
            continue
        offset, pos = read_sleb(segment, 2)
        if segment[pos] != 0x0B:
            continue
        size, start = read_uleb(segment, pos + 1)
        if offset <= address and address + 4 <= offset + size:
            at = start + address - offset
            segments[i] = segment[:at] + value.to_bytes(4, "little") + segment[at + 4:]
            return True
    return False


def map_elements(payload: bytes, funcs: dict[int, int]) -> bytes:
    if not payload or not funcs:
        return payload
    count, pos = read_uleb(payload, 0)
    out = [uleb(count)]
    for _ in range(count):
        start = pos
        flags, pos = read_uleb(payload, pos)
        if flags & 2 and not flags & 1:
            pos = uleb_end(payload, pos)           # table index
        if not flags & 1:
            pos = _expr_end(payload, pos)           # offset
        if flags & 3:
            pos += 1                                # element kind or reference type
        out.append(payload[start:pos])
        items, pos = read_uleb(payload, pos)
        out.append(uleb(items))
        for _ in range(items):
            if flags & 4:
                end = _expr_end(payload, pos)
                expr = payload[pos:end]
                if expr[0] == 0xD2:
                    index = read_uleb(expr, 1)[0]
                    expr = b"\xd2" + uleb(funcs.get(index, index)) + b"\x0b"
                out.append(expr)
            else:
                index, end = read_uleb(payload, pos)
                out.append(uleb(funcs.get(index, index)))
            pos = end
    return b"".join(out)


def _vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def _limits_bytes(low: int, high: int | None) -> bytes:
    return (b"\x01" + uleb(low) + uleb(high)) if high is not None else b"\0" + uleb(low)


def _layout_imports(p: Module, s: Module, shim_exports: dict[str, int], shim_type: dict[int, int]
                    ) -> tuple[list[Import], dict[tuple[str, str], int], dict[int, int]]:
    """The merged imports: the program's own where it keeps them (same index), the shim's real
    imports in the places the shim takes over, padded with a real import to keep the count.
    Also where each (module, name) now is, and the program's imports the shim answers."""
    slots: list[Import | None] = []
    shimmed: dict[int, int] = {}
    for index, imp in enumerate(p.imports):
        if imp.module == _WASI and imp.name in shim_exports:
            target = shim_exports[imp.name]
            if p.types[imp.type] != s.types[shim_type[target]]:
                raise LinkError(f"the program imports {imp.name} with another signature than WASI's")
            shimmed[index] = target
            slots.append(None)
        else:
            slots.append(imp)
    types_offset = len(p.types)
    place: dict[tuple[str, str], int] = {(i.module, i.name): n for n, i in enumerate(slots) if i}
    for imp in s.imported(0):
        if imp.module == "boxer" or (imp.module, imp.name) in place:
            continue
        if imp.module != _WASI:
            raise LinkError(f"the shim imports {imp.module}.{imp.name}")
        entry = Import(imp.module, imp.name, 0, uleb(imp.type + types_offset), imp.type + types_offset)
        free = next((n for n, slot in enumerate(slots) if slot is None), None)
        if free is None:
            slots.append(entry)
            free = len(slots) - 1
        else:
            slots[free] = entry
        place[(imp.module, imp.name)] = free
    filler = next(slot for slot in slots if slot is not None)
    imports = [slot or filler for slot in slots]
    return imports, place, shimmed


def _shim_globals(s: Module, gp: int, stack_top: int, base: int) -> tuple[list[bytes], dict[int, int]]:
    """The shim's globals, defined after the program's `gp`: its imported stack pointer,
    memory base and table base become constants of the layout, its own follow."""
    s_globals: dict[int, int] = {}
    new_globals = [b"\x7f\x01\x41" + sleb(stack_top) + b"\x0b", b"\x7f\x00\x41" + sleb(base) + b"\x0b",
                   b"\x7f\x00\x41\x00\x0b"]
    for n, imp in enumerate(s.imported(3)):
        if imp.name not in _SHIM_GLOBALS:
            raise LinkError(f"the shim imports the global {imp.module}.{imp.name}")
        s_globals[n] = gp + _SHIM_GLOBALS.index(imp.name)
    for n, glob in enumerate(s.globals):
        if b"\x23" in glob[2:-1]:
            raise LinkError("a shim global initialised from another global")
        s_globals[len(s.imported(3)) + n] = gp + len(new_globals)
        new_globals.append(glob)
    return new_globals, s_globals


def merge(program: bytes, shim: bytes, blob: bytes, cwd: str = "/") -> bytes:
    """`program` with its WASI imports that `shim` exports answered by the shim, `blob` as a
    passive data segment the shim reads through its `boxer.blob_read` import, and (when the
    program keeps wasi-libc's cwd global) `cwd` as its starting directory."""
    return merge_module(parse(program), shim, blob, cwd, lambda: find_cwd_slot(program))


def merge_module(p: Module, shim: bytes, blob: bytes, cwd: str = "/",
                 cwd_slot: Callable[[], int | None] = lambda: None,
                 pending: tuple[dict[int, int], int] = ({}, 0)) -> bytes:
    """`merge` of the parsed program `p`, whose first `pending[1]` bodies still call through
    `pending[0]` (an edit of the program that was not applied to its code: image/reactorcmd.py's
    `contained`): each body is rewritten once, with that map and the merge's own composed, and
    the bytes are those of the edited program merged. `cwd_slot`: where the program keeps
    wasi-libc's working directory (asked only when `cwd` is not "/")."""
    s = parse(shim)
    if any(i.kind != 0 for i in p.imports):
        raise LinkError("the program imports a memory, table or global (only functions can be merged)")
    if len(p.memories) != 1:
        raise LinkError("the program does not define exactly one memory")
    if not any(name == "_start" and kind == 0 for name, kind, _ in p.exports):
        raise LinkError("not a WASI command (no _start: a reactor runs only under boxer)")
    foreign = next((i for i in p.imports if i.module != _WASI), None)
    if foreign is not None:
        raise LinkError(f"it imports {foreign.module}.{foreign.name}, which no WASI runtime provides")
    kp, ks = len(p.imports), len(s.imported(0))
    np_, ns = len(p.functions), len(s.functions)
    shim_exports = {name: index for name, kind, index in s.exports if kind == 0}
    shim_type = {i: s.functions[i - ks] for i in shim_exports.values()}

    imports, place, shimmed = _layout_imports(p, s, shim_exports, shim_type)
    types_offset = len(p.types)
    m = len(imports)
    shift = m - kp

    def shim_index(s_index: int) -> int:
        return m + np_ + (s_index - ks)

    blob_read, blob_size = m + np_ + ns, m + np_ + ns + 1
    p_funcs = {i: shim_index(t) for i, t in shimmed.items()}
    if shift:
        p_funcs.update({j: j + shift for j in range(kp, kp + np_)})
    s_funcs: dict[int, int] = {}
    generated_types = {}
    for n, imp in enumerate(s.imported(0)):
        if imp.module == "boxer":
            if imp.name not in ("blob_read", "blob_size"):
                raise LinkError(f"the shim imports boxer.{imp.name}")
            s_funcs[n] = blob_read if imp.name == "blob_read" else blob_size
            generated_types[imp.name] = imp.type + types_offset
        else:
            s_funcs[n] = place[(imp.module, imp.name)]
    s_funcs.update({j: shim_index(j) for j in range(ks, ks + ns)})

    low, high = p.memories[0]
    base = low * PAGE
    shim_size = -(-_shim_memory_size(s) // 16) * 16
    stack_top = base + shim_size + SHIM_STACK
    cwd_bytes = cwd.encode() + b"\0"
    pages = -(-(shim_size + SHIM_STACK + len(cwd_bytes)) // PAGE)
    new_globals, s_globals = _shim_globals(s, len(p.globals), stack_top, base)
    if s.tables or s.elements or s.imported(1) and any(
            imp.kind == 1 for imp in s.imports if imp.name != "__indirect_function_table"):
        raise LinkError("the shim uses a function table")

    # Code: only the program's bodies that call a shimmed import (or all, if indices shift).
    first, pending_count = pending
    composed = {**{i: p_funcs.get(j, j) for i, j in first.items()},
                **{i: j for i, j in p_funcs.items() if i not in first}}
    code = [*_rewritten(p.code[:pending_count], composed, shift),
            *_rewritten(p.code[pending_count:], p_funcs, shift)]
    s_types = {i: i + types_offset for i in range(len(s.types))}
    code += [rewrite_body(body, s_funcs, s_globals, s_types) for body in s.code]
    blob_segment = len(p.data) + len(s.data)
    code.append(_sized(b"\0\x20\x00\x20\x01\x20\x02\xfc\x08" + uleb(blob_segment) + b"\x00\x0b"))
    code.append(_sized(b"\0\x41" + sleb(len(blob) - (1 << 32) if len(blob) >= 1 << 31 else len(blob)) + b"\x0b"))

    data = list(p.data)
    memory_base = b"\0\x23" + uleb([i.name for i in s.imported(3)].index("__memory_base")) + b"\x0b"
    for segment in s.data:
        if not segment.startswith(memory_base):
            raise LinkError("a shim data segment that is not placed at its memory base")
        end = _expr_end(segment, 1)
        data.append(b"\0\x41" + sleb(base) + b"\x0b" + segment[end:])
    data.append(b"\x01" + uleb(len(blob)) + blob)
    cwd_at = stack_top
    slot = cwd_slot() if cwd != "/" else None
    if slot is not None and _patch_word(data, slot, cwd_at):
        data.append(_active(cwd_at, cwd_bytes))

    functions = p.functions + [t + types_offset for t in s.functions] + [
        generated_types["blob_read"], generated_types["blob_size"]]
    exports = [encoded(name) + bytes([kind]) + uleb(p_funcs.get(index, index) if kind == 0 else index)
               for name, kind, index in p.exports]
    sections: list[tuple[int, bytes]] = [
        (1, _vec(p.types + s.types)),
        (2, _vec([encoded(i.module) + encoded(i.name) + b"\0" + uleb(i.type) for i in imports])),
        (3, _vec([uleb(t) for t in functions])),
    ]
    if p.tables:
        sections.append((4, p.tables))
    new_high = None if high is None else max(high, low + pages)
    sections.append((5, _vec([_limits_bytes(low + pages, new_high)])))
    if p.tags:
        sections.append((13, p.tags))
    sections.append((6, _vec(p.globals + new_globals)))
    sections.append((7, _vec(exports)))
    if p.start is not None:
        sections.append((8, uleb(p_funcs.get(p.start, p.start))))
    if p.elements:
        sections.append((9, map_elements(p.elements, p_funcs)))
    sections += [(12, uleb(len(data))), (10, _vec(code)), (11, _vec(data))]
    for name, payload in p.customs:
        if name in ("producers", "target_features"):
            sections.append((0, encoded(name) + payload))
    return MAGIC + b"".join(bytes([sid]) + uleb(len(payload)) + payload for sid, payload in sections)


def _rewritten(bodies: list[bytes], funcs: dict[int, int], shift: int) -> list[bytes]:
    """`bodies` with their calls mapped through `funcs`: only those whose bytes could hold such a
    call are decoded (every one when indices shift); the others are kept as they are."""
    pattern = call_pattern(set(funcs)) if not shift else None
    run = calls_run(set(funcs))
    return [body if pattern is not None and not pattern.search(body) else rewrite_body(body, funcs, run=run)
            for body in bodies]


def _sized(body: bytes) -> bytes:
    return uleb(len(body)) + body
