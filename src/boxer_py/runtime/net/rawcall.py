"""The descriptor calls of a networked run through Wasmtime's unchecked C API.

An HTTP request served by a guest makes 16-21 WASI calls that go through Python (net/wasi.py:
measured with Flask and http.server), some passed on to Wasmtime's own functions. wasmtime-py's generic
path makes a Val per argument and compares types on every call, costing several times the
work itself (measured: ~110 us per host call, ~250 us per call into wasm, against ~20 us
here). Every function here returns i32 and takes i32 (or an i64 where `wide` says), so raw
values need no checks: arguments arrive as WASI's unsigned numbers.

The hot path makes no wasmtime-py objects: a host function gets the raw caller (`context()`
gives its store context, one C call), reads and writes the guest's memory through `Guest`
(its address and size asked of Wasmtime on each access, then one bounds-checked copy), and
calls on through `Forward` with C prototypes of its own that take and return plain addresses.

wasmtime-py's private parts used (pinned with wasmtime-py itself): `_ffi` for the C API and
`_func.LAST_EXCEPTION`, how a host function's Python exception reaches the caller of the
guest (a trap carries it, as wasmtime-py's own host functions do).
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import _func

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF
_FINALIZE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _env: None)
_VOID = ctypes.c_void_p
# The same C functions as wasmtime-py's bindings, declared to pass addresses as plain integers
# (wasmtime-py's own prototypes are left as they are).
_context = ctypes.CFUNCTYPE(_VOID, _VOID)(("wasmtime_caller_context", ffi.dll))
_data = ctypes.CFUNCTYPE(_VOID, _VOID, _VOID)(("wasmtime_memory_data", ffi.dll))
_size = ctypes.CFUNCTYPE(ctypes.c_size_t, _VOID, _VOID)(("wasmtime_memory_data_size", ffi.dll))
_call = ctypes.CFUNCTYPE(_VOID, _VOID, _VOID, _VOID, ctypes.c_size_t, _VOID)(("wasmtime_func_call_unchecked", ffi.dll))
_string_at, _memmove = ctypes.string_at, ctypes.memmove
# wasmtime-py's unchecked callback type, with the caller as a plain address.
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_size_t, _VOID, _VOID, ctypes.POINTER(ffi.wasmtime_val_raw_t), ctypes.c_size_t)


def context(caller: int) -> int:
    """The store context of a raw caller (valid during that host call only)."""
    return _context(caller)


def define(linker: wasmtime.Linker, module: str, name: str, arity: int, func: Callable[..., int],
           keep: list[object], wide: tuple[int, ...] = ()) -> None:
    """Define module.name, (i32 x arity) -> i32, served by func(caller, *args) where `caller` is
    the raw caller's address (see `context`), the parameters at the indices in `wide` being
    i64. `keep` holds the C callback for as long as the linker lives."""
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    functype = wasmtime.FuncType([i64 if i in wide else i32 for i in range(arity)], [i32])
    indices = range(arity)

    def callback(_env: object, caller: int, values: ctypes.Array, _count: int) -> int:
        try:
            if wide:
                args = [values[i].i64 & U64 if i in wide else values[i].i32 & U32 for i in indices]
            else:
                args = [values[i].i32 & U32 for i in indices]
            values[0].i32 = func(caller, *args)
            return 0
        except BaseException as e:  # noqa: BLE001 - handed to the guest's caller, as wasmtime-py does
            _func.LAST_EXCEPTION = e  # type: ignore[assignment]
            trap = wasmtime.Trap("python exception")._consume()
            return ctypes.cast(trap, ctypes.c_void_p).value or 0

    c_callback = _CALLBACK(callback)
    keep.append(c_callback)
    module_bytes, name_bytes = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(), ctypes.create_string_buffer(module_bytes), len(module_bytes),
        ctypes.create_string_buffer(name_bytes), len(name_bytes), functype.ptr(),
        ctypes.cast(c_callback, ffi.wasmtime_func_unchecked_callback_t), None, _FINALIZE)
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


class Guest:
    """A run's memory, read and written from host calls by raw address. Its address and size
    are asked of Wasmtime on every access (the guest may have grown it since); an access
    outside it returns None / False, never touches the host's memory."""

    def __init__(self, memory: wasmtime.Memory):
        self.memory = memory  # kept alive: `ref` points into it
        self.ref = ctypes.addressof(memory._memory)

    def read(self, caller: int, offset: int, length: int) -> bytes | None:
        ctx = _context(caller)
        if offset + length > _size(ctx, self.ref):
            return None
        return _string_at(_data(ctx, self.ref) + offset, length) if length else b""

    def write(self, caller: int, offset: int, data: bytes) -> bool:
        ctx = _context(caller)
        if offset + len(data) > _size(ctx, self.ref):
            return False
        if data:
            _memmove(_data(ctx, self.ref) + offset, data, len(data))
        return True

    def scatter(self, caller: int, vectors: list[tuple[int, int]], data: bytes) -> int | None:
        """Copy `data` into the (address, length) vectors in order: the bytes written, or None
        if a vector it reaches lies outside the memory."""
        ctx = _context(caller)
        size, base, done = _size(ctx, self.ref), _data(ctx, self.ref), 0
        for address, length in vectors:
            if done >= len(data):
                break
            piece = data[done:done + length]
            if address + len(piece) > size:
                return None
            _memmove(base + address, piece, len(piece))
            done += len(piece)
        return done


class Forward:
    """Calls one wasm function (i32 x arity) -> i32 from inside a host call, with the
    caller's context (the same store). One per run: its argument array is reused."""

    def __init__(self, func: wasmtime.Func, arity: int):
        self.func = func
        self.ref = ctypes.addressof(func._func)
        self.values = (ffi.wasmtime_val_raw_t * max(1, arity))()
        self.address = ctypes.addressof(self.values)
        self.count = len(self.values)
        self.trap = ctypes.c_void_p()
        self.trap_ref = ctypes.addressof(self.trap)

    def __call__(self, caller: int, *args: int) -> int:
        values = self.values
        for i, arg in enumerate(args):
            values[i].i32 = arg
        error = _call(_context(caller), self.ref, self.address, self.count, self.trap_ref)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t)))
        if self.trap.value:
            trap, self.trap.value = self.trap.value, None  # consumed below: the slot is clear for the next call
            raised = wasmtime.Trap._from_ptr(ctypes.cast(trap, ctypes.POINTER(ffi.wasm_trap_t)))
            _func.maybe_raise_last_exn()
            raise raised
        return values[0].i32 & U32
