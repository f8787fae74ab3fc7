"""Per-run directories (the writable copy of an image's rootfs), made ahead, removed behind,
or handed on untouched, so that copying and removing seldom sit between a caller and its
result.

A run takes a workspace, a directory under `runs/` whose `rootfs` is a copy of the image's
unpacked rootfs, and gives it back when it ends. A run whose guest left its copy as it found
it (every entry's name, type, size, inode, link count and times, recorded right before the
guest started: `seal()`), but for access times (it read), which are set back, hands it on
to the next run of the same image and layout, under `spares/`. Any other copy is removed:
giving back only queues that. Once an image has run
twice, a fresh spare copy of it is also kept ready, so a run that repeats (a Session, an
agent) finds its copy made. One background thread does removals and copies, and only while a
single run is going: runs side by side do their own. `settle()` waits for it; `close()` also
removes the spares, and runs at exit. Directories are named after the process id, so a later
launcher sweeps what a killed one left behind (see sweep_dead).

A run server forks a process per run from one Workspaces: the untouched layers it holds go to
the next forked run alone (`disown`), which hands what it kept back (`hand_over`, then the
server's `adopt`), so a served run that repeats finds its layer made as an in-process one does.
Kept layers are named after the process that keeps them (`owner`: the server, for its runs).
Such a run defers its give-back until its client has the exit code (`defer`, `deferred`).
"""
from __future__ import annotations

import _thread
import atexit
import os
import queue
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from boxer_py.image import hostfs
from boxer_py.image.hostfs import remove_tree
from boxer_py.image.rootfs import copy_tree

SPARES_PER_IMAGE = 2  # enough for two runs of the same image at once
UNTOUCHED_KEPT = 8  # untouched workspaces kept, the least recently given back going first
# A filesystem's timestamps may be coarse (a clock tick): an entry changed this shortly before
# the seal could be changed again with no new change time, so its content is checked too.
RECENT_NS = 100_000_000
_NOATIME = getattr(os, "O_NOATIME", 0)
ATIME, MTIME, CTIME = 4, 5, 6  # in _fields


class _Changed(Exception):
    pass


