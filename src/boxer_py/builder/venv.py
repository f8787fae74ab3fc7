"""`python -m venv` and the interpreter behind `pip`, for a RUN step.

A venv here is what CPython itself looks for: `pyvenv.cfg` beside `bin/`, `bin/python*` links
to the image's interpreter and `lib/pythonX.Y/site-packages`. The guest CPython, started by the
path it was found at (the launcher passes that as argv[0]), reads the cfg and searches that
site-packages, so a venv copied to another stage works there too. Nothing runs to make one:
the guest stdlib may lack `venv`, and the files are few and known.
"""
from __future__ import annotations

import posixpath
from pathlib import Path

from boxer_py.errors import BuildError
from boxer_py.image.hostfs import remove_tree
from boxer_py.image.paths import program_candidates
from boxer_py.image.rootfs import resolve, within

# python's own options that come before `-m MODULE` (those with a value take the next word).
PYTHON_FLAGS = frozenset("-B -b -bb -d -E -I -O -OO -P -q -R -s -S -u -v -x".split())
PYTHON_VALUES = frozenset(["-X", "-W"])
_VENV_FLAGS = {"--system-site-packages", "--symlinks", "--copies", "--clear", "--upgrade", "--without-pip",
               "--upgrade-deps", "--without-scm-ignore-files"}


def module_after_options(argv: list[str]) -> int:
    """Where `-m` is in a python argv once its own options are skipped (0: not `python ... -m`)."""
    i = 1
    while i < len(argv):
        word = argv[i]
        if word == "-m":
            return i if i + 1 < len(argv) else 0
        if word in PYTHON_VALUES:
            i += 2
        elif word in PYTHON_FLAGS or word[:2] in PYTHON_VALUES and len(word) > 2:
            i += 1
        else:
            return 0
    return 0


def found(root: Path, name: str, path: str, cwd: str) -> str | None:
    """The guest path `name` is found at on PATH (links not followed), or None."""
    for guest in program_candidates(name, path, cwd):
        try:
            if resolve(root, guest).is_file():
                return guest
        except (BuildError, OSError):
            continue
    return None


def of_program(root: Path, guest: str) -> str | None:
    """The venv a program at `guest` belongs to (its directory's parent has a pyvenv.cfg)."""
    top = posixpath.dirname(posixpath.dirname(guest))
    try:
        return top if resolve(root, posixpath.join(top, "pyvenv.cfg")).is_file() else None
    except (BuildError, OSError):
        return None


def active(root: Path, name: str, path: str, cwd: str) -> str | None:
    """The venv whose pip or python `name` means: the first PATH directory that is a venv's
    `bin/` or holds `name` decides, as a shell finding `bin/pip` would."""
    for guest in program_candidates(name, path, cwd):
        venv = of_program(root, guest)
        if venv is not None:
            return venv
        try:
            if resolve(root, guest).is_file():
                return None
        except (BuildError, OSError):
            continue
    return None


def site_packages(venv: str, version: str) -> str:
    return posixpath.join(venv, "lib", "python" + ".".join(version.split(".")[:2]), "site-packages")


def create(root: Path, args: list[str], interpreter: str, version: str, cwd: str) -> str:
    """`python -m venv ARGS`, made in the rootfs; returns what venv would print (nothing)."""
    dirs: list[str] = []
    system = clear = False
    it = iter(args)
    for word in it:
        if word == "--prompt":
            if next(it, None) is None:
                raise BuildError("python -m venv: --prompt needs a value")
        elif word.startswith("--prompt="):
            continue
        elif word in _VENV_FLAGS:
            system |= word == "--system-site-packages"
            clear |= word == "--clear"
        elif word.startswith("-"):
            raise BuildError(f"python -m venv: unknown option {word}")
        else:
            dirs.append(posixpath.normpath(posixpath.join(cwd, word)))
    if not dirs:
        raise BuildError("python -m venv: name the directory to make the environment in")
    # The base interpreter itself, never another venv's link (venv does the same).
    base = interpreter if of_program(root, interpreter) is None else within(root, resolve(root, interpreter))
    minor = ".".join(version.split(".")[:2])
    for top in dirs:
        _make(root, top, base, version, minor, system, clear)
    return ""


def _make(root: Path, top: str, base: str, version: str, minor: str, system: bool, clear: bool) -> None:
    host = resolve(root, top)
    if clear and host.is_dir() and not host.is_symlink():
        remove_tree(host)
    bin_dir = resolve(root, posixpath.join(top, "bin"))
    bin_dir.mkdir(parents=True, exist_ok=True)
    resolve(root, site_packages(top, version)).mkdir(parents=True, exist_ok=True)
    resolve(root, posixpath.join(top, "include")).mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3", f"python{minor}"):
        link = resolve(root, posixpath.join(top, "bin", name), follow_last=False)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(base)
    cfg = resolve(root, posixpath.join(top, "pyvenv.cfg"), follow_last=False)
    if cfg.is_symlink():
        cfg.unlink()
    cfg.write_text(f"home = {posixpath.dirname(base)}\n"
                   f"include-system-site-packages = {'true' if system else 'false'}\n"
                   f"version = {version}\n"
                   f"executable = {base}\n"
                   f"command = {base} -m venv {top}\n")

