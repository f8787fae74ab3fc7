"""A package index's simple API, read by the host for source builds (sdist.py): which sdist to
build, and its bytes (bounded, hash checked). Nothing here runs or unpacks what it fetches."""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from packaging import tags
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from boxer_py.builder.wheelcheck import SourceRefused

MAX_SDIST = 128 << 20  # bytes of one downloaded sdist
MAX_INDEX_PAGE = 16 << 20  # bytes of one index page (JSON or HTML)
INDEX_TIMEOUT = 60  # seconds for one request to the index


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None
    requires_python: str | None
    yanked: bool
    size: int | None


class _Links(HTMLParser):
    """The anchors of a PEP 503 page."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and len(self.anchors) < 100_000:
            self.anchors.append(dict(attrs))


def index_session():
    import requests  # loaded only when a source build is needed
    session = requests.Session()
    session.trust_env = False  # no ~/.netrc, no host configuration; proxies and CAs as pip gets them
    proxies = {k: os.environ[v] for k, v in (("http", "http_proxy"), ("https", "https_proxy"),
                                             ("http", "HTTP_PROXY"), ("https", "HTTPS_PROXY")) if v in os.environ}
    session.proxies.update(proxies)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True
    session.headers["User-Agent"] = "boxer-py (source build for a WebAssembly image)"
    return session


def _get(session, url: str, limit: int, accept: str = "*/*") -> tuple[bytes, str]:
    """GET `url`, at most `limit` bytes; (body, content type)."""
    import requests
    try:
        with session.get(url, headers={"Accept": accept}, timeout=INDEX_TIMEOUT, stream=True) as r:
            if r.status_code == 404:
                return b"", ""
            r.raise_for_status()
            chunks, size = [], 0
            for chunk in r.iter_content(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise SourceRefused(f"{_short(url)} is larger than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks), r.headers.get("Content-Type", "")
    except requests.RequestException as e:
        raise SourceRefused(f"cannot fetch {_short(url)}: {type(e).__name__}") from None


def _short(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"[:200]


def index_files(session, index: str, name: str) -> list[IndexFile]:
    """The files an index lists for project `name` (PEP 691 JSON, else PEP 503 HTML)."""
    url = index.rstrip("/") + "/" + canonicalize_name(name) + "/"
    body, kind = _get(session, url, MAX_INDEX_PAGE,
                      "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
    files: list[IndexFile] = []
    if not body:
        return files
    if "json" in kind:
        try:
            data = json.loads(body)
            for f in data.get("files", [])[:100_000]:
                sha = (f.get("hashes") or {}).get("sha256")
                files.append(IndexFile(str(f["filename"]), urljoin(url, str(f["url"])), sha, f.get("requires-python"),
                                   bool(f.get("yanked")), f.get("size") if isinstance(f.get("size"), int) else None))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise SourceRefused(f"the index page {_short(url)} is not a valid simple-API page") from None
        return files
    parser = _Links()
    parser.feed(body.decode("utf-8", errors="replace"))
    for a in parser.anchors:
        href = a.get("href")
        if not href:
            continue
        full = urljoin(url, href)
        path, _, fragment = full.partition("#")
        filename = posixpath.basename(urlsplit(path).path)
        sha = fragment[len("sha256="):] if fragment.startswith("sha256=") else None
        files.append(IndexFile(filename, path, sha, a.get("data-requires-python"), "data-yanked" in a, None))
    return files


def _guest_tags(python: str) -> set[tags.Tag]:
    major, minor = (int(x) for x in python.split(".")[:2])
    abi = f"cp{major}{minor}"
    return (set(tags.cpython_tags((major, minor), abis=[abi, "abi3", "none"], platforms=["wasi_0_0_0_wasm32"]))
            | set(tags.compatible_tags((major, minor), abi, ["wasi_0_0_0_wasm32", "any"])))


@dataclass(frozen=True)
class Candidate:
    name: str
    version: Version
    file: IndexFile


def choose_sdist(files: list[IndexFile], name: str, specifiers: list[SpecifierSet], python: str,
                 pre: bool) -> tuple[Candidate | None, bool]:
    """The newest sdist of `name` that one of `specifiers` allows and the guest's Python may
    install; and whether that version also has a wheel the guest can use (then it is not what
    blocks the install)."""
    want = canonicalize_name(name)
    guest = Version(python)
    usable = _guest_tags(python)
    best: Candidate | None = None
    wheels: dict[Version, bool] = {}
    for f in files:
        try:
            if f.filename.endswith(".whl"):
                wname, wversion, _, wtags = parse_wheel_filename(f.filename)
                if wname == want and wtags & usable:
                    wheels[wversion] = True
                continue
            sname, version = parse_sdist_filename(f.filename)
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if sname != want or f.yanked:
            continue
        if f.requires_python:
            try:
                if guest not in SpecifierSet(f.requires_python):
                    continue
            except ValueError:
                continue
        if not any(s.contains(version, prereleases=pre or None) for s in specifiers or [SpecifierSet()]):
            continue
        if best is None or version > best.version or (version == best.version and f.filename.endswith(".tar.gz")):
            best = Candidate(name, version, f)
    return best, best is not None and wheels.get(best.version, False)


def fetch_sdist(session, candidate: Candidate) -> bytes:
    """The sdist's bytes, bounded, checked against the index's size and sha256."""
    f = candidate.file
    if urlsplit(f.url).scheme not in ("http", "https"):
        raise SourceRefused(f"{f.filename}: the index gave a non-HTTP address")
    if f.size is not None and f.size > MAX_SDIST:
        raise SourceRefused(f"{f.filename} is larger than {MAX_SDIST} bytes")
    data, _ = _get(session, f.url, MAX_SDIST)
    if not data:
        raise SourceRefused(f"{f.filename}: not found on the index")
    if f.sha256 is not None and hashlib.sha256(data).hexdigest() != f.sha256.lower():
        raise SourceRefused(f"{f.filename}: its sha256 differs from the index's")
    return data
