"""Source distributions and local projects, built into pure-Python wheels inside the sandbox.

Many packages ship C code that is optional (MarkupSafe, PyYAML, multidict, SQLAlchemy...) and
many pure-Python projects ship only an sdist; `pip install .` builds a project of the image.
A wheel for the guest is made by running the project's own PEP 517 build backend in the
image's CPython under Wasmtime (the stage's rootfs as `/`, the RUN's runner): there is no
compiler in WebAssembly, so such a setup falls back to pure Python. The build host never runs
any of it; the host only:

- downloads bytes: an sdist whose URL, size and sha256 the index's simple API gives
  (fetch_sdist: bounded, hash checked), and the backend's build requirements as pure-Python
  wheels by the host's pip (wheels only, isolated, into a fresh directory of the rootfs);
- writes the sdist, the job and a small driver (DRIVER) into a fresh directory of the rootfs;
  the guest unpacks the sdist (tarfile's `data` filter) and runs the hooks in-process;
- reads back the wheel the guest made as hostile data (read_back: one regular file opened
  without following links, bounded; every member bounded, no `..`, no absolute name, no link,
  no native code, one .dist-info naming the expected project) and writes a clean
  `py3-none-any` wheel of its own into a host-private find-links directory, which the host's
  pip then installs like any wheel (dependencies resolve, markers apply for the guest).

Builds.after_failure reads why the host's pip failed (a requirement with no usable wheel),
builds that requirement's sdist, and the caller retries (MAX_ROUNDS, MAX_BUILDS). The index
is read in sdistindex.py, the guest's script is sdistdriver.py, the wheel check wheelcheck.py.
"""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from boxer_py.builder import gitsource, hostpip
from boxer_py.builder.gitsource import GitSource
from boxer_py.builder.sdistdriver import DRIVER
from boxer_py.builder.sdistindex import IndexFile, choose_sdist, fetch_sdist, index_files, index_session
from boxer_py.builder.wheelcheck import MAX_WHEEL, SourceRefused, read_back
from boxer_py.errors import BoxerError
from boxer_py.image import hostfs
from boxer_py.image.hostfs import DIR_FLAGS, remove_tree

# Build requirements that mean compiled code with no pure-Python fallback: such a project is
# refused as soon as its pyproject.toml is read, instead of after fetching its build tools.
NATIVE_BACKENDS = ("meson-python", "mesonpy", "scikit-build-core", "scikit-build", "maturin", "setuptools-rust",
                   "cmake", "ninja", "pybind11", "nanobind", "py-build-cmake")
MAX_ROUNDS = 8  # times the host's pip is retried after building what it lacked
MAX_BUILDS = 24  # sdists and projects one `pip install` builds in the sandbox
MAX_RESULT = 1 << 20  # bytes of a JSON file the guest writes
MAX_BUILD_REQUIRES = 64  # build requirements one project may name
BUILD_DEPS_TIMEOUT = 10 * 60  # seconds for the host's pip fetching build requirements

_SDIST = re.compile(r"\.(tar\.gz|tgz|zip|tar\.bz2|tar\.xz|tar)$", re.IGNORECASE)
_PIP_NOISE = re.compile(r"^\s*(Collecting|Downloading|Using cached|Obtaining|Looking in|Processing|"
                        r"Requirement already|Saved|Installing collected|Successfully|INFO:|━|[-\\|/]\s*$)")
# Switches that packages with optional C code read to skip it (a failed compile falls back anyway).
_PURE_SWITCHES = {"AIOHTTP_NO_EXTENSIONS": "1", "MULTIDICT_NO_EXTENSIONS": "1", "YARL_NO_EXTENSIONS": "1",
                  "FROZENLIST_NO_EXTENSIONS": "1", "PROPCACHE_NO_EXTENSIONS": "1", "DISABLE_SQLALCHEMY_CEXT": "1",
                  "PURE_PYTHON": "1", "SETUPPY_FORCE_PURE": "1", "MSGPACK_PUREPYTHON": "1",
                  "WRAPT_INSTALL_EXTENSIONS": "false", "CIBUILDWHEEL": "0", "PYTHONDONTWRITEBYTECODE": "1"}


