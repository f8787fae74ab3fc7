"""`boxer build`."""
from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import click

from boxer_py.cli.common import cli, pairs
from boxer_py.errors import BuildError

# What --platform may name: the one platform boxer builds for, in the spellings people use.
PLATFORMS = {"wasi/wasm", "wasip1/wasm", "wasi/wasm32", "wasip1/wasm32", "wasm", "wasi", "wasip1", "wasm32/wasi",
             "wasm/wasi"}
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|github\.com/|gitlab\.com/)|\.git(?:#.*)?$", re.IGNORECASE)


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", default=".", metavar="PATH")
@click.option("-f", "--file", "dockerfile", metavar="FILE",
              help="Name of the Dockerfile (default: PATH/Dockerfile); '-' reads it from stdin.")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
              help="Name the image in the local store (repeat for several names).")
@click.option("-o", "--output", metavar="FILE",
              help="Write the image to FILE (boxer's --output); without -t it then stays out of the local store.")
@click.option("--build-arg", multiple=True, metavar="KEY=VALUE", help="Set a build-time variable (ARG).")
@click.option("--label", multiple=True, metavar="KEY=VALUE", help="Set a label on the image.")
@click.option("--target", metavar="STAGE", help="Build this stage instead of the last one.")
@click.option("--secret", multiple=True, metavar="id=NAME,src=FILE",
              help="A file RUN --mount=type=secret,id=NAME reads (at /run/secrets/NAME); never in the image.")
@click.option("--allow-net", multiple=True, metavar="HOST[:PORT]",
              help="Let RUN's programs connect to HOST (as boxer run --allow-net); RUN has no network otherwise.")
@click.option("--no-cache", is_flag=True, help="Do not use cached RUN results.")
@click.option("--pull", is_flag=True, help="Accepted; has no effect (bases are pinned runtimes, see README).")
@click.option("--platform", metavar="wasi/wasm", help="Accepted for wasi/wasm (the only platform boxer builds).")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "quiet"]), default="auto", show_default=True,
              help="plain: BuildKit's plain lines; tty: the same plus a live status line (the running step, "
                   "its time, pip's downloads); auto: tty on a terminal, else plain.")
@click.option("--iidfile", metavar="FILE", help="Write the image id to FILE.")
@click.option("--skip-unsupported", is_flag=True,
              help="Warn about native tools in RUN (apt-get, curl, gcc...) and skip them instead of failing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress; print only the image id.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build(path, dockerfile, tags, output, build_arg, label, target, secret, allow_net, no_cache, pull, platform,
          progress, iidfile, skip_unsupported, quiet, as_json):
    """Build an image from a Dockerfile into the local store (and with -o, into a file).

    PATH is the build context (a directory), or a Dockerfile whose directory is the context,
    or '-' for a Dockerfile on stdin and no context. URLs and git repositories are not built.
    """
    if _URL.search(path) and not Path(path).exists():
        raise BuildError(f"{path}: boxer builds a local directory only, not a URL or git repository "
                         "(clone or download it, then boxer build DIR)")
    if platform and platform.lower().removeprefix("linux/") not in PLATFORMS and platform.lower() not in PLATFORMS:
        raise BuildError(f"--platform {platform}: boxer builds WebAssembly (wasi/wasm) images only; "
                         "leave --platform out or pass wasi/wasm")
    text = None
    scratch = None
    if path == "-":
        if dockerfile:
            raise click.UsageError("PATH '-' reads the Dockerfile from stdin: it takes no -f")
        text = sys.stdin.read()
        scratch = tempfile.TemporaryDirectory(prefix="boxer-empty-context-")
        context = Path(scratch.name)
    else:
        context = Path(path)
        if context.is_file() and not dockerfile:
            context, dockerfile = context.parent, context
        if dockerfile == "-":
            text, dockerfile = sys.stdin.read(), None
    from boxer_py.api.build import build as build_image  # the build stack loads only for `boxer build`
    from boxer_py.builder.pipeline import parse_secret
    from boxer_py.cli.progress import build_progress

    secrets = dict(parse_secret(s) for s in secret)
    for kv in label:
        if not kv.partition("=")[0]:
            raise BuildError(f"--label {kv}: expected KEY=VALUE")
    labels = dict((kv.partition("=")[0], kv.partition("=")[2]) for kv in label)
    with build_progress("quiet" if quiet or as_json else progress) as shown:
        try:
            result = build_image(context, output, dockerfile=dockerfile, build_args=pairs(build_arg, "--build-arg"),
                                 target=target, tags=tags, progress=shown.line, status=shown.status,
                                 skip_unsupported=skip_unsupported, no_cache=no_cache, secrets=secrets,
                                 labels=labels, dockerfile_text=text, allow_net=allow_net)
        finally:
            if scratch is not None:
                scratch.cleanup()
    if iidfile:
        from boxer_py.image import atomic

        try:
            atomic.write_file(iidfile, result.id.encode())
        except OSError as e:
            raise BuildError(f"--iidfile {iidfile}: cannot write ({e.strerror or e})") from None
    if as_json:
        click.echo(json.dumps({"id": result.id, "path": str(result.path), "size": result.size,
                               "tags": list(result.tags)}))
    else:
        click.echo(result.id)
