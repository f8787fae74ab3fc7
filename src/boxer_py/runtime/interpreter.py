"""A live guest CPython whose globals persist between calls, like a notebook kernel.

The image's CPython, pre-initialised (see preinit) with `preinit/kernel.py` instead of the
plain run's boot: a fresh instance gets that memory back and an `init` request, and each
`run(code)` then writes a request into the guest's inbox and calls `exec(*call)` from
outside. `kernel.step()` runs the code in `__main__`, prints a bare last expression's repr
as the REPL does (setting `_`), writes its reply over the request and returns: the instance
stays, with its state, until the next call. No pipe, no thread in the guest, nothing baked
into the image; the driver code reaches the guest as the boot run's `-c`.

Each Interpreter has its own store, instance and private writable layer (kept for its
lifetime: files persist between calls). A call that traps (timeout, crash, `os._exit`,
cancellation) leaves CPython mid-instruction, so the instance is replaced by a fresh one
from the boot snapshot: its variables are gone, its files stay, and the result says
`restarted`. Limits apply per call and in total (`total`): time and output add up over the
calls, memory and disk are the interpreter's (the layer's growth since it started).

`snapshot()` gives the interpreter's memory as bytes (pages that differ from the module's
initial memory, with a checksum and the image, module and kernel it belongs to);
`from_snapshot` starts an interpreter from them. The bytes are the caller's: they are checked
to be for this image and kernel, and every page to lie inside the guest's memory, so the
worst they can do is confuse the guest. Files and open descriptors are not part of them.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import posixpath
import struct
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import wasmtime

from boxer_py.errors import RunError
from boxer_py.image.config import user_env
from boxer_py.image.imagefile import Image
from boxer_py.image.rootfs import resolve
from boxer_py.runtime import inputs, outcome, reactor
from boxer_py.runtime.launcher import Launcher
from boxer_py.runtime.modcache import WASMTIME_VERSION
from boxer_py.runtime.output import MAX_OUT_BYTES, Sink, collect
from boxer_py.runtime.preinit import snapshot as preinit
from boxer_py.runtime.runwatch import DiskWatch, disk_usage
from boxer_py.runtime.sandbox import limit_memory, out_of_memory
from boxer_py.runtime.spec import TIMEOUT_EXIT_CODE, TRAP_EXIT_CODE, Limits, RunResult
from boxer_py.runtime.wasi.clock import Expired

MAGIC = b"boxer-interpreter\n"
OUT = "/out"
MAX_MEMORY = 4 << 30  # wasm32


def kernel_argv(argv0: str, preimport: list[str]) -> list[str]:
    """The boot run of an interpreter: preinit's prelude, then kernel.py's `boot`."""
    return preinit.boot_argv(argv0, preimport, preinit.KERNEL_SOURCE, "_boxer_kernel")


class _Relay:
    """The instance's stdout or stderr: handed to the Sink of the call under way."""

    def __init__(self) -> None:
        self.sink: Sink | None = None

    def __call__(self, data: bytes) -> int:
        return self.sink(data) if self.sink is not None else len(data)


