"""Build progress on stderr, as BuildKit prints it: `--progress=plain` one line per event,
`tty` the same on a terminal, `quiet` nothing; `auto` is tty on a terminal, else plain."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def build_progress(mode: str) -> Iterator[Callable[[str], None]]:
    """A sink for the builder's progress lines in `mode` (auto, plain, tty or quiet)."""
    if mode == "quiet":
        yield lambda _line: None
        return
    stream = sys.stderr

    def show(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    yield show
