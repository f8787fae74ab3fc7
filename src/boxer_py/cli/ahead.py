"""A served run made ready ahead of its request (server.py).

The process forked for the next run (the spare) knows the last request. When that was a plain
`run IMAGE COMMAND...` (no option: run.plain), the spare runs it again, in that request's
directory, umask and environment, up to its guest's first instruction (RunSpec.ready: the
writable layer taken and sealed, the program's instance made, its snapshot restored, its
Ctrl-C words found), and there waits for its own request. The same request (every byte of it:
arguments, directory, umask, environment), for an image that is still the file it found, with
nothing printed meanwhile, takes that run over: the client's stdio become the process's and
its guest starts. Nothing of the guest ran before. A request that differs in the command's
arguments alone (the same image, program word, directory, umask and environment: `python -c`
with other code) takes that run over too (RunSpec.ready returns the command, Launcher._aim plans it). When it
starts the same program with the same environment from the same snapshot, only its argv and
request differ, and both are put in place before any guest code runs (sandbox.Aim: a WASI
configuration made like the run's replaces the store's; preinit.readdress puts the request in
the inbox), so the instance's memory is what restoring that request into a fresh one makes.
Otherwise (another program, a start from scratch, another snapshot: sandbox.Another) its
command is planned anew in the same writable layer, which no guest ran in, with an instance of
its own; the one made ahead is let go after the exit code. Anything else (another request, a changed
image, a run that failed or printed before its request, an image it would pull) is unwound
before its guest starts, its layer kept for the real run, which runs as any other.

Signals the client relays before the run is taken over are held (blocked) and come once it is,
so they reach the run's own handlers; a run unwound restores the handlers it found first.
"""
from __future__ import annotations

import io
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from boxer_py.cli import client, prefault
from boxer_py.errors import BoxerError
from boxer_py.runtime.spec import Ready
from boxer_py.runtime.workspace import Workspaces


class Unforeseen(BaseException):
    """The run made ready ahead is not the request's: it is unwound before its guest starts."""


def found(image: str) -> tuple[str, list[int]]:
    """The file `run IMAGE` would run now (a stored image or a file), and its stamp."""
    from boxer_py.cli.common import locate

    path = locate(image)
    st = os.stat(path)
    return os.path.realpath(path), [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def another(predicted: tuple[str, str, int, list[str], dict[bytes, bytes]], data: bytes) -> tuple[str, ...] | None:
    """The command of request `data` (a length, then client.encode's fields) if it differs from
    the `predicted` one's fields (client.decode's) in the command's arguments alone: the same
    key, directory, umask, environment, image and first word of the command (its program, and
    all that the CLI's report names of it). None for any other request."""
    try:
        if len(data) != 4 + int.from_bytes(data[:4], "big"):
            return None
        key, cwd, umask, args, env = client.decode(data[4:])
    except ValueError:
        return None
    same = (key, cwd, umask, env) == (predicted[0], predicted[1], predicted[2], predicted[4])
    if not same or len(predicted[3]) < 3 or args[:3] != predicted[3][:3]:
        return None
    return tuple(args[2:])


def read_request(handoff: socket.socket) -> tuple[bytes, list[int]]:
    """The request the server hands over (nothing once it let this spare go), and its descriptors."""
    data, fds, _, _ = socket.recv_fds(handoff, client.MAX_REQUEST + 4, 4)
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        more = handoff.recv(client.MAX_REQUEST + 4)
        if not more:
            break
        data += more
    handoff.close()
    return data, fds


def run(predicted: bytes, handoff: socket.socket, written: bytes, workspaces: Workspaces,
        main: Callable[[list[str], Callable[[int], None], Ready], object],
        report: Callable[[socket.socket, int], None]) -> tuple[bytes, list[int]] | None:
    """Make the run of `predicted` ready and wait for the request on `handoff`: if it is the same,
    or differs in its command's arguments alone (another()), run it on (`main(args, report,
    ready)`, the CLI's; `ready` returns that command; this never returns). Otherwise return the
    request read (None if none was, or if the run could not be made ready), to be run as any
    other. `written`: the pages the last run made its own (prefault.py), made this run's too
    once its guest's memory is mapped; `report(conn, code)` tells the client the exit code."""
    fields = client.decode(predicted[4:])
    _, cwd, umask, args, env = fields
    try:
        os.chdir(cwd)
        image = found(args[1])
    except (OSError, BoxerError):
        return None  # not found as it was: the run would say why, or pull it
    os.umask(umask)
    os.environb.clear()
    os.environb.update(env)
    handlers = {signum: signal.getsignal(signum) for signum in client.RELAYED}
    held = signal.pthread_sigmask(signal.SIG_BLOCK, client.RELAYED)
    quiet = os.memfd_create("boxer-ahead", os.MFD_CLOEXEC)  # what the run prints before its request
    log = os.dup(2)  # the server's log
    for fd in (1, 2):
        os.dup2(quiet, fd)
    got: list[tuple[bytes, list[int]]] = []
    taken: list[socket.socket] = []

    def ready() -> tuple[str, ...] | None:
        sys.stdout.flush()
        sys.stderr.flush()
        prefault.populate(written, handoff.fileno(), files_only=True)  # the guest's memory, mapped since
        got.append(read_request(handoff))
        data, fds = got[0]
        if not data and not fds:
            os._exit(0)  # let go: nothing was run (its layer is swept with this process)
        command = None if data == predicted else another(fields, data)
        if len(fds) != 4 or (data != predicted and command is None) or os.fstat(quiet).st_size:
            raise Unforeseen
        os.chdir(cwd)  # the same path may name another directory by now
        if found(args[1]) != image:
            raise Unforeseen
        got.clear()
        for target, fd in enumerate(fds[1:]):
            os.dup2(fd, target)
            os.close(fd)
        os.close(quiet)
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(line_buffering=os.isatty(1))
        taken.append(socket.socket(fileno=fds[0]))
        taken[0].settimeout(None)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # what the client relayed meanwhile comes now
        os.write(log, f"{time.strftime('%H:%M:%S')} run {os.getpid()} was ready ahead"
                      f"{'' if command is None else ' for another command'}\n".encode())
        os.close(log)
        return command

    def told(code: int) -> None:
        if not taken:
            raise Unforeseen  # it ended before its request came (an error): not that request's run
        report(taken[0], code)

    try:
        workspaces.defer()
        main(args, told, ready)
    except Unforeseen:
        pass
    except BaseException:
        if not taken:
            os.dup2(log, 2)  # a failure of boxer's own code: into the server's log, not into `quiet`
        raise
    workspaces.deferred()  # its layer is kept for the real run
    signal.set_wakeup_fd(-1)
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)
    os.close(quiet)
    os.close(log)
    signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return got[0] if got else None
