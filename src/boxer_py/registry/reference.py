"""Image references, parsed by Docker's rules.

    localhost:5000/team/app:1.2     registry localhost:5000, repository team/app, tag 1.2
    ghcr.io/org/app@sha256:<hex>    by digest
    python                          docker.io/library/python:latest
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from boxer_py.errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(r"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str = "latest"
    digest: str = ""

    @classmethod
    def parse(cls, text: str) -> Reference:
        rest, _, digest = text.partition("@")
        if digest and not _DIGEST.fullmatch(digest):
            raise InvalidReference(f"{text}: invalid digest (expected @sha256:<64 hex digits>)")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            registry, path = first, remainder
        else:
            registry, path = DOCKER_HUB, rest
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DOCKER_HUB
        name, colon, tag = path.rpartition(":") if ":" in path else (path, "", "")
        if not colon:
            name = path
        if registry == DOCKER_HUB and "/" not in name:
            name = "library/" + name
        if not _HOST.fullmatch(registry):
            raise InvalidReference(f"{text}: invalid registry host {registry!r}")
        if not _REPOSITORY.fullmatch(name):
            raise InvalidReference(f"{text}: invalid repository name {name!r} "
                                 "(lowercase letters, digits, and . _ - / between them)")
        if colon and not _TAG.fullmatch(tag):
            raise InvalidReference(f"{text}: invalid tag {tag!r}")
        return cls(registry, name, tag or ("" if digest else "latest"), digest)

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def is_loopback(self) -> bool:
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else self.registry
        return host in ("localhost", "[::1]") or host.startswith("127.")

    @property
    def target(self) -> str:
        """What the manifest URL names: the digest if there is one, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out
