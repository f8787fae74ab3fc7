"""Which Python a `pip install` (or venv, poetry, pipenv) of a RUN is for: the interpreter's
version and site-packages as the labels of its base say (toolchain/bases.toml), whatever the
Dockerfile's ENV says."""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from boxer_py.errors import BoxerError
from boxer_py.image.paths import program_candidates
from boxer_py.image.rootfs import resolve

VERSION_LABEL = "boxer.python-version:"  # + the interpreter's path: its version ("3.13.5")
SITE_LABEL = "boxer.site-packages:"  # + the interpreter's path: the site-packages it searches by itself


def guest_python(root: Path, labels: Mapping[str, str], name: str, path: str, cwd: str) -> tuple[str, str] | None:
    """(version, site-packages) of the interpreter `name` finds on `path` in the image, as the
    labels of its base say (bases.toml); None for an image without them (built by an older
    boxer), whose PYTHON_VERSION and PYTHONPATH then say. Read from the labels, not from ENV,
    so a Dockerfile's ENV PYTHON_VERSION=... or PYTHONPATH=... changes neither."""
    program = _find(root, name, path, cwd)
    if program is None:
        return None
    for key, site in sorted(labels.items()):
        if not key.startswith(SITE_LABEL):
            continue
        guest = key[len(SITE_LABEL):]
        version = labels.get(VERSION_LABEL + guest, "")
        if re.fullmatch(r"3\.\d+\.\d+", version) and site.startswith("/") and _find(root, guest, "", "/") == program:
            return version, site
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
