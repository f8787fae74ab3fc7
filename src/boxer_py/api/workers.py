"""Worker processes for `Session(workers=N)`: runs of one image on several cores.

Runs in threads of one process do not finish sooner than one after another: every run's
Python side (and wasmtime-py's many small calls) holds the GIL. A worker is a process of its
own with a launcher of its own on the same cache (the compiled module and snapshot are loaded
from there, not made again), started once and kept for the session. It opens the image file
and refuses to serve if the file no longer holds the session's image. A run goes to an idle
worker as a pickled RunSpec on a pipe and comes back as a pickled RunResult (or the error it
raised). Workers see this process's stdio (a streamed run writes to it) and nothing else of it.

    python -m boxer_py.api.workers CACHE_DIR IMAGE_FILE IMAGE_ID PREINIT(1|0)
    (the pipes' fds in BOXER_WORKER_FDS: requests in, results out)
"""
from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, cast

from boxer_py.errors import BoxerError, RunError

if TYPE_CHECKING:
    from boxer_py.runtime.launcher import Launcher
    from boxer_py.runtime.spec import RunResult, RunSpec

_LENGTH = struct.Struct("<Q")


def _frame(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _send(fd: int, frame: bytes) -> None:
    view = memoryview(frame)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int) -> object:
    """The next object from the pipe; EOFError if the other end is gone."""
    (length,) = _LENGTH.unpack(_read(fd, _LENGTH.size))
    return pickle.loads(_read(fd, length))


def _read(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self, argv: list[str]):
        requests_r, self._requests = os.pipe()
        self._results, results_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", "boxer_py.api.workers", *argv],
                pass_fds=(requests_r, results_w), env={**os.environ, "BOXER_WORKER_FDS": f"{requests_r},{results_w}"})
        finally:
            os.close(requests_r)
            os.close(results_w)
        try:
            reply = self._reply()  # None once the worker has its launcher and image
        except BaseException:
            self.close()
            raise
        if reply is not None:
            self.close()
            raise reply if isinstance(reply, BaseException) else RunError(
                f"a worker process answered {type(reply).__name__} when it started")

    def run(self, request: bytes) -> object:
        try:
            _send(self._requests, request)
        except OSError:
            pass  # the worker is gone: _reply says so
        return self._reply()

    def _reply(self) -> object:
        try:
            return _receive(self._results)
        except (EOFError, OSError):
            raise RunError(f"a worker process ended (exit code {self.process.wait()})") from None

    def close(self, kill: bool = False) -> None:
        """Let the worker end at EOF (it removes what its launcher keeps ready), or kill it
        (one whose run was interrupted: what it leaves is swept by the next launcher)."""
        for fd in (self._requests, self._results):
            try:
                os.close(fd)
            except OSError:
                pass
        if kill:
            self.process.kill()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Workers:
    """`count` worker processes for one image file, each with a launcher like `launcher` (its
    cache and preinit setting). `run` is safe to call from many threads: each call takes an
    idle worker or waits for one. Workers start on first use (or `start()`); one that dies
    fails its run and is replaced for the next."""

    def __init__(self, count: int, launcher: Launcher, image: Path, image_id: str):
        if count < 1:
            raise ValueError("workers must be at least 1")
        self.count = count
        self._argv = [str(launcher.cache_dir), str(image), image_id, "1" if launcher.preinit else "0"]
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(count):
            self._idle.put(None)  # a worker not started yet
        self._started: list[_Worker] = []
        self._lock = threading.Lock()

    def run(self, spec: RunSpec) -> RunResult:
        request = _frame(spec)
        worker = self._take()
        try:
            reply = worker.run(request)
        except BaseException:  # the worker died, or this thread was interrupted mid-run
            self._drop(worker)
            raise
        self._give_back(worker)
        if isinstance(reply, BaseException):
            raise reply
        return cast("RunResult", reply)  # what _serve sends back when it is not an error

    def start(self) -> None:
        """Start every worker now, side by side, and wait until each is ready."""
        taken: list[_Worker] = []
        errors: list[BaseException] = []

        def take() -> None:
            try:
                taken.append(self._take())
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=take) for _ in range(self.count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for worker in taken:
            self._give_back(worker)
        if errors:
            raise errors[0]

    def close(self) -> None:
        """End the idle workers now and the busy ones as their runs end (see _give_back);
        the next run starts them again."""
        with self._lock:
            self._started = []
        idle = []
        while True:
            try:
                idle.append(self._idle.get_nowait())
            except queue.Empty:
                break
        for worker in idle:
            if worker is not None:
                worker.close()
            self._idle.put(None)

    def _take(self) -> _Worker:
        worker = self._idle.get()
        if worker is not None:
            return worker
        try:
            worker = _Worker(self._argv)
        except BaseException:
            self._idle.put(None)
            raise
        with self._lock:
            self._started.append(worker)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        """A worker whose run is over goes back to the idle ones, unless close() came meanwhile."""
        with self._lock:
            current = worker in self._started
        if not current:
            worker.close()
        self._idle.put(worker if current else None)

    def _drop(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._started:
                self._started.remove(worker)
        worker.close(kill=True)
        self._idle.put(None)


def _serve(cache_dir: str, image_path: str, image_id: str, preinit: bool, requests: int, results: int) -> None:
    from boxer_py.runtime.launcher import Launcher
    try:
        launcher = Launcher(cache_dir, preinit=preinit)
        image = launcher.open(image_path)
        if image.id != image_id:
            raise RunError(f"{image_path}: the file no longer holds the session's image (it was replaced)")
        launcher.rootfs(image)
    except BoxerError as e:
        _send(results, _frame(e))
        return
    try:
        _send(results, _frame(None))
        while True:
            spec = cast("RunSpec", _receive(requests))  # what Workers.run sends: a pickled RunSpec
            reply: RunResult | BaseException
            try:
                reply = launcher.run(image, spec)
            except BoxerError as e:
                reply = e
            except Exception as e:  # a bug: the caller sees it as an error, the worker lives on
                reply = RunError(f"a worker failed: {type(e).__name__}: {e}")
            _send(results, _frame(reply))
    except (EOFError, OSError):  # the session closed, or went away
        launcher.close()


if __name__ == "__main__":
    fds = os.environ.pop("BOXER_WORKER_FDS", "")
    if len(sys.argv) != 5 or not fds:
        sys.exit("usage: python -m boxer_py.api.workers CACHE_DIR IMAGE_FILE IMAGE_ID PREINIT (started by Session(workers=N))")
    requests, results = (int(x) for x in fds.split(","))
    cache_dir, image_path, image_id = sys.argv[1:4]
    _serve(cache_dir, image_path, image_id, sys.argv[4] == "1", requests, results)
