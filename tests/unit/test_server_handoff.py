"""The run server hands a read request to the process forked ahead for it (cli/server.py,
`Server._hand`): once the spare has the whole request it may read it and close its end at
once, which must not look like a failed hand-over (the server would then fork another
process for the same request, and the command would run twice). The client that sent the
request (cli/client.py) must not take such a close for a server that left, for the same reason."""
from __future__ import annotations

import os
import socket
import threading

from boxer_py.cli.client import _relay
from boxer_py.cli.server import Server, _Spare


class _Closed:
    """A hand-over socket whose peer took everything sendmsg sent and went away."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def sendmsg(self, buffers, ancillary) -> int:
        self.calls.append("sendmsg")
        return sum(len(b) for b in buffers)

    def sendall(self, data) -> None:
        self.calls.append("sendall")
        raise BrokenPipeError(32, "Broken pipe")  # even for b"": one send(2) on a closed pair

    def close(self) -> None:
        self.calls.append("close")


def test_a_request_the_spare_took_whole_is_handed_over_once():
    handoff = _Closed()
    spare = _Spare(pid=0, pidfd=-1, handoff=handoff, held=-1, lent=[])  # type: ignore[arg-type]
    read, write = os.pipe()
    conn = socket.socket()
    try:
        Server._hand(spare, conn, [read, write, write], b"\0\0\0\4body")
    finally:
        conn.close()
        os.close(read)
        os.close(write)
    assert handoff.calls == ["sendmsg", "close"]


def test_what_sendmsg_left_is_sent_after_it():
    ours, theirs = socket.socketpair()
    spare = _Spare(pid=0, pidfd=-1, handoff=ours, held=-1, lent=[])
    body = b"x" * (4 << 20)  # more than one send takes
    got = bytearray()
    reader = threading.Thread(target=lambda: [got.extend(c) for c in iter(lambda: theirs.recv(1 << 16), b"")])
    reader.start()
    read, write = os.pipe()
    try:
        Server._hand(spare, theirs, [read, write, write], body)
    finally:
        reader.join(30)
        theirs.close()
        os.close(read)
        os.close(write)
    assert bytes(got) == body


class _SlowClient(socket.socket):
    """The client's end of a real connection, on which the run ends (its exit reported, the
    connection closed) between sendmsg and anything sent after it: what a quick run does."""

    def __init__(self, sock: socket.socket, peer: threading.Thread):
        super().__init__(sock.family, sock.type, fileno=sock.detach())
        self.peer = peer

    def sendmsg(self, *args, **kwargs):
        sent = super().sendmsg(*args, **kwargs)
        self.peer.join(10)
        return sent


def test_a_client_whose_run_ended_before_its_next_send_takes_the_exit_code_and_does_not_run_it_again():
    """cli/client.py `_relay`: after sending the whole request, any further send (even an empty
    one) would fail with EPIPE, and the client would then run the command itself a second time."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    message = b"\0\0\0\4body"

    def server() -> None:
        data, fds, _, _ = socket.recv_fds(theirs, 64, 4)
        for fd in fds:
            os.close(fd)
        assert data == message
        theirs.sendall(b"exit 3\n")
        theirs.close()

    peer = threading.Thread(target=server)
    peer.start()
    client = _SlowClient(ours, peer)
    try:
        assert _relay(client, message) == 3
    finally:
        client.close()
