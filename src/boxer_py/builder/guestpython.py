"""Which Python a `pip install` (or venv, poetry, pipenv) of a RUN is for: the interpreter's
version and site-packages as the labels of its base say (toolchain/bases.toml), whatever the
Dockerfile's ENV says."""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from boxer_py.builder import compiledin
from boxer_py.errors import BoxerError
from boxer_py.image.paths import program_candidates
from boxer_py.image.rootfs import resolve

VERSION_LABEL = "boxer.python-version:"  # + the interpreter's path: its version ("3.13.5")
SITE_LABEL = "boxer.site-packages:"  # + the interpreter's path: the site-packages it searches by itself


class PipRefused(Exception):
    """A pip invocation that cannot work for a WebAssembly guest, or that could make the build
    host run or read something; the message says why (with the file and line)."""


class GuestPython(NamedTuple):
    version: str  # "3.13.5"
    site: str  # the site-packages it finds by itself
    # canonical name -> (name, version) of the distributions compiled into it (compiledin.py)
    provided: dict[str, tuple[str, str]] = {}


def guest_python(root: Path, labels: Mapping[str, str], name: str, path: str, cwd: str) -> GuestPython | None:
    """The version, site-packages and compiled-in distributions of the interpreter `name` finds
    on `path` in the image, as the labels of its base say (bases.toml); None for an image
    without them (built by an older boxer), whose PYTHON_VERSION and PYTHONPATH then say. Read
    from the labels, not from ENV, so a Dockerfile's ENV PYTHON_VERSION=... or PYTHONPATH=...
    changes neither."""
    program = _find(root, name, path, cwd)
    if program is None:
        return None
    for key, site in sorted(labels.items()):
        if not key.startswith(SITE_LABEL):
            continue
        guest = key[len(SITE_LABEL):]
        version = labels.get(VERSION_LABEL + guest, "")
        if re.fullmatch(r"3\.\d+\.\d+", version) and site.startswith("/") and _find(root, guest, "", "/") == program:
            return GuestPython(version, site, compiledin.parse(labels.get(compiledin.PROVIDES_LABEL + guest, "")))
    return None


def _find(root: Path, name: str, path: str, cwd: str) -> Path | None:
    """The file a program name finds in the image, as the guest's PATH lookup would."""
    for guest in program_candidates(name, path, cwd):
        try:
            host = resolve(root, guest)
        except (BoxerError, OSError):
            continue
        if host.is_file():
            return host
    return None


def marker_environment(version: str) -> dict[str, str]:
    """PEP 508's environment of the guest: CPython for WASI on wasm32 (as its `platform` says)."""
    full = version if re.fullmatch(r"\d+\.\d+\.\d+", version) else ".".join(version.split(".")[:2]) + ".0"
    return {"implementation_name": "cpython", "implementation_version": full, "os_name": "posix",
            "platform_machine": "wasm32", "platform_release": "0.0.0", "platform_system": "wasi",
            "platform_version": "0.0.0", "python_full_version": full, "platform_python_implementation": "CPython",
            "python_version": ".".join(full.split(".")[:2]), "sys_platform": "wasi"}


def python_version(env: dict[str, str]) -> str:
    version = env.get("PYTHON_VERSION", "")
    match = re.match(r"(\d+)\.(\d+)(\.\d+)?", version)
    if not match:
        raise PipRefused("pip install: the image has no Python (PYTHON_VERSION is not set); start FROM python:3.12")
    return match[0]
