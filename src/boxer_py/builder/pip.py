"""`pip install` for the guest, run by the host's pip at build time.

The guest has no network and no pip; the host resolves and downloads for the guest's
interpreter instead. The rule is absolute: no code from the build context, the image or a
package index ever runs on the build host. So the host's pip never sees what the Dockerfile
wrote. Every argument and every requirements-file line is parsed here against an allow-list
(PEP 508 names, extras and version specifiers, a few options with literal values); anything
else (`-e`, local paths, URLs, VCS, `--find-links`, `--config-settings`...) is refused with
the file and line. Environment markers are evaluated here for the guest's Python (WASI,
wasm32), and only the requirements that apply are written, re-serialised, into a requirements
file of our own. The host pip then runs isolated: `-I` Python, `--isolated` pip (no config
file, no PIP_* variable), a clean environment, a private working directory and HOME, and
`--only-binary=:all:`, so it downloads and unpacks wheels and never builds anything. It
installs into a private directory, copied into the image through `rootfs.resolve`, so nothing
in the image (a symlink, a requirements file naming a host path) makes pip read or write
outside the rootfs.
"""
from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from boxer_py.builder import compiledin, extras, gitsource, hostpip, scripts, sdist
from boxer_py.builder.guestpython import GuestPython, PipRefused, marker_environment, python_version
from boxer_py.image import hostfs
from boxer_py.image.rootfs import copy_tree, resolve, within

MAX_REQUIREMENTS_FILE = 1 << 20  # bytes of one requirements or constraints file
MAX_NESTING = 8  # -r/-c files inside requirements files
MAX_REQUIREMENTS = 10_000  # requirement lines over all files of one `pip install`

# Command-line flags passed on to the host's pip as they are.
_PASSED_FLAGS = {"-U": "--upgrade", "--upgrade": "--upgrade", "--no-deps": "--no-deps",
                 "--force-reinstall": "--force-reinstall", "-I": "--ignore-installed",
                 "--ignore-installed": "--ignore-installed"}
# Flags meaningful only to a native pip (one site dir, the host's own cache, no builds): accepted.
_IGNORED_FLAGS = {"--no-cache-dir", "--disable-pip-version-check", "--no-warn-script-location",
                  "--no-warn-conflicts", "--compile", "--no-compile", "--break-system-packages", "-q", "--quiet",
                  "-v", "--verbose", "--no-input", "--no-color", "--isolated", "--no-build-isolation",
                  "--use-pep517", "--prefer-binary"}
_IGNORED_VALUES = {"--progress-bar", "--root-user-action", "--cache-dir", "--timeout", "--retries",
                   "--exists-action", "--default-timeout", "--only-binary"}
# What a requirements file may say besides requirements (pip's own list, less what reaches the host).
_FILE_FLAGS = {"--pre", "--prefer-binary", "--require-hashes", "--no-index"}
_FILE_VALUES = {"-i", "--index-url", "--extra-index-url", "--trusted-host", "--only-binary", "--no-binary",
                "-r", "--requirement", "-c", "--constraint"}
_SHORT = {"-i": "--index-url", "-r": "--requirement", "-c": "--constraint", "-t": "--target"}
# Where the packages go instead of the interpreter's site-packages (guest paths).
_DESTINATIONS = {"--target", "--prefix", "--user"}
# Options with a value (so that `-xVALUE`, `--x=VALUE` and `--x VALUE` all parse).
_WITH_VALUE = _IGNORED_VALUES | _FILE_VALUES | {"--upgrade-strategy", "--hash", "--target", "--prefix"}
_FROM_SOURCE = ("would build a package from source, which would run its setup code on the build host; build a "
                "wheel outside (pip wheel), COPY the .whl in and install that file")
