"""`apt-get`/`apt`/`apk` in RUN: the OS packages a WebAssembly build can do without.

Real Dockerfiles install a compiler and headers so that pip can compile C (`apk add --virtual
.build-deps gcc musl-dev python3-dev`, `apt-get install -y build-essential libpq-dev`). A
WebAssembly build never compiles natively: pip takes pure-Python or WASI wheels, or builds
pure Python in the sandbox. So packages that only serve compiling, and the C libraries whose
only users here are Python packages boxer provides compiled in (libxslt for lxml...), change
nothing: such a line is skipped with one warning. Any other package (curl, nodejs, libpq5...)
is something the image would use at run time, which a WebAssembly image cannot have: refused,
naming it. The tables are closed and reviewed; `RULES_KEY` is part of every RUN cache key, so
a change to them re-runs the steps they decide.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

# Packages that only serve compiling native code: compilers, build tools, headers (Debian's
# and Alpine's names).
BUILD_ONLY = frozenset({
    "build-essential", "build-base", "alpine-sdk", "gcc", "g++", "cpp", "cc", "c++", "clang", "llvm", "lld",
    "binutils", "make", "cmake", "ninja", "ninja-build", "meson", "autoconf", "automake", "libtool", "m4",
    "bison", "flex", "pkg-config", "pkgconf", "pkgconfig", "swig", "ccache", "gfortran", "fortify-headers",
    "linux-headers", "linux-libc-dev", "musl-dev", "libc-dev", "libc6-dev", "dpkg-dev", "patch",
    "cargo", "rust", "rustc",
})
# Versioned names of the same (gcc-12, g++-12, clang-19, python3.11-dev...), and headers:
# Debian's and Alpine's `*-dev`, Fedora's `*-devel` (which Dockerfiles copy between distributions).
BUILD_ONLY_PATTERNS = (r"(gcc|g\+\+|cpp|clang|llvm|lld|gfortran)-[0-9.]+", r"linux-headers-.+", r".+-dev", r".+-devel")
# C libraries whose only users in a Python image are packages boxer provides compiled in (the
# scientific runtime's lxml, PyYAML, numpy, scipy, scikit-learn, matplotlib, pillow), which a
# stage that installs them is built on: name -> those packages.
COMPILED_IN_LIBRARIES = {
    **dict.fromkeys(["libxml2", "libxslt", "libxslt1.1", "libexslt0"], "lxml"),
    **dict.fromkeys(["yaml", "libyaml", "libyaml-0-2"], "PyYAML"),
    **dict.fromkeys(["openblas", "libopenblas0", "libopenblas0-pthread", "libopenblas-base", "libblas3", "lapack",
                     "liblapack3", "libgfortran", "libgfortran5"], "numpy, scipy"),
    **dict.fromkeys(["libgomp", "libgomp1"], "scikit-learn"),
    **dict.fromkeys(["freetype", "libfreetype6", "libpng", "libpng16-16"], "matplotlib, pillow"),
    **dict.fromkeys(["jpeg", "libjpeg-turbo", "libjpeg62-turbo", "zlib", "zlib1g"], "pillow"),
}
RULES_KEY = hashlib.sha256(repr((sorted(BUILD_ONLY), BUILD_ONLY_PATTERNS, sorted(COMPILED_IN_LIBRARIES.items())))
                           .encode()).hexdigest()

MANAGERS = ("apt-get", "apt", "apk")
# Options that take the next word as their value (when not written --option=value).
_VALUED = {"apt-get": {"-o", "-c", "-t", "-a", "--option", "--config-file", "--target-release",
                       "--default-release", "--host-architecture"},
           "apk": {"-X", "-t", "-p", "--repository", "--virtual", "--root", "--arch", "--cache-dir", "--keys-dir",
                   "--repositories-file", "--timeout", "--cache-max-age"}}
_INSTALL = {"apt-get": {"install"}, "apk": {"add"}}
# What leaves an image without OS packages as it is: refreshing an index, cleaning a cache,
# upgrading or removing packages (every package a build-only line named was never installed).
_NOTHING = {"apt-get": {"update", "clean", "autoclean", "autoremove", "remove", "purge", "upgrade",
                        "dist-upgrade", "full-upgrade"},
            "apk": {"update", "del", "upgrade"}}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")


@dataclass
class Decision:
    """What one apt-get/apk command comes to: `refused` names the packages the image would need
    at run time (empty: the command may go on); `skipped` what it leaves out, with `note` why."""

    subcommand: str
    refused: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    note: str = ""


def why_skipped(package: str) -> str | None:
    """Why `package` (a name, no version) changes nothing in a WebAssembly image, or None."""
    if package in BUILD_ONLY or any(re.fullmatch(p, package) for p in BUILD_ONLY_PATTERNS):
        return "only for compiling native code, which a WebAssembly build never does"
    if package in COMPILED_IN_LIBRARIES:
        return f"a C library of {COMPILED_IN_LIBRARIES[package]}, which boxer provides compiled in"
    return None


def _package(word: str) -> str:
    """The package a word names: `gcc=4:12.2.0-3`, `libxml2-dev:amd64`, `lxml>3`, `py3-pip@edge` -> the name."""
    found = _NAME.match(word)
    return found.group(0) if found else word


def decide(argv: list[str]) -> Decision | None:
    """The decision for `apt-get|apt|apk ...`, or None for a subcommand this module does not
    cover (the caller refuses it as any native tool)."""
    tool = "apk" if argv[0].rsplit("/", 1)[-1] == "apk" else "apt-get"
    words: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg in _VALUED[tool]:
            next(args, None)
        elif not arg.startswith("-"):
            words.append(arg)
    if not words:
        return None
    sub, packages = words[0], [_package(w) for w in words[1:]]
    if sub in _NOTHING[tool]:
        return Decision(sub)
    if sub not in _INSTALL[tool]:
        return None
    reasons = {p: why_skipped(p) for p in dict.fromkeys(packages)}
    refused = [p for p, why in reasons.items() if why is None]
    skipped = [p for p, why in reasons.items() if why is not None]
    by_reason: dict[str, list[str]] = {}
    for p in skipped:
        by_reason.setdefault(reasons[p] or "", []).append(p)
    note = "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())
    return Decision(sub, refused, skipped, note)
