"""A private Python package index on 127.0.0.1 for the tests (PEP 503), and the files it serves."""
from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Index:
    """`/<anything>/simple/<name>/` lists the files of `name` (links carry #sha256=),
    `/files/<file>` serves one; every request path is logged in `requests`."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                index.requests.append(self.path)
                listing = re.fullmatch(r".*/simple/([^/]+)/?", self.path)
                served = re.fullmatch(r"/files/([^/]+)", self.path)
                if listing:
                    name = listing[1].replace("_", "-").lower()
                    links = "".join(f'<a href="/files/{f}#sha256={hashlib.sha256(d).hexdigest()}">{f}</a>\n'
                                    for f, d in index.files.items()
                                    if re.split(r"-\d", f)[0].replace("_", "-").lower() == name)
                    body, kind = f"<html><body>\n{links}</body></html>\n".encode(), "text/html"
                elif served and served[1] in index.files:
                    body, kind = index.files[served[1]], "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def download_setuptools(dest: Path) -> tuple[str, bytes]:
    """The real setuptools wheel (the default build backend), fetched by pip as a wheel."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--isolated", "--only-binary=:all:", "--no-deps",
                    "-q", "-d", str(dest), "setuptools"], check=True, timeout=300)
    found = next(dest.glob("setuptools-*.whl"))
    return found.name, found.read_bytes()


def wheel(name: str, version: str, requires: tuple[str, ...] = (), tag: str = "py3-none-any",
          extras: tuple[str, ...] = ()) -> bytes:
    """A wheel with one module, `name`, whose VERSION is `version` (pure Python unless `tag` says),
    providing `extras` (their requirements are among `requires`, with `extra == "..."` markers)."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}.py": f"VERSION = {version!r}\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 + "".join(f"Provides-Extra: {e}\n" for e in extras)
                                 + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
        z.writestr(f"{dist}/RECORD", "".join(f"{p},,\n" for p in files) + f"{dist}/RECORD,,\n")
    return buf.getvalue()


def sdist(name: str, version: str, files: dict[str, str]) -> bytes:
    """A source distribution of `files` (paths relative to the project) with its PKG-INFO."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, text in {"PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", **files}.items():
            info = tarfile.TarInfo(f"{name}-{version}/{rel}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()
