"""The browser launcher: serve and web."""
from __future__ import annotations

import click

from boxer_py.cli.common import cli, locate


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("-p", "--port", type=int, default=8000, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def serve(image, port, host):
    """Serve a page that runs IMAGE in the browser (the code runs in the visitor's tab)."""
    from boxer_py.browser.site import serve as start

    server = start(locate(image), host, port)
    click.echo(server.url)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.close()

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("-o", "--output", "directory", required=True, metavar="DIR", help="Directory to write (must not exist, or be empty).")
def web(image, directory):
    """Write a static site that runs IMAGE in the browser: index.html, the launcher, image.wasm.

    Any static host can serve it if it sends .wasm as application/wasm (see docs/web.md).
    """
    from boxer_py.browser.site import write_site

    click.echo(write_site(locate(image), directory))