def _state(root: Path, known: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """What a guest could see of each entry under `root` (itself as ""), or have changed, by
    path relative to `root`: mode, inode, link count, size, access, modification and change
    times. Directories are opened with O_NOATIME, so that reading them here changes nothing.
    With `known` (a seal's state), stops with _Changed at the first entry not in it: a tree a
    guest made (of any size or depth) is never walked further than the image's own."""
    state: dict[str, list[int]] = {}

    def visit(w: hostfs.Walker, name: str, st: os.stat_result) -> bool:
        path = w.path(name)
        if known is not None and path not in known:
            raise _Changed
        state[path] = _fields(st)
        return True

    hostfs.walk(root, visit, noatime=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _NOATIME)
    try:
        state[""] = _fields(os.fstat(fd))
    finally:
        os.close(fd)
    return state


def _fields(st: os.stat_result) -> list[int]:
    return [st.st_mode, st.st_ino, st.st_nlink, st.st_size, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns]



@dataclass
class _Seal:
    state: dict[str, list[int]]  # see _state
    recent: list[str]  # files and links changed shortly before the seal (see RECENT_NS)


def _seal(root: Path, state: dict[str, list[int]] | None = None) -> _Seal:
    """The seal of `root`: `state` when it is known to be what a walk would find now (a layer
    handed on, see _only_read), else a walk's."""
    since = time.time_ns() - RECENT_NS
    state = _state(root) if state is None else state
    return _Seal(state, [path for path, fields in state.items()
                         if fields[CTIME] >= since and (stat.S_ISREG(fields[0]) or stat.S_ISLNK(fields[0]))])


def _same_content(path: str, original: str, mode: int) -> bool:
    """Whether the file or link at `path` still holds what it was copied from, `original`."""
    if stat.S_ISLNK(mode):
        return os.readlink(path) == os.readlink(original)
    flags = os.O_RDONLY | os.O_NOFOLLOW | _NOATIME
    with open(os.open(path, flags), "rb") as mine, open(os.open(original, flags), "rb") as theirs:
        while True:
            chunk = mine.read(1 << 20)
            if chunk != theirs.read(1 << 20):
                return False
            if not chunk:
                return True


def _only_read(root: Path, seal: _Seal, base: Path) -> dict[str, list[int]] | None:
    """Whether the copy of `base` at `root` is as sealed but for access times (what reading
    sets), which are set back here: its state then (what a walk would find: the entries set
    back have a new change time), else None. Any other difference (a write, a new or missing
    entry) means the guest changed it. Entries the seal found recent are also compared with `base`."""
    sealed = seal.state
    try:
        now = _state(root, sealed)
    except _Changed:
        return None
    if sealed.keys() != now.keys():
        return None
    read = []
    for path, was in sealed.items():
        is_ = now[path]
        if is_ != was:
            if is_[:ATIME] != was[:ATIME] or is_[MTIME:] != was[MTIME:]:
                return None
            read.append(path)
    if not all(_same_content(os.path.join(root, p), os.path.join(base, p), sealed[p][0]) for p in seal.recent):
        return None
    for path in read:
        where = os.path.join(root, path)
        os.utime(where, ns=(sealed[path][ATIME], sealed[path][MTIME]), follow_symlinks=False)
        now[path] = _fields(os.lstat(where))
    return now


@dataclass
class _Taken:
    """A workspace in use: what it is for, what it copies, and its seal once made."""
    key: tuple[str, Hashable]  # image and layout
    base: Path
    seal: _Seal | None = None
    state: dict[str, list[int]] | None = None  # a layer handed on: its state when it was given back


class Workspaces:
    def __init__(self, runs: Path, spares: Path):
        self.runs = runs
        self.spares = spares
        self._ready: dict[str, list[Path]] = {}
        self._wanted: dict[str, int] = {}
        self._seen: set[str] = set()
        self._untouched: list[tuple[tuple[str, Hashable], Path]] = []  # oldest first
        self._states: dict[Path, dict[str, list[int]]] = {}  # of the untouched layers this process checked
        self._taken: dict[Path, _Taken] = {}
        self._active = 0
        self._lock = threading.Lock()
        self._tasks: queue.Queue[Callable[[], object]] = queue.Queue()
        self._worker = 0  # the pid whose worker thread runs _work (a forked process starts its own)
        self._deferred: list[Callable[[], object]] | None = None  # see defer()
        self.owner = os.getpid()  # whose spares these are; a run forked by a server keeps the server's
        atexit.register(self.close)

    def take(self, key: str, base: Path, skip: Sequence[Path] = (), layout: Hashable = ()) -> Path:
        """A workspace whose `rootfs` is a copy of `base` (without `skip`), for image `key`. The
        caller adds `layout` to the copy (directories of its own): a workspace handed on is
        only handed to a caller that adds the same."""
        self.runs.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._active += 1
            found = [i for i, (k, _) in enumerate(self._untouched) if k == (key, layout)]
            held = self._untouched.pop(found[-1])[1] if found else None
            state = self._states.pop(held, None) if held is not None else None
        try:
            workspace = None
            if held is not None:  # back into runs/, where a run's workspace is while it runs
                workspace = self.runs / f"{os.getpid()}.{held.name.partition('.')[2]}"
                try:
                    os.rename(held, workspace)
                except FileNotFoundError:  # swept meanwhile: a copy, as if none were held
                    workspace, state = None, None
            if workspace is None:
                workspace = self._copy(key, base, skip)
        except BaseException:
            with self._lock:
                self._active -= 1
            raise
        with self._lock:
            self._taken[workspace] = _Taken((key, layout), base, state=state)
        return workspace

    def _copy(self, key: str, base: Path, skip: Sequence[Path]) -> Path:
        workspace = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}.", dir=self.runs))
        with self._lock:
            ready = self._ready.get(key)
            spare = ready.pop() if ready else None
            repeat = key in self._seen
            self._seen.add(key)
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

    def seal(self, workspace: Path, as_taken: bool = False) -> None:
        """Record the workspace's rootfs as the guest is about to find it (see give_back).
        `as_taken`: the caller changed nothing in it since take(), so a layer handed on is
        sealed with the state this process found when it was given back, without a walk."""
        with self._lock:
            state = self._taken[workspace].state if as_taken else None
        seal = _seal(workspace / "rootfs", state)
        with self._lock:
            self._taken[workspace].seal = seal

    def defer(self) -> None:
        """From now on, give_back() and drop_later() only note what to do, and `deferred()`
        does it: for a process that runs one command and can tell its result first (a run
        the run server forked), so that neither the check of the layer nor the release of the
        store stands between the guest's end and its exit code."""
        self._deferred = []

    def deferred(self) -> None:
        """Do what give_back() and drop_later() noted since defer(), and stop deferring."""
        tasks, self._deferred = self._deferred or [], None
        for task in tasks:
            task()

    def give_back(self, workspace: Path) -> None:
        """The run is over. If it was sealed and its guest only read, the workspace is kept for
        the next run; otherwise it goes, in the background if no other run is going (runs side
        by side share the cores: background work would only get in their way)."""
        if self._deferred is not None:
            self._deferred.append(lambda: self._give_back(workspace))
            return
        self._give_back(workspace)

    def _give_back(self, workspace: Path) -> None:
        with self._lock:
            self._active -= 1
            alone = self._active == 0
            taken = self._taken.pop(workspace)
        if taken.seal is not None and self._keep(workspace, taken, taken.seal):
            return
        if alone:
            self._submit(lambda: remove_tree(workspace))
        else:
            remove_tree(workspace)

    def _keep(self, workspace: Path, taken: _Taken, seal: _Seal) -> bool:
        try:
            for extra in os.listdir(workspace):  # what the run kept beside its rootfs (stdin)
                if extra != "rootfs":
                    os.unlink(workspace / extra)
            state = _only_read(workspace / "rootfs", seal, taken.base)
            if state is None:
                return False
            self.spares.mkdir(parents=True, exist_ok=True)
            held = self.spares / f"{self.owner}.{workspace.name.partition('.')[2]}"
            os.rename(workspace, held)  # its rootfs (a directory below it) keeps every stat field
            with self._lock:
                self._untouched.append((taken.key, held))
                self._states[held] = state
                evicted = self._untouched.pop(0)[1] if len(self._untouched) > UNTOUCHED_KEPT else None
                if evicted is not None:
                    self._states.pop(evicted, None)
            if evicted is not None:
                remove_tree(evicted)
            return True
        except OSError:
            return False

    def hand_over(self) -> list[tuple[tuple[str, Hashable], str]]:
        """The untouched layers this process keeps, for the process that forked it (a run
        server) to `adopt`: they are no longer this one's (its close() leaves them)."""
        with self._lock:
            handed, self._untouched = self._untouched, []
            self._states.clear()
        return [(key, str(path)) for key, path in handed]

    def disown(self) -> list[tuple[tuple[str, Hashable], str]]:
        """Forget the untouched layers (a process forked just now has them, and hands back
        what it kept); returns them, for `discard` if that process never does, or for `adopt`
        if it never ran (a run server's spare let go)."""
        with self._lock:
            lent, self._untouched = self._untouched, []
            self._states.clear()
        return [(key, str(path)) for key, path in lent]

    def adopt(self, handed: Sequence[tuple[tuple[str, Hashable], str]]) -> None:
        """Keep the untouched layers a forked run handed over (only those under `spares` that
        this process owns by name), the least recently used going first past UNTOUCHED_KEPT."""
        evicted = []
        with self._lock:
            for key, name in handed:
                path = Path(name)
                if path.parent == self.spares and path.name.partition(".")[0] == str(self.owner):
                    self._untouched.append((key, path))
            while len(self._untouched) > UNTOUCHED_KEPT:
                evicted.append(self._untouched.pop(0)[1])
        for path in evicted:
            remove_tree(path)

    @staticmethod
    def discard(lent: Sequence[tuple[tuple[str, Hashable], str]]) -> None:
        """Remove layers lent to a forked run that ended without handing them back."""
        for _, path in lent:
            remove_tree(Path(path))

    def drop_later(self, thing: object) -> None:
        """Let go of `thing` (a finished run's Wasmtime store) on the background thread."""
        if self._deferred is not None:
            self._deferred.append(lambda: thing)
            return
        self._submit(lambda: thing)

    def settle(self) -> None:
        """Wait until every queued removal and spare copy is done."""
        self._tasks.join()

    def close(self) -> None:
        """Settle, then remove the spares. The launcher stays usable."""
        self.settle()
        with self._lock:
            spares = [p for paths in self._ready.values() for p in paths]
            spares += [held for _, held in self._untouched]
            self._ready.clear()
            self._untouched.clear()
            self._states.clear()
            self._seen.clear()
        for path in spares:
            remove_tree(path)

    def _make_spare(self, key: str, base: Path, skip: Sequence[Path]) -> None:
        path = self.spares / f"{os.getpid()}.{os.urandom(8).hex()}"
        made: Path | None = path
        try:
            self.spares.mkdir(parents=True, exist_ok=True)
            copy_tree(base, path, skip=skip)
        except OSError:
            remove_tree(path)
            made = None
        with self._lock:
            self._wanted[key] -= 1
            if made is not None:
                self._ready.setdefault(key, []).append(made)

    def _submit(self, task: Callable[[], object]) -> None:
        with self._lock:
            if self._worker != os.getpid():
                self._worker = os.getpid()
                # Not threading.Thread.start(), which waits until the new thread runs: under load
                # that wait stood between a served run's guest and its exit code.
                _thread.start_new_thread(self._work, ())
        self._tasks.put(task)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                task()
            except Exception:  # a removal or copy that fails leaves a directory for the sweep
                pass
            finally:
                del task  # what it held goes now (before settle() returns), not at the next task
                self._tasks.task_done()


def sweep_dead(runs: Path) -> None:
    """Remove the writable layers of runs whose process died without cleaning up (killed, or
    ended by the CLI's timeout watchdog). Each is named after the pid that made it. A guest
    shaped each of them: removal is hostfs's, and nothing here can fail a launcher's start."""
    try:
        entries = os.listdir(runs)
    except OSError:
        return
    for name in entries:
        pid = name.split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            remove_tree(runs / name)
        except (OSError, OverflowError):
            pass
