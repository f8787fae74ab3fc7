"""Dockerfile text -> typed instructions, each carrying its line number.

dockerfile-parse does the lexing (continuations, comments); this module validates each
instruction's arguments and flags, so every later stage can trust what it receives.
"""
from __future__ import annotations

import contextvars
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser

from boxer_py.dockerfile import instructions as ins
from boxer_py.errors import DockerfileError


@dataclass(frozen=True)
class Dockerfile:
    path: str
    instructions: tuple[ins.Instruction, ...]


def parse_file(path: str | Path) -> Dockerfile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DockerfileError("no such Dockerfile; pass its path with -f", str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DockerfileError(f"cannot read the Dockerfile: {e}", str(path)) from None
    return parse(text, str(path))


_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
# Parser directives: comment lines at the very top, `# name=value` (BuildKit reads syntax, escape, check).
_DIRECTIVE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(.*?)\s*$")
# The escape character of the Dockerfile being parsed (`# escape=\``): what _words treats as `\`.
_ESCAPE: contextvars.ContextVar[str] = contextvars.ContextVar("escape", default="\\")


def _directives(lines: list[str]) -> dict[str, str]:
    """The parser directives, as BuildKit reads them: `# key=value` lines before anything else."""
    found: dict[str, str] = {}
    for raw in lines:
        m = _DIRECTIVE.fullmatch(raw.strip())
        if not m or m.group(1).lower() in found:
            break
        found[m.group(1).lower()] = m.group(2)
    return found


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    directives = _directives(text.splitlines())
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"invalid escape directive {escape!r}: must be ` or \\", path, 1)
    token = _ESCAPE.set(escape)
    try:
        return _parse(text, path)
    finally:
        _ESCAPE.reset(token)


def _parse(text: str, path: str) -> Dockerfile:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8")))
    lines = text.splitlines()
    result: list[ins.Instruction] = []
    skip_until = -1
    for node in parser.structure:
        keyword = node["instruction"]
        if keyword == "COMMENT" or node["startline"] <= skip_until:
            continue
        line = node["startline"] + 1
        value = node["value"].strip()
        heredoc = _HEREDOC.search(value) if keyword in ("RUN", "COPY", "ADD") else None
        if heredoc:
            if keyword != "RUN":
                raise DockerfileError(f"{keyword} with a here-document is not supported; put the file in the "
                                      "build context and COPY it", path, line)
            value, skip_until = _run_heredoc(value, heredoc, lines, node["endline"], path, line)
        build = _BUILDERS.get(keyword)
        if build is None:
            raise DockerfileError(f"unknown instruction {keyword}", path, line)
        try:
            built = build(line, value)
            result.extend(built if isinstance(built, tuple) else (built,))
        except _Invalid as e:
            raise DockerfileError(f"{keyword}: {e}", path, line) from None
    if not any(isinstance(i, ins.From) for i in result):
        raise DockerfileError("no FROM instruction; a Dockerfile starts with FROM <base>", path, 1)
    first = next(i for i in result if not isinstance(i, ins.Arg))
    if not isinstance(first, ins.From):
        raise DockerfileError("only ARG may come before the first FROM", path, first.line)
    return Dockerfile(path, tuple(result))


class _Invalid(Exception):
    pass


def _run_heredoc(value: str, heredoc: re.Match, lines: list[str], end: int, path: str,
                 line: int) -> tuple[str, int]:
    """BuildKit's `RUN <<EOF` (the body is the script) and `RUN cmd <<EOF` (the body is cmd's
    stdin, which the build's shell handles as a here-document). The body is taken from the
    raw lines, which dockerfile-parse would read as instructions. Returns the RUN's value and
    the last line index the here-document used."""
    if len(_HEREDOC.findall(value)) > 1:
        raise DockerfileError("RUN: only one here-document per RUN is supported", path, line)
    strip_tabs, delimiter = heredoc.group(1) == "-", heredoc.group(3)
    for close in range(end + 1, len(lines)):
        if (lines[close].lstrip("\t") if strip_tabs else lines[close]) == delimiter:
            break
    else:
        raise DockerfileError(f"RUN: here-document is not closed by a line {delimiter!r}", path, line)
    body = [x.lstrip("\t") if strip_tabs else x for x in lines[end + 1:close]]
    before = value[:heredoc.start()]
    if before.strip() and not before.strip().split()[-1].startswith("--"):  # RUN cmd <<EOF: stdin
        return "\n".join([value, *body, delimiter]), close
    return before + "\n".join(body) + value[heredoc.end():], close


