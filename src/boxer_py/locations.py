"""Where boxer keeps things on this machine. Plain `os` only: the `boxer` entry point
(client.py) reads these before it decides whether to load anything else (no `from __future__`:
that is a module to load too)."""
import os
import stat


def cache_dir() -> str:
    """$BOXER_CACHE_DIR, else $XDG_CACHE_HOME/boxer or ~/.cache/boxer: compiled modules,
    unpacked images, snapshots, the build cache and the image store."""
    if os.environ.get("BOXER_CACHE_DIR"):
        return os.environ["BOXER_CACHE_DIR"]
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                        "boxer")


def runtime_dir() -> str | None:
    """A directory only this user can enter, for the run server's socket:
    $XDG_RUNTIME_DIR/boxer, else /tmp/boxer-UID. None if it cannot be made, or if it exists
    and is not this user's alone (someone else made it first: never talk through it)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    path = os.path.join(base, "boxer") if base else f"/tmp/boxer-{os.getuid()}"
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path
