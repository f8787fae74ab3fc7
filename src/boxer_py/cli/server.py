"""The run server behind a repeated `boxer run` (see client.py): a process that has already
loaded click, Wasmtime and the launcher, and forks one process per run.

Each forked process takes over the client's stdin/stdout/stderr, working directory, umask
and environment and runs the ordinary CLI (cli.main) with them, so a served run behaves
exactly like one the client would have run itself. It writes `exit CODE` to the client as
soon as the result is out, and cleans up after. The server itself never compiles a module
nor runs a guest: Wasmtime's compiler and WASI start threads of their own, and a process
forked from one that has them could hang. It reports a run's death by signal as 128+N, kills a
run whose client went away (and removes what that run left), talks only to processes of
its own user, and leaves when idle, when its socket is taken over, when its cache dir
is gone, or when its own code changed on disk (codewatch.py: it refuses the request that finds
it so, whose client then runs the command itself and starts a new server for the next).

The process of a run is forked ahead of its request: a spare waits (on a socket pair) for the
next request the server has read, so neither the fork nor closing what the server holds stands
between a client and its run. A spare serves one run and ends with it; one whose server has
loaded or adopted something since it was forked is let go (it never ran anything) and another
forked, so every run starts from what a run forked at its request would have. Runs side by
side beyond the spare are forked at their request. While it waits, the spare makes its own the
pages of the server's memory that the last run wrote (prefault.py), so that its run does not
take those copy-on-write faults, and makes the last plain request's run ready up to its guest's
first instruction (ahead.py), which the very same request then takes over.

Requests are read off the accept loop: each connection is a non-blocking state in the one
selector loop (no threads: a process forked from one with threads could hang), and must
deliver its whole request (at most client.MAX_REQUEST bytes) within REQUEST_DEADLINE seconds, so a
client that dribbles or stalls its request delays no other `boxer run`.
"""
from __future__ import annotations

import fcntl
import gc
import io
import os
import pickle
import select
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field

from boxer_py.cli import ahead, client, prefault
from boxer_py.cli.codewatch import CodeWatch

IDLE = 600.0  # seconds without runs before the server leaves (BOXER_SERVER_IDLE)
CHECK_EVERY = 2.0
REQUEST_DEADLINE = 5.0  # seconds a client has to send its whole request (BOXER_SERVER_REQUEST_DEADLINE)
MAX_PENDING = 64  # requests being read at once; more connections are refused at once
LOG_LIMIT = 1 << 20
PIPE_SIZE = 1 << 18  # of the pipe on which a run tells what it loaded and which pages it made its own


@dataclass
class _Pending:
    """A connection whose request is still arriving."""

    conn: socket.socket
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    fds: list[int] = field(default_factory=list)


@dataclass
class _Run:
    conn: socket.socket
    pid: int
    pidfd: int
    held: int  # a pipe on which the run lists what it loaded, for the server to preload
    lent: list  # untouched writable layers only this run may take (Workspaces.disown)


@dataclass
class _Spare:
    """A forked process waiting for the request of the run it is to be (`_wait`)."""

    pid: int
    pidfd: int
    handoff: socket.socket  # the server's end: the request and its descriptors go here, once
    held: int
    lent: list


