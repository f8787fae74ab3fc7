"""A wheel a guest made, read back by the host as hostile data (sdist.py's source builds).

read_back is the one place such a wheel is read: every member bounded before it is read, names
inside the wheel, regular files only, no native code, one .dist-info naming the project asked
for. Nothing is extracted: the host writes a clean py3-none-any wheel of its own from it.
"""
from __future__ import annotations

import base64
import hashlib
import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import NoReturn

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from boxer_py.errors import BoxerError

MAX_WHEEL = 64 << 20  # bytes of one wheel the guest made
MAX_WHEEL_UNPACKED = 256 << 20  # bytes of all its members
MAX_WHEEL_MEMBERS = 20_000
MAX_MEMBER_NAME = 1024  # bytes of a member's name

_NATIVE = re.compile(r"\.(so|pyd|dll|dylib|sl)(\.[0-9]+)*$", re.IGNORECASE)


class SourceRefused(BoxerError):
    """A source build that cannot be done or whose result is refused; one line, saying why."""


@dataclass
class Checked:
    name: str
    version: str
    filename: str
    data: bytes  # a clean py3-none-any wheel written by the host
    note: str = ""


def _refuse(message: str) -> NoReturn:
    raise SourceRefused(f"the wheel the sandbox made is refused: {message}")


def _member_name(name: str) -> str:
    if len(name.encode("utf-8", "surrogateescape")) > MAX_MEMBER_NAME:
        _refuse(f"a member name is longer than {MAX_MEMBER_NAME} bytes")
    if any(c in name for c in "\0\\") or any(ord(c) < 32 for c in name):
        _refuse(f"member {name[:80]!r} has a control character or a backslash in its name")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        _refuse(f"member {name[:80]!r} has an absolute name")
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        _refuse(f"member {name[:80]!r} leaves its directory (.. or an empty part)")
    return name


def _members(data: bytes) -> dict[str, bytes]:
    """The regular files of a wheel, by name, each checked and read within the bounds."""
    if len(data) > MAX_WHEEL:
        _refuse(f"larger than {MAX_WHEEL} bytes")
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        _refuse("not a zip archive")
    if len(infos) > MAX_WHEEL_MEMBERS:
        _refuse(f"more than {MAX_WHEEL_MEMBERS} members")
    files: dict[str, bytes] = {}
    total = 0
    for info in infos:
        member = _member_name(info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            _refuse(f"member {member[:80]!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            _refuse(f"member {member[:80]!r} is not a regular file")
        if member.endswith("/") or kind == stat.S_IFDIR:
            continue
        if member in files:
            _refuse(f"member {member[:80]!r} appears twice")
        if _NATIVE.search(member):
            _refuse(f"member {member[:80]!r} is native code, which cannot run in WebAssembly")
        total += info.file_size
        if info.file_size > MAX_WHEEL_UNPACKED or total > MAX_WHEEL_UNPACKED:
            _refuse(f"its members expand past {MAX_WHEEL_UNPACKED} bytes")
        try:
            with z.open(info) as f:
                content = f.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError, zlib.error):
            _refuse(f"member {member[:80]!r} cannot be read (damaged, encrypted or an unknown compression)")
        if len(content) != info.file_size:
            _refuse(f"member {member[:80]!r} is not the size it says")
        files[member] = content
    return files


def read_back(data: bytes, name: str | None, version: str | None) -> Checked:
    """Check a wheel the guest made (hostile data) and write a clean py3-none-any wheel of the
    same files: bounded in size and members, names inside the wheel, regular files only, no
    native code, one .dist-info naming `name` `version` (when known)."""
    files = _members(data)
    infos_dirs = {m.split("/", 1)[0] for m in files if m.split("/", 1)[0].endswith(".dist-info") and "/" in m}
    if len(infos_dirs) != 1:
        _refuse("it has no single .dist-info directory")
    dist_info = infos_dirs.pop()
    if f"{dist_info}/METADATA" not in files or f"{dist_info}/WHEEL" not in files:
        _refuse("its .dist-info has no METADATA or WHEEL")
    meta = HeaderParser().parsestr(files[f"{dist_info}/METADATA"].decode("utf-8", errors="replace"))
    got_name, got_version = (meta.get("Name") or "").strip(), (meta.get("Version") or "").strip()
    try:
        parsed = Version(got_version)
    except InvalidVersion:
        _refuse(f"its version {got_version[:40]!r} is not a version")
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", got_name):
        _refuse(f"its name {got_name[:40]!r} is not a project name")
    if name is not None and canonicalize_name(got_name) != canonicalize_name(name):
        _refuse(f"it is {got_name}, not {name}")
    if version is not None and parsed != Version(version):
        _refuse(f"it is version {got_version}, not {version}")
    wheel_meta = HeaderParser().parsestr(files[f"{dist_info}/WHEEL"].decode("utf-8", errors="replace"))
    wheel_tags = [t.strip() for t in wheel_meta.get_all("Tag") or []]
    note = ""
    if not wheel_tags or not all(t.endswith("-none-any") for t in wheel_tags):
        note = f"tagged {', '.join(wheel_tags[:3]) or 'without a tag'} but holds no native code: made py3-none-any"
    stem = f"{canonicalize_name(got_name).replace('-', '_')}-{parsed}"
    old_stem = dist_info.removesuffix(".dist-info")
    rewritten: dict[str, bytes] = {}
    for member, content in files.items():
        top, _, rest = member.partition("/")
        if top == dist_info:
            if rest in ("RECORD", "WHEEL") or rest.startswith("RECORD."):
                continue
            member = f"{stem}.dist-info/{rest}"
        elif top == f"{old_stem}.data":
            member = f"{stem}.data/{rest}"
        elif top.endswith((".dist-info", ".data")):
            _refuse(f"member {member[:80]!r} is in a second .dist-info or .data directory")
        rewritten[member] = content
    rewritten[f"{stem}.dist-info/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: boxer-py (checked copy of a wheel "
                                            b"built in the sandbox)\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    record = [f"{m},sha256={base64.urlsafe_b64encode(hashlib.sha256(c).digest()).rstrip(b'=').decode()},{len(c)}"
              for m, c in sorted(rewritten.items())]
    record.append(f"{stem}.dist-info/RECORD,,")
    rewritten[f"{stem}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for member in sorted(rewritten, key=lambda m: (m.startswith(f"{stem}.dist-info/"), m)):
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(info, rewritten[member])
    return Checked(got_name, str(parsed), f"{stem}-py3-none-any.whl", buf.getvalue(), note)
