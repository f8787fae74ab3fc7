"""The browser launcher as a site: the page (a jinja2 template), the built launcher files
(`web/`, made from toolchain/web by `make web`) and the image itself.

`write_site` writes it as a static directory any host can serve; `serve` serves it on
127.0.0.1 for local use. The image runs in the visitor's tab: the server only sends files, and
only to requests whose Host names it (`allowed_hosts`: a site that rebinds its DNS name to
127.0.0.1 gets 421, never the image).
"""
from __future__ import annotations

import hashlib
import http.server
import ipaddress
import json
import os
import re
import shlex
import shutil
import threading
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from boxer_py.browser.program import Program, browser_program
from boxer_py.browser.runtime import Preinit, Runtime, for_browser
from boxer_py.errors import BoxerError
from boxer_py.image import atomic, imagefile

IMAGE_NAME = "image.wasm"
PREVIEW_NAME = "preview.html"
SERVICE_WORKER = "sw.js"  # registered only by a page with published ports
ASSETS = ("boxer.js", "editor.js", "terminal.js", "worker.js", SERVICE_WORKER, PREVIEW_NAME, "style.css", "xterm.css")
# The MIME types a host must send (WebAssembly.compileStreaming and the page need them).
MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
}
# The page's policy: scripts only from its own files (no inline script, no javascript: URL),
# frames only from its own origin (preview.html; srcdoc previews are not fetched).
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; font-src 'self' data:; "
       "connect-src 'self'; worker-src 'self'; frame-src 'self'; child-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'")
NET_NAME = "net.json"  # a networked page's guest-side modules (see PageNetwork)


@dataclass(frozen=True)
class PageNetwork:
    """What `boxer web --allow-net/--publish` gives the page's runs: the allowed hosts (rules
    as "host:port" or "host:*", already checked by the CLI), the guest ports a server may
    listen on (reached at port/PORT/ under the page, through its Service Worker) and the
    guest-side network modules (the ones `boxer run` gives a networked guest), written to
    net.json for the launcher."""

    allow: tuple[str, ...] = ()
    modules: dict[str, str] = field(default_factory=dict)
    publish: tuple[int, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.allow or self.publish)

    def origins(self) -> list[str]:
        """The rules as CSP sources, http and https (the guest's TLS is the browser's)."""
        out = []
        for rule in self.allow:
            host, _, port = rule.rpartition(":")
            if not host or host.startswith("[") or not re.fullmatch(r"[A-Za-z0-9_.-]+", host) \
                    or not (port == "*" or port.isdigit()):
                raise BoxerError(f"--allow-net {rule}: a page's allow-list takes host names and IPv4 addresses "
                                 "(its Content-Security-Policy cannot name an IPv6 address)")
            out += [f"http://{host}:{port}", f"https://{host}:{port}"]
        return out


def page_csp(network: PageNetwork | None = None) -> str:
    """The page's policy: connect-src names the allowed hosts too, so page code cannot reach
    others; a run's fetches check the same list in the worker (net.js)."""
    if network is None or not network.allow:
        return CSP
    return CSP.replace("connect-src 'self'", "connect-src 'self' " + " ".join(network.origins()))


