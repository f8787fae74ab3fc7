"""`pip install` for the guest, run by the host's pip at build time.

The guest has no network and no pip; the host resolves and downloads for the guest's
interpreter instead. Only wheels are taken (pure Python, or built for WASI): building a
source distribution would run its setup code on the build host, and a native wheel could
not load in WebAssembly anyway. pip installs into a private directory on the host, which is
then copied into the image through `rootfs.resolve`, so nothing in the image (a symlink, a
requirements file naming a host path) can make pip read or write outside the rootfs.
"""
from __future__ import annotations

import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from boxer_py.image.rootfs import copy_tree, resolve, within

# pip options passed through as they are: flags, then options that take a value.
_FLAGS = {"--upgrade", "-U", "--no-deps", "--pre", "--force-reinstall", "--ignore-installed", "-I",
          "--no-build-isolation", "--require-hashes", "--upgrade-strategy-eager", "-v", "--verbose"}
_WITH_VALUE = {"-i", "--index-url", "--extra-index-url", "--trusted-host", "--upgrade-strategy", "--timeout",
               "--retries"}
# Accepted and meaningless here: the host's pip keeps its own cache; there is one site dir.
_IGNORED = {"--no-cache-dir", "--user", "--disable-pip-version-check", "--no-warn-script-location",
            "--prefer-binary", "--compile", "--no-compile", "--break-system-packages", "-q", "--quiet",
            "--no-input", "--progress-bar=off", "--root-user-action=ignore", "--no-color", "--isolated"}
_IGNORED_WITH_VALUE = {"--progress-bar", "--root-user-action", "--cache-dir"}
# Tools that live beside the interpreter on a native system; the guest needs none of them.
_BUILD_TOOLS = {"pip"}


@dataclass
class PipResult:
    exit_code: int
    output: bytes


class PipRefused(Exception):
    """A pip invocation that cannot work for a WebAssembly guest; the message says why."""


def pip(args: list[str], root: Path, env: dict[str, str], cwd: str) -> PipResult:
    """Run `pip ARGS` for the image at `root` (args exclude the `pip` itself)."""
    if not args or args[0] != "install":
        what = args[0] if args else "(no command)"
        if args and args[0] in ("--version", "-V"):
            return PipResult(0, b"pip (run by boxer on the build host for the image's Python)\n")
        raise PipRefused(f"pip {what}: only `pip install` runs at build time")
    python = _python_version(env)
    site = _site_packages(env)
    with tempfile.TemporaryDirectory(prefix="boxer-pip-") as tmp:
        command, requirements = _translate(args[1:], root, cwd, Path(tmp))
        if not requirements:
            return PipResult(0, b"pip: nothing to install for the image (pip itself is not needed)\n")
        target = Path(tmp) / "target"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--target", str(target), "--only-binary=:all:",
             "--platform", "any", "--platform", "wasi_0_0_0_wasm32", "--python-version", python,
             "--implementation", "cp", "--abi", "none", "--abi", "abi3", "--abi", "cp" + python.replace(".", ""),
             "--no-compile", "--disable-pip-version-check", "--no-warn-script-location", "--quiet",
             *command],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        output = proc.stdout
        if proc.returncode != 0:
            missing = re.findall(rb"No matching distribution found for ([^\s]+)", output)
            if missing:
                name = missing[0].decode(errors="replace")
                output += (f"pip install: {name} has no pure-Python or WASI wheel for Python {python} (only "
                           "native wheels or source), so it cannot run in WebAssembly; use a pure-Python "
                           "alternative\n").encode()
            return PipResult(proc.returncode, output)
        installed = sorted(p.name.removesuffix(".dist-info") for p in target.glob("*.dist-info"))
        _install(target, root, site)
        return PipResult(0, output + f"installed into {site}: {' '.join(installed)}\n".encode())


def _python_version(env: dict[str, str]) -> str:
    version = env.get("PYTHON_VERSION", "")
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        raise PipRefused("pip install: the image has no Python (PYTHON_VERSION is not set); start FROM python:3.12")
    return f"{match[1]}.{match[2]}"


def _site_packages(env: dict[str, str]) -> str:
    """The first site-packages directory on PYTHONPATH: the one the guest interpreter searches."""
    for entry in env.get("PYTHONPATH", "").split(":"):
        if entry.startswith("/") and posixpath.basename(entry.rstrip("/")) == "site-packages":
            return entry
    raise PipRefused("pip install: no site-packages directory on PYTHONPATH, so the interpreter would not "
                     "find what is installed; keep it when you set PYTHONPATH: ENV PYTHONPATH=/app:$PYTHONPATH")


