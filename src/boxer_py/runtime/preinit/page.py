"""The pre-initialised CPython for the browser page (`boxer web`, `boxer serve`).

The page starts the image's default program from the same snapshot `boxer run` uses, so a
visitor does not wait for CPython's start-up in the tab. The snapshot is made here, by the
launcher's boot run (the image's CPython in the sandbox `boxer run` gives it, nothing of the
host), for the default command's program, argv[0] and start-up environment; the page uses it
only for a run with the same program (by sha256), argv[0] and start-up variables, and no
network, and starts every other run from scratch.

What the page must reproduce is what the boot left in memory: the descriptor table (the
root at 3, then the image's read-only directories in this order) and the resumable module
(`snapshot.resumable`), which the site serves in place of the program.
"""
from __future__ import annotations

import posixpath
import threading
from dataclasses import dataclass

from boxer_py.errors import BoxerError
from boxer_py.image.config import DEFAULT_PATH, user_env
from boxer_py.image.imagefile import Image
from boxer_py.image.paths import cpython_start
from boxer_py.runtime import interrupt, reactor
from boxer_py.runtime.argv import resolve_argv, shell_words, with_interpreter
from boxer_py.runtime.launcher import Launcher
from boxer_py.runtime.preinit import snapshot as preinit
from boxer_py.runtime.spec import RunSpec


@dataclass(frozen=True)
class PageStart:
    """What a page needs to resume the image's CPython: plain data for browser/site."""

    module: bytes                  # the resumable program (no custom sections)
    snapshot: bytes                # Snapshot.to_bytes(): a JSON header, then the changed pages
    argv0: str                     # the boot's argv[0]
    startup: dict[str, str]        # the environment the boot ran with
    preopens: tuple[str, ...]      # guest paths of descriptors 3, 4, ... at the boot
    interrupt_flags: tuple[int, ...] | None  # the words Ctrl-C sets (runtime/interrupt.py), if found


def for_page(launcher: Launcher, image: Image) -> PageStart | None:
    """The snapshot of `image`'s default program for the page, or None when that program is
    not a CPython the launcher can pre-initialise (the page then starts it from scratch)."""
    config = image.spec.config
    if any(key.startswith(reactor.ALIAS_LABEL) for key in config.labels):
        return None  # aliases are preopens the page does not make
    env = config.env_dict()
    for name, value in user_env(config.user).items():
        env.setdefault(name, value)
    try:
        argv = resolve_argv(image, RunSpec())
        if argv[:2] in (["/bin/sh", "-c"], ["sh", "-c"]) and len(argv) >= 3:
            argv = shell_words(argv[2], env)
        workdir = posixpath.normpath(posixpath.join("/", config.working_dir))
        base = launcher.rootfs(image)
        shared = reactor.read_only(config.labels, base)
        argv = with_interpreter(base, argv, env.get("PATH", DEFAULT_PATH), workdir)
        guest, program = launcher._image_program(image, base, argv[0], env.get("PATH", DEFAULT_PATH), workdir)
        argv0, extra = cpython_start(argv[0], guest, env)
        argv, env = [argv0, *argv[1:]], {**env, **extra}
        resume = launcher._resume(image, base, program, argv, env, workdir, RunSpec(tuple(argv)), shared)
    except BoxerError:
        return None  # the page says what is wrong when the command runs
    if resume is None:
        return None
    loaded = launcher._resumable(image, base, program)
    flags = None
    if loaded is not None:  # the same calibration (and cache) as boxer run's Ctrl-C
        engine = launcher._engine(loaded.stack)
        found = interrupt.for_run(threading.Event(), engine.engine, engine.ticker, loaded, base, argv0,
                                  launcher.cache_dir, True).flags  # type: ignore[union-attr]
        # the page stores 1 in each word: right for 3.11/3.12, not for 3.13's eval breaker of bits
        flags = tuple(a for a, bits in found) if found and all(bits == 1 for _, bits in found) else None
    startup = {**config.env_dict(), **preinit.startup_env(env)}
    return PageStart(preinit.resumable(program.read_bytes()), resume.snapshot.to_bytes(), argv0, startup,
                     ("/", *(guest for guest, _ in shared)), flags)