# (root, argv, env, workdir, stdin) -> the run's result: the RUN's runner (runstep.Runner).
Run = Callable[[Path, list[str], dict[str, str], str, bytes], Any]


def native_backend(requires: list[str]) -> str | None:
    """The first build requirement that always compiles native code, if any."""
    for line in requires:
        name = canonicalize_name(re.split(r"[\s\[<>=!~;@(]", line.strip(), maxsplit=1)[0] or "-")
        if name in NATIVE_BACKENDS:
            return name
    return None


@dataclass
class Sandbox:
    """Where source builds run: the stage's rootfs and the RUN's runner and environment."""

    root: Path
    run: Run
    env: dict[str, str]


# --- what is a local project -------------------------------------------------------------------

def local_source(text: str) -> tuple[str, str] | None:
    """(path, extras suffix) if a pip argument names a local project or archive rather than a
    requirement: `.`, `./x`, `/src`, `dir/`, `dist/x-1.0.tar.gz`, `.[dev]`, a `file:` URL
    (`file:.`, `file:///src`, `name[extra] @ file:///src`, as lock files write them); else None.
    The path is the image's: it is built in the sandbox, never looked for on the host."""
    extras = ""
    named = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[A-Za-z0-9_.,\s-]*\])?\s*@\s*(file:\S+)", text.strip())
    if named:
        text, extras = named[2], named[1] or ""
    if text.startswith("file:"):
        url = urlsplit(text)
        if url.netloc not in ("", "localhost") or not url.path:
            return None
        path = unquote(url.path)
        return (path, extras) if local_source(path) == (path, "") else None
    if "://" in text or text.startswith(("git+", "hg+", "svn+", "bzr+")) or "@" in text \
            or text.endswith(".whl"):
        return None
    path = text
    m = re.fullmatch(r"(.+?)(\[[A-Za-z0-9_.,\s-]*\])", text)
    if m:
        path, extras = m[1], m[2]
    if path in (".", "..") or path.startswith(("./", "../", "/")) or "/" in path or _SDIST.search(path):
        if any(c in path for c in "\0\n\r") or len(path) > 4096:
            return None
        return path, extras
    return None


# --- reading pip's failure -------------------------------------------------------------------------

def blockers(output: str) -> dict[str, list[SpecifierSet]]:
    """What the host's pip could not find, by name, with the specifiers it was asked for."""
    found: dict[str, list[SpecifierSet]] = {}
    depends: dict[str, list[SpecifierSet]] = {}

    def parse(text: str) -> Requirement | None:
        try:
            return Requirement(text.strip())
        except InvalidRequirement:
            return None

    for m in re.finditer(r"(?:No matching distribution found for|Could not find a version that satisfies the "
                         r"requirement) (\S+)", output):
        req = parse(m[1])
        if req is not None:
            found.setdefault(canonicalize_name(req.name), []).append(req.specifier)
    for m in re.finditer(r"^\s+\S+ \S+ depends on (.+)$", output, re.MULTILINE):
        req = parse(m[1].replace(" and ", ","))  # pip writes "multidict<5.0 and >=4.5"
        if req is not None:
            depends.setdefault(canonicalize_name(req.name), []).append(req.specifier)
    block = re.search(r"no matching distributions available for your environment:\n((?:[ \t]+\S+\n?)+)", output)
    if block:
        for line in block[1].split():
            name = canonicalize_name(line.strip())
            found.setdefault(name, []).extend(depends.get(name, []))
    return {k: list(dict.fromkeys(v)) for k, v in found.items()}


def shown(output: bytes) -> bytes:
    """What the build log shows of the host's pip: its warnings and errors and their
    explanation (which package blocks), not its progress."""
    kept, keep = [], False
    for line in output.decode(errors="replace").splitlines():
        if line.startswith(("ERROR:", "WARNING:")):
            keep = True
        elif line and not line[0].isspace() and _PIP_NOISE.match(line):
            keep = False
        if keep and line.strip() and not _PIP_NOISE.match(line):
            kept.append(line)
    return "".join(s + "\n" for s in kept).encode()


