"""What every `boxer` command shares: the click group, option parsing helpers, image lookup."""
from __future__ import annotations

import os
from pathlib import Path

import click

from boxer_py.errors import RunError
from boxer_py.image.store import Store, default_cache_dir
from boxer_py.runtime.spec import Limits, parse_size, parse_timeout


def pairs(values: tuple[str, ...], what: str, env_fallback: bool = True) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not key:
            raise click.BadParameter(f"{v!r}: expected KEY=VALUE", param_hint=what)
        if not sep:
            if not env_fallback or key not in os.environ:
                continue
            val = os.environ[key]
        out[key] = val
    return out

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="boxer-py", prog_name="boxer")
def cli() -> None:
    """Build Dockerfiles into WebAssembly images and run them in a sandbox."""

def limits(timeout: str | None, memory: str | None, max_output: str | None, disk: str | None) -> Limits:
    """The run options' limits, each checked by runtime.spec's parsers (one line naming the
    option, exit 125, for NaN, infinity, zero, negative or out-of-range values)."""
    return Limits(parse_timeout(timeout, "--timeout"), parse_size(memory, "--memory"),
                  parse_size(max_output, "--max-output"), parse_size(disk, "--disk"))

def utf8_clean(value):
    """A JSON-ready value with every string well-formed UTF-8: names the guest made from
    undecodable bytes (surrogate escapes) become backslash escapes, so a result can always be
    written (a lone surrogate makes strict JSON writers, MCP's among them, fail)."""
    if isinstance(value, str):
        try:
            value.encode()
            return value
        except UnicodeEncodeError:
            try:
                return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            except UnicodeEncodeError:
                return value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, dict):
        return {utf8_clean(k): utf8_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [utf8_clean(v) for v in value]
    return value

def variables(env: tuple[str, ...], env_file: tuple[str, ...]) -> dict[str, str]:
    """-e and --env-file, as docker run reads them (files first, -e wins)."""
    variables: dict[str, str] = {}
    for f in env_file:
        try:
            lines = Path(f).read_text(errors="surrogateescape").splitlines()
        except OSError as e:
            raise RunError(f"--env-file {f}: cannot read ({e.strerror or e})") from None
        variables.update(pairs(tuple(x for x in lines if x.strip() and not x.startswith("#")), "--env-file"))
    variables.update(pairs(env, "-e"))
    return variables

def store():
    return Store(default_cache_dir() / "images")

def locate(image: str) -> Path:
    """An image file, or the file of a local tag."""
    return store().locate(image)

def human_size(size: float) -> str:
    """Docker's sizes: three significant digits, decimal units (`34.2MB`, `1.93GB`, `512B`)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 999.5 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"

def human_since(seconds: float) -> str:
    """Docker's `CREATED` column: how long ago, in words (`2 hours ago`)."""
    s = max(0, int(seconds))
    if s < 1:
        return "Less than a second ago"
    steps = [(60, "second", 1), (3600, "minute", 60), (86400 * 2, "hour", 3600), (86400 * 7 * 2, "day", 86400),
             (86400 * 30 * 3, "week", 86400 * 7), (86400 * 365 * 2, "month", 86400 * 30)]
    for limit, unit, per in steps:
        if s < limit:
            n = s // per
            if unit == "minute" and n == 1:
                return "About a minute ago"
            if unit == "hour" and n == 1:
                return "About an hour ago"
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return f"{s // (86400 * 365)} years ago"

def warn(warnings: tuple[str, ...]) -> None:
    """Warnings on stderr, one line each, as Docker prints them (also under -q)."""
    for line in warnings:
        click.echo(f"WARNING: {line}", err=True)
