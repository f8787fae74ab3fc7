"""What every `boxer` command shares: the click group, option parsing helpers, image lookup."""
from __future__ import annotations

import os
from pathlib import Path

import click

from boxer_py.image.store import Store, default_cache_dir
from boxer_py.runtime.spec import parse_size


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

def size(text: str | None) -> int | None:
    try:
        return parse_size(text)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None

def variables(env: tuple[str, ...], env_file: tuple[str, ...]) -> dict[str, str]:
    """-e and --env-file, as docker run reads them (files first, -e wins)."""
    variables: dict[str, str] = {}
    for f in env_file:
        lines = Path(f).read_text().splitlines()
        variables.update(pairs(tuple(x for x in lines if x.strip() and not x.startswith("#")), "--env-file"))
    variables.update(pairs(env, "-e"))
    return variables

def store():
    return Store(default_cache_dir() / "images")

def locate(image: str) -> Path:
    """An image file, or the file of a local tag."""
    return store().locate(image)