# --- the builds of one `pip install` -----------------------------------------------------------------

@dataclass
class Built:
    name: str
    version: str
    path: Path  # the checked wheel, in the host-private find-links directory
    seconds: float


@dataclass
class Builds:
    """The source builds of one `pip install`: wheels made in the sandbox, checked, in `links`."""

    sandbox: Sandbox
    links: Path  # host-private directory (the host pip's --find-links)
    python: str  # the guest's version, "3.12.0"
    markers: dict[str, str]  # the guest's PEP 508 environment
    options: list[str]  # the request's host-pip options (index settings among them)
    log: list[str] = field(default_factory=list)
    failure: str | None = None  # why the last thing to build could not be built
    blocked: str | None = None  # the canonical name of what `failure` is about, when it is a package
    built: dict[str, Built] = field(default_factory=dict)  # by canonical name
    tried: set[str] = field(default_factory=set)
    _session: Any = None

    def find_links(self) -> list[str]:
        return ["--find-links", str(self.links)] if self.built else []

    # -- local projects (pip install ., -e DIR, setup.py install, dist/x.tar.gz) --

    def local(self, guest: str, editable: bool = False) -> Path:
        """Build the project or sdist at `guest` (a path of the image); the checked wheel's path."""
        self.links.mkdir(exist_ok=True)
        if editable:
            self.log.append(f"installing {guest} as a regular (non-editable) install: the image holds a copy "
                            "of the package, built from its source")
        self.log.append(f"building {guest} from source in the sandbox (pure Python: no compiler in WebAssembly)")
        try:
            built = self._build(guest, None, None, None)
        except SourceRefused as e:
            raise SourceRefused(f"building it from source in the sandbox failed: {e}") from None
        return built.path

    def git(self, source: GitSource, editable: bool = False) -> Path:
        """Fetch a git+ URL's files on the host (gitsource.py: nothing checked out, nothing run)
        and build them in the sandbox as an sdist; the checked wheel's path."""
        self.links.mkdir(exist_ok=True)
        if editable:
            self.log.append(f"installing {source} as a regular (non-editable) install: the image holds a copy "
                            "of the package, built from its source")
        fetched = gitsource.fetch(source, self.links.parent / "git")
        self.log.append(f"fetched {source.url} at commit {fetched.commit} ({len(fetched.tree)} bytes of files); "
                        "building it from source in the sandbox (pure Python: no compiler in WebAssembly)")
        try:
            return self._build(None, fetched.tree, source.name, None, archive="source.tar").path
        except SourceRefused as e:
            raise SourceRefused(f"building it from source in the sandbox failed: {e}") from None

    # -- what the host's pip could not find --

    def after_failure(self, output: bytes) -> bool:
        """Build what made the host's pip fail; True if something new was built (retry)."""
        text = output.decode(errors="replace")
        wanted = {n: s for n, s in blockers(text).items() if n not in self.tried}
        if not wanted:
            return False
        pre = "--pre" in self.options
        progress = False
        for name, specifiers in wanted.items():
            self.tried.add(name)
            if len(self.built) >= MAX_BUILDS:
                self.failure = f"more than {MAX_BUILDS} packages would have to be built from source"
                return False
            if self._session is None:
                self._session = index_session()
            files: list[IndexFile] = []
            try:
                for index in self._indexes():
                    files += index_files(self._session, index, name)
            except SourceRefused as e:
                self.failure = f"{name}: looking for its source distribution: {e}"
                return False
            candidate, has_wheel = choose_sdist(files, name, specifiers, self.python, pre)
            if has_wheel:
                continue  # not what blocks: a version conflict, which pip explains
            if candidate is None:
                self.failure = (f"{name} has no pure-Python or WASI wheel for Python {self._minor()} and no source "
                                "distribution, so it cannot run in WebAssembly; use a pure-Python alternative")
                self.blocked = name
                return False
            label = f"{self._project_name(files, name)} {candidate.version}"
            self.log.append(f"building {label} from source in the sandbox (pure Python: no compiler in WebAssembly)")
            try:
                data = fetch_sdist(self._session, candidate)
                self._build(None, data, name, str(candidate.version), archive=candidate.file.filename)
            except SourceRefused as e:
                self.failure = (f"{name} has no pure-Python or WASI wheel for Python {self._minor()}, and building "
                                f"its source ({candidate.file.filename}) in the sandbox failed: {e}")
                self.blocked = name
                return False
            progress = True
        return progress

    def _minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    @staticmethod
    def _project_name(files: list[IndexFile], name: str) -> str:
        for f in reversed(files):
            m = re.match(r"([A-Za-z0-9][A-Za-z0-9._]*?)-\d", f.filename)
            if m and canonicalize_name(m[1]) == canonicalize_name(name):
                return m[1]
        return name

    def _indexes(self) -> list[str]:
        urls = [self.options[i + 1] for i, o in enumerate(self.options[:-1]) if o == "--index-url"]
        if not urls:
            from pip._internal.models.index import PyPI  # the host pip's default index, as it would use
            urls = [PyPI.simple_url]
        if "--no-index" in self.options:
            return []
        return urls + [self.options[i + 1] for i, o in enumerate(self.options[:-1]) if o == "--extra-index-url"]

    # -- one build in the sandbox --

    def _build(self, guest: str | None, sdist: bytes | None, name: str | None, version: str | None,
               archive: str = "") -> Built:
        start = time.monotonic()
        root = self.sandbox.root
        made: list[str] = []  # top-level directories of the rootfs made for this build
        try:
            work = _fresh(root, made, ".boxer-sdist-")
            _mkdir(root, work, "tmp")
            source = guest
            if sdist is not None:
                suffix = ".zip" if archive.lower().endswith(".zip") else ".tar.gz" if archive.lower().endswith(
                    (".tar.gz", ".tgz")) else ".tar"
                source = f"/{work}/source{suffix}"
                _write_new(root, work, "source" + suffix, sdist)
            job: dict[str, Any] = {"source": source, "envs": []}
            _write_new(root, work, "driver.py", DRIVER.encode())
            _write_new(root, work, "job.json", json.dumps(job).encode())
            what = archive or guest or ""
            if self._guest(work, "prepare", what, allowed=(0, 3)) == 3:
                # a CPython before 3.11 has no tomllib: pyproject.toml is read with tomli, from the index
                job["envs"] += _provide(root, made, ["tomli"], what, self.markers, self._minor(), self.options)
                _rewrite(root, work, "job.json", json.dumps(job).encode())
                self._guest(work, "prepare", what)
            prep = _read_json(root, work, "prepare.json", what)
            requires = prep.get("requires") if isinstance(prep, dict) else None
            if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
                raise SourceRefused("its build-system requires is not a list of strings")
            native = native_backend(requires)
            if native:
                raise SourceRefused(f"it builds with {native}, which always compiles native code "
                                    "(no compiler in WebAssembly)")
            job["envs"] += _provide(self.sandbox.root, made, requires, what, self.markers, self._minor(),
                                    self.options)
            mode = "build-checked"
            for _ in range(3):
                _rewrite(root, work, "job.json", json.dumps(job).encode())
                code = self._guest(work, mode, what, allowed=(0, 3))
                if code == 0:
                    break
                need = _read_json(root, work, "need.json", what)
                more = need.get("requires") if isinstance(need, dict) else None
                if not isinstance(more, list) or not all(isinstance(r, str) for r in more):
                    raise SourceRefused("its build backend asked for requirements that are not strings")
                job["envs"] += _provide(self.sandbox.root, made, more, what, self.markers, self._minor(), self.options)
                mode = "build"
            else:
                raise SourceRefused("its build backend kept asking for more requirements")
            result = _read_json(root, work, "result.json", what)
            wheel = result.get("wheel") if isinstance(result, dict) else None
            if not isinstance(wheel, str) or not re.fullmatch(r"[A-Za-z0-9._+-]+\.whl", wheel):
                raise SourceRefused("the build backend named no wheel")
            data = _read_guest_file(root, [work, "out", "wheel", wheel], MAX_WHEEL, "the wheel")
            checked = read_back(data, name, version)
            self.links.mkdir(exist_ok=True)
            path = self.links / checked.filename
            path.write_bytes(checked.data)
            built = Built(checked.name, checked.version, path, time.monotonic() - start)
            self.built[canonicalize_name(checked.name)] = built
            self.log.append(f"built {checked.filename} in the sandbox in {built.seconds:.1f}s"
                            + (f" ({checked.note})" if checked.note else ""))
            return built
        except OSError as e:  # the guest replaced a directory of the build by a link or a file
            raise SourceRefused(f"a directory of the build was changed by the guest ({e.strerror})") from None
        finally:
            _remove(root, made)

    def _guest(self, work: str, mode: str, what: str, allowed: tuple[int, ...] = (0,)) -> int:
        env = {**self.sandbox.env, **_PURE_SWITCHES, "TMPDIR": f"/{work}/tmp"}
        try:
            ran = self.sandbox.run(self.sandbox.root, ["python3", f"/{work}/driver.py", mode, f"/{work}"], env,
                                   "/", b"")
        except BoxerError as e:
            raise SourceRefused(f"the image's Python cannot run: {e}") from None
        code = ran.exit_code
        if code in allowed and not ran.trap:
            return int(code)
        lines = [x for x in (ran.stderr + ran.stdout).decode(errors="replace").splitlines() if x.strip()]
        tail = "\n".join("    | " + x for x in lines[-15:])
        if tail:
            self.log.append(f"the build of {what} in the sandbox said (last lines):\n{tail}")
        # the last "error:" line (setuptools'), or "Error:" (psycopg2's "pg_config executable not
        # found", which more lines follow), else the last line
        reason = ran.trap or next((x.strip() for x in reversed(lines) if x.lower().startswith("error:")), None) \
            or (lines[-1].strip() if lines else f"exit code {code}")
        raise SourceRefused(re.sub(r"^error:\s*", "", reason, flags=re.IGNORECASE)[:300])