class Server:
    def __init__(self, path: str, key: str, cache_dir: str, idle: float, request_deadline: float = REQUEST_DEADLINE,
                 watch: CodeWatch | None = None):
        """`watch`: the server's code, watched from before the CLI was imported here."""
        from boxer_py.cli import main as cli  # everything a run loads, loaded once: that is the point
        from boxer_py.cli.run import new_launcher, plain, run_defaults

        self.cli = cli
        self.plain = plain
        self.run_defaults = run_defaults()  # a plain `run IMAGE COMMAND...` is not parsed by click again
        self.path = path
        self.stem = path[:-len(".sock")]  # beside the socket: .lock, .log (and the client's .seen)
        self.key = key
        self.cache_dir = cache_dir
        self.idle = idle
        self.request_deadline = request_deadline
        self.watch = watch
        self.launcher = new_launcher(cache_dir)  # what the forked runs use: without epochs (cli/run.py)
        gc.freeze()  # what is loaded now stays shared with the forked runs, not copied into each
        self.written = b""  # the pages the last run made its own (prefault.owned), for the next spare
        self.predicted = b""  # the last request, if a plain `run IMAGE COMMAND...`: the next spare makes it ready
        self.runs: dict[int, _Run] = {}
        self.spare: _Spare | None = None
        self.leaving: dict[int, _Spare] = {}  # spares let go, until they are reaped (by pidfd)
        self.pending: dict[int, _Pending] = {}  # by the connection's fd
        self.selector = selectors.DefaultSelector()
        self.lock = -1
        self.listener: socket.socket | None = None

    def bind(self) -> bool:
        """Take the socket path, unless another server holds it (False)."""
        self.lock = os.open(self.stem + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        log = os.open(self.stem + ".log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                      0o600)
        os.dup2(log, 2)
        os.close(log)
        self.log(f"server {os.getpid()} for {self.cache_dir}")
        try:
            os.unlink(self.path)  # a socket left by a server that was killed
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        os.umask(0o077)
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.inode = os.stat(self.path).st_ino
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self._keep_spare()
        return True

    def serve(self) -> None:
        last = time.monotonic()
        while True:
            wait = CHECK_EVERY
            if self.pending:
                wait = max(0.0, min(wait, min(p.deadline for p in self.pending.values()) - time.monotonic()))
            events = self.selector.select(timeout=wait)
            for key, _ in events:
                if key.data == "accept":
                    self._accept()
                elif key.data[0] == "request":
                    self._receive(key.data[1])
                elif key.data[0] == "exited":
                    self._reap(key.data[1])
                elif key.data[0] == "spare":
                    self._spare_ended(key.data[1])
                else:
                    self._hang_up(key.data[1])
                last = time.monotonic()
            now = time.monotonic()
            for pending in [p for p in self.pending.values() if p.deadline <= now]:
                self._refuse(pending, f"no whole request within {self.request_deadline:g}s")
            if self.listener is not None and not events and not self._still_wanted():
                self._retire()  # no new runs; the ones going are seen to the end
            if self.listener is None and not self.runs:
                break
            if not self.runs and not self.pending and now - last > self.idle:
                break
        self.close()

    def close(self) -> None:
        self._retire()
        self.log("server leaves")

    def _retire(self) -> None:
        """Take no more requests: give up the socket path and the lock, so that a new server
        can start at once, and refuse the requests still arriving."""
        if self.listener is None:
            return
        self._let_go()
        for pending in list(self.pending.values()):
            self._refuse(pending, "the server is leaving")
        self.selector.unregister(self.listener)
        try:
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except OSError:
            pass
        self.listener.close()
        self.listener = None
        os.close(self.lock)
        self.lock = -1

    def _still_wanted(self) -> bool:
        if self.watch is not None and self.watch.changed():
            return False
        try:
            return os.stat(self.path).st_ino == self.inode and os.path.isdir(self.cache_dir)
        except OSError:
            return False

    def _accept(self) -> None:
        """Take a connection (only from this user) and start reading its request; the
        request is read by _receive as it arrives (what came with the connection at once),
        never waited for here."""
        assert self.listener is not None  # _accept is registered only once listening
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        try:
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            if uid != os.getuid():
                raise ValueError(f"a process of user {uid}")
            if len(self.pending) >= MAX_PENDING:
                raise ValueError(f"{MAX_PENDING} requests already arriving")
            conn.setblocking(False)
        except (OSError, ValueError) as e:
            self.log(f"refused: {e}")
            conn.close()
            return
        pending = _Pending(conn, time.monotonic() + self.request_deadline)
        self.pending[conn.fileno()] = pending
        self.selector.register(conn, selectors.EVENT_READ, ("request", pending))
        self._receive(pending)  # what a client sends as it connects is there already, most often

    def _refuse(self, pending: _Pending, why: str) -> None:
        self.log(f"refused: {why}")
        self.selector.unregister(pending.conn)
        del self.pending[pending.conn.fileno()]
        for fd in pending.fds:
            os.close(fd)
        pending.conn.close()

    def _receive(self, pending: _Pending) -> None:
        """What has arrived of a request (without blocking); once it is whole, the run starts."""
        try:
            data, fds, _, _ = socket.recv_fds(pending.conn, 65536, 3)
        except BlockingIOError:
            return
        except OSError as e:
            self._refuse(pending, f"reading the request: {e}")
            return
        pending.fds.extend(fds)
        pending.data += data
        size = int.from_bytes(pending.data[:4], "big") if len(pending.data) >= 4 else 0
        if len(pending.fds) > 3 or size > client.MAX_REQUEST or (pending.data and not pending.fds):
            self._refuse(pending, "not a run request")
            return
        if not data:
            self._refuse(pending, "truncated request")
            return
        if len(pending.data) < 4 or len(pending.data) < 4 + size:
            return
        self.selector.unregister(pending.conn)
        del self.pending[pending.conn.fileno()]
        conn, fds = pending.conn, pending.fds
        try:
            if len(fds) != 3 or len(pending.data) != 4 + size:
                raise ValueError("not a run request")
            key, cwd, umask, args, env = client.decode(bytes(pending.data[4:]))
            if key != self.key:
                raise ValueError("a client of other code")  # it runs the command itself
            if self.watch is not None and self.watch.changed():
                raise ValueError("the server's code changed on disk")  # and it leaves (serve)
            conn.setblocking(True)
        except (OSError, ValueError) as e:
            self.log(f"refused: {e}")
            for fd in fds:
                os.close(fd)
            conn.close()
            if self.watch is not None and self.watch.seen:
                self._retire()
            return
        body = bytes(pending.data)
        self.predicted = body if self.plain(args, self.run_defaults) is not None else b""
        spare, self.spare = self.spare, None
        if spare is not None:
            self.selector.unregister(spare.pidfd)
        try:
            if spare is None:
                raise OSError("no spare")
            self._hand(spare, conn, fds, body)
        except OSError:  # none waiting (runs side by side), or it died: one for this request
            if spare is not None:
                self._let_go(spare)
            spare = self._fork()
            self._hand(spare, conn, fds, body)
        for fd in fds:
            os.close(fd)
        run = _Run(conn, spare.pid, spare.pidfd, spare.held, spare.lent)
        self.runs[spare.pidfd] = run
        self.selector.register(spare.pidfd, selectors.EVENT_READ, ("exited", run))
        self.selector.register(conn, selectors.EVENT_READ, ("hung up", run))
        self.log(f"run {spare.pid}")
        try:
            conn.sendall(b"pid %d\n" % spare.pid)
        except OSError:
            self._hang_up(run)

    def _keep_spare(self) -> None:
        """Fork the spare for the next request, if none waits and the server takes requests."""
        if self.spare is None and self.listener is not None:
            self.spare = self._fork()
            self.selector.register(self.spare.pidfd, selectors.EVENT_READ, ("spare", self.spare))

    def _fork(self) -> _Spare:
        """A process forked now that waits for one request (`_hand`), then runs it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        held, tell = os.pipe()
        try:
            fcntl.fcntl(tell, fcntl.F_SETPIPE_SZ, PIPE_SIZE)  # the pages the run lists (prefault.owned)
        except OSError:
            pass
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                os.close(held)
                self._wait(theirs, tell)  # leaves through os._exit
            except BaseException:
                traceback.print_exc()  # on the client's stderr, as the CLI itself would show it
            finally:
                os._exit(1)
        theirs.close()
        os.close(tell)
        lent = self.launcher.workspaces.disown()  # the forked process has them, and no other may
        return _Spare(pid, os.pidfd_open(pid), ours, held, lent)

    @staticmethod
    def _hand(spare: _Spare, conn: socket.socket, fds: list[int], body: bytes) -> None:
        """Give the spare its request: the client's connection and stdio, then the request."""
        sent = spare.handoff.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                               struct.pack("4i", conn.fileno(), *fds))])
        if sent < len(body):  # (not an empty sendall: the spare may have read it all and closed its end)
            spare.handoff.sendall(body[sent:])
        spare.handoff.close()

    def _let_go(self, spare: _Spare | None = None) -> None:
        """End a spare that was given no request (the waiting one by default): it leaves by
        itself once its socket pair closes, and the layers lent to it, which it never touched,
        are the server's again. It is reaped when its pidfd says it ended (_spare_ended)."""
        if spare is None:
            spare, self.spare = self.spare, None
            if spare is None:
                return
            self.selector.unregister(spare.pidfd)
        spare.handoff.close()
        self.launcher.workspaces.adopt(spare.lent)
        self.leaving[spare.pidfd] = spare
        self.selector.register(spare.pidfd, selectors.EVENT_READ, ("spare", spare))

    def _spare_ended(self, spare: _Spare) -> None:
        """A spare's process ended: one let go, or the waiting one, killed from outside (its
        lent layers are removed: the server cannot know what became of them)."""
        self.selector.unregister(spare.pidfd)
        os.waitpid(spare.pid, 0)
        os.close(spare.pidfd)
        os.close(spare.held)
        if self.leaving.pop(spare.pidfd, None) is None:
            spare.handoff.close()
            self.spare = None
            self.launcher.workspaces.discard(spare.lent)
            self.log(f"spare {spare.pid} ended")

    def _wait(self, handoff: socket.socket, tell: int) -> None:
        """In a forked process: let go of what the server holds, wait for the one request the
        server hands over, then be that run. It ends with the run (or without one, once the
        server closes its end of the pair)."""
        self.selector.close()
        if self.listener is not None:
            self.listener.close()
        if self.lock >= 0:
            os.close(self.lock)
        if self.watch is not None:
            self.watch.close()
        for run in self.runs.values():
            run.conn.close()
            os.close(run.pidfd)
            os.close(run.held)
        for pending in self.pending.values():
            pending.conn.close()
            for fd in pending.fds:
                os.close(fd)
        for other in (self.spare, *self.leaving.values()):
            if other is not None:
                other.handoff.close()
                os.close(other.pidfd)
                os.close(other.held)
        prefault.populate(self.written, handoff.fileno())  # what the last run wrote, until the request comes
        request = None
        if self.predicted and not select.select([handoff], [], [], 0)[0]:  # (a request that came already is not)
            request = ahead.run(self.predicted, handoff, self.written, self.launcher.workspaces,  # returns if not run so
                                lambda args, report, ready: self.cli.main(args, self.launcher, report,
                                                                          self.run_defaults, ready),
                                lambda conn, code: self._report(conn, tell, code))
        data, fds = request or ahead.read_request(handoff)
        if len(fds) != 4 or len(data) != 4 + int.from_bytes(data[:4], "big"):
            os._exit(0)  # let go before any request, or given only part of one: nothing was run
        _, cwd, umask, args, env = client.decode(data[4:])
        self._child(socket.socket(fileno=fds[0]), fds[1:], cwd, umask, args, env, tell)

    def _child(self, conn: socket.socket, fds: list[int], cwd: str, umask: int, args: list[str],
               env: dict[bytes, bytes], tell: int) -> None:
        """In the forked process, its request come: become the client's `boxer`, then run the CLI."""
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(line_buffering=os.isatty(1))
        os.chdir(cwd)
        os.umask(umask)
        os.environb.clear()
        os.environb.update(env)
        conn.settimeout(None)
        self.launcher.workspaces.defer()  # until its client has the exit code (_report)
        self.cli.main(args, self.launcher, lambda code: self._report(conn, tell, code), self.run_defaults)

    def _report(self, conn: socket.socket, tell: int, code: int) -> None:
        """In a run's process, its output out: tell the client the exit code, then clean up and
        tell the server what the run loaded and kept."""
        try:
            conn.sendall(b"exit %d\n" % code)
        except OSError:
            pass
        conn.close()
        written = prefault.owned()  # while its guest's memory is still there
        self.launcher.workspaces.deferred()  # the layer kept or removed, the store let go
        if self.launcher.baker is not None and self.launcher.baker.busy():
            # A snapshot is being baked (preinit.bake): finish it in this process, which the
            # client no longer waits for, without holding its output open; held() then lists it.
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            self.launcher.baker.wait()
        os.set_blocking(tell, False)
        try:  # a few keys and paths, and the pages (at most 128 KiB) if the pipe takes them
            told = (*self.launcher.held(), self.launcher.workspaces.hand_over(), self.launcher.images.paths())
            data = pickle.dumps((*told, written))
            if len(data) > fcntl.fcntl(tell, fcntl.F_GETPIPE_SZ):
                data = pickle.dumps((*told, b""))
            os.write(tell, data)
        except OSError:
            pass
        os.close(tell)

    def _reap(self, run: _Run) -> None:
        _, status = os.waitpid(run.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        self.log(f"run {run.pid} exit {code}")
        try:
            run.conn.sendall(b"exit %d\n" % code)  # if the run could not say it itself
        except OSError:
            pass
        self.selector.unregister(run.pidfd)
        os.close(run.pidfd)
        self._forget(run)
        del self.runs[run.pidfd]
        self.launcher.sweep()  # what a killed run left behind
        self._preload(run)
        self._keep_spare()

    def _preload(self, run: _Run) -> None:
        """Load what the run loaded (its compiled module, its snapshot, its image), so that the next
        runs, forked from here, find them in memory; keep the writable layers it left
        untouched for them. A spare forked before that is let go (another is forked with them)."""
        with os.fdopen(run.held, "rb") as pipe:
            data = pipe.read()
        if not data:
            self.launcher.workspaces.discard(run.lent)  # the run ended before it could tell
            return
        try:
            modules, snapshots, handed, images, self.written = pickle.loads(data)
            known = set(self.launcher.images.paths())
            self.launcher.workspaces.adopt(handed)
            new = self.launcher.preload(modules, snapshots, images)
            if handed or new or not known.issuperset(self.launcher.images.paths()):
                self._let_go()
            if new:
                self.log(f"preloaded {new} compiled modules and snapshots")
        except Exception as e:  # a run killed while writing, say: the next run loads for itself
            self._let_go()
            self.log(f"preload: {type(e).__name__}: {e}")

    def _hang_up(self, run: _Run) -> None:
        """The client wrote `done` (it has the exit code; the run may still be cleaning up)
        or went away without it (killed): then the run is stopped."""
        try:
            done = run.conn.recv(16)
        except OSError:
            done = b""
        self._forget(run)
        if not done:
            try:
                os.kill(run.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _forget(self, run: _Run) -> None:
        if run.conn.fileno() >= 0:
            self.selector.unregister(run.conn)
            run.conn.close()

    @staticmethod
    def log(line: str) -> None:
        """A line on stderr, the server's log file (started afresh past LOG_LIMIT)."""
        if os.fstat(2).st_size > LOG_LIMIT:
            os.ftruncate(2, 0)
        os.write(2, f"{time.strftime('%H:%M:%S')} {line}\n".encode())


def main() -> None:
    path, key, cache_dir = sys.argv[1:4]
    watch = CodeWatch(client.package())  # before the CLI is imported (Server)
    if key != repr((sys.prefix, client.package(), cache_dir)):
        return  # this Python finds another boxer_py than the client's: not its server
    os.chdir("/")
    server = Server(path, key, cache_dir, float(os.environ.get("BOXER_SERVER_IDLE") or IDLE),
                    float(os.environ.get("BOXER_SERVER_REQUEST_DEADLINE") or REQUEST_DEADLINE), watch)
    if server.bind():
        server.serve()


if __name__ == "__main__":
    main()
