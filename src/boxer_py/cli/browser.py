"""The browser launcher: serve and web."""
from __future__ import annotations

from pathlib import Path

import click

from boxer_py.cli.common import cli, locate
from boxer_py.runtime.spec import parse_size


def page_limits(max_output, disk, max_entries):
    from boxer_py.browser.site import page_limits as limits

    return limits(max_output=parse_size(max_output, "--max-output"), disk=parse_size(disk, "--disk"),
                  max_entries=max_entries)


def page_network(allow_net, publish):
    """The page's allow-list, checked as `boxer run --allow-net` checks it, its published guest
    ports and the guest modules."""
    if not allow_net and not publish:
        return None
    from boxer_py.browser.site import PageNetwork
    from boxer_py.errors import RunError
    from boxer_py.runtime.net.policy import Network, guest_modules

    rules = Network.parse(allow=allow_net).allow
    for port in publish:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise RunError(f"--publish {port}: expected a guest port number (1-65535)")
    return PageNetwork(tuple(str(rule) for rule in rules), guest_modules(), tuple(sorted({int(p) for p in publish})))


def page_preinit(image_path, cache_dir=None):
    """The snapshot of the image's CPython for the page (booted here under Wasmtime, in the
    sandbox `boxer run` gives it; cached as boxer run's are), or None when its default program
    is not a CPython that can be pre-initialised."""
    from boxer_py.browser.program import check_runs_in_browser
    from boxer_py.browser.runtime import Preinit
    from boxer_py.image import imagefile
    from boxer_py.image.reactorcmd import is_reactor
    from boxer_py.image.store import default_cache_dir
    from boxer_py.runtime.launcher import Launcher
    from boxer_py.runtime.preinit.page import for_page

    # The page's own refusal first (one line, before anything runs), and nothing to boot for
    # an image whose default program the page cannot start.
    program = check_runs_in_browser(imagefile.read(image_path), str(image_path))
    if program is None or is_reactor(program):   # a reactor's page starts it from scratch (browser/runtime.py)
        return None
    launcher = Launcher(cache_dir or default_cache_dir(), bake=False)
    try:
        start = for_page(launcher, launcher.open(image_path))
    finally:
        launcher.close()
    if start is None:
        return None
    winch = None if start.winch is None else (start.winch.flags, start.winch.handler, start.winch.unhandled)
    return Preinit(start.module, start.snapshot, start.argv0, start.startup, start.preopens, start.interrupt_flags, winch)


def write_standalone(path, directory, other_options):
    """The standalone page's site: the module made as `boxer export --format standalone` makes it."""
    from boxer_py.browser.standalone import write_standalone_site
    from boxer_py.errors import RunError
    from boxer_py.image import imagefile
    from boxer_py.registry.standalone import standalone_module

    if other_options:
        raise RunError("--standalone: the standalone page has no file, disk, network or autorun options; "
                       "leave them out or drop --standalone")
    module, _ = standalone_module(imagefile.read(path))
    return write_standalone_site(path, module, directory)


def publish_option(*names):
    return click.option(*names, "publish", multiple=True, metavar="PORT",
                        help="Let a server in the page listen on guest PORT; the page's requests to port/PORT/... "
                             "reach it (through the page's Service Worker).")


def limit_options(command):
    command = click.option("--allow-net", multiple=True, metavar="HOST[:PORT]",
                           help="Let the page's runs make HTTP(S) requests to HOST (on PORT; * or no port: any) "
                                "through the browser's fetch; the host must allow the page's origin (CORS).")(command)
    command = click.option("--autorun", is_flag=True,
                           help="Run the image's command as soon as the page opens (default: on Run).")(command)
    command = click.option("--max-entries", type=click.IntRange(min=1), metavar="N",
                           help="Stop a run that creates more files and directories than this (default 10000).")(command)
    command = click.option("--disk", metavar="SIZE",
                           help="Stop a run whose in-memory files grow by more than this (default 256m).")(command)
    return click.option("--max-output", metavar="SIZE",
                        help="Keep at most this much of stdout and of stderr (head and tail; default 1m), "
                             "and of /out files.")(command)


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("-p", "--port", type=int, default=8000, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@limit_options
@publish_option("--publish")
def serve(image, port, host, max_output, disk, max_entries, autorun, allow_net, publish):
    """Serve a page that runs IMAGE in the browser (the code runs in the visitor's tab)."""
    from boxer_py.browser.site import is_loopback
    from boxer_py.browser.site import serve as start

    limits = page_limits(max_output, disk, max_entries)
    if not is_loopback(host):
        click.echo(f"boxer: warning: listening on {host}, not a loopback address: other machines can load the "
                   "page and the image", err=True)
    path = locate(image)
    server = start(path, host, port, limits, autorun, page_network(allow_net, publish), page_preinit(path))
    click.echo(server.url)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.close()

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("-o", "--output", "directory", required=True, metavar="DIR", help="Directory to write (must not exist, or be empty).")
@limit_options
@publish_option("-p", "--publish")
@click.option("--standalone", is_flag=True,
              help="Run the image's standalone module (boxer export --format standalone) instead: one file "
                   "holding its program and files, the image's command only, stdin/stdout/stderr only.")
def web(image, directory, max_output, disk, max_entries, autorun, allow_net, publish, standalone):
    """Write a static site that runs IMAGE in the browser: index.html, the launcher, image.wasm.

    Any static host can serve it if it sends .wasm as application/wasm (see docs/web.md).
    """
    from boxer_py.browser.site import write_site
    from boxer_py.image.atomic import check_empty_target

    path = locate(image)
    check_empty_target(Path(directory))  # before the snapshot's boot, which takes a while
    if standalone:
        click.echo(write_standalone(path, directory, max_output or disk or max_entries or autorun or allow_net
                                    or publish))
        return
    click.echo(write_site(path, directory, page_limits(max_output, disk, max_entries), autorun,
                          page_network(allow_net, publish), page_preinit(path)))
