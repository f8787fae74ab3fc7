"""`boxer web --standalone`: a static site that runs an image's standalone module in the tab.

The module (registry/standalone.py: the image's program merged with its files) answers its own
file, argv and environment calls, so the page needs no image file, no tar parsing and no file
tree: it fetches one module, checks its sha256, compiles it and runs it in a Web Worker with
WASI's stdin, stdout, stderr, clocks, random and exit (standalone_web/standalone.js). What the full
page adds (a file tree the user can read back under /out, any program of the image, per-run
disk limits: docs/web.md) is what this one leaves out; its output is the module's, which is
`boxer run`'s.
"""
from __future__ import annotations

import hashlib
import os
import shlex
from importlib import resources
from pathlib import Path

from boxer_py.browser.site import CSP, page_title, templates
from boxer_py.image import atomic, imagefile

MODULE_NAME = "standalone.wasm"
SCRIPT_NAME = "standalone.js"


def script() -> bytes:
    return resources.files("boxer_py.browser").joinpath("standalone_web", SCRIPT_NAME).read_bytes()


def render(image: imagefile.Image, module: bytes) -> str:
    config = image.spec.config
    title = page_title(image)[1]
    return templates().get_template("standalone.html").render(
        title=title, csp=CSP, module_url=MODULE_NAME, module_sha256="sha256:" + hashlib.sha256(module).hexdigest(),
        size=f"{len(module) / (1 << 20):.1f} MiB", cmd=shlex.join(config.cmd) or "command")


def write_standalone_site(image_path: str | Path, module: bytes, directory: str | Path) -> Path:
    """index.html, standalone.js and the module into DIR at once (a temp dir renamed into
    place); DIR must not exist or be empty."""
    directory = Path(directory)
    image = imagefile.read(image_path)
    atomic.check_empty_target(directory)
    with atomic.fresh_directory(directory) as tmp:
        (tmp / "index.html").write_text(render(image, module), encoding="utf-8")
        (tmp / SCRIPT_NAME).write_bytes(script())
        (tmp / MODULE_NAME).write_bytes(module)
        for child in tmp.iterdir():
            os.chmod(child, 0o644)
    return directory
