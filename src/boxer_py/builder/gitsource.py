"""`pip install git+URL`: the build host only fetches the repository; the sandbox builds it.

pip would clone the repository and run its build backend on the host. Here the host runs git
only to download objects, never to check anything out: into a fresh bare repository in a
private temp directory, with no system, global or user configuration (so no credential helper,
no hooks path, no `url.insteadOf` of the host's), no templates, no hooks, no submodules, only
the http, https and git transports (`GIT_ALLOW_PROTOCOL`: no `file`, `ext` or `ssh`, also for
redirects), every received object checked by fsck (a tree entry `..` or `.git` is refused),
a bound on the bytes on disk and on the time. The project's files are then `git archive`d
into one tar held in memory (bounded), which the guest unpacks with tarfile's `data` filter
(sdistdriver: no absolute name, no `..`, no link out of the tree) and builds as it builds an
sdist. So nothing of the repository is ever a file of the host, and none of it runs there.

A URL names the commit (`@<40 hex digits>`), or a branch or tag (`@v1.0`), or nothing (the
remote's HEAD); `resolve` turns a name into its commit for the RUN cache key (assemble.py).
"""
from __future__ import annotations

import os
import posixpath
import re
import resource
import selectors
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from boxer_py.builder.hostpip import NETWORK_VARIABLES
from boxer_py.builder.wheelcheck import SourceRefused
from boxer_py.errors import BoxerError
from boxer_py.image import hostfs
from boxer_py.image.rootfs import resolve as resolve_in

MAX_FETCH = 512 << 20  # bytes of the fetched repository on disk
MAX_TREE = 256 << 20  # bytes of the archived project tree
GIT_TIMEOUT = 10 * 60  # seconds for one fetch
LOOKUP_TIMEOUT = 60  # seconds for asking a remote what a branch points at (the cache key)
SCHEMES = ("https", "http", "git")

_COMMIT = re.compile(r"[0-9a-f]{40}")
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]{0,200}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NAMED = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[A-Za-z0-9_.,\s-]*\])?\s*@\s*(\S+)")
# Configuration given on every git command line; the host's own is not read at all (_env).
_CONFIG = ("core.hooksPath=/dev/null", "core.fsmonitor=false", "protocol.file.allow=never",
           "protocol.ext.allow=never", "protocol.allow=never", "protocol.https.allow=always",
           "protocol.http.allow=always", "protocol.git.allow=always", "submodule.recurse=false",
           "fetch.recurseSubmodules=false", "transfer.fsckObjects=true", "credential.helper=",
           "http.lowSpeedLimit=1000", "http.lowSpeedTime=60", "core.askPass=", "gc.auto=0",
           "maintenance.auto=false", "init.templateDir=",
           "transfer.unpackLimit=1", "fetch.unpackLimit=1", "core.bigFileThreshold=16m")


@dataclass(frozen=True)
class GitSource:
    """One `git+` requirement as pip spells it: `[name[extras] @ ]git+URL[@ref][#egg=..&subdirectory=..]`."""

    text: str  # as written, for messages
    url: str  # the transport URL (no `git+`, no `@ref`, no fragment)
    ref: str | None
    name: str | None
    extras: str
    subdirectory: str | None

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> GitSource | None:
    """The git source `text` names, or None if it is not a `git+` URL. Raises SourceRefused for a
    `git+` URL that must not be fetched (file:, ssh, a local path, ext::, odd characters)."""
    text = text.strip()
    name, extras, url = None, "", text
    named = _NAMED.fullmatch(text)
    if named and named[3].startswith("git+"):
        name, extras, url = named[1], named[2] or "", named[3]
    if not url.startswith("git+"):
        return None
    url = url[4:]
    if any(ord(c) < 33 or c in "\\'\"`$" for c in url) or len(url) > 2000:
        raise SourceRefused("the URL has characters a git URL does not")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.netloc or parts.netloc.startswith("-") or "::" in url:
        raise SourceRefused("only git+https://, git+http:// and git+git:// are fetched (a file:, ssh or local "
                            "repository would read the build host, with its keys)")
    path, ref = parts.path, None
    if "@" in path:
        path, ref = path.rsplit("@", 1)
        if not _REF.fullmatch(ref) or ".." in ref or ref.endswith((".lock", "/", ".")):
            raise SourceRefused(f"{ref[:80]!r} is not a branch, tag or commit")
    subdirectory = None
    for item in filter(None, parts.fragment.split("&")):
        key, _, value = item.partition("=")
        if key == "egg":
            if not _NAME.fullmatch(value):
                raise SourceRefused(f"#egg={value[:80]} is not a project name")
            name = name or value
        elif key == "subdirectory":
            if value.startswith("/") or any(p in ("", ".", "..") for p in value.split("/")) \
                    or not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
                raise SourceRefused(f"#subdirectory={value[:80]} is not a directory inside the repository")
            subdirectory = value
    transport = parts._replace(path=path, fragment="", query=parts.query).geturl()
    return GitSource(text, transport, ref, name, extras, subdirectory)


