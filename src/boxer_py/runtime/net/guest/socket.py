"""The standard library's socket module for a networked guest, with what CPython for WASI
lacks: creating sockets, bind, listen, accept's peer, connect, getsockname, getpeername,
setsockopt and name lookups. Each is a request to the host (see _boxer_net), which owns the
real sockets and checks them against the run's -p and --allow-net.

Name lookups never reach a resolver: getaddrinfo answers with the name itself, and the host
resolves it at connect time, only if --allow-net names it.
"""
import _boxer_net

_boxer_net.load_real("socket", globals())

_StdSocket = socket  # noqa: F821 - the standard library's class, defined just above
_control = _boxer_net.control
_ipaddress = None

for _name, _value in (("SO_REUSEADDR", 2), ("SO_KEEPALIVE", 9), ("SO_ERROR", 4), ("SO_SNDBUF", 7),
                      ("SO_RCVBUF", 8), ("SO_LINGER", 13), ("SO_BROADCAST", 6)):
    globals().setdefault(_name, _value)


def _ip(text):
    global _ipaddress
    if _ipaddress is None:
        import ipaddress as _ipaddress
    try:
        return _ipaddress.ip_address(text)
    except ValueError:
        return None


class socket(_StdSocket):
    """A socket whose descriptor the host gives (a slot), or an existing slot (fileno=)."""

    __slots__ = ()

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if family == -1:
            family = AF_INET  # noqa: F821
        if type == -1:
            type = SOCK_STREAM  # noqa: F821
        if proto == -1:
            proto = 0
        if fileno is None:
            kind = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)  # noqa: F821
            names = {AF_INET: "inet", AF_INET6: "inet6", SOCK_STREAM: "stream", SOCK_DGRAM: "dgram"}  # noqa: F821
            fileno = _control({"op": "socket", "family": names.get(family, int(family)),
                               "type": names.get(kind, int(kind))})["fd"]
        _StdSocket.__init__(self, family, type, proto, fileno)

    def bind(self, address):
        _control({"op": "bind", "fd": self.fileno(), "host": str(address[0] or "0.0.0.0"), "port": int(address[1])})

    def listen(self, backlog=128):
        _control({"op": "listen", "fd": self.fileno(), "backlog": int(backlog)})

    def connect(self, address):
        _control({"op": "connect", "fd": self.fileno(), "host": str(address[0]), "port": int(address[1])})

    def connect_ex(self, address):
        try:
            self.connect(address)
        except OSError as e:
            return e.errno or 1
        return 0

    def getsockname(self):
        return tuple(_control({"op": "getsockname", "fd": self.fileno()})["address"])

    def getpeername(self):
        return tuple(_control({"op": "getpeername", "fd": self.fileno()})["address"])

    def setsockopt(self, level, option, value, optlen=None):
        return None  # the host's sockets keep the host's settings

    def accept(self):
        fd, _ = self._accept()
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        if getdefaulttimeout() is None and self.gettimeout():  # noqa: F821
            sock.setblocking(True)
        return sock, _boxer_net.accepted_peer() or sock.getpeername()

    def _accept(self):
        fd = _StdSocket._accept(self)
        return (fd[0] if isinstance(fd, tuple) else fd), None

    def sendto(self, data, *args):
        if self.type == SOCK_DGRAM:  # noqa: F821 - a UDP socket is made, never usable (see net/host.py)
            raise OSError(40, "no UDP in the sandbox: only TCP is available")
        return _StdSocket.sendto(self, data, *args)

    def dup(self):
        raise OSError(58, "dup() is not available in the sandbox")


SocketType = socket


def _port(port):
    if port is None:
        return 0
    if isinstance(port, int):
        return port
    if isinstance(port, bytes):
        port = port.decode()
    if port.isdigit():
        return int(port)
    known = {"http": 80, "https": 443, "ftp": 21, "smtp": 25, "imap": 143, "pop3": 110}
    if port in known:
        return known[port]
    raise gaierror(EAI_SERVICE, f"unknown service {port!r}")  # noqa: F821


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """The name or address itself, never resolved here (see the module's docstring)."""
    if isinstance(host, bytes):
        host = host.decode("idna")
    if host is None:
        host = "0.0.0.0" if flags & AI_PASSIVE else "127.0.0.1"  # noqa: F821
    if type not in (0, SOCK_STREAM):  # noqa: F821
        raise gaierror(EAI_SOCKTYPE, "only TCP is available in the sandbox (no UDP)")  # noqa: F821
    address = _ip(host)
    inet6 = address is not None and address.version == 6
    if family not in (0, AF_INET6 if inet6 else AF_INET):  # noqa: F821
        raise gaierror(EAI_FAMILY, f"{host}: no address of that family")  # noqa: F821
    number = _port(port)
    if inet6:
        return [(AF_INET6, SOCK_STREAM, 6, "", (host, number, 0, 0))]  # noqa: F821
    return [(AF_INET, SOCK_STREAM, 6, host if flags & AI_CANONNAME else "", (host, number))]  # noqa: F821


def gethostname():
    return "localhost"


def gethostbyname(name):
    if _ip(name) is not None:
        return name
    if name in ("localhost", gethostname()):
        return "127.0.0.1"
    raise gaierror(EAI_NONAME, f"{name}: names are resolved by the host at connect time")  # noqa: F821


def gethostbyname_ex(name):
    return name, [], [gethostbyname(name)]


def gethostbyaddr(address):
    raise herror(1, "no reverse lookups in the sandbox")  # noqa: F821


def getnameinfo(sockaddr, flags):
    return str(sockaddr[0]), str(sockaddr[1])


def has_dualstack_ipv6():
    return False


def socketpair(family=None, type=None, proto=0):
    answer = _control({"op": "pair"})
    a = socket(AF_INET, SOCK_STREAM, 0, fileno=answer["fds"][0])  # noqa: F821
    b = socket(AF_INET, SOCK_STREAM, 0, fileno=answer["fds"][1])  # noqa: F821
    return a, b


def fromfd(fd, family, type, proto=0):
    raise OSError(58, "fromfd() is not available in the sandbox (no dup)")