class Interpreter:
    """A live CPython in a sandbox whose globals persist between `run(code)` calls.

    Made by `Session.interpreter()`. Thread-safe (calls are served one at a time); `close()`
    (or `with`) ends it and removes its writable layer."""

    def __init__(self, launcher: Launcher, image: Image, *, env: Mapping[str, str] | None = None,
                 workdir: str | None = None, limits: Limits = Limits(), from_snapshot: bytes | None = None):
        self.launcher, self.image, self.total = launcher, image, limits
        config = image.spec.config
        self.env = {**config.env_dict(), **(env or {})}
        for variable, value in user_env(config.user).items():
            self.env.setdefault(variable, value)
        self.workdir = posixpath.normpath(posixpath.join("/", workdir or config.working_dir))
        self.base = launcher.rootfs(image)
        self.shared = reactor.read_only(config.labels, self.base)
        found = launcher.programs.cpython(image, self.base)
        if found is None:
            raise RunError("an interpreter needs an image on a Python base whose CPython boxer can pre-initialise "
                           "(FROM python:3... or wasi-python)")
        name, _, module = found
        self.argv0, self.module = name, module
        self.engine = launcher.programs.engine(module.stack)
        startup = {**config.env_dict(), **preinit.startup_env(self.env)}
        kernel = preinit.code_digest(preinit.KERNEL_SOURCE)
        key = hashlib.sha256(json.dumps(["kernel", preinit.VERSION, kernel, WASMTIME_VERSION, image.id,
                                         module.digest, name, startup]).encode()).hexdigest()
        self.key = key
        booted, _ = launcher.boot(key, image, module, kernel_argv(name, preinit.preimports(config.labels)), startup)
        if booted is None:
            raise RunError("the image's CPython did not start as an interpreter")
        self.booted = booted
        self.python = ""  # the guest's version, from its answer to init
        self._lock = threading.Lock()
        self._store: wasmtime.Store | None = None
        self._workspace: Path | None = None
        self._used_time = 0.0
        self._used_output = 0
        self._start(self._parse(from_snapshot) if from_snapshot is not None else booted)

    # -- the instance

    def _new_layer(self) -> None:
        self._workspace = self.launcher.workspaces.take(self.image.id, self.base, [h for _, h in self.shared])
        for guest in (self.workdir, OUT):
            resolve(self.root, guest).mkdir(parents=True, exist_ok=True)
        self._disk_base = disk_usage(self.root)

    @property
    def root(self) -> Path:
        if self._workspace is None:
            raise RunError("the interpreter is closed")
        return self._workspace / "rootfs"

    def _start(self, snapshot: preinit.Snapshot) -> None:
        if self._workspace is None:
            self._new_layer()
        self._out, self._err = _Relay(), _Relay()
        wasi = wasmtime.WasiConfig()
        wasi.argv = [self.argv0]
        wasi.env = list(self.env.items())
        wasi.preopen_dir(str(self.root), "/")
        labels = self.image.spec.config.labels
        for guest, host in [*self.shared, *reactor.aliases(labels, self.root, [], self.shared)]:
            wasi.preopen_dir(str(host), guest, False)
        wasi.stdin_file = "/dev/null"
        wasi.stdout_custom, wasi.stderr_custom = self._out, self._err
        store = wasmtime.Store(self.engine.engine)
        store.set_wasi(wasi)
        limit_memory(store, self.total.memory)
        store.set_epoch_deadline(1 << 62)
        try:
            exports = self.engine.linker.instantiate(store, self.module.module).exports(store)
        except wasmtime.WasmtimeError as e:
            raise RunError(f"the interpreter cannot start: {outcome.reason(e)}") from None
        request = _message({"op": "init", "env": self.env, "cwd": self.workdir})
        if preinit.restore(store, exports, snapshot, request) is None:
            raise RunError(f"the interpreter needs more memory than the {self.total.memory}-byte limit")
        self._store, self._exports = store, exports
        self._memory = preinit.export_of(exports, "memory", wasmtime.Memory)
        self._call = preinit.export_of(exports, preinit.CALL, wasmtime.Func)
        result, reply = self._invoke(None, Limits(timeout=60), None, None, None)
        if reply is None or not reply.get("ok"):
            self._store = None
            raise RunError(f"the interpreter did not start ({result.trap or result.stderr[-200:]!r})")
        self.python = str(reply.get("python", ""))

    def _invoke(self, message: bytes | None, limits: Limits, on_stdout: Any, on_stderr: Any,
                cancel: threading.Event | None) -> tuple[RunResult, dict[str, Any] | None]:
        """One call into the instance (with `message` in its inbox unless it is there already);
        the reply, or None when the instance is gone (the result says why)."""
        store = self._store
        assert store is not None
        snapshot = self.booted
        if message is not None:
            base = ctypes.addressof(self._memory.data_ptr(store).contents)
            ctypes.memmove(base + snapshot.inbox, message, len(message))
        self._out.sink = stdout = Sink(limits.max_output, None, on_stdout)
        self._err.sink = stderr = Sink(limits.max_output, None, on_stderr)
        limit_memory(store, limits.memory)
        deadline = None if limits.timeout is None else time.monotonic() + limits.timeout
        watch = DiskWatch(self.root, limits.disk, deadline, self.launcher.deadlines, cancel, base=self._disk_base)
        watch.install(store)
        result = RunResult(exit_code=0, preinitialised=True)
        deadlines = self.launcher.deadlines
        deadlines.set(deadline, cancel)
        started, cpu = time.perf_counter(), time.thread_time()
        alive = True
        with self.engine.ticker:
            try:
                if not self._call(store, snapshot.callable, snapshot.args, 2, snapshot.function):
                    raise wasmtime.WasmtimeError("the interpreter's driver failed")
            except (wasmtime.ExitTrap, wasmtime.Trap, wasmtime.WasmtimeError, Expired) as e:
                e.__traceback__ = None
                outcome.record(e, result, limits, deadlines.expired, cancel)
                alive = False
            finally:
                deadlines.set(None)
                store.set_epoch_deadline(1 << 62)
        result.duration_ms = (time.perf_counter() - started) * 1000
        result.cpu_ms = (time.thread_time() - cpu) * 1000
        result.peak_memory = self._memory.data_len(store)
        result.stdout, result.stderr = stdout.finish(), stderr.finish()
        result.stdout_truncated, result.stderr_truncated = stdout.truncated, stderr.truncated
        result.stdout_dropped, result.stderr_dropped = stdout.dropped, stderr.dropped
        self._out.sink = self._err.sink = None
        if watch.full or watch.over():
            result.disk_full, alive = True, False
            if not result.timed_out:
                result.exit_code, result.trap = TRAP_EXIT_CODE, f"wrote more than the {limits.disk}-byte disk limit"
        if not alive and result.exit_code != 0:
            result.out_of_memory = out_of_memory(self._memory.data_len(store), limits.memory)
        reply = self._reply(store) if alive else None
        if alive and reply is None:
            result.exit_code, result.trap = TRAP_EXIT_CODE, "the interpreter's driver was broken"
        for sink in (stdout, stderr):
            if sink.error is not None:
                raise sink.error
        return result, reply

    def _reply(self, store: wasmtime.Store) -> dict[str, Any] | None:
        """The guest's reply from its inbox: guest-made bytes, so bounded and checked."""
        snapshot = self.booted
        head = self._memory.read(store, snapshot.inbox, snapshot.inbox + 4)
        size = struct.unpack("<I", head)[0]
        if size > snapshot.inbox_size - 4:
            return None
        try:
            reply = json.loads(self._memory.read(store, snapshot.inbox + 4, snapshot.inbox + 4 + size))
        except (ValueError, RecursionError):
            return None
        return reply if isinstance(reply, dict) else None

    # -- the API

    def run(self, code: str, *, timeout: float | None = None, memory: str | int | None = None,
            max_output: str | int | None = None, disk: str | int | None = None,
            files: Mapping[str, bytes | str] | None = None, on_stdout: Any = None, on_stderr: Any = None,
            cancel: threading.Event | None = None) -> RunResult:
        """Run `code` in the interpreter's `__main__`; a bare last expression is printed as the
        REPL prints it and kept in `_`. Returns a RunResult: exit code 0, or 1 with `error`
        when the code raised (the interpreter keeps its state); `restarted` says whether the
        interpreter had to be started anew (timeout, crash, exit: its variables are gone, its
        files stay). Files the call left new or changed under /out are in `files`."""
        asked = Limits.parse(timeout, memory, max_output, disk).within(self.total)
        with self._lock:
            if self._store is None:
                raise RunError("the interpreter is closed")
            left_time = None if self.total.timeout is None else self.total.timeout - self._used_time
            left_output = None if self.total.max_output is None else self.total.max_output - self._used_output
            if (left_time is not None and left_time <= 0) or (left_output is not None and left_output <= 0):
                return RunResult(TIMEOUT_EXIT_CODE if left_time is not None and left_time <= 0 else 1,
                                 timed_out=left_time is not None and left_time <= 0, restarted=False,
                                 trap="the interpreter's total time or output is used up; reset() or close() it")
            limits = Limits(asked.timeout if left_time is None else min(asked.timeout or left_time, left_time),
                            asked.memory,
                            asked.max_output if left_output is None else min(asked.max_output or left_output, left_output),
                            asked.disk)
            placed = inputs.check(files or {}, limits.disk)
            inputs.place(self.root, placed, [guest for guest, _ in self.shared])
            message = _message({"op": "run", "code": code})
            if len(message) > self.booted.inbox_size:
                raise RunError(f"the code is longer than {self.booted.inbox_size - 64} bytes")
            before = _stamps(self.root)
            result, reply = self._invoke(message, limits, on_stdout, on_stderr, cancel)
            self._used_time += result.duration_ms / 1000
            self._used_output += len(result.stdout) + len(result.stderr)
            result.restarted = reply is None
            if reply is None:
                self._start(self.booted)
            elif not reply.get("ok"):
                found = reply.get("error")
                error: dict[str, Any] = found if isinstance(found, dict) else {}
                result.error = {k: str(error.get(k, "")) for k in ("type", "message", "traceback")}
                code_ = error.get("exit", 1)
                result.exit_code = code_ if isinstance(code_, int) and 0 <= code_ < 256 else 1
                if limits.memory is not None and result.error["type"] == "MemoryError":
                    result.out_of_memory = True
            result.files, result.files_truncated = self._new_files(before, limits)
            return result

    def _new_files(self, before: dict[str, tuple[int, int]], limits: Limits) -> tuple[dict[str, bytes], bool]:
        try:
            out = resolve(self.root, OUT)
        except (RunError, OSError, ValueError):
            return {}, True
        if out.is_symlink() or not out.is_dir():
            return {}, False
        budget = min(x for x in (limits.max_output, limits.disk, MAX_OUT_BYTES) if x is not None)
        files, truncated = collect(out, OUT, budget)
        after = _stamps(self.root)
        return {k: v for k, v in files.items() if before.get(k) != after.get(k)}, truncated

    def reset(self) -> None:
        """Start anew: a fresh interpreter and a fresh copy of the image's files."""
        with self._lock:
            self._drop()
            self._used_time, self._used_output = 0.0, 0
            self._start(self.booted)

    def close(self) -> None:
        """End the interpreter and remove its writable layer."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        self._store = None
        if self._workspace is not None:
            self.launcher.workspaces.give_back(self._workspace)
            self._workspace = None

    def __enter__(self) -> Interpreter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_file(self, path: str, content: bytes | str) -> None:
        """Put a file into the interpreter's writable layer (parents made as needed)."""
        with self._lock:
            inputs.place(self.root, inputs.check({path: content}, self.total.disk), [g for g, _ in self.shared])

    def read_file(self, path: str, limit: int = inputs.MAX_FILES_BYTES) -> bytes:
        """A regular file of the interpreter's layer (no symlink followed), at most `limit` bytes."""
        with self._lock:
            return inputs.read(self.root, path, limit)

    def list_files(self, path: str = OUT) -> dict[str, int]:
        """{path: size} of the regular files under the directory `path` (default /out)."""
        with self._lock:
            return {k: size for k, (size, _) in inputs.listing(self.root, path).items()}

    def snapshot(self) -> bytes:
        """The interpreter's state (its memory) as bytes for `Session.interpreter(from_snapshot=)`.
        Its files and open descriptors are not included."""
        with self._lock:
            store = self._store
            if store is None:
                raise RunError("the interpreter is closed")
            memory = preinit.memory_of(store, self._memory)
            stack_pointer = preinit.export_of(self._exports, preinit.STACK_POINTER, wasmtime.Global).value(store)
        fresh = wasmtime.Store(self.engine.engine)
        fresh.set_wasi(wasmtime.WasiConfig())
        exports = self.engine.linker.instantiate(fresh, self.module.module).exports(fresh)
        initial = preinit.memory_of(fresh, preinit.export_of(exports, "memory", wasmtime.Memory))
        pages, data = preinit.changed(memory, initial)
        b = self.booted
        state = preinit.Snapshot(len(memory), pages, data, int(stack_pointer), b.callable, b.args, b.function,
                                 b.inbox, b.inbox_size)
        header = json.dumps({"kernel": self.key}).encode()
        body = MAGIC + struct.pack("<I", len(header)) + header + state.to_bytes()
        return body + hashlib.sha256(body).digest()

    def _parse(self, data: bytes) -> preinit.Snapshot:
        """A snapshot from snapshot(), checked: for this kernel, every page inside the memory."""
        bad = RunError("from_snapshot: not an interpreter snapshot of this image (or damaged)")
        if not isinstance(data, (bytes, bytearray)) or len(data) < len(MAGIC) + 40 or not data.startswith(MAGIC):
            raise bad
        body = bytes(data[:-32])
        if hashlib.sha256(body).digest() != data[-32:]:
            raise bad
        try:
            size = struct.unpack_from("<I", body, len(MAGIC))[0]
            header = json.loads(body[len(MAGIC) + 4:len(MAGIC) + 4 + size])
            state = preinit.Snapshot.from_bytes(bytearray(body[len(MAGIC) + 4 + size:]))
        except (ValueError, KeyError, TypeError, struct.error):
            raise bad from None
        b = self.booted
        same = (state.callable, state.args, state.function, state.inbox, state.inbox_size) == \
               (b.callable, b.args, b.function, b.inbox, b.inbox_size)
        fits = (isinstance(state.memory_size, int) and 0 < state.memory_size <= MAX_MEMORY
                and isinstance(state.stack_pointer, int) and 0 <= state.stack_pointer <= state.memory_size
                and all(0 <= a and 0 < n and a + n <= state.memory_size for a, n in state.pages))
        if not isinstance(header, dict) or header.get("kernel") != self.key or not same or not fits:
            raise bad
        return state


def _message(request: dict[str, Any]) -> bytes:
    data = json.dumps(request).encode("utf-8", "surrogatepass")
    return struct.pack("<I", len(data)) + data


def _stamps(root: Path) -> dict[str, tuple[int, int]]:
    try:
        return inputs.listing(root, OUT)
    except RunError:
        return {}
