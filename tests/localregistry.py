"""Test helpers: a real CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1,
and a small fault-injecting HTTP proxy to put in front of it.

Not fixtures themselves, so the benchmark can use them too.
"""
from __future__ import annotations

import base64
import http.client
import http.server
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def htpasswd_line(user: str, password: str) -> str:
    """The bcrypt line distribution's htpasswd auth accepts (it accepts bcrypt only)."""
    import bcrypt

    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"


@dataclass
class LocalRegistry:
    root: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalRegistry:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'data'}}}, delete: {{enabled: true}}}}",
            f"http: {{addr: '{self.host}', secret: {secrets.token_hex(16)}}}",
        ]
        if self.users:
            (self.root / "htpasswd").write_text("".join(htpasswd_line(u, p) for u, p in self.users.items()))
            config.append(f"auth: {{htpasswd: {{realm: boxer-test, path: {self.root / 'htpasswd'}}}}}")
        (self.root / "config.yml").write_text("\n".join(config) + "\n")
        log = open(self.root / "registry.log", "wb")
        self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(self.root / "config.yml")],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.root / 'registry.log').read_text()[-2000:]}")
            try:
                requests.get(f"http://{self.host}/v2/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start within 30s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def bytes_stored(self) -> int:
        return sum(p.stat().st_size for p in (self.root / "data").rglob("data") if p.is_file())


class FaultProxy:
    """A plain-HTTP proxy in front of `upstream` that misbehaves on request.

    Faults hit blob chunks (PATCH requests of more than 64 KiB), after letting `skip_patches` of
    them through:
    fail_patches: answer this many with 500, not forwarding them.
    cut_patches: for this many, forward only half the body, then drop both connections (the
        registry sees a client that vanished mid-chunk; the client sees no answer).
    tamper_blobs: flip one byte in the middle of every blob body it returns.
    tamper_manifests: change one character of every manifest it returns (still valid JSON).
    bearer: (user, password): demand a Bearer token, issued at /token for those Basic credentials,
        the way Docker Hub and GHCR front their registries (the registry behind has no auth).
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.fail_patches = 0
        self.cut_patches = 0
        self.skip_patches = 0
        self.tamper_blobs = False
        self.tamper_manifests = False
        self.bearer: tuple[str, str] | None = None
        self.token = secrets.token_hex(16)
        self.counts: Counter[str] = Counter()
        self.scopes: list[str] = []
        self.authorizations: list[str] = []     # every Authorization header received
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _take(self, name: str) -> bool:
        with self.lock:
            if getattr(self, name) > 0:
                setattr(self, name, getattr(self, name) - 1)
                return True
            return False

    def handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self.lock:
            self.counts[h.command] += 1
            if h.headers.get("Authorization"):
                self.authorizations.append(h.headers["Authorization"])
        if self.bearer and not self._authorized(h):
            return
        if h.command == "PATCH" and len(body) > 65536 and not self._take("skip_patches"):
            if self._take("fail_patches"):
                self._reply(h, 500, {"Content-Type": "application/json"},
                            b'{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}')
                return
            if self._take("cut_patches"):
                self._cut(h, body)
                return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("authorization", "connection")}
        conn = http.client.HTTPConnection(self.upstream, timeout=120)
        conn.request(h.command, h.path, body=body if body or h.command in ("PUT", "PATCH", "POST") else None,
                     headers=headers)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        if self.tamper_blobs and h.command == "GET" and "/blobs/sha256:" in h.path and payload:
            damaged = bytearray(payload)
            damaged[len(damaged) // 2] ^= 0xFF
            payload = bytes(damaged)
        if self.tamper_manifests and h.command == "GET" and "/manifests/" in h.path and payload:
            payload = payload.replace(b'"schemaVersion": 2', b'"schemaVersion":  2', 1)
        out = {k: v for k, v in response.getheaders() if k.lower() not in ("transfer-encoding", "connection",
                                                                             "content-length")}
        self._reply(h, response.status, out, payload)

    @staticmethod
    def _reply(h, status: int, headers: dict, payload: bytes) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(payload)

    def _cut(self, h, body: bytes) -> None:
        host, port = self.upstream.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        lines = [f"{h.command} {h.path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in h.headers.items() if k.lower() not in ("authorization", "connection")]
        upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body[: len(body) // 2])
        time.sleep(0.3)
        upstream.close()
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)

    def _authorized(self, h) -> bool:
        user, password = self.bearer
        if h.path.startswith("/token"):
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if h.headers.get("Authorization") != basic:
                self._reply(h, 401, {"Content-Type": "application/json"}, b'{"details":"bad credentials"}')
            else:
                with self.lock:
                    self.scopes.append(h.path)
                self._reply(h, 200, {"Content-Type": "application/json"}, json.dumps({"token": self.token}).encode())
            return False
        if h.headers.get("Authorization") == f"Bearer {self.token}":
            return True
        challenge = f'Bearer realm="http://{self.host}/token",service="boxer-test"'
        self._reply(h, 401, {"Www-Authenticate": challenge, "Content-Type": "application/json"},
                    b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
        return False
