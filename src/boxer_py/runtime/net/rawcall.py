"""The descriptor calls of a networked run through Wasmtime's unchecked C API.

An HTTP request served by a guest makes about twenty WASI calls that go through Python
(net/wasi.py), half of them passed on to Wasmtime's own functions. wasmtime-py's generic
path makes a Val per argument and compares types on every call, costing several times the
work itself (measured: ~110 us per host call, ~250 us per call into wasm, against ~20 us
here). Every function here returns i32 and takes i32 (or an i64 where `wide` says), so raw
values need no checks: arguments arrive as WASI's unsigned numbers.

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


def define(linker: wasmtime.Linker, module: str, name: str, arity: int, func: Callable[..., int],
           keep: list[object], wide: tuple[int, ...] = ()) -> None:
    """Define module.name, (i32 x arity) -> i32, served by func(caller, *args), the parameters
    at the indices in `wide` being i64. `keep` holds the C callback for as long as the linker lives."""
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    functype = wasmtime.FuncType([i64 if i in wide else i32 for i in range(arity)], [i32])
    indices = range(arity)

    def callback(_env: object, caller_ptr: object, values: ctypes.Array, _count: int) -> int:
        caller = wasmtime.Caller(caller_ptr)  # type: ignore[arg-type]
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
        finally:
            caller._invalidate()

    c_callback = ffi.wasmtime_func_unchecked_callback_t(callback)
    keep.append(c_callback)
    module_bytes, name_bytes = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(), ctypes.create_string_buffer(module_bytes), len(module_bytes),
        ctypes.create_string_buffer(name_bytes), len(name_bytes), functype.ptr(), c_callback, None, _FINALIZE)
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


class Forward:
    """Calls one wasm function (i32 x arity) -> i32 from inside a host call, with the
    caller's context (the same store). One per run: its argument array is reused."""

    def __init__(self, func: wasmtime.Func, arity: int):
        self.func = func
        self.ref = ctypes.byref(func._func)
        self.values = (ffi.wasmtime_val_raw_t * max(1, arity))()
        self.count = len(self.values)
        self.trap = ctypes.POINTER(ffi.wasm_trap_t)()
        self.trap_ref = ctypes.byref(self.trap)

    def __call__(self, caller: wasmtime.Caller, *args: int) -> int:
        values = self.values
        for i, arg in enumerate(args):
            values[i].i32 = arg
        trap = self.trap
        error = ffi.wasmtime_func_call_unchecked(caller._context(), self.ref, values, self.count, self.trap_ref)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            self.trap = ctypes.POINTER(ffi.wasm_trap_t)()  # the trap is consumed below: a fresh slot for the next call
            self.trap_ref = ctypes.byref(self.trap)
            raised = wasmtime.Trap._from_ptr(trap)
            _func.maybe_raise_last_exn()
            raise raised
        return values[0].i32 & U32