_WHY = {
    "-e": _FROM_SOURCE, "--editable": _FROM_SOURCE, "--no-binary": _FROM_SOURCE, "--config-settings": _FROM_SOURCE,
    "-C": _FROM_SOURCE, "--global-option": _FROM_SOURCE, "--install-option": _FROM_SOURCE,
    "--build-option": _FROM_SOURCE, "--no-use-pep517": _FROM_SOURCE,
    "-f": "would read packages from a directory or page of the build host; use --index-url, or COPY the "
          ".whl in and install that file",
    "--find-links": "would read packages from a directory or page of the build host; use --index-url, or "
                    "COPY the .whl in and install that file",
    "--src": _FROM_SOURCE, "--use-feature": "is not supported at build time",
    "--cert": "would read a file of the build host", "--client-cert": "would read a file of the build host",
    "--proxy": "is the build host's setting, not the image's", "--log": "would write a file on the build host",
    "--root": "is not supported at build time (use --target or --prefix)",
}
# Tools that live beside the interpreter on a native system; the guest needs none of them.
_BUILD_TOOLS = {"pip", "poetry", "pipenv"}  # the last two: boxer reads their lock files (locks.py)
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")  # what pip expands in requirements files
_COMMENT = re.compile(r"(^|\s+)#.*$")
_HASH = re.compile(r"(sha256|sha384|sha512):[0-9a-fA-F]{64,128}")
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


@dataclass
class PipResult:
    exit_code: int
    output: bytes
    native: tuple[str, ...] = ()  # what pip found no wheel for that runs here (canonical names)


@dataclass
class _Request:
    """What one `pip install` asks for, parsed: only this reaches the host's pip."""

    options: list[str] = field(default_factory=list)  # host pip options, each validated
    requirements: list[str] = field(default_factory=list)  # re-serialised lines for our requirements file
    constraints: list[str] = field(default_factory=list)
    wheels: list[str] = field(default_factory=list)  # host paths of wheels inside the rootfs
    tools: list[str] = field(default_factory=list)  # pip itself: not needed in the image
    skipped: list[str] = field(default_factory=list)  # requirements whose markers exclude the guest
    # (guest path or git+ URL, [extras], -e, where: a requirements file's "file:line: " or ""): sdist.py
    sources: list[tuple[str | gitsource.GitSource, str, bool, str]] = field(default_factory=list)
    destination: tuple[str, str | None] | None = None  # (--target/--prefix/--user, its value)
    count: int = 0

    def add_option(self, *option: str) -> None:
        if option[0] == "--index-url":  # the last one wins, as in pip
            i = next((n for n, o in enumerate(self.options) if o == "--index-url"), None)
            if i is not None:
                del self.options[i:i + 2]
        if option[0] in self.options and len(option) == 1:
            return
        self.options += option


