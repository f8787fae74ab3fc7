"""Writing files and directories so that a reader, or a crash, never sees half of one.

Every output boxer makes on the host (an image, a layer cache entry, credentials, a site, an
OCI layout, an exported rootfs) goes through one of these two helpers.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from boxer_py.errors import BoxerError


def write_file(path: str | Path, data: bytes, mode: int = 0o666) -> None:
    """Write `data` to a temp file beside `path`, then rename it into place. The temp file is
    created with `mode` minus the umask (0666: as any tool's output; 0600 for secrets), so
    the mode survives the rename. Raises OSError; the temp file never stays behind."""
    with writing(path, mode) as f:
        f.write(data)


def check_empty_target(directory: Path) -> None:
    """A directory boxer fills must not exist yet, or be empty (as `docker save -o` checks)."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BoxerError(f"{directory}: already exists and is not an empty directory")


@contextmanager
def fresh_directory(directory: str | Path, mode: int = 0o755) -> Iterator[Path]:
    """Yield a temp directory beside `directory` to fill; when the block ends without an
    error it becomes `directory` (which must not exist, or be empty), else it is removed.
    So a failure never leaves half a site, layout or rootfs behind."""
    directory = Path(directory)
    check_empty_target(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        yield tmp
        tmp.chmod(mode)
        if directory.exists():
            directory.rmdir()
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def writing(path: str | Path, mode: int = 0o666) -> Iterator[BinaryIO]:
    """A binary file to stream into that becomes `path` when the block ends without an error
    (a temp file beside it, renamed); otherwise it is removed and `path` stays as it was."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
