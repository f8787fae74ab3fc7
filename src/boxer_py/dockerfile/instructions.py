"""Typed Dockerfile instructions: one dataclass per instruction, each with its line.

The parser produces these; the planner consumes them. Nothing here touches a filesystem.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instruction:
    line: int


@dataclass(frozen=True)
class From(Instruction):
    image: str
    name: str | None = None


@dataclass(frozen=True)
class Arg(Instruction):
    name: str
    default: str | None = None


@dataclass(frozen=True)
class Copy(Instruction):
    """COPY, and ADD when ``add`` is set (ADD also extracts local tar archives)."""

    sources: tuple[str, ...]
    dest: str
    from_stage: str | None = None
    chown: str | None = None
    chmod: str | None = None
    add: bool = False
    link: bool = False  # --link: accepted; the result is the same files
    parents: bool = False  # --parents: keep each source's directories (below a `/./` pivot)
    exclude: tuple[str, ...] = ()  # --exclude=PATTERN, repeatable
    checksum: str | None = None  # ADD --checksum=sha256:HEX: the source's digest
    keep_git_dir: bool = False  # ADD --keep-git-dir: accepted (no git sources here)


@dataclass(frozen=True)
class Run(Instruction):
    command: tuple[str, ...]
    shell: bool
    mounts: tuple[str, ...] = ()  # --mount=... specs, as written
    network: str | None = None


@dataclass(frozen=True)
class Workdir(Instruction):
    path: str


@dataclass(frozen=True)
class Env(Instruction):
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Label(Instruction):
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Expose(Instruction):
    ports: tuple[str, ...]


@dataclass(frozen=True)
class User(Instruction):
    user: str


@dataclass(frozen=True)
class Volume(Instruction):
    paths: tuple[str, ...]


@dataclass(frozen=True)
class StopSignal(Instruction):
    signal: str


@dataclass(frozen=True)
class Healthcheck(Instruction):
    """HEALTHCHECK NONE (test == ("NONE",)) or CMD, with Docker's fields (durations in ns)."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Shell(Instruction):
    argv: tuple[str, ...]


@dataclass(frozen=True)
class OnBuild(Instruction):
    expression: str  # the trigger instruction, as written


@dataclass(frozen=True)
class Maintainer(Instruction):
    name: str


@dataclass(frozen=True)
class Entrypoint(Instruction):
    argv: tuple[str, ...]
    shell: bool


@dataclass(frozen=True)
class Cmd(Instruction):
    argv: tuple[str, ...]
    shell: bool
