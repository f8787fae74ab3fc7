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

from dataclasses import dataclass

from boxer_py.errors import BoxerError
from boxer_py.image.config import ALIAS_LABEL
from boxer_py.image.imagefile import Image
from boxer_py.runtime import reactor
from boxer_py.runtime.interrupt import Flag, Winch
from boxer_py.runtime.launcher import Launcher
from boxer_py.runtime.preinit import snapshot as preinit


@dataclass(frozen=True)
class PageStart:
    """What a page needs to resume the image's CPython: plain data for browser/site."""

    module: bytes                  # the resumable program (no custom sections)
    snapshot: bytes                # Snapshot.to_bytes(): a JSON header, then the changed pages
    argv0: str                     # the boot's argv[0]
    startup: dict[str, str]        # the environment the boot ran with
    preopens: tuple[str, ...]      # guest paths of descriptors 3, 4, ... at the boot
    interrupt_flags: tuple[Flag, ...] | None  # the (word, bits) Ctrl-C ORs in (runtime/interrupt.py), if found
    winch: Winch | None = None     # where a resize (SIGWINCH) lands, if found


def for_page(launcher: Launcher, image: Image) -> PageStart | None:
    """The snapshot of `image`'s default program for the page, or None when that program is
    not a CPython the launcher can pre-initialise (the page then starts it from scratch)."""
    config = image.spec.config
    if any(key.startswith(ALIAS_LABEL) for key in config.labels):
        return None  # aliases are preopens the page does not make
    try:
        found = launcher.preinitialised(image)
    except BoxerError:
        return None  # the page says what is wrong when the command runs
    if found is None:
        return None
    command, resume, signals = found  # signals: the same calibration (and cache) as boxer run's Ctrl-C
    shared = reactor.read_only(config.labels, launcher.rootfs(image))
    startup = {**config.env_dict(), **preinit.startup_env(command.env)}
    return PageStart(preinit.resumable(command.program.read_bytes()), resume.snapshot.to_bytes(), command.argv[0],
                     startup, ("/", *(guest for guest, _ in shared)), signals.flags if signals else None,
                     signals.winch if signals else None)
