"""The browser launcher as a site: the page (a jinja2 template), the built launcher files
(`web/`, made from toolchain/web by `make web`) and the image itself.

`write_site` writes it as a static directory any host can serve; `serve` serves it on
127.0.0.1 for local use. The image runs in the visitor's tab: the server only sends files.
"""
from __future__ import annotations

import http.server
import os
import shlex
import shutil
import tempfile
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from boxer_py.errors import BoxerError
from boxer_py.image import imagefile

IMAGE_NAME = "image.wasm"
ASSETS = ("boxer.js", "worker.js", "style.css", "xterm.css")
# The MIME types a host must send (WebAssembly.compileStreaming and the page need them).
MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
}
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'unsafe-inline'; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; font-src 'self' data:; "
       "connect-src 'self'; worker-src 'self'; frame-src blob:; child-src 'self' blob:; "
       "object-src 'none'; base-uri 'none'; form-action 'none'")


def asset_dir() -> Path:
    return Path(str(resources.files("boxer_py.browser") / "web"))


def render_index(image: imagefile.Image) -> str:
    """The page for `image`. Everything it shows is re-read from the image by the launcher;
    the values here are only the first paint."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("boxer_py.browser", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    config = image.spec.config
    tag = image.annotations.get("org.opencontainers.image.ref.name", "")
    title = config.labels.get("org.opencontainers.image.title") or tag or image.id[7:19]
    return env.get_template("index.html").render(
        title=title, tag=tag, image_id=image.id, workdir=config.working_dir, image_url=IMAGE_NAME,
        default_command=shlex.join([*config.entrypoint, *config.cmd]), csp=CSP)


def _assets() -> dict[str, Path]:
    base = asset_dir()
    missing = [name for name in ASSETS if not (base / name).is_file()]
    if missing:
        raise BoxerError(f"the browser launcher is not built ({base}/{missing[0]} is missing): run `make web`")
    return {name: base / name for name in ASSETS}


def write_site(image_path: str | Path, directory: str | Path) -> Path:
    """Write index.html, the launcher and the image into DIR, all at once (a temp dir renamed
    into place), so a failure never leaves half a site. DIR must not exist or be empty."""
    directory = Path(directory)
    image = imagefile.read(image_path)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BoxerError(f"{directory}: already exists and is not an empty directory")
    assets = _assets()
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        (tmp / "index.html").write_text(render_index(image), encoding="utf-8")
        for name, path in assets.items():
            shutil.copyfile(path, tmp / name)
        shutil.copyfile(image_path, tmp / IMAGE_NAME)
        os.chmod(tmp, 0o755)
        for child in tmp.iterdir():
            os.chmod(child, 0o644)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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


def _handler(files: dict[str, tuple[str, Path | bytes]], seen: list[str]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "boxer"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._send(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._send(head=True)

        def _send(self, head: bool) -> None:
            seen.append(self.path)
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            entry = files.get("index.html" if path == "/" else path.lstrip("/"))
            if entry is None:
                self.send_error(404)
                return
            mime, body = entry
            data = body if isinstance(body, bytes) else body.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", mime)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            pass

    return Handler


def serve(image_path: str | Path, host: str = "127.0.0.1", port: int = 8000) -> Server:
    """Serve the page, the launcher and the image (only those files) from a thread."""
    image = imagefile.read(image_path)
    files: dict[str, tuple[str, Path | bytes]] = {"index.html": (MIME_TYPES[".html"], render_index(image).encode())}
    for name, path in _assets().items():
        files[name] = (MIME_TYPES[path.suffix], path)
    files[IMAGE_NAME] = (MIME_TYPES[".wasm"], Path(image_path).resolve())
    seen: list[str] = []
    try:
        httpd = http.server.ThreadingHTTPServer((host, port), _handler(files, seen))
    except OSError as e:
        raise BoxerError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="boxer-serve", daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    return Server(f"http://{shown}:{httpd.server_address[1]}/", httpd, thread, seen)
