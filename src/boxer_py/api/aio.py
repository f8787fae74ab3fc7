"""The asyncio face of Session and Interpreter: `await box.run(...)`.

A guest runs on a thread of the loop's default executor (Wasmtime calls block), so the loop
stays free. Cancelling the awaiting task stops the guest at once (the run's cancel event);
the task then ends with CancelledError once the guest has stopped. `on_stdout`/`on_stderr`
are called on the loop's thread, in order, as the output comes.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from boxer_py.api.session import Session
from boxer_py.image.imagefile import Image
from boxer_py.runtime.interpreter import Interpreter
from boxer_py.runtime.spec import RunResult

_T = TypeVar("_T")


async def _guarded(call: Callable[..., _T], options: dict[str, Any]) -> _T:
    """Run call(**options, cancel=event) on a thread; on cancellation, set the event and wait
    for the guest to stop before re-raising."""
    loop = asyncio.get_running_loop()
    cancel = threading.Event()
    for name in ("on_stdout", "on_stderr"):
        callback = options.get(name)
        if callback is not None:
            options[name] = partial(loop.call_soon_threadsafe, callback)
    future = loop.run_in_executor(None, partial(call, **options, cancel=cancel))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancel.set()
        await asyncio.wait([future])
        raise


class AsyncSession:
    """A Session for asyncio code: `await box.run(...)`, `await box.run_python(...)`.

    Takes Session's arguments; `session` is the Session underneath (for close() and the rest)."""

    def __init__(self, image: str | Path | Image, cache_dir: str | Path | None = None, **options: Any):
        self.session = Session(image, cache_dir, **options)

    async def run(self, command: Sequence[str] = (), **options: Any) -> RunResult:
        """Session.run, awaited; cancelling the task stops the guest."""
        return await _guarded(partial(self.session.run, command), options)

    async def run_python(self, code: str, **options: Any) -> RunResult:
        """Session.run_python, awaited; cancelling the task stops the guest."""
        return await self.run(("python", "-c", code), **options)

    async def interpreter(self, **options: Any) -> AsyncInterpreter:
        """Session.interpreter, started on a thread."""
        loop = asyncio.get_running_loop()
        return AsyncInterpreter(await loop.run_in_executor(None, partial(self.session.interpreter, **options)))

    def close(self) -> None:
        self.session.close()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class AsyncInterpreter:
    """An Interpreter for asyncio code: `await it.run(code)`; `interpreter` is the one underneath."""

    def __init__(self, interpreter: Interpreter):
        self.interpreter = interpreter

    async def run(self, code: str, **options: Any) -> RunResult:
        """Interpreter.run, awaited; cancelling the task stops the guest (the interpreter restarts)."""
        return await _guarded(partial(self.interpreter.run, code), options)

    async def reset(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.interpreter.reset)

    def close(self) -> None:
        self.interpreter.close()

    async def __aenter__(self) -> AsyncInterpreter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
