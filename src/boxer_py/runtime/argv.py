"""The program a run starts, by Docker's rules (ENTRYPOINT, CMD, run arguments, shell form)."""
from __future__ import annotations

from boxer_py.errors import RunError
from boxer_py.image.imagefile import Image
from boxer_py.image.variables import shell_words
from boxer_py.runtime.spec import RunSpec

__all__ = ["resolve_argv", "shell_words"]


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
