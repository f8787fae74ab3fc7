"""The RUN shell's utilities by command name, one module per command family."""
from __future__ import annotations

import posixpath

from boxer_py.shell.utilities import (
    accounts,
    commands,
    copy,
    find,
    grep,
    listing,
    modes,
    paths,
    sed,
    tar,
    test,
    text,
)
from boxer_py.shell.utilities.core import Utility

UTILITIES: dict[str, Utility] = {
    **text.UTILITIES, **sed.UTILITIES, **grep.UTILITIES, **test.UTILITIES, **paths.UTILITIES, **commands.UTILITIES,
    **copy.UTILITIES, **modes.UTILITIES, **listing.UTILITIES, **find.UTILITIES, **tar.UTILITIES,
    **accounts.UTILITIES,
}

# Where a command named by its path still counts as the shell's own: `/bin/cp` is `cp`.
STANDARD_BIN = {"/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin", "/usr/local/sbin"}


def find_utility(name: str) -> Utility | None:
    """The utility for a command name; `/bin/cp` counts as `cp`."""
    if "/" in name:
        directory, base = posixpath.split(name)
        return UTILITIES.get(base) if directory in STANDARD_BIN else None
    return UTILITIES.get(name)
