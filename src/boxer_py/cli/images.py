"""The local store and image files: inspect, images, tag, rmi, history, save, load, export, import."""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import click

from boxer_py.cli.common import cli, human_since, human_size, locate, store, warn
from boxer_py.errors import BoxerError, ImageError
from boxer_py.image import imagefile
from boxer_py.image.inspect import inspect_json
from boxer_py.image.progress import Progress
from boxer_py.image.store import StoredImage


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
def inspect(images):
    """Show an image's config as JSON, like docker inspect."""
    out = []
    local = store()
    for path in images:
        img = imagefile.read(locate(path))
        out.append(inspect_json(img, local.tags_of(img.id)))
    click.echo(json.dumps(out, indent=4))

# `boxer images --format`: Docker's Go-template fields for an image row.
_FIELDS: dict[str, Callable[[StoredImage, bool], str]] = {
    "Repository": lambda s, _: s.tag.rpartition(":")[0] if s.tag else "<none>",
    "Tag": lambda s, _: s.tag.rpartition(":")[2] if s.tag else "<none>",
    "ID": lambda s, full: s.id if full else s.id[7:19],
    "CreatedSince": lambda s, _: human_since(time.time() - s.created),
    "CreatedAt": lambda s, _: time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(s.created)),
    "Size": lambda s, _: human_size(s.size),
    "Digest": lambda s, _: "<none>",
}
_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
            "CreatedAt": "CREATED AT", "Size": "SIZE", "Digest": "DIGEST"}
_PLACEHOLDER = re.compile(r"\{\{\s*(?:json\s+)?\.(\w*)\s*\}\}")
DEFAULT_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def render(fmt: str, rows: list[StoredImage], full: bool) -> list[str]:
    """Docker's --format for image rows: `{{.Field}}` placeholders (the fields of _FIELDS),
    `{{json .}}` for the whole row as JSON, a `table ` prefix for a header and aligned
    columns, `\\t` and `\\n` as escapes. Anything else in braces is refused with one line."""
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    table = fmt.startswith("table")
    if table:
        fmt = fmt[5:].lstrip(" ") or DEFAULT_FORMAT[6:]
    if re.fullmatch(r"\{\{\s*json\s+\.\s*\}\}", fmt.strip()):
        return [json.dumps({k: f(s, full) for k, f in _FIELDS.items()}) for s in rows]
    for name in _PLACEHOLDER.findall(fmt):
        if name not in _FIELDS:
            raise BoxerError(f"--format: unknown field .{name} (fields: {', '.join('.' + f for f in _FIELDS)})")
    if "{{" in _PLACEHOLDER.sub("", fmt):
        raise BoxerError("--format: only {{.Field}} placeholders and {{json .}} are supported")
    lines = [_PLACEHOLDER.sub(lambda m, s=s: _FIELDS[m.group(1)](s, full), fmt) for s in rows]  # type: ignore[misc]
    if not table:
        return lines
    cells = [line.split("\t") for line in [_PLACEHOLDER.sub(lambda m: _HEADERS[m.group(1)], fmt), *lines]]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(max(map(len, cells)))]
    return ["   ".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)).rstrip() for r in cells]


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("repository", required=False, metavar="[REPOSITORY[:TAG]]")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ids.")
@click.option("-a", "--all", "all_", is_flag=True, help="Accepted (boxer keeps no intermediate images).")
@click.option("--no-trunc", is_flag=True, help="Show full image ids.")
@click.option("--format", "fmt", metavar="TEMPLATE",
              help="Go-template-like: {{.Repository}}, {{.Tag}}, {{.ID}}, {{.CreatedSince}}, {{.CreatedAt}}, "
                   "{{.Size}}, {{.Digest}}; 'table ' prefix for a header; {{json .}}.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def images(repository, quiet, all_, no_trunc, fmt, as_json):
    """List the images in the local store, newest first, like docker images."""
    rows = store().list()
    if repository:
        name, _, tag = repository.partition(":") if ":" in repository.rsplit("/", 1)[-1] else (repository, "", "")
        rows = [s for s in rows if s.tag.rpartition(":")[0] == name and (not tag or s.tag.rpartition(":")[2] == tag)]
    if as_json:
        click.echo(json.dumps([{"tag": s.tag, "id": s.id, "size": s.size, "created": s.created, "path": str(s.path)}
                               for s in rows]))
        return
    if quiet:
        fmt = "{{.ID}}"
        rows = [s for i, s in enumerate(rows) if s.id not in {r.id for r in rows[:i]}]
    for line in render(fmt or DEFAULT_FORMAT, rows, no_trunc):
        click.echo(line)

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="SOURCE_IMAGE[:TAG]")
@click.argument("target", metavar="TARGET_IMAGE[:TAG]")
def tag(source, target):
    """Give an image of the local store another name, like docker tag."""
    store().tag(source, target)

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("refs", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-f", "--force", is_flag=True, help="Remove an image by id even if several tags name it; "
                                                    "no error for images that do not exist.")