def pip(args: list[str], root: Path, env: dict[str, str], cwd: str, sandbox: sdist.Sandbox | None = None,
        venv_site: str | None = None, status: Callable[[str], None] | None = None,
        python_at: GuestPython | None = None) -> PipResult:
    """Run `pip ARGS` for the image at `root` (args exclude the `pip` itself); `env` and `cwd`
    are the RUN's (the guest's), never the host's. With a `sandbox`, local projects and what
    has only source on the index are built there (sdist.py); without one they are refused.
    `venv_site`: the site-packages of the venv whose pip this is. `status` (a terminal's
    transient line) is told what pip collects and downloads as it goes; the log stays the same.
    `python_at`: the (version, site-packages) of the interpreter pip installs for, as its
    base's labels say (guest_python); without it (an image of an older boxer) PYTHON_VERSION
    and PYTHONPATH say."""
    if not args or args[0] != "install":
        what = args[0] if args else "(no command)"
        if args and args[0] in ("--version", "-V"):
            return PipResult(0, b"pip (run by boxer on the build host for the image's Python)\n")
        raise PipRefused(f"pip {what}: only `pip install` runs at build time")
    version = python_at[0] if python_at else python_version(env)
    marker_env = marker_environment(version)
    request = _Request()
    _parse_command(args[1:], request, _Parse(root, env, cwd, marker_env, sources=sandbox is not None))
    python = ".".join(version.split(".")[:2])
    if venv_site and request.destination and request.destination[0] == "--user":
        raise PipRefused("pip install: --user: user site-packages are not visible in this virtualenv "
                         f"({venv_site.split('/lib/python')[0]}), as pip says too")
    site = _destination(request, env, cwd, python) or venv_site or (python_at[1] if python_at else _site_packages(env))
    if not request.requirements and not request.wheels and not request.sources:
        if request.tools:
            return PipResult(0, f"pip: nothing to install for the image ({', '.join(request.tools)}: boxer does "
                                "that work itself at build time)\n".encode())
        if request.skipped:
            raise PipRefused(f"pip install: nothing to install: no requirement applies to the image's Python "
                             f"{python} on WASI (the environment markers of {', '.join(request.skipped[:5])} "
                             "exclude it)")
        raise PipRefused("pip install: nothing to install (no package named)")
    provided, notes = python_at.provided if python_at else {}, list[str]()
    if provided:  # compiled into the runtime: pip sees them installed (compiledin.py)
        request.requirements = compiledin.keep(request.requirements, provided, notes)
        request.constraints = compiledin.keep(request.constraints, provided, notes, True) + compiledin.pins(provided)
    with tempfile.TemporaryDirectory(prefix="boxer-pip-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        (work / "cwd").mkdir()
        target = work / "target"
        command = [*request.options, *(compiledin.wheels(work / "provided", provided) if provided else [])]
        if request.requirements:
            command += ["-r", str(work / "requirements.txt")]
        if request.constraints:
            (work / "constraints.txt").write_text("\n".join(request.constraints) + "\n")
            command += ["-c", str(work / "constraints.txt")]
        command += request.wheels
        builds = sdist.Builds(sandbox, work / "built", version, marker_env, request.options) if sandbox else None
        for guest, extras_, editable, where in request.sources:
            assert builds is not None  # sources are parsed only with a sandbox
            try:
                built = builds.git(guest, editable) if isinstance(guest, gitsource.GitSource) else \
                    builds.local(posixpath.normpath(posixpath.join(cwd, guest)), editable)
                command.append(str(built) + extras_)
            except sdist.SourceRefused as e:
                raise PipRefused(f"pip install: {where}{guest}: {e}") from None
        argv = hostpip.argv(marker_env, python, str(target), *([] if builds or status else ["--quiet"]), *command)
        left_out: dict[str, str] = {}  # what optional extras asked for and could not have: why, by name
        lookup = extras.Guest(marker_env, python, request.options)
        warnings = "".join(f"{x}\n" for x in notes).encode()
        while True:
            (work / "requirements.txt").write_text("\n".join(request.requirements) + "\n")
            output, failure, blocked = _resolve(argv, work, builds, status, python)
            if failure is None:
                break
            native = (blocked,) if blocked else ()
            if blocked in left_out:  # needed by more than the extra it was left out of: why, as at first
                return PipResult(1, warnings + output + f"pip install: {left_out[blocked]}\n".encode(), native)
            if blocked is None or len(left_out) >= extras.MAX_LEFT_OUT:
                return PipResult(1, warnings + output + failure.encode(), native)
            found = extras.leave_out(request.requirements, blocked, lookup)
            if found is None:
                return PipResult(1, warnings + output + failure.encode(), native)
            request.requirements, via = found
            left_out[blocked] = " ".join(failure.split()).removeprefix("pip install: ")
            warnings += (f"pip install: warning: left out {blocked}, which the optional extra {via} asks for: "
                         f"{left_out[blocked]}\n").encode()
            if builds:
                builds.failure = builds.blocked = None
        output = warnings + output
        there = compiledin.drop(target) if target.is_dir() else []
        installed = sorted(p.name.removesuffix(".dist-info") for p in target.glob("*.dist-info"))
        if there:
            output += f"compiled into the runtime already: {', '.join(there)}\n".encode()
        if not installed:
            return PipResult(0 if there else 1, output + (b"" if there else b"pip install: nothing was installed\n"))
        _install(target, root, site)
        return PipResult(0, output + f"installed into {site}: {' '.join(installed)}\n".encode())


def _resolve(argv: list[str], work: Path, builds: sdist.Builds | None, status: Callable[[str], None] | None,
             python: str) -> tuple[bytes, str | None, str | None]:
    """The host's pip until it succeeds or nothing more can be built: (the log, why it failed
    as a line for the log or None, the canonical name of the package that blocks it if one does)."""
    for _ in range(sdist.MAX_ROUNDS):  # each round builds from source what the last one lacked
        try:
            proc = hostpip.run_told(argv + (builds.find_links() if builds else []), work, status, quiet=not builds)
        except subprocess.TimeoutExpired:
            return b"", f"pip install: the build host's pip took more than {hostpip.PIP_TIMEOUT}s\n", None
        if proc.returncode == 0 or not builds or not builds.after_failure(proc.stdout):
            break
    # What was built comes first, as it happened: the last line is then pip's own verdict.
    output = ("".join(f"{x}\n" for x in builds.log).encode() + sdist.shown(proc.stdout)) if builds else proc.stdout
    if proc.returncode == 0:
        return output, None, None
    if builds and builds.failure:
        return output, f"pip install: {builds.failure}\n", builds.blocked
    missing = re.findall(rb"No matching distribution found for ([^\s]+)", output)
    if not missing:
        return output, "", None
    name = missing[0].decode(errors="replace")
    blocked = sdist.blockers(f"No matching distribution found for {name}")
    return output, (f"pip install: {name} has no pure-Python or WASI wheel for Python {python} (only native wheels "
                    "or source), so it cannot run in WebAssembly; use a pure-Python alternative\n"), \
        next(iter(blocked), None)


def _destination(request: _Request, env: dict[str, str], cwd: str, python: str) -> str | None:
    """The directory --target, --prefix or --user name, as pip would place packages there."""
    if request.destination is None:
        return None
    name, value = request.destination
    lib = posixpath.join("lib", f"python{python}", "site-packages")
    if name == "--user":
        return posixpath.join(env.get("HOME", "/root"), ".local", lib)
    assert value is not None, "--target and --prefix take a value (_WITH_VALUE)"
    where = posixpath.normpath(posixpath.join(cwd, value))
    return where if name == "--target" else posixpath.join(where, lib)


def _site_packages(env: dict[str, str]) -> str:
    """The first site-packages directory on PYTHONPATH: the one the guest interpreter searches."""
    for entry in env.get("PYTHONPATH", "").split(":"):
        if entry.startswith("/") and posixpath.basename(entry.rstrip("/")) == "site-packages":
            return entry
    raise PipRefused("pip install: no site-packages directory on PYTHONPATH, so the interpreter would not "
                     "find what is installed; keep it when you set PYTHONPATH: ENV PYTHONPATH=/app:$PYTHONPATH")


@dataclass
class _Parse:
    root: Path
    env: dict[str, str]  # the guest's: `${VAR}` in a requirements file expands from it, as pip would there
    cwd: str
    markers: dict[str, str]
    seen: set[tuple[str, bool]] = field(default_factory=set)
    sources: bool = False  # local projects and sdists of the image may be named (built in the sandbox)


def _options(tokens: list[str], where: str):
    """(option, value or None) for each token of an option list; a non-option is (None, token)."""
    it = iter(tokens)
    for token in it:
        if not token.startswith("-") or token == "-":
            yield None, token
            continue
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            if name in _WITH_VALUE:
                if not eq:
                    following = next(it, None)
                    if following is None:
                        raise PipRefused(f"pip install: {where}{name} needs a value")
                    value = following
                yield name, value
            else:
                yield (name, value) if eq else (name, None)
            continue
        name = token[:2]
        if re.fullmatch(r"-[qv]+", token):
            yield name, None
        elif name in _SHORT:
            attached = token[2:] or next(it, None)
            if attached is None:
                raise PipRefused(f"pip install: {where}{name} needs a value")
            yield _SHORT[name], attached
        elif len(token) > 2:
            yield name, token[2:]  # -e./x, -f/dir: refused below by name
        else:
            yield token, None


def _source(text: str, ctx: _Parse, where: str) -> tuple[str | gitsource.GitSource, str] | None:
    """(a local project's path or a git+ URL, extras) if `text` names one to build in the sandbox."""
    if not ctx.sources:
        return None
    try:
        git = gitsource.parse(text)
    except sdist.SourceRefused as e:
        raise PipRefused(f"pip install: {where}{text}: {e}") from None
    return (git, git.extras) if git else sdist.local_source(text)


def _refuse_option(name: str, value: str | None, where: str) -> NoReturn:
    written = name + ("" if value is None else value if not name.startswith("--") else f"={value}")
    why = _WHY.get(name, "is not allowed at build time")
    raise PipRefused(f"pip install: {where}{written}: {name} {why}")


def _joined(options, where: str):
    """_options with `-e`/`--editable` given its project when that is the next word."""
    it = iter(options)
    for name, value in it:
        if name in ("-e", "--editable") and value is None:
            following = next(it, None)
            if following is None or following[0] is not None:
                raise PipRefused(f"pip install: {where}{name} needs a project directory")
            value = following[1]
        yield name, value


def _parse_command(args: list[str], request: _Request, ctx: _Parse) -> None:
    for name, value in _joined(_options(args, ""), ""):
        local = _source(value, ctx, "") if name in (None, "-e", "--editable") and value else None
        if name in ("-e", "--editable"):
            if local is None:
                _refuse_option(name, value, "")
            request.sources.append((*local, True, ""))  # built in the sandbox: sdist.py
        elif local is not None:
            request.sources.append((*local, False, ""))
        elif name is None:
            _requirement(value, request, ctx, "")
        elif name in _PASSED_FLAGS and value is None:
            request.add_option(_PASSED_FLAGS[name])
        elif name in _IGNORED_FLAGS and value is None or name in _IGNORED_VALUES:
            continue
        elif name == "--upgrade-strategy" and value in ("only-if-needed", "eager"):
            request.add_option(name, value)
        elif name in _DESTINATIONS and (value is None) == (name == "--user"):
            if request.destination and request.destination[0] != name:
                raise PipRefused(f"pip install: {request.destination[0]} and {name} cannot be combined")
            request.destination = (name, value)
        elif name in ("--requirement", "--constraint"):
            _read_file(posixpath.join(ctx.cwd, value), request, ctx, name == "--constraint", 0, top=True)
        elif name in _FILE_FLAGS | _FILE_VALUES:
            _common_option(name, value, request, "")
        else:
            _refuse_option(name, value, "")


def _common_option(name: str, value: str | None, request: _Request, where: str) -> None:
    """The options a requirements file and the command line share (index settings and the like)."""
    name = _SHORT.get(name, name)
    if name in _FILE_FLAGS and value is None:
        if name != "--prefer-binary":  # wheels only anyway
            request.add_option(name)
    elif name in ("--index-url", "--extra-index-url") and value is not None:
        request.add_option(name, _index_url(value, where, name))
    elif name == "--trusted-host" and value is not None:
        if not _HOST.fullmatch(value):
            raise PipRefused(f"pip install: {where}--trusted-host {value!r}: expected a host name")
        request.add_option(name, value)
    elif name == "--only-binary":
        return  # always :all: here
    elif name == "--no-binary" and value == ":none:":
        return
    else:
        _refuse_option(name, value, where)


def _index_url(url: str, where: str, option: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() or ord(c) < 32 for c in url):
        raise PipRefused(f"pip install: {where}{option} {url}: only an http:// or https:// index is allowed "
                         "(a file: or local index would read the build host)")
    return url


def _read_file(guest: str, request: _Request, ctx: _Parse, constraint: bool, depth: int, top: bool = False,
               where: str = "") -> None:
    """A requirements (or constraints) file of the image, every line parsed by the allow-list."""
    guest = posixpath.normpath(guest)
    kind = "constraints" if constraint else "requirements"
    if depth > MAX_NESTING:
        raise PipRefused(f"pip install: {where}{guest}: {kind} files nested more than {MAX_NESTING} deep")
    if (guest, constraint) in ctx.seen:
        return
    ctx.seen.add((guest, constraint))
    text = _read_image_file(ctx.root, guest, kind, where)
    before = len(request.requirements) + len(request.wheels) + len(request.tools) + len(request.skipped) \
        + len(request.sources)
    here = posixpath.dirname(guest)
    for number, line in _logical_lines(text):
        where = f"{guest}:{number}: "
        line = _ENV_VAR.sub(lambda m: ctx.env.get(m[1], m[0]), line)
        tokens = line.split(" ")
        cut = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
        head, rest = " ".join(tokens[:cut]).strip(), " ".join(tokens[cut:])
        try:
            words = shlex.split(rest)
        except ValueError as e:
            raise PipRefused(f"pip install: {where}cannot split the options ({e})") from None
        if not head:
            for name, value in _joined(_options(words, where), where):
                if name is None:
                    raise PipRefused(f"pip install: {where}{value}: expected an option or a requirement")
                local = _source(value, ctx, where) if not constraint and value else None
                if name in ("-e", "--editable") and local is not None:
                    request.sources.append((*local, True, where))  # as pip: relative to the cwd
                elif name in ("--requirement", "--constraint"):
                    nested = value if value.startswith("/") else posixpath.join(here, value)
                    _read_file(nested, request, ctx, constraint or name == "--constraint", depth + 1, where=where)
                elif name in _FILE_FLAGS | _FILE_VALUES:
                    _common_option(name, value, request, where)
                else:
                    _refuse_option(name, value, where)
            continue
        hashes = []
        for name, value in _options(words, where):
            if name == "--hash" and value is not None and _HASH.fullmatch(value):
                hashes.append(value)
            elif name is None:
                raise PipRefused(f"pip install: {where}{value}: expected an option after the requirement")
            else:
                _refuse_option(name, value, where)
        local = _source(head, ctx, where) if not constraint and not hashes else None
        if local is not None:
            request.sources.append((*local, False, where))
        else:
            _requirement(head, request, ctx, where, constraint=constraint, hashes=hashes)
    added = len(request.requirements) + len(request.wheels) + len(request.tools) + len(request.skipped) \
        + len(request.sources)
    if top and not constraint and added == before:
        raise PipRefused(f"pip install: {guest}: the requirements file names no package")


def _read_image_file(root: Path, guest: str, kind: str, where: str) -> str:
    """A small regular file of the image, opened without following a link out of the rootfs and
    without blocking on a FIFO or a device."""
    try:
        data = hostfs.read_file(resolve(root, guest), MAX_REQUIREMENTS_FILE)
    except hostfs.Unreadable as e:
        why = e if e.opened else "not found in the image"
        raise PipRefused(f"pip install: {where}{kind} file {guest} {why}") from None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise PipRefused(f"pip install: {where}{kind} file {guest} is not UTF-8 text") from None


def _logical_lines(text: str):
    """(first line number, line) as pip reads a requirements file: `\\` joins lines, `#` starts a
    comment at the start of a line or after whitespace."""
    start = 0
    parts: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not parts:
            start = number
        if raw.endswith("\\") and not _COMMENT.search(raw):
            parts.append(raw[:-1])
            continue
        parts.append(raw)
        line = _COMMENT.sub("", "".join(parts)).strip()
        parts = []
        if line:
            yield start, line
    if parts:
        line = _COMMENT.sub("", "".join(parts)).strip()
        if line:
            yield start, line


def _requirement(text: str, request: _Request, ctx: _Parse, where: str, constraint: bool = False,
                 hashes: list[str] | tuple[str, ...] = ()) -> None:
    """One requirement: a PEP 508 name with extras, version specifiers and a marker, or a wheel file
    of the image. Only what was parsed is written for the host's pip."""
    request.count += 1
    if request.count > MAX_REQUIREMENTS:
        raise PipRefused(f"pip install: more than {MAX_REQUIREMENTS} requirements")
    if text.endswith(".whl") and "://" not in text and "@" not in text and not constraint:
        guest = posixpath.normpath(posixpath.join(ctx.cwd, text))
        host = resolve(ctx.root, guest)
        try:
            st = os.stat(host, follow_symlinks=False)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise PipRefused(f"pip install: {where}{text}: no such wheel in the image")
        request.wheels.append(str(host))
        return
    try:
        req = Requirement(text)
    except InvalidRequirement:
        if re.match(r"^([./~]|[A-Za-z][A-Za-z0-9+.-]*:)", text) or "/" in text or text in (".", ".."):
            raise PipRefused(f"pip install: {where}{text}: {_FROM_SOURCE}") from None
        raise PipRefused(f"pip install: {where}{text!r} is not a requirement (a package name with optional "
                         "extras, version and marker, as in PEP 508)") from None
    if req.url:
        raise PipRefused(f"pip install: {where}{text}: a direct URL {_FROM_SOURCE}")
    if req.marker is not None:
        try:
            applies = req.marker.evaluate({**ctx.markers, "extra": ""})
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as e:
            raise PipRefused(f"pip install: {where}{text}: cannot evaluate the marker ({e})") from None
        if not applies:
            request.skipped.append(req.name)
            return
    if constraint and req.extras:
        raise PipRefused(f"pip install: {where}{text}: a constraint cannot name extras")
    req.marker = None
    line = str(req) + "".join(f" --hash={h}" for h in hashes)
    if "$" in line or "\n" in line:  # cannot happen with a parsed requirement; never let pip expand
        raise PipRefused(f"pip install: {where}{text}: not a plain requirement")
    if constraint:
        request.constraints.append(line)
    elif canonicalize_name(req.name) in _BUILD_TOOLS:
        request.tools.append(req.name)
    else:
        request.requirements.append(line)


def _install(target: Path, root: Path, site: str) -> None:
    """Copy what pip installed into the image's site-packages, replacing older versions."""
    dest = resolve(root, site)
    dest.mkdir(parents=True, exist_ok=True)
    site = within(root, dest)
    for entry in sorted(target.iterdir()):
        if entry.name == "bin":  # console scripts, for the image's Python
            scripts.install(entry, root, site)
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