def _provide(root: Path, made: list[str], requires: list[str], what: str, markers: dict[str, str], python: str,
             options: list[str]) -> list[str]:
    """Install build requirements (pure-Python wheels, by the host's pip) into a fresh
    directory of the rootfs; the guest path of that directory, to put on the guest's path."""
    if len(requires) > MAX_BUILD_REQUIRES:
        raise SourceRefused(f"its build names more than {MAX_BUILD_REQUIRES} requirements")
    lines = []
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            raise SourceRefused(f"its build requirement {text[:80]!r} is not a requirement") from None
        if req.url:
            raise SourceRefused(f"its build requirement {text[:80]!r} is a direct URL, which is not fetched")
        if req.marker is not None:
            try:
                if not req.marker.evaluate({**markers, "extra": ""}):
                    continue
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                raise SourceRefused(f"its build requirement {text[:80]!r} has a marker that cannot be "
                                    "evaluated") from None
            req.marker = None
        lines.append(str(req))
    if not lines:
        return []
    env_dir = _fresh(root, made, ".boxer-build-env-")
    target = os.path.join(root, env_dir)
    with tempfile.TemporaryDirectory(prefix="boxer-buildreq-") as tmp:
        code, output = _host_pip(Path(tmp), target, lines, markers, python, options)
    if code != 0:
        missing = re.findall(r"No matching distribution found for (\S+)", output)
        why = (f"{missing[0]}, of which the index has no pure-Python wheel (a native build tool cannot run "
               "in WebAssembly)"
               if missing else "requirements the build host's pip could not fetch as wheels: "
               + (shown(output.encode()).decode().strip().splitlines() or ["?"])[-1])
        raise SourceRefused(f"its build needs {why}")
    return ["/" + env_dir]


