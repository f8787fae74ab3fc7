"""The `boxer` command's entry point. A repeated `boxer run` should cost little more than
Python's own start, but loading click, Wasmtime and the launcher takes longer than the run
itself. So `boxer run` hands the whole invocation (argv, cwd, umask, environment and its
stdin/stdout/stderr themselves) to a warm run server (server.py) that forks a process per
run, and relays signals to that process until it reports the exit code. Anything else, and
any `boxer run` without a server, loads the CLI (cli.py) here as usual.

The second `boxer run` within ten minutes starts the server for its cache dir, in the
background; it leaves after BOXER_SERVER_IDLE seconds (default 600) without runs.
BOXER_SERVER=0 never uses nor starts one. A client names its server by the cache dir, the
Python environment and the package's directory alone, and stats nothing of boxer's code: the
server watches that itself (codewatch.py).

This module is imported on every `boxer` command, so it uses what Python has at hand: the
C modules `_socket` and `_signal` rather than `socket` and `signal`, whose wrappers build
enums that cost more to import than the rest of a served run's client side.
"""
import _signal as signal
import _socket as socket
import os
import sys
import time

from boxer_py import locations

PROTOCOL = b"boxer-run/1"
MAX_REQUEST = 1 << 20  # bytes of one request, at most (the server refuses more: the client runs it itself)
SPAWN_WITHIN = 600.0  # seconds: a second `boxer run` this soon after the first starts a server
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGTSTP, signal.SIGCONT, signal.SIGWINCH)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["run"] and os.environ.get("BOXER_SERVER", "1") != "0":
        try:
            code = forward(args)
        except KeyboardInterrupt:
            code = 130
        if code is not None:
            os._exit(code)
    from boxer_py.cli.main import main as cli_main

    cli_main()


def address() -> tuple[str, str] | None:
    """The socket path and key of the run server for this cache dir, this Python environment
    and this package (the server itself leaves once its code changes on disk: codewatch.py)."""
    runtime = locations.runtime_dir()
    if runtime is None:
        return None
    key = repr((sys.prefix, package(), os.path.abspath(locations.cache_dir())))
    return os.path.join(runtime, f"{_digest(key.encode('utf-8', 'surrogateescape')):016x}.sock"), key


def package() -> str:
    """The directory of the boxer_py package this process runs."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


MERSENNE_61 = (1 << 61) - 1


def _digest(data: bytes) -> int:
    """A short, stable socket name (the server checks the whole key): the key's bytes as one
    number modulo a 61-bit prime, one C-level operation (a byte loop in Python, or loading
    hashlib, would take longer than the rest of the client's work)."""
    return int.from_bytes(data, "little") % MERSENNE_61


def forward(args: list[str]) -> int | None:
    """Run `boxer ARGS` in the server; its exit code, or None if this process should run it
    itself (no server yet, or it went away before the run began)."""
    where = address() if hasattr(os, "pidfd_open") else None  # pidfds and SO_PEERCRED: Linux
    if where is None:
        return None
    path, key = where
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)  # a closed stdio cannot be handed over
        message = encode(key, os.getcwd(), _umask(), args, os.environb)
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        _start_later(path, key)
        return None
    try:
        return _relay(sock, message)
    finally:
        sock.close()


class _Signals:
    """Passes this process's signals on to the run's process (through a pidfd, so never to a
    process that took over a recycled pid); those that come before it is known, once it is.
    Ctrl-Z stops the run, then this process; `fg` continues both."""

    def __init__(self) -> None:
        self.started = False  # the server said which process runs the command
        self.pidfd: int | None = None
        self.pending: list[int] = []
        self.before = {signum: signal.signal(signum, self.relay) for signum in RELAYED}

    def restore(self) -> None:
        """Back to the handlers this process had (it is going to run the command itself)."""
        for signum, handler in self.before.items():
            signal.signal(signum, handler)
        for signum in self.pending:
            signal.raise_signal(signum)  # what came meanwhile is this process's again

    def attach(self, pid: int) -> None:
        self.started = True
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:
            return  # already gone: its exit code is on the way
        for signum in self.pending:
            self.relay(signum, None)

    def relay(self, signum: int, _frame) -> None:
        if self.pidfd is None:
            self.pending.append(signum)
            return
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGSTOP if signum == signal.SIGTSTP else signum)
        except OSError:
            pass
        if signum == signal.SIGTSTP:
            os.kill(os.getpid(), signal.SIGSTOP)


def _relay(sock, message: bytes) -> int | None:
    """Send the request with this process's stdio (SCM_RIGHTS), then pass on signals to the
    run's process until its exit code comes."""
    signals = _Signals()
    try:
        stdio = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        sent = sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, stdio)])
        if sent < len(message):  # never an empty send: a quick run may have ended and closed the
            sock.sendall(message[sent:])  # connection already, and EPIPE here would run it twice
        buffered = b""
        while True:
            data = sock.recv(256)
            if not data:
                break
            buffered += data
            while b"\n" in buffered:
                line, _, buffered = buffered.partition(b"\n")
                word, _, value = line.partition(b" ")
                if word == b"exit":
                    try:
                        sock.sendall(b"done\n")  # not a hang-up: the run may finish its clean-up
                    except OSError:
                        pass  # the server reported it and is gone from this connection
                    return int(value)
                if word == b"pid" and not signals.started:
                    signals.attach(int(value))
    except (OSError, ValueError):
        pass
    if not signals.started:
        signals.restore()
        return None  # the server left before the run began: run it here
    os.write(2, b"boxer: the run server ended before the run reported its exit code\n")
    return 1


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def encode(key: str, cwd: str, umask: int, args: list[str], env) -> bytes:
    """One request: a length, then NUL-separated fields (no field can hold a NUL)."""
    fields = [PROTOCOL, os.fsencode(key), os.fsencode(cwd), b"%d" % umask, b"%d" % len(args),
              *map(os.fsencode, args), *(k + b"=" + v for k, v in env.items())]
    body = b"\0".join(fields)
    return len(body).to_bytes(4, "big") + body


def decode(body: bytes) -> tuple[str, str, int, list[str], dict[bytes, bytes]]:
    """The fields of `encode`'s body (after its length): key, cwd, umask, args, env."""
    fields = body.split(b"\0")
    if fields[0] != PROTOCOL or len(fields) < 5:
        raise ValueError("not a boxer run request")
    count = int(fields[4])
    args = [os.fsdecode(x) for x in fields[5:5 + count]]
    if len(args) != count:
        raise ValueError("truncated request")
    env = dict(x.partition(b"=")[::2] for x in fields[5 + count:] if x)
    return os.fsdecode(fields[1]), os.fsdecode(fields[2]), int(fields[3]), args, env


def _start_later(path: str, key: str) -> None:
    """Start a server in the background if this is the second run in a while (a lone run
    leaves no process behind). This run does not wait for it."""
    seen = path[:-len(".sock")] + ".seen"
    try:
        recent = time.time() - os.stat(seen).st_mtime < SPAWN_WITHIN
    except OSError:
        recent = False
    try:
        os.close(os.open(seen, os.O_WRONLY | os.O_CREAT, 0o600))
        os.utime(seen)
    except OSError:
        return
    if not recent:
        return
    devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        # -P: the client's working directory must not be on the server's import path.
        os.posix_spawn(sys.executable, [sys.executable, "-P", "-m", "boxer_py.cli.server", path, key,
                                        os.path.abspath(locations.cache_dir())],
                       os.environ, file_actions=devnull, setsid=True)
    except OSError:
        pass
