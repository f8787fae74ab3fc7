"""The program a run starts, by Docker's rules (ENTRYPOINT, CMD, run arguments, shell form)."""
from __future__ import annotations

from pathlib import Path

from boxer_py.errors import RunError
from boxer_py.image.imagefile import Image
from boxer_py.image.paths import MAX_SHEBANG, interpreter_of, program_candidates
from boxer_py.image.rootfs import resolve
from boxer_py.image.variables import shell_words
from boxer_py.runtime.mounts import no_shell_hint
from boxer_py.runtime.spec import RunSpec

WASM_MAGIC = b"\0asm"

__all__ = ["find_program", "resolve_argv", "shell_words", "with_interpreter"]


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