def _fresh(root: Path, made: list[str], prefix: str) -> str:
    """A new directory at the top of the rootfs (mkdir never follows a guest's link)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=root)
    made.append(os.path.basename(path))
    return made[-1]


def with_setuptools(sandbox: Sandbox, argv: list[str], cwd: str, python: str, markers: dict[str, str]) -> Any:
    """Run `python setup.py CMD` (sdist, bdist_wheel, build...) as the official images do, which
    ship setuptools and wheel: both, as pure wheels the host's pip fetches, in a fresh directory
    of the rootfs first on the guest's path for this run only, then removed."""
    made: list[str] = []
    try:
        found = _provide(sandbox.root, made, ["setuptools", "wheel"], "setup.py", markers,
                         ".".join(python.split(".")[:2]), [])
        path = ":".join([*found, *filter(None, [sandbox.env.get("PYTHONPATH")])])
        return sandbox.run(sandbox.root, argv, {**sandbox.env, "PYTHONPATH": path}, cwd, b"")
    finally:
        _remove(sandbox.root, made)


def _host_pip(work: Path, target: str, lines: list[str], markers: dict[str, str], python: str,
              options: list[str]) -> tuple[int, str]:
    """The host's pip fetching pure-Python wheels for the guest into `target` (as pip.py runs it)."""
    hostpip.prepare(work)
    (work / "requirements.txt").write_text("\n".join(lines) + "\n")
    argv = hostpip.argv(markers, python, target, *hostpip.index_options(options), "-r", str(work / "requirements.txt"))
    try:
        proc = hostpip.run(argv, work, BUILD_DEPS_TIMEOUT)
    except subprocess.TimeoutExpired:
        return 1, f"the build host's pip took more than {BUILD_DEPS_TIMEOUT}s"
    return proc.returncode, proc.stdout.decode(errors="replace")


