"""The local store and image files: inspect, images, rmi, export, import."""
from __future__ import annotations

import json
from pathlib import Path

import click

from boxer_py.cli.common import cli, locate, store
from boxer_py.image import imagefile
from boxer_py.image.inspect import inspect_json


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
def inspect(images):
    """Show an image's config as JSON, like docker inspect."""
    out = []
    for path in images:
        img = imagefile.read(locate(path))
        out.append(inspect_json(img))
    click.echo(json.dumps(out, indent=4))

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ids.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def images(quiet, as_json):
    """List the images in the local store (built with -t)."""
    stored = store().list()
    if as_json:
        click.echo(json.dumps([{"tag": s.tag, "id": s.id, "size": s.size, "created": s.created, "path": str(s.path)}
                               for s in stored]))
    elif quiet:
        for s in stored:
            click.echo(s.id)
    else:
        click.echo(f"{'REPOSITORY':<30} {'TAG':<12} {'IMAGE ID':<14} {'SIZE':>8}")
        for s in stored:
            name, _, tag = s.tag.rpartition(":")
            click.echo(f"{name:<30} {tag:<12} {s.id.split(':')[1][:12]:<14} {s.size / 1e6:>6.1f}MB")

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("refs", nargs=-1, required=True, metavar="IMAGE...")
def rmi(refs):
    """Remove images from the local store."""
    local = store()
    for ref in refs:
        removed = local.remove(ref)
        click.echo(f"Untagged: {removed.tag}")

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.argument("directory", metavar="DIR")
@click.option("--format", "fmt", type=click.Choice(["rootfs", "oci", "wasm"]), default="rootfs", show_default=True,
              help="rootfs: DIR/rootfs + DIR/config.json; oci: an OCI image layout of a standard wasip1/wasm "
                   "image; wasm: an OCI image layout of the CNCF Wasm artifact.")
def export(image, directory, fmt):
    """Write an image's root filesystem and config to DIR, or an OCI image layout."""
    if fmt == "rootfs":
        from boxer_py.registry.export import export_rootfs

        export_rootfs(imagefile.read(locate(image)), Path(directory))
    else:
        from boxer_py.registry.transfer import export_layout

        export_layout(locate(image), directory, fmt)
    click.echo(directory)

@cli.command("import", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("directory", metavar="DIR")
@click.option("-o", "--output", metavar="FILE", default="image.wasm", show_default=True, help="Where to write the image.")
@click.option("--ref", metavar="NAME", help="Which image of the layout (its org.opencontainers.image.ref.name).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def import_(directory, output, ref, as_json):
    """Make an image file from an OCI image layout (either format boxer exports or pushes)."""
    from boxer_py.registry.transfer import import_layout

    result = import_layout(directory, output, ref)
    click.echo(json.dumps(result.to_json()) if as_json else result.image_id)
