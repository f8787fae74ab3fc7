"""A setup.py that leaves two traces if it runs on the build host: a marker file at a host path
and a connection to the `listener` fixture's socket on 127.0.0.1. test_hostile_git.py (a `git+`
repository) and test_hostile_sdist.py (an sdist from an index) both hand it to a build and check
that it ran in the sandbox only."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boxer_py
from boxer_py.image.rootfs import unpack


@dataclass
class PhoneHome:
    """`marker`: the host path the setup.py writes; `listener`: conftest's listener, whose hits
    from now on count."""

    marker: Path
    listener: Any
    before: int = field(init=False)

    def __post_init__(self) -> None:
        self.before = len(self.listener.hits)

    def setup_py(self, module: str) -> str:
        """Writes the marker, connects and sends, records how the connection ended in
        /connect-result.txt, then sets up the one module `module` (distribution of the same name)."""
        return (
            "import os, socket\n"
            f"marker = {str(self.marker)!r}\n"
            "os.makedirs(os.path.dirname(marker), exist_ok=True)\n"
            "open(marker, 'w').write('ran')\n"
            "try:\n"
            f"    s = socket.create_connection(('127.0.0.1', {self.listener.port}), timeout=3)\n"
            "    s.sendall(b'hello from setup.py')\n"
            "    result = 'connected'\n"
            "except Exception as e:\n"
            "    result = type(e).__name__\n"
            "open('/connect-result.txt', 'w').write(result)\n"
            "from setuptools import setup\n"
            f"setup(name={module!r}, version='1.0', py_modules=[{module!r}])\n")

    def assert_ran_only_in_the_sandbox(self, image: Path, root: Path, module: str) -> None:
        """No marker on the host and no connection seen; in the image (unpacked at `root`), the
        marker written, the connection failed, and `module` installed."""
        assert not self.marker.exists(), "setup.py ran on the build host"
        assert self.listener.hits[self.before:] == []
        unpack(boxer_py.read_image(image), root)
        assert (root / str(self.marker).lstrip("/")).read_text() == "ran"  # it ran, in the sandbox
        assert (root / "connect-result.txt").read_text() != "connected"
        assert (root / f"lib/python3.12/site-packages/{module}.py").is_file()
