"""The host side of a networked run: real host sockets behind the guest's socket slots, the
control descriptor's requests, and the policy (published ports, allowed hosts) checked here.

The guest has a fixed range of descriptor numbers (slots, reserved at start: see net/wasi.py).
The first is the control descriptor: the guest writes one JSON request to it and reads one
JSON answer back (socket, bind, listen, connect, getsockname, getpeername, setsockopt, tls).
A successful accept leaves the new connection's getpeername answer there unasked (the guest's
accept() reads it: one host call per connection instead of a request and its answer).
The others hold sockets: listening sockets are the ones the host bound at start for `-p`,
connections are the host's own accepted or connected sockets. Host sockets are always
non-blocking; a guest's blocking call waits here, in select(), never past the run's deadline.
"""
from __future__ import annotations

import errno as host_errno
import ipaddress
import json
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from boxer_py.errors import RunError
from boxer_py.runtime.net.policy import Allow, Network, Publish

# WASI's errno numbers (not Linux's).
SUCCESS, E2BIG, EACCES, EADDRINUSE, EAFNOSUPPORT, EAGAIN, EBADF = 0, 1, 2, 3, 5, 6, 8
ECONNABORTED, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, EINVAL, EIO, EISCONN = 13, 14, 15, 23, 28, 29, 30
EMFILE, ENETUNREACH, ENOTCONN, ENOTSOCK, ENOTSUP, EPIPE, ETIMEDOUT = 33, 40, 53, 57, 58, 64, 73
_FROM_HOST = {host_errno.ECONNREFUSED: ECONNREFUSED, host_errno.ECONNRESET: ECONNRESET, host_errno.EPIPE: EPIPE,
              host_errno.ENOTCONN: ENOTCONN, host_errno.ETIMEDOUT: ETIMEDOUT, host_errno.EHOSTUNREACH: EHOSTUNREACH,
              host_errno.ENETUNREACH: ENETUNREACH, host_errno.ECONNABORTED: ECONNABORTED,
              host_errno.EAGAIN: EAGAIN}

MAX_REQUEST = 4096  # bytes of one control request; a longer one is refused, never parsed
MAX_IO = 1 << 20  # bytes moved by one recv/send call
MAX_LOG = 1000  # connections and refusals listed in a result; more are counted
CONNECT_TIMEOUT = 30.0
NO_UDP = "no UDP in the sandbox: only TCP is available"
WAIT_STEP = 0.2  # seconds: blocked waits wake this often to see a cancel (Ctrl-C)


class Expired(Exception):
    """A blocked socket call reached the run's deadline, or the run was cancelled meanwhile."""


def wasi_errno(error: OSError) -> int:
    return _FROM_HOST.get(error.errno or 0, EIO)


@dataclass
class Slot:
    """One socket descriptor of the guest."""

    family: int
    kind: str = "new"  # new | bound | listening | connected | udp (made, never usable)
    sock: socket.socket | ssl.SSLSocket | None = None  # the host socket (a listener is shared, see Net.ports)
    port: int = 0  # the guest port it is bound to
    name: tuple[str, int] = ("0.0.0.0", 0)  # what getsockname answers
    peer: tuple[str, int] | None = None
    nonblocking: bool = False
    read_shut: bool = False


@dataclass
class Listener:
    publish: Publish
    sock: socket.socket
    host_port: int  # the port the host listens on (the one asked for, or the free one it got)
    taken: bool = False  # a guest socket is bound to it


def open_listeners(publish: tuple[Publish, ...]) -> dict[int, Listener]:
    """Bind and listen on every published host port now, so a busy port fails the run at once."""
    out: dict[int, Listener] = {}
    try:
        for p in publish:
            family = socket.AF_INET6 if ":" in p.host_ip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((p.host_ip, p.host_port))
                sock.listen(128)
                sock.setblocking(False)
            except OSError as e:
                sock.close()
                raise RunError(f"-p {p.host_ip}:{p.host_port}:{p.guest_port}: cannot listen on "
                               f"{p.host_ip}:{p.host_port} ({e.strerror or e})") from None
            out[p.guest_port] = Listener(p, sock, sock.getsockname()[1])
    except BaseException:
        for listener in out.values():
            listener.sock.close()
        raise
    return out


