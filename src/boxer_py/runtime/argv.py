"""The program a run starts, by Docker's rules (ENTRYPOINT, CMD, run arguments, shell form)."""
from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from boxer_py.errors import RunError
from boxer_py.image.config import DEFAULT_PATH, user_env
from boxer_py.image.imagefile import Image
from boxer_py.image.paths import MAX_SHEBANG, cpython_start, interpreter_of, program_candidates
from boxer_py.image.rootfs import resolve
from boxer_py.image.variables import shell_words
from boxer_py.runtime.mounts import no_shell_hint
from boxer_py.runtime.spec import RunSpec

WASM_MAGIC = b"\0asm"
MAX_GUEST_DIR = 1024  # bytes of a working or output directory's guest path
Finder = Callable[[str, str, str], tuple[str, Path]]  # (name, PATH, workdir) -> find_program's answer

__all__ = ["Command", "environment", "find_program", "resolve_argv", "shell_words", "start", "with_interpreter"]


@dataclass(frozen=True)
class Command:
    """One program a run starts (Launcher.command): its argv (argv[0] as CPython is started),
    environment and working directory, and the program's guest path and file in the image."""
    argv: list[str]
    env: dict[str, str]
    workdir: str
    guest: str
    program: Path


def environment(image: Image, spec: RunSpec) -> tuple[dict[str, str], str]:
    """A run's environment (the image's ENV, the run's, the user's HOME) and working directory."""
    config = image.spec.config
    env = {**config.env_dict(), **spec.env}
    for name, value in user_env(spec.user if spec.user is not None else config.user).items():
        env.setdefault(name, value)
    workdir = posixpath.normpath(posixpath.join("/", spec.workdir or config.working_dir))
    if len(workdir.encode()) > MAX_GUEST_DIR or (spec.output_dir and len(spec.output_dir.encode()) > MAX_GUEST_DIR):
        raise RunError(f"the working or output directory is longer than {MAX_GUEST_DIR} bytes")
    return env, workdir


def start(base: Path, argv: list[str], env: dict[str, str], workdir: str, find: Finder,
          interpreter: Callable[[str, str, str], list[str]] | None = None) -> Command:
    """How `argv` starts in the image unpacked at `base`: a `#!` script through its interpreter,
    the program `find` finds, CPython's own start-up variables. `interpreter(name, PATH,
    workdir)`: what with_interpreter makes of `[name]` (the caller may remember it)."""
    path = env.get("PATH", DEFAULT_PATH)
    argv = [*interpreter(argv[0], path, workdir), *argv[1:]] if interpreter else with_interpreter(base, argv, path, workdir)
    guest, program = find(argv[0], env.get("PATH", DEFAULT_PATH), workdir)
    argv0, extra = cpython_start(argv[0], guest, env)
    return Command([argv0, *argv[1:]], {**env, **extra}, workdir, guest, program)


def resolve_argv(image: Image, spec: RunSpec) -> list[str]:
    """Docker's rules: ENTRYPOINT + CMD; run arguments replace CMD; --entrypoint clears CMD."""
    config = image.spec.config
    entrypoint = list(spec.entrypoint) if spec.entrypoint is not None else list(config.entrypoint)
    if spec.command:
        cmd = list(spec.command)
    else:
        cmd = list(config.cmd) if spec.entrypoint is None else []
    argv = entrypoint + cmd
    if not argv:
        raise RunError("no command: the image has no ENTRYPOINT or CMD; give one after the image")
    return argv


def with_interpreter(root: Path, argv: list[str], path: str, workdir: str) -> list[str]:
    """argv as exec runs a script whose `#!` interpreter is a WebAssembly program of the image
    (pip's console scripts: uvicorn, flask...): [interpreter, (its argument), script, args...].
    Anything else comes back unchanged, for the launcher to run or refuse (a shell script)."""
    found = _first(root, argv[0], path, workdir)
    command = interpreter_of(found[1]) if found else None
    if found is None or command is None:
        return argv
    interpreter = _first(root, command[0], path, workdir)
    if interpreter is None or not interpreter[1].startswith(b"\0asm"):
        return argv
    return [*command, found[0], *argv[1:]]


def _first(root: Path, name: str, path: str, workdir: str) -> tuple[str, bytes] | None:
    """The guest path the program `name` is found at, as the launcher looks, and its first bytes."""
    for guest in program_candidates(name, path, workdir):
        host = resolve(root, guest)
        if host.is_file():
            try:
                with open(host, "rb", buffering=0) as f:  # resolve() stays in the image; a regular file
                    return guest, f.read(MAX_SHEBANG)
            except OSError:
                return None
    return None


def find_program(root: Path, name: str, path: str, workdir: str) -> tuple[str, Path]:
    """The program `name` runs: its guest path (as found, links not followed) and host file."""
    for guest in program_candidates(name, path, workdir):
        host = resolve(root, guest)
        if host.is_file():
            with open(host, "rb") as f:
                if f.read(4) != WASM_MAGIC:
                    raise RunError(f"{name}: {guest} is not a WebAssembly program "
                                   "(native binaries and scripts cannot run here)", 126)
            return guest, host
    where = "" if "/" in name else f" in PATH ({path})"
    raise RunError(f"{name}: not found{where}{no_shell_hint(name)}", 127)
