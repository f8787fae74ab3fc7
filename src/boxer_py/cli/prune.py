"""`boxer image ...` and `boxer system ...`: Docker's management-command spellings
(`image ls`, `image rm`, `image prune`, `system prune`, `system df`)."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from boxer_py.cli import images as image_commands
from boxer_py.cli.common import cli, human_size

if TYPE_CHECKING:
    from boxer_py.image.cache import Pruned


def _confirm(warning: str, force: bool) -> bool:
    """Docker's prompt: the warning, then `[y/N]` read from stdin (EOF is no)."""
    if force:
        return True
    click.echo(f"WARNING! {warning}\nAre you sure you want to continue? [y/N] ", nl=False)
    answer = sys.stdin.readline().strip().lower()
    if not sys.stdin.isatty():
        click.echo()
    return answer in ("y", "yes")


def _report(pruned: Pruned) -> None:
    if pruned.removed.untagged or pruned.removed.deleted:
        click.echo("Deleted Images:")
        for name in pruned.removed.untagged:
            click.echo(f"untagged: {name}")
        for image_id in pruned.removed.deleted:
            click.echo(f"deleted: {image_id}")
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(pruned.freed)}")


@cli.group(context_settings={"help_option_names": ["-h", "--help"]})
def image() -> None:
    """Manage images (docker image ...)."""


for name, command in [("ls", image_commands.images), ("list", image_commands.images), ("rm", image_commands.rmi),
                      ("tag", image_commands.tag), ("history", image_commands.history),
                      ("inspect", image_commands.inspect), ("save", image_commands.save),
                      ("load", image_commands.load), ("import", image_commands.import_)]:
    image.add_command(command, name)


@image.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-a", "--all", "everything", is_flag=True, help="Remove every image, not only untagged ones.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
def prune(everything, force):
    """Remove untagged images (-a: all images) and their unpacked copies from the cache."""
    from boxer_py.image.cache import prune_images
    from boxer_py.image.store import default_cache_dir

    what = "all images" if everything else "all dangling images"
    if not _confirm(f"This will remove {what}.", force):
        return
    _report(prune_images(default_cache_dir(), everything))


@cli.group(context_settings={"help_option_names": ["-h", "--help"]})
def system() -> None:
    """Manage boxer's cache (docker system ...)."""


@system.command("prune", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-a", "--all", "everything", is_flag=True,
              help="Also remove every image, the compiled modules, the base runtimes and the programs made "
                   "for other runtimes in the cache (the runtimes are unpacked and compile again).")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
def system_prune(everything, force):
    """Free the cache: untagged images (-a: all), the build cache, unpacked images no longer in
    the store, snapshots (-a: also compiled modules, base runtimes and programs made for other runtimes)."""
    from boxer_py.image.cache import prune_system
    from boxer_py.image.store import default_cache_dir

    images = "all images" if everything else "all dangling images"
    extra = ("\n  - compiled WebAssembly modules, the base runtimes unpacked for builds and the programs made "
             "for other runtimes (push, web)") if everything else ""
    warning = (f"This will remove:\n  - {images}\n  - the build cache (RUN results, compressed layers)\n"
               f"  - unpacked images no longer in the store, and pre-initialised snapshots{extra}")
    if not _confirm(warning, force):
        return
    _report(prune_system(default_cache_dir(), everything))


@system.command("df", context_settings={"help_option_names": ["-h", "--help"]})
def system_df():
    """Show how much of the cache each part uses."""
    from boxer_py.image.cache import usage
    from boxer_py.image.store import default_cache_dir

    names = {"images": "Images (the store)", "rootfs": "Unpacked images", "steps": "Build cache (RUN results)",
             "layers": "Build cache (compressed layers)", "preinit": "Snapshots", "verified": "Check records",
             "modules": "Compiled modules", "interrupt": "Interrupt calibration", "runtimes": "Base runtimes",
             "programs": "Programs for other runtimes"}
    click.echo(f"{'TYPE':<34}SIZE")
    for part, size in usage(default_cache_dir()).items():
        click.echo(f"{names[part]:<34}{human_size(size)}")
