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
class Entrypoint(Instruction):
    argv: tuple[str, ...]
    shell: bool


@dataclass(frozen=True)
class Cmd(Instruction):
    argv: tuple[str, ...]
    shell: bool
