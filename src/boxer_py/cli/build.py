"""`boxer build`."""
from __future__ import annotations

import json
from pathlib import Path

import click

from boxer_py.cli.common import cli, pairs


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", default=".", metavar="PATH")
@click.option("-f", "--file", "dockerfile", metavar="FILE", help="Name of the Dockerfile (default: PATH/Dockerfile).")
@click.option("-t", "--tag", metavar="NAME[:TAG]", help="Name the image and keep it in the local store (boxer images).")
@click.option("-o", "--output", metavar="FILE", help="Also write the image to FILE (default without -t: image.wasm).")
@click.option("--build-arg", multiple=True, metavar="KEY=VALUE", help="Set a build-time variable (ARG).")
@click.option("--target", metavar="STAGE", help="Build this stage instead of the last one.")
@click.option("--secret", multiple=True, metavar="id=NAME,src=FILE",
              help="A file RUN --mount=type=secret,id=NAME reads (at /run/secrets/NAME); never in the image.")
@click.option("--no-cache", is_flag=True, help="Do not use cached RUN results.")
@click.option("--skip-unsupported", is_flag=True,
              help="Warn about native tools in RUN (apt-get, curl, gcc...) and skip them instead of failing.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build(path, dockerfile, tag, output, build_arg, target, secret, no_cache, skip_unsupported, quiet, as_json):
    """Build an image from a Dockerfile.

    PATH is the build context (a directory), or a Dockerfile whose directory is the context.
    """
    context = Path(path)
    if context.is_file() and not dockerfile:
        context, dockerfile = context.parent, context
    if not output and not tag:
        output = "image.wasm"
    progress = (lambda _: None) if quiet or as_json else (lambda line: click.echo(line, err=True))
    from boxer_py.api.build import build as build_image  # the build stack loads only for `boxer build`
    from boxer_py.builder.pipeline import parse_secret

    secrets = dict(parse_secret(s) for s in secret)

    result = build_image(context, output, dockerfile=dockerfile, build_args=pairs(build_arg, "--build-arg"),
                         target=target, tag=tag, progress=progress, skip_unsupported=skip_unsupported,
                         no_cache=no_cache, secrets=secrets)
    if as_json:
        click.echo(json.dumps({"id": result.id, "path": str(result.path), "size": result.size}))
    else:
        click.echo(result.id)