def _env(home: Path) -> dict[str, str]:
    """What git gets of the host's environment: only what reaching a server needs."""
    env = {"PATH": os.defpath, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "LC_ALL": "C",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
           "GIT_ALLOW_PROTOCOL": "https:http:git", "GIT_PROTOCOL_FROM_USER": "0", "GIT_ASKPASS": "/bin/false",
           "SSH_ASKPASS": "/bin/false", "GIT_NO_REPLACE_OBJECTS": "1"}
    env.update({k: v for k, v in os.environ.items() if k in NETWORK_VARIABLES})
    return env


def _git(*args: str) -> list[str]:
    return ["git", *(x for c in _CONFIG for x in ("-c", c)), *args]


def _limit_files() -> None:  # in the child, before exec: no file git writes may exceed the bound
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FETCH, MAX_FETCH))


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):  # git's own files (named by hashes), not the repository's tree
        for f in files:
            try:
                total += os.lstat(os.path.join(folder, f)).st_size
            except OSError:
                pass
    return total


def _run_bounded(argv: list[str], home: Path, cwd: Path, what: str, watch: Path | None = None,
                 timeout: float | None = None) -> bytes:
    """Run git, ended when it takes longer than `timeout` (GIT_TIMEOUT) or `watch` grows past
    MAX_FETCH; its stdout (at most MAX_TREE bytes), or SourceRefused with git's last error line."""
    timeout = timeout or GIT_TIMEOUT
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=_env(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=_limit_files)
    except FileNotFoundError:
        raise SourceRefused("git is not installed on the build host (it only fetches the repository)") from None
    deadline, too_big = time.monotonic() + timeout, False
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    try:
        sel = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        sizes = {out: 0, err: 0}
        while sel.get_map():
            if time.monotonic() > deadline:
                proc.kill()
                raise SourceRefused(f"{what} took more than {timeout:.0f}s")
            for key, _ in sel.select(0.2):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                sizes[key.data] += len(chunk)
                if sizes[key.data] > MAX_TREE:
                    too_big = True
                    break
                key.data.write(chunk)
            if too_big or (watch is not None and _size(watch) > MAX_FETCH):
                too_big = True
                proc.kill()
                break
        code = proc.wait(max(1.0, deadline - time.monotonic()))
        if too_big or code == -25 or code == 128 + 25:  # SIGXFSZ: a file over the bound
            raise SourceRefused(f"{what}: the repository is larger than {MAX_FETCH if watch else MAX_TREE} bytes")
        err.seek(0)
        lines = [x.strip() for x in err.read(1 << 16).decode(errors="replace").splitlines() if x.strip()]
        if code != 0:
            last = next((x for x in reversed(lines) if x.startswith(("fatal:", "error:"))), lines[-1] if lines else "")
            raise SourceRefused(f"{what} failed: {last[:300] or f'git exit code {code}'}")
        out.seek(0)
        return out.read()
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SourceRefused(f"{what} took more than {timeout:.0f}s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()


@dataclass(frozen=True)
class Fetched:
    commit: str
    tree: bytes  # a tar of the project's files under `src/` (the subdirectory's, if one is named)


def fetch(source: GitSource, work: Path) -> Fetched:
    """Download `source`'s commit into a fresh bare repository under `work` (a private host
    directory) and archive its tree; nothing is checked out."""
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="git-", dir=work))
    try:
        home, repo = tmp / "home", tmp / "repo.git"
        home.mkdir()
        what = f"fetching {source.url}"
        _run_bounded(_git("init", "--bare", "--quiet", "--template=", str(repo)), home, tmp, what)
        want = source.ref or "HEAD"
        _run_bounded(_git("--git-dir", str(repo), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                          "--no-recurse-submodules", "--depth=1", "--", source.url, f"+{want}:refs/boxer/want"),
                     home, tmp, what, watch=repo)
        commit = _run_bounded(_git("--git-dir", str(repo), "rev-parse", "--verify", "refs/boxer/want^{commit}"),
                              home, tmp, what).decode().strip()
        if not _COMMIT.fullmatch(commit):
            raise SourceRefused(f"{what}: git named no commit")
        tree = commit + (f":{source.subdirectory}" if source.subdirectory else "")
        data = _run_bounded(_git("--git-dir", str(repo), "archive", "--format=tar", "--prefix=src/", "--", tree),
                            home, tmp, f"reading the files of {source.url} at {commit}")
        return Fetched(commit, data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # git's own files: a bare repository, nothing checked out


def resolve(source: GitSource) -> str:
    """The commit `source` names: its own when it names one, else what the remote's branch, tag
    or HEAD points at now (for the RUN cache key). Raises SourceRefused when it cannot be asked."""
    if source.ref and _COMMIT.fullmatch(source.ref):
        return source.ref
    with tempfile.TemporaryDirectory(prefix="boxer-git-") as tmp:
        home = Path(tmp)
        want = source.ref or "HEAD"
        out = _run_bounded(_git("ls-remote", "--", source.url, want), home, home, f"asking {source.url}",
                           timeout=LOOKUP_TIMEOUT)
    refs = {ref: sha for sha, _, ref in (line.partition("\t") for line in out.decode(errors="replace").splitlines())}
    for name in (f"refs/tags/{want}^{{}}", f"refs/heads/{want}", f"refs/tags/{want}", want):
        if name in refs and _COMMIT.fullmatch(refs[name]):
            return refs[name]
    raise SourceRefused(f"{source.url} has no branch or tag {want}")


_IN_TEXT = re.compile(r"git\+[A-Za-z]+://[^\s'\"]+")
_REQUIREMENTS = re.compile(r"(?:^|\s)(?:-r|--requirement)(?:\s+|=)?([^\s;&|'\"]+)")
MAX_PINS = 32  # git URLs one RUN's cache key looks up


def pins(text: str, workdir: str, root: Path) -> str:
    """What the `git+` URLs of a RUN point at now, for its cache key: those of its text and of
    the requirements files it names with -r (read from the image, bounded). A branch moved
    since the last build means a new key, so the RUN runs again; a URL that names its commit
    needs no lookup."""
    urls = _IN_TEXT.findall(text)
    for m in _REQUIREMENTS.finditer(text):
        try:
            data = hostfs.read_file(resolve_in(root, posixpath.normpath(posixpath.join(workdir, m[1]))), 1 << 20)
        except (hostfs.Unreadable, BoxerError):  # missing, odd or a link loop: the RUN itself says so
            continue
        urls += _IN_TEXT.findall(data.decode(errors="replace"))
    found = []
    for url in list(dict.fromkeys(urls))[:MAX_PINS]:
        try:
            source = parse(url)
            if source is not None:
                found.append(f"{source.url}@{resolve(source)}")
        except SourceRefused as e:  # the RUN itself refuses or fails on it; the key only needs to differ
            found.append(f"{url}: {e}")
    return "".join(f"\ngit {x}" for x in found)
