"""How a guest's end shows in its result: the one reading of Wasmtime's errors, shared by
the launcher's runs and an Interpreter's calls."""
from __future__ import annotations

import threading

import wasmtime

from boxer_py.runtime.spec import INTERRUPT_EXIT_CODE, TIMEOUT_EXIT_CODE, TRAP_EXIT_CODE, Limits, RunResult


def reason(error: Exception) -> str:
    """The root cause of a wasmtime error, on one line."""
    lines = [x.strip() for x in str(error).splitlines() if x.strip()]
    if "Caused by:" in lines:
        return lines[lines.index("Caused by:") + 1]
    return lines[0] if lines else type(error).__name__


def record(error: Exception, result: RunResult, limits: Limits, expired: bool,
           cancel: threading.Event | None = None) -> None:
    """How an error that ended a guest shows in its result: its exit, a cancellation (130), a
    timeout (124) or a crash (134, with the reason)."""
    if isinstance(error, wasmtime.ExitTrap):
        result.exit_code = error.code
    elif cancel is not None and cancel.is_set():
        result.exit_code, result.trap = INTERRUPT_EXIT_CODE, "interrupted"
    elif expired or isinstance(error, wasmtime.Trap) and error.trap_code == wasmtime.TrapCode.INTERRUPT:
        result.exit_code, result.timed_out = TIMEOUT_EXIT_CODE, True
        result.trap = f"timed out after {limits.timeout:g}s"
    else:
        result.exit_code, result.trap = TRAP_EXIT_CODE, reason(error)