# --- host files of the rootfs, opened without following the guest's links ---------------------------

def _mkdir(root: Path, work: str, name: str) -> None:
    fd = hostfs.open_dirs(root, [work])
    try:
        os.mkdir(name, 0o755, dir_fd=fd)
    finally:
        os.close(fd)


def _write_new(root: Path, work: str, name: str, data: bytes) -> None:
    fd = hostfs.open_dirs(root, [work])
    try:
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd)
        with os.fdopen(out, "wb") as f:
            f.write(data)
    finally:
        os.close(fd)


def _rewrite(root: Path, work: str, name: str, data: bytes) -> None:
    """Replace a file of the work directory (which the guest may have replaced by anything)."""
    fd = hostfs.open_dirs(root, [work])
    try:
        try:
            st = os.lstat(name, dir_fd=fd)
            if stat.S_ISDIR(st.st_mode):
                remove_tree(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
    finally:
        os.close(fd)
    _write_new(root, work, name, data)


def _read_guest_file(root: Path, parts: list[str], limit: int, what: str) -> bytes:
    """A file the guest made: a regular file reached without following any link, bounded."""
    try:
        fd = hostfs.open_dirs(root, parts[:-1])
    except OSError:
        raise SourceRefused(f"{what} is missing or not in a directory of its own") from None
    try:
        return hostfs.read_file(parts[-1], limit, dir_fd=fd)
    except hostfs.Unreadable as e:
        raise SourceRefused(f"{what} {e if e.opened else 'is missing or is a link'}") from None
    finally:
        os.close(fd)


def _read_json(root: Path, work: str, name: str, what: str) -> Any:
    data = _read_guest_file(root, [work, "out", name], MAX_RESULT, f"the build's {name}")
    try:
        return json.loads(data)
    except ValueError:
        raise SourceRefused(f"the build's {name} is not JSON") from None


def _remove(root: Path, names: list[str]) -> None:
    fd = os.open(root, DIR_FLAGS)
    try:
        for name in names:
            remove_tree(name, dir_fd=fd)
    finally:
        os.close(fd)


