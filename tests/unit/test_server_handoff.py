"""The run server hands a read request to the process forked ahead for it (cli/server.py,
`Server._hand`): once the spare has the whole request it may read it and close its end at
once, which must not look like a failed hand-over (the server would then fork another
process for the same request, and the command would run twice)."""
from __future__ import annotations

import os
import socket
import threading

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