def _words(value: str, split: bool = True) -> list[str]:
    """Split like Docker: whitespace outside quotes separates words; quotes and escapes are
    removed. A `$` that must stay literal (in '...', or written as \\$) is kept as `\\$` so
    the planner's variable expansion, which runs later, leaves it alone. With `split` false the
    value is one word (WORKDIR's), its quotes removed and its spaces kept."""
    words: list[str] = []
    word: list[str] = []
    in_word = False  # a word has begun (it may be empty so far: "" is a word)
    quote = ""
    escape = _ESCAPE.get()
    i = 0
    while i < len(value):
        c = value[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                word.append("\\$" if c == "$" else c)
        elif c == escape and i + 1 < len(value) and (not quote or value[i + 1] in '"$' + escape):
            i += 1
            in_word = True
            word.append("\\$" if value[i] == "$" else value[i])
        elif quote:
            if c == quote:
                quote = ""
            else:
                word.append(c)
        elif c.isspace() and split:
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            in_word = True
            if c in "'\"":
                quote = c
            else:
                word.append(c)
        i += 1
    if quote:
        raise _Invalid(f"cannot split arguments (no closing {quote})")
    if in_word:
        words.append("".join(word))
    return words


_BOOL = ("true", "false")


def _flags(value: str, allowed: set[str], booleans: frozenset[str] | set[str] = frozenset(),
           repeated: frozenset[str] | set[str] = frozenset()) -> tuple[dict[str, str], str]:
    """Split leading ``--name=value`` flags from the rest, refusing unknown ones, as BuildKit's
    BFlags does: a boolean flag may stand alone (`--link`) or say `=true`/`=false`; a repeated
    flag's values are kept newline-separated, in order."""
    flags: dict[str, str] = {}
    while value.startswith("--"):
        token, _, value = value.partition(" ")
        value = value.lstrip()
        name, sep, val = token[2:].partition("=")
        val = (_words(val) or [""])[0] if sep and val[:1] in "\"'" else val
        if name not in allowed | booleans | repeated:
            known = ", ".join("--" + a for a in sorted(allowed | booleans | repeated)) or "none"
            raise _Invalid(f"unknown flag --{name} (known: {known})")
        if name in booleans:
            if sep and val.lower() not in _BOOL:
                raise _Invalid(f"flag --{name} is true or false, not {val!r}")
            flags[name] = "true" if not sep else val.lower()
            continue
        if not sep or not val:
            raise _Invalid(f"flag --{name} needs a value, as --{name}=VALUE")
        flags[name] = flags[name] + "\n" + val if name in repeated and name in flags else val
    return flags, value


def _argv(value: str) -> tuple[tuple[str, ...], bool]:
    """Exec form (a JSON array of strings) or shell form (the raw text)."""
    if value.startswith("["):
        try:
            argv = json.loads(value)
        except json.JSONDecodeError:
            raise _Invalid('exec form must be a JSON array of strings, e.g. ["python", "app.py"]') from None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise _Invalid('exec form must be a JSON array of strings, e.g. ["python", "app.py"]')
        return tuple(argv), False
    if not value:
        raise _Invalid("needs a command")
    return (value,), True


def _pairs(value: str, what: str) -> tuple[tuple[str, str], ...]:
    words = _words(value)
    if not words:
        raise _Invalid(f"needs at least one {what}")
    if "=" not in words[0]:
        # Legacy form: `ENV KEY value with spaces`.
        key, _, rest = value.partition(" ")
        if not rest.strip():
            raise _Invalid(f"needs {what}=VALUE")
        return ((key, " ".join(_words(rest)) if rest.strip()[0] in "\"'" else rest.strip()),)
    pairs = []
    for w in words:
        key, sep, val = w.partition("=")
        if not sep or not key:
            raise _Invalid(f"expected {what}=VALUE, got {w!r}")
        pairs.append((key, val))
    return tuple(pairs)


def _from(line: int, value: str) -> ins.From:
    _, rest = _flags(value, {"platform"})
    words = _words(rest)
    if len(words) == 1:
        return ins.From(line, words[0])
    if len(words) == 3 and words[1].lower() == "as":
        return ins.From(line, words[0], words[2].lower())
    raise _Invalid("expected FROM <image> [AS <name>]")


def _arg(line: int, value: str) -> tuple[ins.Arg, ...]:
    """ARG NAME[=DEFAULT] [NAME[=DEFAULT]...], as BuildKit reads it: every word declares one
    argument, so a trailing `# CHANGE ME` declares three more (`#`, `CHANGE`, `ME`) without a
    value, which set nothing; only a blank name (`ARG =x`) is refused."""
    words = _words(value)
    if not words:
        raise _Invalid("expected ARG <name>[=<default>]")
    out = []
    for word in words:
        name, sep, default = word.partition("=")
        if not name:
            raise _Invalid("names can not be blank")
        out.append(ins.Arg(line, name, default if sep else None))
    return tuple(out)


def _copy(add: bool):
    allowed = {"chown", "chmod"} | ({"checksum"} if add else {"from"})
    booleans = {"link", "parents"} | ({"keep-git-dir"} if add else set())

    def build(line: int, value: str) -> ins.Copy:
        flags, rest = _flags(value, allowed, booleans, {"exclude"})
        paths = list(_argv(rest)[0]) if rest.startswith("[") else _words(rest)
        if len(paths) < 2:
            raise _Invalid("expected at least one source and a destination")
        checksum = flags.get("checksum")
        if checksum is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", checksum):
            raise _Invalid(f"--checksum={checksum}: expected sha256:<64 hex digits>")
        return ins.Copy(line, tuple(paths[:-1]), paths[-1], flags.get("from"), flags.get("chown"),
                        flags.get("chmod"), add, flags.get("link") == "true", flags.get("parents") == "true",
                        tuple(flags["exclude"].split("\n")) if "exclude" in flags else (), checksum,
                        flags.get("keep-git-dir") == "true")

    return build


def _run(line: int, value: str) -> ins.Run:
    """RUN [--mount=...]... [--network=...] command: --mount may repeat."""
    mounts, network = [], None
    while value.startswith("--mount=") or value.startswith("--network="):
        token, _, value = value.partition(" ")
        value = value.lstrip()
        flags, _ = _flags(token, {"mount", "network"})
        if "mount" in flags:
            mounts.append(flags["mount"])
        else:
            network = flags["network"]
    if value.startswith("--"):
        _flags(value, {"mount", "network"})  # names the unknown flag
    argv, shell = _argv(value)
    if not argv or not argv[0].strip():
        raise _Invalid("needs a command")
    return ins.Run(line, argv, shell, tuple(mounts), network)


def _single(cls, what: str):
    def build(line: int, value: str):
        words = _words(value)
        if len(words) != 1:
            raise _Invalid(f"expected exactly one {what}")
        return cls(line, words[0])

    return build


def _many(cls, what: str):
    def build(line: int, value: str):
        words = list(_argv(value)[0]) if value.startswith("[") else _words(value)
        if not words:
            raise _Invalid(f"needs at least one {what}")
        return cls(line, tuple(words))

    return build


def _command(cls):
    def build(line: int, value: str):
        argv, shell = _argv(value)
        return cls(line, argv, shell)

    return build


def _workdir(value: str) -> str:
    """WORKDIR's one path, its quotes removed as Docker does (`WORKDIR "/my app"` is /my app)."""
    path = (_words(value, split=False) or [""])[0] if value else ""
    if not path:
        raise _Invalid("needs a path")
    return path


def _maintainer(line: int, value: str) -> ins.Maintainer:
    if not value:
        raise _Invalid("requires exactly one argument")
    return ins.Maintainer(line, value)


_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def _duration(name: str, text: str) -> int:
    """A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds; 0 or at least 1ms, as Docker wants."""
    if text in ("0", ""):
        return 0
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise _Invalid(f"--{name}={text}: expected a duration such as 30s, 1m30s or 500ms")
    ns = int(sum(float(a) * _NS[b] for a, b in parts))
    if 0 < ns < 10**6:
        raise _Invalid(f"--{name}={text}: cannot be less than 1ms")
    return ns


def _healthcheck(line: int, value: str) -> ins.Healthcheck:
    """HEALTHCHECK NONE, or [--interval= --timeout= --start-period= --start-interval= --retries=] CMD ..."""
    flags, rest = _flags(value, {"interval", "timeout", "start-period", "start-interval", "retries"})
    kind, _, command = rest.partition(" ")
    kind, command = kind.upper(), command.strip()
    if kind == "NONE":
        if command or flags:
            raise _Invalid("HEALTHCHECK NONE takes no arguments")
        return ins.Healthcheck(line, ("NONE",))
    if kind != "CMD":
        raise _Invalid(f"unknown type {kind or '(none)'!r} (try CMD or NONE)")
    if not command:
        raise _Invalid("missing command after HEALTHCHECK CMD")
    argv, shell = _argv(command)
    if not argv:
        raise _Invalid("missing command after HEALTHCHECK CMD")
    retries = flags.get("retries", "0")
    if not retries.isdigit() or int(retries) > 2**31 - 1:
        raise _Invalid(f"--retries={retries}: expected a number of at least 0")
    interval, timeout, start_period, start_interval = (
        _duration(n, flags.get(n, "")) for n in ("interval", "timeout", "start-period", "start-interval"))
    return ins.Healthcheck(line, ("CMD-SHELL", *argv) if shell else ("CMD", *argv), interval, timeout,
                           start_period, start_interval, int(retries))


def _shell(line: int, value: str) -> ins.Shell:
    argv, shell = _argv(value)
    if shell:
        raise _Invalid('SHELL requires the arguments as a JSON array, e.g. SHELL ["/bin/bash", "-c"]')
    if not argv:
        raise _Invalid("requires at least one argument")
    return ins.Shell(line, argv)


def _onbuild(line: int, value: str) -> ins.OnBuild:
    """ONBUILD <instruction>: kept as written (the config's OnBuild), checked as BuildKit checks it."""
    trigger = value.split(None, 1)[0].upper() if value.strip() else ""
    if not trigger:
        raise _Invalid("requires at least one argument")
    if trigger == "ONBUILD":
        raise _Invalid("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("FROM", "MAINTAINER"):
        raise _Invalid(f"{trigger} isn't allowed as an ONBUILD trigger")
    if trigger not in _BUILDERS:
        raise _Invalid(f"unknown instruction {trigger}")
    return ins.OnBuild(line, value.strip())


_BUILDERS = {
    "FROM": _from,
    "ARG": _arg,
    "COPY": _copy(add=False),
    "ADD": _copy(add=True),
    "RUN": _run,
    "WORKDIR": lambda line, value: ins.Workdir(line, _workdir(value)),
    "ENV": lambda line, value: ins.Env(line, _pairs(value, "KEY")),
    "LABEL": lambda line, value: ins.Label(line, _pairs(value, "KEY")),
    "MAINTAINER": _maintainer,
    "EXPOSE": _many(ins.Expose, "port"),
    "USER": _single(ins.User, "user"),
    "VOLUME": _many(ins.Volume, "path"),
    "STOPSIGNAL": _single(ins.StopSignal, "signal"),
    "HEALTHCHECK": _healthcheck,
    "SHELL": _shell,
    "ONBUILD": _onbuild,
    "ENTRYPOINT": _command(ins.Entrypoint),
    "CMD": _command(ins.Cmd),
}


def _fail(message: str):
    raise _Invalid(message)
