"""Registries: push, pull, login, logout."""
from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from dataclasses import replace

import click

from boxer_py.cli.common import cli, locate, store, warn
from boxer_py.image.progress import Progress


def _options(insecure: bool, quiet: bool, as_json: bool):
    """Progress on stderr as Docker shows it (one updating line per blob on a terminal), none with -q or --json."""
    from boxer_py.cli.progress import TransferProgress
    from boxer_py.registry.distribution import Options

    if quiet or as_json:
        return Options(insecure=insecure)
    shown = TransferProgress()
    return Options(insecure=insecure, progress=shown.line, blob=shown.blob)

_INSECURE_HELP = "Allow plain http and unverified TLS (loopback hosts may use http without it, as in Docker)."

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.argument("reference", metavar="NAME[:TAG]")
@click.option("--format", "fmt", type=click.Choice(["oci", "wasm"]), default="oci", show_default=True,
              help="oci: a standard wasip1/wasm OCI image (layers, runnable by runwasi); "
                   "wasm: the CNCF Wasm artifact (one application/wasm layer: the standalone module, then the image file).")
@click.option("--insecure", is_flag=True, help=_INSECURE_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the pushed reference and digest as JSON.")
def push(image, reference, fmt, insecure, quiet, as_json):
    """Push an image file to a registry, e.g. localhost:5000/team/app:1.2."""
    from boxer_py.registry.transfer import push as push_image

    result = push_image(locate(image), reference, fmt, _options(insecure, quiet, as_json))
    if not as_json:
        warn(result.warnings)
    click.echo(json.dumps(result.to_json()) if as_json else result.digest)

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("reference", metavar="NAME[:TAG|@DIGEST]")
@click.option("-o", "--output", metavar="FILE", help="Also write the image to FILE (which must not exist yet).")
@click.option("--insecure", is_flag=True, help=_INSECURE_HELP)
@click.option("--platform", metavar="wasi/wasm", help="Accepted (boxer pulls the wasip1/wasm image of an index).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the pulled reference, digest and id as JSON.")
def pull(reference, output, insecure, platform, quiet, as_json):
    """Pull an image (either format boxer pushes) from a registry into the local store, like
    docker pull (by tag: under its name; by digest: untagged); with -o, also into a file."""
    from boxer_py.errors import ImageError
    from boxer_py.image import imagefile
    from boxer_py.registry.transfer import fetch

    if output and os.path.lexists(output):
        raise ImageError(f"{output}: already exists; boxer pull does not overwrite a file (remove it or "
                         "choose another -o)")
    fetched = fetch(reference, _options(insecure, quiet, as_json))
    result = fetched.transferred
    with nullcontext() if quiet or as_json else Progress(f"storing the image ({len(fetched.data) / 1e6:.0f} MB)"):
        store().add(fetched.data, result.image_id, [fetched.local_name] if fetched.local_name else [])
    if output:
        imagefile.write(output, fetched.data)
        result = replace(result, path=output)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    elif not quiet:
        click.echo(f"Status: Downloaded newer image for {fetched.local_name or result.reference}")
        click.echo(fetched.local_name or result.image_id)
    else:
        click.echo(fetched.local_name or result.image_id)

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("server", metavar="SERVER")
@click.option("-u", "--username", metavar="NAME", help="Username (prompted if not given).")
@click.option("-p", "--password", metavar="PASSWORD", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--insecure", is_flag=True, help=_INSECURE_HELP)
def login(server, username, password, password_stdin, insecure):
    """Check credentials against a registry and store them (mode 0600) for push and pull."""
    from boxer_py.registry.transfer import login as login_registry

    if password_stdin:
        if password:
            raise click.UsageError("--password and --password-stdin are exclusive")
        password = sys.stdin.read().rstrip("\r\n")
    username = username or click.prompt("Username", err=True)
    if password is None:
        password = click.prompt("Password", hide_input=True, err=True)
    stored = login_registry(server, username, password, _options(insecure, True, False))
    click.echo(f"Login Succeeded (saved in {stored})")

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("server", metavar="SERVER")
def logout(server):
    """Forget the credentials `boxer login` stored for SERVER."""
    from boxer_py.registry import credentials

    if credentials.remove(server):
        click.echo(f"Removing login credentials for {server}")
    else:
        click.echo(f"Not logged in to {server}")