def rmi(refs, force):
    """Remove images from the local store (and their unpacked copies in the cache)."""
    from boxer_py.image.cache import drop_unpacked
    from boxer_py.image.store import default_cache_dir

    local, failed = store(), False
    for ref in refs:
        try:
            removed = local.remove(ref, force)
        except ImageError as e:
            if force and local.find(ref) is None:
                continue
            click.echo(f"boxer: {e}", err=True)
            failed = True
            continue
        for name in removed.untagged:
            click.echo(f"Untagged: {name}")
        drop_unpacked(default_cache_dir(), removed.deleted)
        for image_id in removed.deleted:
            click.echo(f"Deleted: {image_id}")
    if failed:
        sys.exit(1)

def history_rows(img: imagefile.Image) -> list[tuple[str, int | None]]:
    """(created_by, layer size) per history entry, oldest first. The entries that made no layer
    are marked `empty_layer`; an image built before boxer marked them has no marks, and then
    which entries made a layer is read from the instruction (FROM a runtime, RUN, COPY, ADD,
    WORKDIR do). If that does not add up to the image's layers the sizes are unknown (None)
    rather than guessed."""
    history = [h.created_by for h in img.spec.history]
    if any(h.empty_layer for h in img.spec.history):
        made = [not h.empty_layer for h in img.spec.history]
    else:
        made = [i == 0 and h != "FROM scratch" or h.split(" ", 1)[0] in ("RUN", "COPY", "ADD", "WORKDIR")
                for i, h in enumerate(history)]
    sizes = iter(d.size for d in img.layers)
    if sum(made) != len(img.layers):
        return [(h, None) for h in history]
    return [(h, next(sizes) if m else 0) for h, m in zip(history, made, strict=True)]

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("--no-trunc", is_flag=True, help="Do not shorten the instructions.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
def history(image, no_trunc, quiet, as_json):
    """Show the instructions an image was built from and each one's layer size, newest first.
    (boxer images are reproducible: they record no build times, so there is no CREATED column.)"""
    img = imagefile.read(locate(image))
    rows = list(reversed(history_rows(img)))
    if quiet:
        click.echo(img.id if no_trunc else img.id[7:19])
        return
    if as_json:
        click.echo(json.dumps([{"id": img.id if i == 0 else None, "created_by": h, "size": s}
                               for i, (h, s) in enumerate(rows)]))
        return
    shown = [((img.id if no_trunc else img.id[7:19]) if i == 0 else "<missing>",
              h if no_trunc or len(h) <= 45 else h[:44] + "…", "?" if s is None else human_size(s))
             for i, (h, s) in enumerate(rows)]
    width = max([len("CREATED BY")] + [len(r[1]) for r in shown])
    id_width = max(len("IMAGE"), *(len(r[0]) for r in shown))
    click.echo(f"{'IMAGE':<{id_width}}   {'CREATED BY':<{width}}   {'SIZE':<8}   COMMENT")
    for ident, created_by, size in shown:
        click.echo(f"{ident:<{id_width}}   {created_by:<{width}}   {size}".rstrip())

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("refs", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
def save(refs, output):
    """Save images to a tar archive (the OCI layout with Docker's manifest.json that docker save
    writes: docker load, skopeo's oci-archive: and docker-archive: read it)."""
    from boxer_py.image import atomic
    from boxer_py.registry.archive import write_archive

    local = store()
    chosen = []
    for ref in refs:
        found = local.find(ref) if not Path(ref).is_file() else None
        img = imagefile.read(found.path if found else locate(ref))
        names = [found.tag] if found and found.tag and found.tag == _normal(ref) else []
        chosen.append((img, names))
    if output:
        try:
            with atomic.writing(output) as f:
                write_archive(chosen, f)
        except OSError as e:
            raise ImageError(f"{output}: cannot write ({e.strerror or e})") from None
    else:
        if sys.stdout.isatty():
            raise BoxerError("cowardly refusing to write an archive to a terminal: use -o FILE or redirect stdout")
        write_archive(chosen, sys.stdout.buffer)
        sys.stdout.buffer.flush()

def _normal(ref: str) -> str:
    from boxer_py.image.store import normalize

    return normalize(ref)

MAX_STDIN_ARCHIVE = 32 << 30  # bytes `boxer load` takes from stdin before refusing

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-i", "--input", "source", metavar="FILE", help="Read the archive from FILE instead of stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing.")
def load(source, quiet):
    """Load images from a tar archive (what boxer save or docker save wrote; gzip too) into
    the local store."""
    from boxer_py.registry.archive import read_archive

    with tempfile.TemporaryDirectory(prefix="boxer-load-") as tmp:
        if source is None:
            if sys.stdin.isatty():
                raise BoxerError("requested load from stdin, but stdin is a terminal: use -i FILE or redirect stdin")
            source, where = str(Path(tmp) / "archive.tar"), "stdin"
            with open(source, "wb") as f:
                total = 0
                while chunk := sys.stdin.buffer.read(1 << 20):
                    total += len(chunk)
                    if total > MAX_STDIN_ARCHIVE:
                        raise ImageError(f"stdin: more than {MAX_STDIN_ARCHIVE >> 30} GiB: not an image archive")
                    f.write(chunk)
        else:
            where = source
        size = os.path.getsize(source) if os.path.isfile(source) else 0  # read_archive says what is wrong
        shown = nullcontext() if quiet else Progress(f"loading {where} ({size / 1e6:.0f} MB)")
        with shown:
            loaded = read_archive(source, where)
            local = store()
            for item in loaded:
                local.add(item.data, item.id, item.tags)
    for item in loaded:
        if not quiet:
            for name in item.tags:
                click.echo(f"Loaded image: {name}")
            if not item.tags:
                click.echo(f"Loaded image ID: {item.id}")

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.argument("directory", metavar="DEST")
@click.option("--format", "fmt", type=click.Choice(["rootfs", "oci", "wasm", "standalone"]), default="rootfs",
              show_default=True,
              help="rootfs: DEST/rootfs + DEST/config.json; oci: an OCI image layout of a standard wasip1/wasm "
                   "image; wasm: an OCI image layout of the CNCF Wasm artifact; standalone: DEST is one WASI "
                   "module holding the program and the image's files, for any WASI runtime.")
def export(image, directory, fmt):
    """Write an image's root filesystem and config to DEST, an OCI image layout, or one module."""
    if fmt == "standalone":
        from boxer_py.registry.standalone import export_standalone

        export_standalone(imagefile.read(locate(image)), Path(directory))
    elif fmt == "rootfs":
        from boxer_py.registry.export import export_rootfs

        export_rootfs(imagefile.read(locate(image)), Path(directory))
    else:
        from boxer_py.registry.transfer import export_layout

        found = store().find(image) if not Path(image).is_file() else None
        warn(export_layout(locate(image), directory, fmt, found.tag if found else "").warnings)
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