def _blocked(address: str, rule: Allow) -> bool:
    """An address a name rule may not reach: loopback, private, link-local... unless the rule
    names localhost (loopback only)."""
    ip = ipaddress.ip_address(address)
    if rule.host == "localhost":
        return not ip.is_loopback
    return not ip.is_global or ip.is_multicast


@dataclass
class Net:
    """One run's sockets. `first` is the control descriptor; `first+1 .. first+count-1` hold sockets."""

    policy: Network
    first: int
    count: int
    ports: dict[int, Listener]
    deadline: Callable[[], float | None]  # the run's deadline (time.monotonic), looked up when waiting
    cancelled: Callable[[], bool]  # the run is to stop now (Ctrl-C, SIGTERM)
    resolve: Callable[[str, int], list[str]] | None = None  # host name -> addresses (tests: None = the host's)
    slots: dict[int, Slot] = field(default_factory=dict)
    log: list[dict[str, object]] = field(default_factory=list)
    dropped: int = 0
    reply: bytes = b""
    on_refused: Callable[[dict[str, object]], None] | None = None  # told each refusal (the CLI prints it)
    stdio: dict[int, Callable[[bytes], int]] = field(default_factory=dict)  # captured stdout/stderr (net/wasi.py)

    # -- descriptors -------------------------------------------------------------------
    def owns(self, fd: int) -> bool:
        return self.first <= fd < self.first + self.count

    def close_all(self) -> None:
        for slot in self.slots.values():
            self._release(slot)
        self.slots.clear()
        for listener in self.ports.values():
            listener.sock.close()

    def close(self, fd: int) -> int:
        slot = self.slots.pop(fd, None)
        if slot is None:
            return EBADF
        self._release(slot)
        return SUCCESS

    def _release(self, slot: Slot) -> None:
        listener = self.ports.get(slot.port)
        if slot.kind in ("bound", "listening") and listener is not None:
            listener.taken = False  # the host keeps listening; the guest may bind again
        elif slot.sock is not None:
            try:
                slot.sock.close()
            except OSError:
                pass

    def _new_fd(self) -> int | None:
        for fd in range(self.first + 1, self.first + self.count):
            if fd not in self.slots:
                return fd
        return None

    def _note(self, entry: dict[str, object]) -> None:
        if len(self.log) < MAX_LOG:
            self.log.append(entry)
        else:
            self.dropped += 1
        if entry.get("allowed") is False and self.on_refused is not None:  # a policy refusal
            self.on_refused(entry)

    # -- the control descriptor ---------------------------------------------------------
    def control_write(self, data: bytes) -> None:
        """One request; its answer waits for the next read."""
        if len(data) > MAX_REQUEST:
            answer = self._error(E2BIG, f"control request over {MAX_REQUEST} bytes")
        else:
            try:
                request = json.loads(data)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
                answer = self._handle(request)
            except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError, OverflowError) as e:
                answer = self._error(EINVAL, f"malformed control request ({type(e).__name__})")
        self.reply = json.dumps(answer).encode()

    def control_read(self, size: int) -> bytes:
        out, self.reply = self.reply[:size], self.reply[size:]
        return out

    @staticmethod
    def _error(code: int, message: str) -> dict[str, object]:
        return {"errno": code, "message": message}

    def _slot(self, request: dict[str, object]) -> Slot:
        fd = request["fd"]
        if not isinstance(fd, int) or fd not in self.slots:
            raise KeyError("fd")
        return self.slots[fd]

    def _handle(self, request: dict[str, object]) -> dict[str, object]:
        op = request.get("op")
        if op == "socket":
            family, kind = request["family"], request["type"]  # names: the guest's numbers are its libc's
            if kind not in ("stream", "dgram"):
                return self._error(ENOTSUP, "only TCP sockets are available (no UDP)")
            if family not in ("inet", "inet6"):
                return self._error(EAFNOSUPPORT, "only IPv4 and IPv6 sockets are available")
            fd = self._new_fd()
            if fd is None:
                return self._error(EMFILE, f"all {self.count - 1} socket slots are in use")
            # A UDP socket can be made but never used (as on a host with no network): werkzeug's
            # app.run(host="0.0.0.0") makes one to find the host's address and catches the
            # connect's error only.
            self.slots[fd] = Slot(socket.AF_INET6 if family == "inet6" else socket.AF_INET,
                                  "udp" if kind == "dgram" else "new")
            return {"fd": fd}
        if op == "pair":
            return self._pair()
        if op not in ("bind", "listen", "connect", "getsockname", "getpeername", "setsockopt", "tls"):
            return self._error(EINVAL, "unknown control request")
        try:
            slot = self._slot(request)
        except KeyError:
            return self._error(EBADF, "not a socket of this guest")
        if slot.kind == "udp" and op in ("bind", "listen", "connect", "tls"):
            return self._error(ENETUNREACH, NO_UDP)
        if op == "bind":
            return self._bind(slot, request)
        if op == "listen":
            if slot.kind == "listening":
                return {}
            if slot.kind != "bound":
                return self._error(EINVAL, "listen() before bind()")
            slot.kind = "listening"
            return {}
        if op == "connect":
            return self._connect(slot, request)
        if op == "getsockname":
            return {"address": list(slot.name)}
        if op == "getpeername":
            return {"address": list(slot.peer)} if slot.peer else self._error(ENOTCONN, "not connected")
        if op == "tls":
            return self._tls(slot, request)
        return {}  # setsockopt: accepted; the host sockets keep the host's own settings

    def _pair(self) -> dict[str, object]:
        """socketpair(): two connected host sockets (asyncio's event loop wakes itself with one)."""
        first = self._new_fd()
        if first is None:
            return self._error(EMFILE, f"all {self.count - 1} socket slots are in use")
        self.slots[first] = Slot(socket.AF_INET)
        second = self._new_fd()
        if second is None:
            del self.slots[first]
            return self._error(EMFILE, f"all {self.count - 1} socket slots are in use")
        a, b = socket.socketpair()
        for fd, sock in ((first, a), (second, b)):
            sock.setblocking(False)
            self.slots[fd] = Slot(socket.AF_INET, "connected", sock, 0, ("127.0.0.1", 0), ("127.0.0.1", 0))
        return {"fds": [first, second]}

    def _bind(self, slot: Slot, request: dict[str, object]) -> dict[str, object]:
        host, port = request["host"], request["port"]
        if not isinstance(host, str) or not isinstance(port, int) or len(host) > 255:
            raise ValueError("address")
        if slot.kind != "new":
            return self._error(EINVAL, "socket is already bound")
        listener = self.ports.get(port)
        if listener is None:
            self._note({"direction": "in", "port": port, "allowed": False, "reason": "not published"})
            return self._error(EACCES, f"port {port} is not published: run with -p HOSTPORT:{port} "
                                       "to let the guest listen on it")
        if listener.taken:
            return self._error(EADDRINUSE, f"port {port} is already in use in the guest")
        listener.taken = True
        slot.kind, slot.sock, slot.port, slot.name = "bound", listener.sock, port, (host or "0.0.0.0", port)
        return {}

    def accept(self, fd: int) -> tuple[int, int]:
        """(errno, new fd) for a guest's accept on a listening slot."""
        slot = self.slots.get(fd)
        if slot is None:
            return EBADF, 0
        if slot.kind != "listening" or slot.sock is None:
            return EINVAL, 0
        if not slot.nonblocking and not self.wait(slot, False):
            return EAGAIN, 0
        new = self._new_fd()
        if new is None:
            return EMFILE, 0
        try:
            conn, peer = slot.sock.accept()
        except BlockingIOError:
            return EAGAIN, 0
        except OSError as e:
            return wasi_errno(e), 0
        conn.setblocking(False)
        _no_delay(conn)
        self.slots[new] = Slot(slot.family, "connected", conn, slot.port, slot.name, (peer[0], peer[1]))
        self.reply = json.dumps({"address": [peer[0], peer[1]]}).encode()  # getpeername's answer, unasked
        self._note({"direction": "in", "port": slot.port, "peer": f"{peer[0]}:{peer[1]}", "allowed": True})
        return SUCCESS, new

    # -- outbound --------------------------------------------------------------------------
    def _rule(self, host: str, port: int) -> Allow | None:
        for rule in self.policy.allow:
            if rule.host == host and rule.port in (None, port):
                return rule
        return None

    def _connect(self, slot: Slot, request: dict[str, object]) -> dict[str, object]:
        host, port = request["host"], request["port"]
        if not isinstance(host, str) or not isinstance(port, int) or len(host) > 255 or not 0 < port < 65536:
            raise ValueError("address")
        if slot.kind != "new":
            return self._error(EISCONN, "socket is already connected or bound")
        name = host.lower().rstrip(".")
        try:
            name = str(ipaddress.ip_address(name))
        except ValueError:
            pass
        rule = self._rule(name, port)
        if rule is None:
            self._note({"direction": "out", "host": name, "port": port, "allowed": False,
                        "reason": "not in --allow-net"})
            return self._error(EACCES, f"{name}:{port} is not in --allow-net")
        if rule.is_ip:
            addresses = [rule.host]
        else:
            try:
                found = (self.resolve or _resolve)(name, port)
            except OSError as e:
                return self._error(EHOSTUNREACH, f"{name}: cannot resolve ({e.strerror or e})")
            addresses = [a for a in found if not _blocked(a, rule)]
            if not addresses:
                self._note({"direction": "out", "host": name, "port": port, "allowed": False,
                            "reason": f"resolves to a non-public address ({', '.join(found[:3])})"})
                return self._error(EACCES, f"{name}:{port} resolves to a loopback, private or link-local "
                                           "address, which is not in --allow-net (allow that IP itself)")
        error: OSError | None = None
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                code = sock.connect_ex((address, port))
                if code not in (0, host_errno.EINPROGRESS):
                    raise OSError(code, host_errno.errorcode.get(code, "connect failed"))
                if not self._wait_sock(sock, True, CONNECT_TIMEOUT):
                    raise OSError(host_errno.ETIMEDOUT, "connect timed out")
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, host_errno.errorcode.get(code, "connect failed"))
            except OSError as e:
                sock.close()
                error = e
                continue
            _no_delay(sock)
            slot.kind, slot.sock, slot.peer = "connected", sock, (name, port)
            local = sock.getsockname()
            slot.name = (local[0], local[1])
            self._note({"direction": "out", "host": name, "port": port, "address": address, "allowed": True})
            return {}
        assert error is not None
        self._note({"direction": "out", "host": name, "port": port, "allowed": True, "error": str(error.strerror)})
        return self._error(wasi_errno(error), f"{name}:{port}: {error.strerror or error}")

    def _tls(self, slot: Slot, request: dict[str, object]) -> dict[str, object]:
        """TLS done by the host: verified against the host's CA store (plus --allow-net-ca),
        the server name being the name the guest connected to (which an allow rule named)."""
        if slot.kind != "connected" or slot.peer is None or slot.sock is None or isinstance(slot.sock, ssl.SSLSocket):
            return self._error(EINVAL, "TLS needs a connected socket")
        name = slot.peer[0]
        context = ssl.create_default_context(cafile=str(self.policy.ca_file) if self.policy.ca_file else None)
        if self.policy.ca_file is not None:
            context.load_default_certs()
        alpn = request.get("alpn")
        if isinstance(alpn, list) and all(isinstance(a, str) for a in alpn) and len(alpn) < 8:
            context.set_alpn_protocols(alpn)
        try:
            tls = context.wrap_socket(slot.sock, server_hostname=name, do_handshake_on_connect=False)
        except (OSError, ValueError) as e:
            return self._error(EIO, f"TLS to {name}: {e}")
        slot.sock = tls
        end = time.monotonic() + CONNECT_TIMEOUT
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                ready = self._wait_sock(tls, False, end - time.monotonic())
            except ssl.SSLWantWriteError:
                ready = self._wait_sock(tls, True, end - time.monotonic())
            except (ssl.SSLError, OSError) as e:
                self._note({"direction": "out", "host": name, "port": slot.peer[1], "tls": False, "error": str(e)})
                return self._error(EIO, f"TLS to {name} failed: {getattr(e, 'reason', None) or e}")
            if not ready:
                return self._error(ETIMEDOUT, f"TLS to {name}: handshake timed out")
        return {"alpn": tls.selected_alpn_protocol()}

    # -- data ------------------------------------------------------------------------------
    def recv(self, fd: int, size: int, peek: bool = False) -> tuple[int, bytes]:
        slot = self.slots.get(fd)
        if slot is None:
            return EBADF, b""
        if slot.kind != "connected" or slot.sock is None:
            return ENOTCONN, b""
        if slot.read_shut:
            return SUCCESS, b""
        size = max(1, min(size, MAX_IO))
        while True:
            try:
                return SUCCESS, slot.sock.recv(size, socket.MSG_PEEK) if peek else slot.sock.recv(size)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                if slot.nonblocking or not self.wait(slot, False):
                    return EAGAIN, b""
            except ssl.SSLZeroReturnError:
                return SUCCESS, b""
            except OSError as e:
                return wasi_errno(e), b""

    def send(self, fd: int, data: bytes) -> tuple[int, int]:
        slot = self.slots.get(fd)
        if slot is None:
            return EBADF, 0
        if slot.kind != "connected" or slot.sock is None:
            return ENOTCONN, 0
        while True:
            try:
                return SUCCESS, slot.sock.send(data[:MAX_IO])
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                if slot.nonblocking or not self.wait(slot, True):
                    return EAGAIN, 0
            except OSError as e:
                return wasi_errno(e), 0

    def shutdown(self, fd: int, how: int) -> int:
        slot = self.slots.get(fd)
        if slot is None:
            return EBADF
        if slot.kind != "connected" or slot.sock is None:
            return ENOTCONN
        if how & 1:
            slot.read_shut = True
        if how & 2:
            try:
                slot.sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                return wasi_errno(e)
        return SUCCESS

    # -- waiting ---------------------------------------------------------------------------
    def ready(self, fd: int, write: bool) -> bool:
        """Would a read (write) on this slot not block? Unknown slots count as ready (the call
        then fails at once)."""
        slot = self.slots.get(fd)
        if slot is None or slot.sock is None or slot.kind not in ("listening", "connected"):
            return True
        if not write and isinstance(slot.sock, ssl.SSLSocket) and slot.sock.pending():
            return True
        try:
            r, w, _ = select.select([] if write else [slot.sock], [slot.sock] if write else [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(r or w)

    def wait(self, slot: Slot, write: bool) -> bool:
        """Block until the slot is ready, the run's deadline (raises Expired); True if ready."""
        assert slot.sock is not None
        if not write and isinstance(slot.sock, ssl.SSLSocket) and slot.sock.pending():
            return True
        return self._wait_sock(slot.sock, write, None)

    def _wait_sock(self, sock: socket.socket, write: bool, limit: float | None) -> bool:
        end = None if limit is None else time.monotonic() + max(0.0, limit)
        while True:
            now = time.monotonic()
            deadline = self.deadline()
            if deadline is not None and now >= deadline or self.cancelled():
                raise Expired()
            step = WAIT_STEP
            for bound in (deadline, end):
                if bound is not None:
                    step = min(step, bound - now)
            try:
                r, w, x = select.select([] if write else [sock], [sock] if write else [], [sock], max(0.0, step))
            except ValueError:
                return True  # closed meanwhile: the call itself reports it
            if r or w or x:
                return True
            if end is not None and time.monotonic() >= end:
                return False

    def wait_any(self, reads: list[int], writes: list[int], seconds: float) -> tuple[set[int], set[int]]:
        """poll_oneoff for slots: which of these are ready, waiting up to `seconds` (and never
        past the deadline, which raises Expired) if none is. One select() over all of them per
        wait: a slot that is not a live socket counts as ready (its call then fails at once)."""
        r_ready: set[int] = set()
        w_ready: set[int] = set()
        r_fds: dict[int, int] = {}  # host descriptor -> slot
        w_fds: dict[int, int] = {}
        for fds, ready, host, write in ((reads, r_ready, r_fds, False), (writes, w_ready, w_fds, True)):
            for fd in fds:
                slot = self.slots.get(fd)
                sock = slot.sock if slot is not None and slot.kind in ("listening", "connected") else None
                number = sock.fileno() if sock is not None else -1
                if number < 0 or not write and isinstance(sock, ssl.SSLSocket) and sock.pending():
                    ready.add(fd)
                else:
                    host[number] = fd
        step = 0.0
        end = time.monotonic() + max(0.0, seconds)
        while True:
            if not r_ready and not w_ready:
                try:
                    r, w, _ = select.select(list(r_fds), list(w_fds), [], step)
                except (OSError, ValueError):  # closed meanwhile: the call itself reports it
                    return set(reads), set(writes)
                r_ready.update(r_fds[n] for n in r)
                w_ready.update(w_fds[n] for n in w)
            if r_ready or w_ready:
                return r_ready, w_ready
            now = time.monotonic()
            deadline = self.deadline()
            if deadline is not None and now >= deadline or self.cancelled():
                raise Expired()
            if now >= end:
                return set(), set()
            step = max(0.0, min(WAIT_STEP, end - now, *([deadline - now] if deadline is not None else [])))

    def _sock(self, fd: int) -> socket.socket | None:
        slot = self.slots.get(fd)
        return slot.sock if slot is not None else None

    def fdstat_flags(self, fd: int) -> int:
        slot = self.slots.get(fd)
        return 4 if slot is not None and slot.nonblocking else 0  # WASI's FDFLAGS_NONBLOCK

    def set_flags(self, fd: int, flags: int) -> int:
        slot = self.slots.get(fd)
        if slot is None:
            return EBADF
        slot.nonblocking = bool(flags & 4)
        return SUCCESS

    def published(self) -> list[dict[str, object]]:
        """Each published port: the host port asked for (0: any free one) and the one bound."""
        return [{**lst.publish.to_json(), "host_port": lst.host_port, "asked": lst.publish.host_port}
                for lst in self.ports.values()]

    def summary(self) -> dict[str, object]:
        return {"ports": self.published(), "connections": list(self.log), "connections_dropped": self.dropped}


def _no_delay(sock: socket.socket) -> None:
    """TCP_NODELAY on a connection's host socket: what asyncio's transports and http.client set
    on theirs (the guest's setsockopt is not passed on). Without it, a response written in two
    pieces waits for a delayed ACK: 40 ms per urllib fetch from a server that does that."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _resolve(name: str, port: int) -> list[str]:
    """The host's resolver, asked only for a name an allow rule named."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)})

