"""Helpers for the browser page's network tests (tests/test_web_net.py and
tests/containment/test_hostile_web_net.py): real HTTP servers on 127.0.0.1 that record every
request, a page served by `boxer serve --allow-net`, and a run of `python -c` in real Chromium.
"""
from __future__ import annotations

import base64
import hashlib
import http.server
import json
import ssl
import subprocess
import threading
from pathlib import Path

import boxer_py
from boxer_py.browser import site
from boxer_py.runtime.net.policy import guest_modules

RUN_TIMEOUT_MS = 180_000
PY_DOCKERFILE = "FROM python:3.12\nWORKDIR /app\nCMD [\"python\"]\n"


def build_python_image(tmp: Path) -> Path:
    ctx = tmp / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(PY_DOCKERFILE)
    out = tmp / "py.wasm"
    boxer_py.build(ctx, out, tag="webnet")
    return out


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP/1.1 server on 127.0.0.1 that answers JSON describing each request (with CORS
    for any origin when `cors`) and records (method, path, body) of every request it sees."""

    daemon_threads = True

    def __init__(self, cors: bool = True, tls: Path | None = None):
        self.seen: list[tuple[str, str, bytes]] = []
        self.cors = cors
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:  # a directory holding cert.pem and key.pem (see make_cert)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls / "cert.pem", tls / "key.pem")
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def _answer(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if self.server.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, body))
        if self.path.startswith("/redirect"):
            self._answer(302, b"", {"Location": "/elsewhere"})
            return
        answer = {"method": self.command, "path": self.path, "body": body.decode("latin-1"),
                  "x-test": self.headers.get("X-Test")}
        self._answer(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    do_GET = do_POST = do_PUT = do_DELETE = _record  # noqa: N815 (http.server's naming)

    def do_OPTIONS(self) -> None:  # noqa: N802
        self.server.seen.append(("OPTIONS", self.path, b""))
        self._answer(204, b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


def make_cert(directory: Path) -> str:
    """A self-signed certificate for 127.0.0.1 in DIRECTORY (cert.pem, key.pem); returns the
    base64 sha256 of its public key, for Chromium's --ignore-certificate-errors-spki-list."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"), "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    public = subprocess.run(["openssl", "x509", "-in", str(directory / "cert.pem"), "-pubkey", "-noout"],
                            check=True, capture_output=True, timeout=60).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=public, check=True,
                         capture_output=True, timeout=60).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def page_network(*rules: str, publish: tuple[int, ...] = ()) -> site.PageNetwork:
    return site.PageNetwork(tuple(rules), guest_modules(), publish)


class NetPage:
    """A tab on `boxer serve IMAGE --allow-net RULES... --publish PORTS...`, ready to run commands."""

    def __init__(self, browser, image: Path, *rules: str, publish: tuple[int, ...] = ()):
        network = page_network(*rules, publish=publish) if rules or publish else None
        self.server = site.serve(image, "127.0.0.1", 0, network=network)
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(self.server.url + "?run=0")
        self.page.wait_for_selector("#run:not([disabled])", timeout=RUN_TIMEOUT_MS)

    def python(self, code: str, timeout: float = 120) -> dict:
        """`python -c CODE` in the tab: {stdout, stderr, exitCode, trap}."""
        return self.page.evaluate(
            """async ([code, timeout]) => {
                 const r = await window.boxer.app.run(code, new Uint8Array(0), timeout, "python");
                 return {stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode, trap: r.trap}; }""",
            ["-c " + _quote(code), timeout])

    def start(self, code: str) -> None:
        """Start `python -c CODE` (a server) in the tab without waiting for it to end."""
        self.page.evaluate("code => { window.boxer.app.run(code, new Uint8Array(0), 0, 'python'); }", "-c " + _quote(code))

    def fetch(self, path: str, method: str = "GET", body: str | None = None) -> dict:
        """The page's own fetch of PATH (relative to the page): {status, type, text}."""
        return self.page.evaluate(
            """async ([path, method, body]) => {
                 const r = await fetch(path, {method, body: body ?? undefined});
                 return {status: r.status, type: r.headers.get("content-type"), text: await r.text()}; }""",
            [path, method, body])

    def wait_output(self, text: str) -> None:
        self.page.wait_for_function("t => window.boxer.runs.length && window.boxer.runs.at(-1).stdout.includes(t) "
                                    "|| window.boxer.runs.at(-1).stderr.includes(t)", arg=text, timeout=RUN_TIMEOUT_MS)

    def close(self) -> None:
        self.context.close()
        self.server.close()


def _quote(code: str) -> str:
    return "'" + code.replace("'", "'\\''") + "'"