# What only a header can say (boxer serve sends these; docs/web.md asks other hosts to).
PAGE_HEADERS = {
    "Content-Security-Policy": CSP + "; frame-ancestors 'none'",
    "Cross-Origin-Opener-Policy": "same-origin",
    # With COOP, makes the page cross-origin isolated: SharedArrayBuffer, which the terminal's
    # stdin needs (the worker blocks in Atomics.wait until a line is typed).
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
# The stripped runtime's name is its digest: it never changes, so it is cached for good.
RUNTIME_CACHE = "public, max-age=31536000, immutable"
# preview.html carries its own policy (no fetch, no loads, no frames); only the page may frame it.
# (Its Content-Security-Policy header is read from preview.html's meta tag: one source of truth.)
PREVIEW_HEADERS = {**{k: v for k, v in PAGE_HEADERS.items() if k != "Content-Security-Policy"},
                   "X-Frame-Options": "SAMEORIGIN"}
# The page's limits (data-* attributes the launcher reads; it has defaults for each).
LIMIT_NAMES = ("max-output", "disk", "max-entries")


def asset_dir() -> Path:
    return Path(str(resources.files("boxer_py.browser") / "web"))


# Control and format characters (bidi overrides and isolates, zero-width marks) and line and
# paragraph separators: what the launcher's `visible` shows as [U+XXXX] (\p{Cc}\p{Cf}\p{Zl}\p{Zp}).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def visible(text: str) -> str:
    """Control and bidi characters in a guest-chosen string shown as [U+XXXX], as the launcher does."""
    return "".join(f"[U+{ord(c):04X}]" if unicodedata.category(c) in _INVISIBLE_CATEGORIES else c for c in str(text))


def preview_csp() -> str:
    """The policy preview.html declares in its meta tag (sent as its header too)."""
    text = (asset_dir() / PREVIEW_NAME).read_text(encoding="utf-8")
    found = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', text)
    if not found:
        raise BoxerError(f"{asset_dir() / PREVIEW_NAME}: no Content-Security-Policy: run `make web`")
    return found.group(1)


def page_limits(max_output: int | None = None, disk: int | None = None, max_entries: int | None = None) -> dict[str, int]:
    """The data-* limits for the page; a limit left out is the launcher's default."""
    values = {"max-output": max_output, "disk": disk, "max-entries": max_entries}
    for name, value in values.items():
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise BoxerError(f"--{name}: expected a positive size, got {value!r}")
    return {name: value for name, value in values.items() if value is not None}


def templates() -> jinja2.Environment:
    """The pages' templates: autoescaped, strict, with `visible` for guest-chosen strings."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("boxer_py.browser", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["visible"] = visible
    return env


def page_title(image: imagefile.Image) -> tuple[str, str]:
    """(tag, title) of a page for `image`: its OCI title label, else its tag, else its short id."""
    tag = image.annotations.get("org.opencontainers.image.ref.name", "")
    return tag, image.spec.config.labels.get("org.opencontainers.image.title") or tag or image.id[7:19]


def render_index(image: imagefile.Image, limits: dict[str, int] | None = None, autorun: bool = False,
                 network: PageNetwork | None = None, runtime: Runtime | None = None) -> str:
    """The page for `image`. Everything it shows is re-read from the image by the launcher;
    the values here are only the first paint. With `autorun` the page runs the image's command
    when it opens; without it, only when the user presses Run."""
    config = image.spec.config
    tag, title = page_title(image)
    return templates().get_template("index.html").render(
        title=title, tag=tag, image_id=image.id, workdir=config.working_dir, image_url=IMAGE_NAME,
        preview_url=PREVIEW_NAME, default_command=shlex.join(config.cmd) or "command",
        entrypoint=shlex.join(config.entrypoint) or "none", csp=page_csp(network), autorun=autorun,
        allow_net=" ".join(network.allow) if network else "",
        publish=" ".join(str(p) for p in network.publish) if network else "", service_worker=SERVICE_WORKER,
        limits={name: value for name, value in (limits or {}).items() if name in LIMIT_NAMES},
        runtime=runtime.attributes() if runtime else {})


def _assets() -> dict[str, Path]:
    base = asset_dir()
    missing = [name for name in ASSETS if not (base / name).is_file()]
    if missing:
        raise BoxerError(f"the browser launcher is not built ({base}/{missing[0]} is missing): run `make web`")
    return {name: base / name for name in ASSETS}


def _runtime(program: Program | None, preinit: Preinit | None, where: str) -> Runtime | None:
    """The site's runtime for the image's default program, if it is a WebAssembly module."""
    if program is None:
        return None
    return for_browser(program.data, preinit, program.layer, program.offset, program.aliases,
                       f"{where}: {program.guest}")


def _net_json(network: PageNetwork) -> bytes:
    return json.dumps({"modules": network.modules}, sort_keys=True).encode()


def write_site(image_path: str | Path, directory: str | Path, limits: dict[str, int] | None = None,
               autorun: bool = False, network: PageNetwork | None = None, preinit: Preinit | None = None) -> Path:
    """Write index.html, the launcher and the image into DIR, all at once (a temp dir renamed
    into place), so a failure never leaves half a site. DIR must not exist or be empty.
    `preinit`: the default program's snapshot (browser/runtime.py), written beside it."""
    directory = Path(directory)
    image = imagefile.read(image_path)
    program = browser_program(image, str(image_path))
    atomic.check_empty_target(directory)
    assets = _assets()
    network = network if network is not None and network.enabled else None
    runtime = _runtime(program, preinit, str(image_path))
    index = render_index(image, limits, autorun, network, runtime)
    with atomic.fresh_directory(directory) as tmp:
        (tmp / "index.html").write_text(index, encoding="utf-8")
        if network is not None:
            (tmp / NET_NAME).write_bytes(_net_json(network))
        for name, path in assets.items():
            shutil.copyfile(path, tmp / name)
        shutil.copyfile(image_path, tmp / IMAGE_NAME)
        for name, data in (runtime.files() if runtime is not None else {}).items():
            (tmp / name).write_bytes(data)
        for child in tmp.iterdir():
            os.chmod(child, 0o644)
    return directory


@dataclass
class Server:
    """A running `boxer serve`: its URL, and `close()` to stop it."""

    url: str
    httpd: http.server.ThreadingHTTPServer
    thread: threading.Thread
    requests: list[str]  # the paths asked for, in order (what a test or a log wants to see)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the server to this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values `boxer serve` answers: the address it listens on and the loopback
    names, with its port (a browser sends the port whenever it is not 80). A DNS-rebinding site
    sends its own name and is refused."""
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    names = {shown.lower(), "localhost", "127.0.0.1", "[::1]"}
    return frozenset({f"{name}:{port}" for name in names} | (names if port == 80 else set()))


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _host_allowed(value: str | None, allowed: frozenset[str], any_address: bool, port: int) -> bool:
    """A Host header the server was started for. Listening on 0.0.0.0/::, any IP address with
    the right port is one too: a literal address cannot be rebound, only a name can."""
    if not value:
        return False
    value = value.strip().lower()
    if value in allowed:
        return True
    if any_address:
        name, _, rest = value.rpartition(":")
        if rest == str(port) and name:
            try:
                ipaddress.ip_address(name.strip("[]"))
                return True
            except ValueError:
                return False
    return False


def etag(body: Path | bytes) -> str:
    """A validator for a served file (so a revisit gets 304 and no body): the sha256 of fixed
    bytes, and for a file on disk its size and modification time, as nginx does."""
    if isinstance(body, bytes):
        return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    st = body.stat()
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def _handler(files: dict[str, tuple[str, Path | bytes, dict[str, str]]], tags: dict[str, str], seen: list[str],
             allowed: frozenset[str], any_address: bool, port: int) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "boxer"
        sys_version = ""
        # HTTP/1.1: keep-alive, and the ETag counts (Chromium ignores it on an HTTP/1.0 response).
        # Every answer has a Content-Length, as 1.1 needs.
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._send(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._send(head=True)

        def _refuse(self, code: int, message: str) -> None:
            body = f"{code} {message}\n".encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send(self, head: bool) -> None:
            seen.append(self.path)
            if not _host_allowed(self.headers.get("Host"), allowed, any_address, port):
                self._refuse(421, "Misdirected Request: this server answers only the names it listens on")
                return
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            name = "index.html" if path == "/" else path.lstrip("/")
            entry = files.get(name)
            if entry is None:
                self.send_error(404)
                return
            mime, body, headers = entry
            tag = tags.get(name) or etag(body)
            # A returning visitor's copy is still good: no body, and the browser keeps what it
            # made of it (V8's compiled code of boxer.js and worker.js, kept with the cache entry).
            fresh = tag in [t.strip() for t in (self.headers.get("If-None-Match") or "").split(",")]
            self.send_response(304 if fresh else 200)
            self.send_header("ETag", tag)
            data = b"" if fresh else body if isinstance(body, bytes) else body.read_bytes()
            if not fresh:
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(data)))
            for header, value in headers.items():
                self.send_header(header, value)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve(image_path: str | Path, host: str = "127.0.0.1", port: int = 8000,
          limits: dict[str, int] | None = None, autorun: bool = False, network: PageNetwork | None = None,
          preinit: Preinit | None = None) -> Server:
    """Serve the page, the launcher and the image (only those files) from a thread. The
    policy header goes with every file: a worker's fetches obey its own script's header."""
    image = imagefile.read(image_path)
    program = browser_program(image, str(image_path))
    network = network if network is not None and network.enabled else None
    runtime = _runtime(program, preinit, str(image_path))
    preview_headers = {**PREVIEW_HEADERS, "Content-Security-Policy": preview_csp() + "; frame-ancestors 'self'"}
    headers = {**PAGE_HEADERS, "Content-Security-Policy": page_csp(network) + "; frame-ancestors 'none'"}
    files: dict[str, tuple[str, Path | bytes, dict[str, str]]] = {
        "index.html": (MIME_TYPES[".html"], render_index(image, limits, autorun, network, runtime).encode(), headers)}
    for name, data in (runtime.files() if runtime is not None else {}).items():
        mime = MIME_TYPES[".wasm"] if name.endswith(".wasm") else "application/octet-stream"
        files[name] = (mime, data, {**headers, "Cache-Control": RUNTIME_CACHE})
    for name, path in _assets().items():
        files[name] = (MIME_TYPES[path.suffix], path, preview_headers if name == PREVIEW_NAME else headers)
    files[IMAGE_NAME] = (MIME_TYPES[".wasm"], Path(image_path).resolve(), headers)
    if network is not None:
        files[NET_NAME] = ("application/json", _net_json(network), headers)
    seen: list[str] = []
    tags = {name: etag(body) for name, (_, body, _) in files.items() if isinstance(body, bytes)}
    try:
        httpd = http.server.ThreadingHTTPServer((host, port), _handler(files, tags, seen, frozenset(), False, port))
    except OSError as e:
        raise BoxerError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    bound = httpd.server_address[1]
    httpd.RequestHandlerClass = _handler(files, tags, seen, allowed_hosts(host, bound), _unspecified(host), bound)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="boxer-serve", daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    return Server(f"http://{shown}:{httpd.server_address[1]}/", httpd, thread, seen)
