"""Optional extras whose requirements cannot run in WebAssembly, left out with a warning.

`pip install "uvicorn[standard]"` asks for uvicorn plus its `standard` extra: httptools and
uvloop (C, no WASI wheel, no pure fallback), watchfiles (Rust), and pure packages. uvicorn
itself works without them, as it does wherever they are missing. When the host's pip fails on
a package that has no pure-Python or WASI wheel and cannot be built in the sandbox, and that
package enters the resolution through an extra the Dockerfile's requirements name (directly,
or through an extra that extra names: `fastapi[standard]` -> `uvicorn[standard]`), the line
`pkg[extra]` is replaced by `pkg` and the extra's other requirements, and pip runs again; the
caller prints a warning naming the package, the extra and why. A package that is still needed
after that (a plain requirement, or another package's dependency) fails as before, naming it.

The extra's requirements come from the metadata of the release the host's pip picks for the
line's name and version specifiers, read from pip's --report of a --dry-run --no-deps
install: the host's pip, isolated and wheels only (hostpip.py), so nothing of the package
runs. Extras that packages ask for in their own dependencies are not left out: the package
that asked for them needs them.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from boxer_py.builder import hostpip

MAX_DEPTH = 3  # extras that name extras, followed this deep
MAX_LEFT_OUT = 8  # packages one `pip install` may leave out
MAX_LOOKUPS = 24  # packages whose metadata one `pip install` may look up (each is a run of the host's pip)
METADATA_TIMEOUT = 5 * 60  # seconds for the host's pip to find one package's metadata
MAX_REPORT = 16 << 20  # bytes of pip's report


@dataclass
class Guest:
    """What the host's pip needs to look a package up for the guest, and what one `pip install`
    has done: its lookups (extras that name extras, in a cycle or by hundreds, cost at most
    MAX_LOOKUPS runs of the host's pip) and the lines its extras added."""

    markers: dict[str, str]  # the guest's PEP 508 environment
    python: str  # "3.12"
    options: list[str]  # the request's validated host-pip options (its index settings are used)
    lookups: int = 0
    optional: dict[str, str] = field(default_factory=dict)  # lines an extra added: that extra, as pkg[extra]


def leave_out(lines: list[str], blocked: str, guest: Guest) -> tuple[list[str], str] | None:
    """`lines` (re-serialised requirements) with `blocked` (a canonical name) taken out of the
    extra that brings it in, and that extra as `pkg[extra]`; None when no extra of these lines
    (followed MAX_DEPTH deep) asks for it. A line an earlier call added for an extra is taken
    out as it is (uvicorn[standard] asks for httptools, then uvloop)."""
    for i, line in enumerate(lines):
        req = _parse(line)
        if line in guest.optional and req is not None and canonicalize_name(req.name) == blocked:
            return lines[:i] + lines[i + 1:], guest.optional[line]
    return _expand(lines, blocked, guest, MAX_DEPTH)


def _expand(lines: list[str], blocked: str, guest: Guest, depth: int) -> tuple[list[str], str] | None:
    if depth <= 0:
        return None
    for i, line in enumerate(lines):
        req = _parse(line)
        if req is None or not req.extras:
            continue
        added = extra_requirements(req, guest)
        if added is None:
            continue
        names = [canonicalize_name(r.name) for r in map(_parse, added) if r is not None]
        via = f"{req.name}[{','.join(sorted(req.extras))}]"
        if blocked in names:
            added, found = [a for a, n in zip(added, names, strict=True) if n != blocked], via
        else:
            deeper = _expand(added, blocked, guest, depth - 1)
            if deeper is None:
                continue
            added, found = deeper
        for a in added:  # what this extra added (a deeper one's lines are already its own)
            guest.optional.setdefault(a, via)
        return lines[:i] + [_without_extras(req), *added] + lines[i + 1:], found
    return None


def extra_requirements(req: Requirement, guest: Guest) -> list[str] | None:
    """What `req`'s extras add to it for the guest (markers evaluated, then removed), from the
    metadata of the release the host's pip picks for `req` without its extras; None if one of
    them is a direct URL (never written into a requirements file of ours: the extra stays)."""
    metadata = _metadata(_without_extras(req), guest)
    added = []
    for text in metadata.get("requires_dist") or []:
        dep = _parse(text) if isinstance(text, str) else None
        if dep is None or dep.marker is None:
            continue
        try:
            if dep.marker.evaluate({**guest.markers, "extra": ""}):
                continue  # not an extra's: the package always needs it
            if not any(dep.marker.evaluate({**guest.markers, "extra": e}) for e in req.extras):
                continue
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            continue
        if dep.url:
            return None
        dep.marker = None
        added.append(str(dep))
    return added


def _metadata(line: str, guest: Guest) -> dict:
    if guest.lookups >= MAX_LOOKUPS:
        return {}
    guest.lookups += 1
    with tempfile.TemporaryDirectory(prefix="boxer-extras-") as tmp:
        work = Path(tmp)
        hostpip.prepare(work)
        report = work / "report.json"
        argv = hostpip.argv(guest.markers, guest.python, str(work / "target"), "--dry-run", "--no-deps",
                            "--ignore-installed", "--quiet", "--report", str(report),
                            *hostpip.index_options(guest.options), line)
        try:
            proc = hostpip.run(argv, work, METADATA_TIMEOUT)
        except subprocess.TimeoutExpired:
            return {}
        if proc.returncode != 0 or not report.is_file() or report.stat().st_size > MAX_REPORT:
            return {}
        try:
            installs = json.loads(report.read_text(encoding="utf-8")).get("install") or []
        except (ValueError, UnicodeDecodeError, AttributeError):
            return {}
    for item in installs:
        metadata = item.get("metadata") if isinstance(item, dict) else None
        if isinstance(metadata, dict):
            return metadata
    return {}


def _parse(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _without_extras(req: Requirement) -> str:
    plain = Requirement(str(req))
    plain.extras = set()
    return str(plain)
