"""`boxer run` and `boxer mcp`: options to a RunSpec, the result to the terminal or JSON."""
from __future__ import annotations

import json
import sys
from functools import partial

import click

from boxer_py.cli.common import cli, limits, locate, utf8_clean, variables
from boxer_py.image.store import default_cache_dir
from boxer_py.runtime import watchdog
from boxer_py.runtime.spec import Mount, RunSpec


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                               "help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[COMMAND] [ARG...]")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable.")
@click.option("--env-file", multiple=True, type=click.Path(dir_okay=False), help="Read variables from a file.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the guest.")
@click.option("--entrypoint", metavar="CMD", help="Override the image's ENTRYPOINT.")
@click.option("-v", "--volume", multiple=True, metavar="HOST:GUEST[:ro]", help="Mount a host directory.")
@click.option("-i", "--interactive", is_flag=True, help="Pass this process's stdin to the guest.")
@click.option("--stdin", "stdin_file", metavar="FILE|-", help="Feed the guest's stdin from a file (- for this stdin).")
@click.option("--timeout", metavar="SECONDS", help="Stop the guest after this long (exit code 124).")
@click.option("--memory", "-m", metavar="SIZE", help="Cap the guest's memory, e.g. 256m.")
@click.option("--max-output", metavar="SIZE", help="Keep at most this much of stdout, of stderr and of /out files.")
@click.option("--disk", metavar="SIZE", help="Stop the guest when its writable layer grows by more than this.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result instead of streaming.")
@click.pass_obj
def run(launcher, image, command, env, env_file, workdir, entrypoint, volume, interactive, stdin_file, timeout, memory,
        max_output, disk, as_json):
    """Run a command in a new sandbox from IMAGE.

    The guest sees only the image's files (a private copy, discarded after the run), the
    mounted directories, the given environment and stdio. It has no network. boxer exits
    with the guest's exit code: 124 on --timeout, 134 on a crash.
    """
    environment = variables(env, env_file)
    checked = limits(timeout, memory, max_output, disk)
    spec = RunSpec(
        command=tuple(command),
        entrypoint=None if entrypoint is None else tuple(entrypoint.split() if entrypoint else ()),
        env=environment,
        workdir=workdir,
        mounts=tuple(Mount.parse(v) for v in volume),
        stdin="-" if interactive else stdin_file,
        limits=checked,
        stream=not as_json,
        output_dir="/out" if as_json else None,
        on_start=None if checked.timeout is None else partial(watchdog.arm, checked.timeout + 1.0, as_json),
    )
    sys.stdout.flush()
    if launcher is None:  # the run server passes a warm one
        from boxer_py.runtime.launcher import Launcher

        launcher = Launcher(default_cache_dir())
    result = launcher.run(launcher.open(locate(image)), spec)
    if as_json:
        click.echo(json.dumps(utf8_clean(result.to_json())))
    else:
        for stream, cut in (("stdout", result.stdout_truncated), ("stderr", result.stderr_truncated)):
            if cut:
                click.echo(f"boxer: {stream} truncated at {spec.limits.max_output} bytes", err=True)
        if result.trap:
            click.echo(f"boxer: {spec.command[0] if spec.command else 'guest'}: {result.trap}", err=True)
    sys.exit(result.exit_code)

@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable.")
@click.option("--env-file", multiple=True, type=click.Path(dir_okay=False), help="Read variables from a file.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the guest.")
@click.option("-v", "--volume", multiple=True, metavar="HOST:GUEST[:ro]", help="Mount a host directory.")
@click.option("--timeout", default="60", show_default=True, metavar="SECONDS",
              help="Longest a call may run (a call may ask for less).")
@click.option("--memory", "-m", metavar="SIZE", help="Cap the guest's memory, e.g. 256m.")
@click.option("--max-output", default="1m", show_default=True, metavar="SIZE",
              help="Keep at most this much of stdout, of stderr and of /out files.")
@click.option("--disk", default="1g", show_default=True, metavar="SIZE",
              help="Stop a call whose writable layer grows by more than this.")
def mcp(image, env, env_file, workdir, volume, timeout, memory, max_output, disk):
    """Serve IMAGE as an MCP server on stdio, with tools run_python and run_command.

    Each call runs in a fresh sandbox with these limits and mounts; see the README for an
    mcpServers config snippet.
    """
    from boxer_py.cli.mcp import ServerOptions, serve  # the mcp stack loads only for `boxer mcp`

    options = ServerOptions(limits(timeout, memory, max_output, disk), tuple(Mount.parse(v) for v in volume),
                            variables(env, env_file), workdir)
    serve(image, options, str(default_cache_dir()))