def _translate(args: list[str], root: Path, cwd: str, tmp: Path) -> tuple[list[str], list[str]]:
    """pip options for the host: requirement files and wheels are read from the image, every
    path resolved inside the rootfs. Returns (options, the requirements among them)."""
    command: list[str] = []
    requirements: list[str] = []
    it = iter(args)
    for arg in it:
        option, eq, value = arg.partition("=")
        if arg in _IGNORED or option in _IGNORED_WITH_VALUE:
            if option in _IGNORED_WITH_VALUE and not eq:
                next(it, None)
            continue
        if arg in _FLAGS:
            command.append(arg)
        elif option in _WITH_VALUE:
            command += [option, value if eq else _value(it, option)]
        elif option in ("-r", "--requirement", "-c", "--constraint"):
            guest = value if eq else _value(it, option)
            flag = "-r" if option in ("-r", "--requirement") else "-c"
            lines = _read_requirements(root, posixpath.join(cwd, guest), set())
            listed = [line for line in lines if not line.startswith("-")]
            if flag == "-r":
                requirements += listed
            path = tmp / f"req-{len(command)}.txt"
            path.write_text("\n".join(lines) + "\n")
            command += [flag, str(path)]
        elif option in ("-e", "--editable"):
            raise PipRefused(f"pip install {arg}: building a package from source would run its setup code on the "
                             "build host; build a wheel outside (pip wheel), COPY the .whl in and install that")
        elif arg.startswith("-r") or arg.startswith("-c"):
            raise PipRefused(f"pip install: write {arg[:2]} FILE with a space")
        elif arg.startswith("-"):
            raise PipRefused(f"pip install: option {arg} is not supported at build time")
        else:
            requirement = _requirement(arg, root, cwd)
            if requirement:
                requirements.append(requirement)
                command.append(requirement)
    return command, requirements


def _value(it, option: str) -> str:
    value = next(it, None)
    if value is None:
        raise PipRefused(f"pip install: {option} needs a value")
    return value


def _requirement(arg: str, root: Path, cwd: str) -> str | None:
    """A requirement for the host's pip, or None for pip itself. A local wheel is read from
    the image; anything that would be built from source is refused."""
    name = re.split(r"[\s<>=!~;\[@]", arg, maxsplit=1)[0].lower()
    if name in _BUILD_TOOLS:
        return None
    if arg.endswith(".whl") and "://" not in arg:
        host = resolve(root, posixpath.join(cwd, arg))
        if not host.is_file():
            raise PipRefused(f"pip install: {arg}: no such wheel in the image")
        return str(host)
    if arg.startswith((".", "/", "file:")) or "://" in arg:
        raise PipRefused(f"pip install {arg}: building a package from source would run its setup code on the "
                         "build host; build a wheel outside (pip wheel), COPY the .whl in and install that")
    return arg


def _read_requirements(root: Path, guest: str, seen: set[str]) -> list[str]:
    """A requirements file's lines, from the image, with nested -r files inlined."""
    guest = posixpath.normpath(guest)
    if guest in seen:
        return []
    seen.add(guest)
    host = resolve(root, guest)
    if not host.is_file():
        raise PipRefused(f"pip install: requirements file {guest} not found in the image")
    text = host.read_text(errors="replace").replace("\\\n", " ")
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        option, _, rest = line.partition(" ")
        if option in ("-r", "--requirement"):
            lines += _read_requirements(root, posixpath.join(posixpath.dirname(guest), rest.strip()), seen)
        elif option in ("-c", "--constraint", "-f", "--find-links", "-e", "--editable"):
            raise PipRefused(f"pip install: {guest}: `{option}` lines are not supported at build time")
        elif line.startswith("-"):
            lines.append(line)  # --index-url and friends apply as they are
        else:
            head = line.split(" --")[0].strip()
            requirement = _requirement(head, root, posixpath.dirname(guest))
            if requirement is not None:
                lines.append(line if requirement == head else requirement)
    return lines


def _install(target: Path, root: Path, site: str) -> None:
    """Copy what pip installed into the image's site-packages, replacing older versions."""
    dest = resolve(root, site)
    dest.mkdir(parents=True, exist_ok=True)
    site = within(root, dest)
    for entry in sorted(target.iterdir()):
        if entry.name == "bin":  # console scripts start a native interpreter: useless here
            continue
        placed = resolve(root, posixpath.join(site, entry.name), follow_last=False)
        if placed.is_symlink() or placed.is_file():
            placed.unlink()
        elif placed.is_dir():
            shutil.rmtree(placed)
        if entry.is_dir():
            copy_tree(entry, placed)
        else:
            placed.write_bytes(entry.read_bytes())
