"""`tar` for the RUN shell: extracting (and listing) archives into the rootfs through rootfs.extract_tar."""
from __future__ import annotations

import io
import os
import stat
import tarfile
from typing import BinaryIO, Literal, cast

from boxer_py.errors import BoxerError
from boxer_py.image.rootfs import extract_tar, within
from boxer_py.shell import limits
from boxer_py.shell.parse import ShellError
from boxer_py.shell.utilities.core import Call, Failure, Utility, parse_options, real_dir


class _StrippedTar:
    """A tar's members with `--strip-components` applied, for rootfs.extract_tar."""

    def __init__(self, tar: tarfile.TarFile, strip: int, wanted: list[str]):
        self.tar, self.strip, self.wanted = tar, strip, wanted

    def _strip(self, name: str) -> str | None:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        return "/".join(parts[self.strip:]) if len(parts) > self.strip else None

    def __iter__(self):
        for count, m in enumerate(self.tar, 1):
            if count > limits.MAX_TAR_MEMBERS:   # tarfile keeps every member it has read
                raise ShellError(f"tar: the archive has more than {limits.MAX_TAR_MEMBERS} members")
            if self.wanted and not any(m.name.strip("./") == w.strip("./") or
                                       m.name.strip("./").startswith(w.strip("./") + "/") for w in self.wanted):
                continue
            name = self._strip(m.name)
            if name is None:
                continue
            if m.islnk():
                link = self._strip(m.linkname)
                if link is None:
                    continue
                m.linkname = link
            m.name = name
            yield m

    def extractfile(self, member: tarfile.TarInfo):
        return self.tar.extractfile(member)


def _open_archive(host) -> BinaryIO:
    """An archive in the rootfs, read as a stream (it may be larger than anything RUN keeps in
    memory; rootfs.extract_tar bounds what it unpacks). Only a regular file: a FIFO would block."""
    fd = os.open(host, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ShellError(f"tar: {host.name}: not a regular file (a FIFO, socket or device is not read in RUN)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


_ReadMode = Literal["r:", "r:gz", "r:bz2", "r:xz"]
_MAGIC: dict[bytes, _ReadMode] = {b"\x1f\x8b": "r:gz", b"BZh": "r:bz2", b"\xfd7zXZ\x00": "r:xz"}


def _mode(source: BinaryIO) -> _ReadMode:
    """The compression, from the archive's first bytes. Not tarfile's "r:*", which tries each
    decompressor in turn: the xz one reads a whole hostile file (a sparse terabyte) before it
    gives up."""
    head = source.read(6)
    source.seek(0)
    found: _ReadMode = next((mode for magic, mode in _MAGIC.items() if head.startswith(magic)), "r:")
    return found


def tar(call: Call) -> int:
    """Extracting (and listing) archives into the rootfs: `tar -xzf file -C dir`."""
    args = list(call.args)
    if args and not args[0].startswith("-"):
        args[0] = "-" + args[0]   # tar xzf file
    opts, operands = parse_options(call, "xtzjJvopcaP", "fC", {
        "extract": "x", "get": "x", "list": "t", "gzip": "z", "bzip2": "j", "xz": "J", "verbose": "v",
        "file": "f=", "directory": "C=", "strip-components": "strip=", "no-same-owner": "o",
        "no-same-permissions": "no-same-permissions", "same-permissions": "p", "preserve-permissions": "p",
        "overwrite": "overwrite", "create": "c"}, args=args)
    if opts.get("c"):
        raise ShellError("tar: creating archives (-c) is not supported in RUN")
    if not (opts.get("x") or opts.get("t")):
        raise ShellError("tar: only -x (extract) and -t (list) are supported in RUN")
    strip = str(opts.get("strip", "0"))
    if not strip.isdigit():
        return call.fail(f"invalid number of elements to strip: '{strip}'", 2)
    name = str(opts.get("f", "-"))
    try:
        source = io.BytesIO(call.stdin) if name == "-" else _open_archive(call.host(name))
    except (Failure, OSError):
        return call.fail(f"{name}: Cannot open: No such file or directory", 2)
    try:
        with source, tarfile.open(fileobj=source, mode=_mode(source)) as archive:
            members = _StrippedTar(archive, int(strip), operands)
            if opts.get("t"):
                call.print("".join(m.name + ("/" if m.isdir() else "") + "\n" for m in members))
                return 0
            dest = call.host(str(opts.get("C", ".")))
            if not real_dir(dest):
                return call.fail(f"{opts.get('C')}: Cannot open: No such file or directory", 2)
            # _StrippedTar offers what extract_tar uses of a TarFile: iteration and extractfile
            written = extract_tar(cast(tarfile.TarFile, members), call.root, within(call.root, dest), f"tar {name}")
    except (tarfile.TarError, EOFError) as e:
        return call.fail(f"{name}: not a readable archive ({e})", 2)
    except BoxerError as e:
        return call.fail(str(e), 2)
    if opts.get("v"):
        call.print("".join(w + "\n" for w in sorted(written)))
    return 0


UTILITIES: dict[str, Utility] = {"tar": tar}
