"""What a run may do on the network: published ports (`-p`) and allowed hosts (`--allow-net`).

Plain data, no Wasmtime and no sockets: the CLI, the API and the MCP server parse and
check these without loading the engine. The host side (net/host.py) enforces them.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from boxer_py.errors import RunError

DEFAULT_HOST_IP = "127.0.0.1"  # Docker's default is 0.0.0.0; boxer publishes on loopback unless told
_HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?")


def _port(text: str, what: str, zero: bool = False) -> int:
    if not text.isdigit() or len(text) > 5 or not (0 if zero else 1) <= int(text) <= 65535:
        raise RunError(f"{what}: {text!r} is not a port number (1-65535)")
    return int(text)


@dataclass(frozen=True)
class Publish:
    """`-p [IP:]HOSTPORT:GUESTPORT`: the host listens on IP:HOSTPORT and hands the
    connections to the guest's socket bound to GUESTPORT. host_port 0 = any free port."""

    host_ip: str
    host_port: int
    guest_port: int

    @classmethod
    def parse(cls, spec: str) -> Publish:
        what = f"-p {spec}"
        text = spec.removesuffix("/tcp")
        if text.endswith("/udp"):
            raise RunError(f"{what}: UDP cannot be published (TCP only)")
        ip = DEFAULT_HOST_IP
        if text.startswith("["):  # [::1]:8080:80
            close = text.find("]:")
            if close < 0:
                raise RunError(f"{what}: expected [IP:]HOSTPORT:GUESTPORT")
            ip, text = text[1:close], text[close + 2:]
        elif text.count(":") == 2:
            ip, text = text.split(":", 1)
        parts = text.split(":")
        if len(parts) == 1:  # -p 8080: the same port on the host, as Docker's -p 8080 would pick one
            parts = ["0", parts[0]]
        if len(parts) != 2:
            raise RunError(f"{what}: expected [IP:]HOSTPORT:GUESTPORT, e.g. -p 8080:80")
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise RunError(f"{what}: {ip!r} is not an IP address") from None
        return cls(ip, _port(parts[0], what, zero=True), _port(parts[1], what))

    def to_json(self) -> dict[str, object]:
        return {"host_ip": self.host_ip, "host_port": self.host_port, "guest_port": self.guest_port}


@dataclass(frozen=True)
class Allow:
    """`--allow-net HOST[:PORT]` (PORT `*` or absent: any port): outbound TCP to that host."""

    host: str  # a lower-case name or an IP address in its canonical form
    port: int | None

    @classmethod
    def parse(cls, spec: str) -> Allow:
        what = f"--allow-net {spec}"
        text, port_text = spec.strip(), "*"
        if text.startswith("["):
            close = text.find("]")
            if close < 0 or text[close + 1:] not in ("",) and not text[close + 1:].startswith(":"):
                raise RunError(f"{what}: expected HOST[:PORT]")
            host, rest = text[1:close], text[close + 1:]
            if rest:
                port_text = rest[1:]
        elif text.count(":") == 1:
            host, port_text = text.split(":")
        else:
            host = text
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            if not _HOSTNAME.fullmatch(host):
                raise RunError(f"{what}: {host!r} is not a host name or an IP address") from None
            host = host.lower().rstrip(".")
        port = None if port_text == "*" else _port(port_text, what)
        return cls(host, port)

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{'*' if self.port is None else self.port}"


@dataclass(frozen=True)
class Network:
    """A run's whole network: nothing unless given. Runs with an empty Network take the
    launcher's ordinary path (no socket slots, the pre-initialised snapshot)."""

    publish: tuple[Publish, ...] = ()
    allow: tuple[Allow, ...] = ()
    ca_file: Path | None = None  # extra CA certificates for TLS to allowed hosts (--allow-net-ca)

    @property
    def enabled(self) -> bool:
        return bool(self.publish or self.allow)

    @classmethod
    def parse(cls, publish: tuple[str, ...] | list[str] = (), allow: tuple[str, ...] | list[str] = (),
              ca_file: str | Path | None = None) -> Network:
        ports = tuple(Publish.parse(p) for p in publish)
        seen: set[int] = set()
        for p in ports:
            if p.guest_port in seen:
                raise RunError(f"-p: guest port {p.guest_port} is published twice")
            seen.add(p.guest_port)
        ca = Path(ca_file) if ca_file else None
        if ca is not None and not ca.is_file():
            raise RunError(f"--allow-net-ca {ca}: not a file")
        return cls(ports, tuple(Allow.parse(a) for a in allow), ca)

    def publish_exposed(self, exposed: tuple[str, ...]) -> Network:
        """`-P`: every EXPOSEd TCP port not already published, on a free loopback port."""
        taken = {p.guest_port for p in self.publish}
        extra = tuple(Publish(DEFAULT_HOST_IP, 0, port) for port in exposed_ports(exposed) if port not in taken)
        return Network(self.publish + extra, self.allow, self.ca_file)

    def within(self, ceiling: Network) -> Network:
        """These allowed hosts, never wider than `ceiling`'s (an operator's list): a rule is
        kept only if one of the ceiling's rules covers it. Published ports stay the ceiling's."""
        kept = tuple(a for a in self.allow
                     if any(c.host == a.host and (c.port is None or c.port == a.port) for c in ceiling.allow))
        return Network(ceiling.publish, kept, ceiling.ca_file)


def exposed_ports(exposed: tuple[str, ...]) -> list[int]:
    """The TCP ports of an image's EXPOSE (`80/tcp`, `8080`); UDP ones are left out."""
    ports = []
    for entry in exposed:
        number, _, proto = entry.partition("/")
        if proto in ("", "tcp") and number.isdigit() and 1 <= int(number) <= 65535:
            ports.append(int(number))
    return sorted(set(ports))


GUEST_MODULES = Path(__file__).resolve().parent / "guest"  # what a networked guest imports first


def guest_modules() -> dict[str, str]:
    """The guest-side network modules by relative path (the browser page ships them in net.json)."""
    return {path.relative_to(GUEST_MODULES).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(GUEST_MODULES.rglob("*.py")) if "__pycache__" not in path.parts}
