"""Per-run directories (the writable copy of an image's rootfs), made ahead and removed
behind so that neither sits between a caller and its result.

A run takes a workspace, a fresh directory under `runs/` whose `rootfs` is a copy of the
image's unpacked rootfs, and gives it back when it ends. Giving back only queues its
removal. Once an image has run twice, a spare copy of it is kept ready under `spares/`, so
a run that repeats (a Session, an agent) finds its copy made. One background thread does
both, and only while a single run is going: runs side by side do their own removals. `settle()` waits for it; `close()` also removes the spares, and runs at exit.
Directories are named after the process id, so a later launcher sweeps what a killed one
left behind (see launcher._sweep).
"""
from __future__ import annotations

import atexit
import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Sequence

from .rootfs import copy_tree

SPARES_PER_IMAGE = 2  # enough for two runs of the same image at once


class Workspaces:
    def __init__(self, runs: Path, spares: Path):
        self.runs = runs
        self.spares = spares
        self._ready: dict[str, list[Path]] = {}
        self._wanted: dict[str, int] = {}
        self._seen: set[str] = set()
        self._active = 0
        self._lock = threading.Lock()
        self._tasks: queue.Queue[Callable[[], None]] = queue.Queue()
        self._worker: threading.Thread | None = None
        atexit.register(self.close)

    def take(self, key: str, base: Path, skip: Sequence[Path] = ()) -> Path:
        """A new workspace whose `rootfs` is a copy of `base` (without `skip`), for image `key`."""
        self.runs.mkdir(parents=True, exist_ok=True)
        workspace = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}.", dir=self.runs))
        with self._lock:
            ready = self._ready.get(key)
            spare = ready.pop() if ready else None
            repeat = key in self._seen
            self._seen.add(key)
            self._active += 1
            alone = self._active == 1
            top_up = alone and repeat and len(ready or ()) + self._wanted.get(key, 0) < SPARES_PER_IMAGE
            if top_up:
                self._wanted[key] = self._wanted.get(key, 0) + 1
        if spare is not None:
            os.rename(spare, workspace / "rootfs")
        else:
            copy_tree(base, workspace / "rootfs", skip=skip)
        if top_up:
            self._submit(lambda: self._make_spare(key, base, skip))
        return workspace

    def give_back(self, workspace: Path) -> None:
        """The run is over: its workspace goes, in the background if no other run is going
        (runs side by side share the cores: background work would only get in their way)."""
        with self._lock:
            self._active -= 1
            alone = self._active == 0
        if alone:
            self._submit(lambda: shutil.rmtree(workspace, ignore_errors=True))
        else:
            shutil.rmtree(workspace, ignore_errors=True)

    def settle(self) -> None:
        """Wait until every queued removal and spare copy is done."""
        self._tasks.join()

    def close(self) -> None:
        """Settle, then remove the spares. The launcher stays usable."""
        self.settle()
        with self._lock:
            spares = [p for paths in self._ready.values() for p in paths]
            self._ready.clear()
            self._seen.clear()
        for path in spares:
            shutil.rmtree(path, ignore_errors=True)

    def _make_spare(self, key: str, base: Path, skip: Sequence[Path]) -> None:
        path = self.spares / f"{os.getpid()}.{os.urandom(8).hex()}"
        try:
            self.spares.mkdir(parents=True, exist_ok=True)
            copy_tree(base, path, skip=skip)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            path = None
        with self._lock:
            self._wanted[key] -= 1
            if path is not None:
                self._ready.setdefault(key, []).append(path)

    def _submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="boxer-workspaces", daemon=True)
                self._worker.start()
        self._tasks.put(task)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                task()
            except Exception:  # a removal or copy that fails leaves a directory for the sweep
                pass
            finally:
                self._tasks.task_done()
