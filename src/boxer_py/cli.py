"""The `boxer` command: parses options, calls the library, prints results. No logic here."""
from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from pathlib import Path
from typing import Callable, NoReturn

import click

from . import imagefile
from .errors import BoxerError, RunError
from .launcher import TIMEOUT_EXIT_CODE, Launcher, Limits, Mount, RunResult, RunSpec
from .session import default_cache_dir, parse_size


def _pairs(values: tuple[str, ...], what: str, env_fallback: bool = True) -> dict[str, str]:
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


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", default=".", metavar="PATH")
@click.option("-f", "--file", "dockerfile", metavar="FILE", help="Name of the Dockerfile (default: PATH/Dockerfile).")
@click.option("-t", "--tag", metavar="NAME[:TAG]", help="Name the image and keep it in the local store (boxer images).")
@click.option("-o", "--output", metavar="FILE", help="Also write the image to FILE (default without -t: image.wasm).")
@click.option("--build-arg", multiple=True, metavar="KEY=VALUE", help="Set a build-time variable (ARG).")
@click.option("--target", metavar="STAGE", help="Build this stage instead of the last one.")
@click.option("--no-cache", is_flag=True, help="Do not use cached RUN results.")
@click.option("--skip-unsupported", is_flag=True,
              help="Warn about native tools in RUN (apt-get, curl, gcc...) and skip them instead of failing.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build(path, dockerfile, tag, output, build_arg, target, no_cache, skip_unsupported, quiet, as_json):
    """Build an image from a Dockerfile.

    PATH is the build context (a directory), or a Dockerfile whose directory is the context.
    """
    context = Path(path)
    if context.is_file() and not dockerfile:
        context, dockerfile = context.parent, context
    if not output and not tag:
        output = "image.wasm"
    progress = (lambda _: None) if quiet or as_json else (lambda line: click.echo(line, err=True))
    from .build import build as build_image  # the build stack loads only for `boxer build`

    result = build_image(context, output, dockerfile, _pairs(build_arg, "--build-arg"), target, tag, progress,
                         skip_unsupported=skip_unsupported, no_cache=no_cache)
    if as_json:
        click.echo(json.dumps({"id": result.id, "path": str(result.path), "size": result.size}))
    else:
        click.echo(result.id)


def _size(text: str | None) -> int | None:
    try:
        return parse_size(text)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


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
@click.option("--timeout", type=float, metavar="SECONDS", help="Stop the guest after this long (exit code 124).")
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
    variables = _variables(env, env_file)
    spec = RunSpec(
        command=tuple(command),
        entrypoint=None if entrypoint is None else tuple(entrypoint.split() if entrypoint else ()),
        env=variables,
        workdir=workdir,
        mounts=tuple(Mount.parse(v) for v in volume),
        stdin="-" if interactive else stdin_file,
        limits=Limits(timeout=timeout, memory=_size(memory), max_output=_size(max_output), disk=_size(disk)),
        stream=not as_json,
        output_dir="/out" if as_json else None,
        on_start=None if timeout is None else lambda: _watchdog(timeout + 1.0, as_json),
    )
    sys.stdout.flush()
    launcher = launcher or Launcher(default_cache_dir())
    result = launcher.run(launcher.open(_locate(image)), spec)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        for stream, cut in (("stdout", result.stdout_truncated), ("stderr", result.stderr_truncated)):
            if cut:
                click.echo(f"boxer: {stream} truncated at {spec.limits.max_output} bytes", err=True)
        if result.trap:
            click.echo(f"boxer: {spec.command[0] if spec.command else 'guest'}: {result.trap}", err=True)
    sys.exit(result.exit_code)


def _variables(env: tuple[str, ...], env_file: tuple[str, ...]) -> dict[str, str]:
    """-e and --env-file, as docker run reads them (files first, -e wins)."""
    variables: dict[str, str] = {}
    for f in env_file:
        lines = Path(f).read_text().splitlines()
        variables.update(_pairs(tuple(x for x in lines if x.strip() and not x.startswith("#")), "--env-file"))
    variables.update(_pairs(env, "-e"))
    return variables


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable.")
@click.option("--env-file", multiple=True, type=click.Path(dir_okay=False), help="Read variables from a file.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the guest.")
@click.option("-v", "--volume", multiple=True, metavar="HOST:GUEST[:ro]", help="Mount a host directory.")
@click.option("--timeout", type=float, default=60.0, show_default=True, metavar="SECONDS",
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
    from .mcp_server import ServerOptions, serve  # the mcp stack loads only for `boxer mcp`

    options = ServerOptions(Limits(timeout=timeout, memory=_size(memory), max_output=_size(max_output),
                                   disk=_size(disk)),
                            tuple(Mount.parse(v) for v in volume), _variables(env, env_file), workdir)
    serve(image, options, str(default_cache_dir()))


def _watchdog(seconds: float, as_json: bool) -> None:
    """Epoch interruption stops guest code, not a guest blocked in the host (a long sleep):
    past the deadline plus a grace second, the whole process ends with the timeout code."""

    def expire() -> None:
        if as_json:
            os.write(1, (json.dumps(RunResult(TIMEOUT_EXIT_CODE, timed_out=True,
                                              trap=f"timed out after {seconds - 1:g}s (blocked)").to_json()) + "\n").encode())
        else:
            os.write(2, f"boxer: timed out after {seconds - 1:g}s (blocked)\n".encode())
        os._exit(TIMEOUT_EXIT_CODE)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
def inspect(images):
    """Show an image's config as JSON, like docker inspect."""
    out = []
    for path in images:
        img = imagefile.read(_locate(path))
        tag = img.annotations.get("org.opencontainers.image.ref.name")
        out.append({
            "Id": img.id,
            "RepoTags": [tag] if tag else [],
            "Architecture": "wasm",
            "Os": "wasip1",
            "Size": sum(d.size for d in img.layers),
            "Config": img.spec.config.to_oci(),
            "RootFS": {"Type": "layers", "Layers": [d.digest for d in img.layers]},
            "History": [{"created_by": h} for h in img.spec.history],
        })
    click.echo(json.dumps(out, indent=4))


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.argument("directory", metavar="DIR")
@click.option("--format", "fmt", type=click.Choice(["rootfs", "oci", "wasm"]), default="rootfs", show_default=True,
              help="rootfs: DIR/rootfs + DIR/config.json; oci: an OCI image layout of a standard wasip1/wasm "
                   "image; wasm: an OCI image layout of the CNCF Wasm artifact.")
def export(image, directory, fmt):
    """Write an image's root filesystem and config to DIR, or an OCI image layout."""
    if fmt == "rootfs":
        from .export import export_rootfs

        export_rootfs(imagefile.read(_locate(image)), Path(directory))
    else:
        from .transfer import export_layout

        export_layout(_locate(image), directory, fmt)
    click.echo(directory)


@cli.command("import", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("directory", metavar="DIR")
@click.option("-o", "--output", metavar="FILE", default="image.wasm", show_default=True, help="Where to write the image.")
@click.option("--ref", metavar="NAME", help="Which image of the layout (its org.opencontainers.image.ref.name).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def import_(directory, output, ref, as_json):
    """Make an image file from an OCI image layout (either format boxer exports or pushes)."""
    from .transfer import import_layout

    result = import_layout(directory, output, ref)
    click.echo(json.dumps(result.to_json()) if as_json else result.image_id)


def _options(insecure: bool, quiet: bool, as_json: bool):
    from .registry import Options

    progress = (lambda _: None) if quiet or as_json else (lambda line: click.echo(line, err=True))
    return Options(insecure=insecure, progress=progress)


_INSECURE_HELP = "Allow plain http and unverified TLS (loopback hosts may use http without it, as in Docker)."


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("-p", "--port", type=int, default=8000, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def serve(image, port, host):
    """Serve a page that runs IMAGE in the browser (the code runs in the visitor's tab)."""
    from .site import serve as start

    server = start(_locate(image), host, port)
    click.echo(server.url)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.close()


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.argument("reference", metavar="NAME[:TAG]")
@click.option("--format", "fmt", type=click.Choice(["oci", "wasm"]), default="oci", show_default=True,
              help="oci: a standard wasip1/wasm OCI image (layers, runnable by runwasi); "
                   "wasm: the CNCF Wasm artifact (the image file as one application/wasm layer).")
@click.option("--insecure", is_flag=True, help=_INSECURE_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the pushed reference and digest as JSON.")
def push(image, reference, fmt, insecure, quiet, as_json):
    """Push an image file to a registry, e.g. localhost:5000/team/app:1.2."""
    from .transfer import push as push_image

    result = push_image(_locate(image), reference, fmt, _options(insecure, quiet, as_json))
    click.echo(json.dumps(result.to_json()) if as_json else result.digest)


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("reference", metavar="NAME[:TAG|@DIGEST]")
@click.option("-o", "--output", metavar="FILE", help="Where to write the image (default: NAME.wasm).")
@click.option("--insecure", is_flag=True, help=_INSECURE_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the pulled reference, digest and path as JSON.")
def pull(reference, output, insecure, quiet, as_json):
    """Pull an image (either format boxer pushes) from a registry into an image file."""
    from .reference import Reference
    from .transfer import pull as pull_image

    output = output or Reference.parse(reference).repository.rsplit("/", 1)[-1] + ".wasm"
    result = pull_image(reference, output, _options(insecure, quiet, as_json))
    click.echo(json.dumps(result.to_json()) if as_json else result.path)


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("server", metavar="SERVER")
@click.option("-u", "--username", metavar="NAME", help="Username (prompted if not given).")
@click.option("-p", "--password", metavar="PASSWORD", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--insecure", is_flag=True, help=_INSECURE_HELP)
def login(server, username, password, password_stdin, insecure):
    """Check credentials against a registry and store them (mode 0600) for push and pull."""
    from .transfer import login as login_registry

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
    from . import credentials

    if credentials.remove(server):
        click.echo(f"Removing login credentials for {server}")
    else:
        click.echo(f"Not logged in to {server}")


def _store():
    from .store import Store

    return Store(default_cache_dir() / "images")


def _locate(image: str) -> Path:
    """An image file, or the file of a local tag."""
    return _store().locate(image)


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ids.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def images(quiet, as_json):
    """List the images in the local store (built with -t)."""
    stored = _store().list()
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
    store = _store()
    for ref in refs:
        removed = store.remove(ref)
        click.echo(f"Untagged: {removed.tag}")


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("-o", "--output", "directory", required=True, metavar="DIR", help="Directory to write (must not exist, or be empty).")
def web(image, directory):
    """Write a static site that runs IMAGE in the browser: index.html, the launcher, image.wasm.

    Any static host can serve it if it sends .wasm as application/wasm (see docs/web.md).
    """
    from .site import write_site

    click.echo(write_site(_locate(image), directory))


def main(args: list[str] | None = None, launcher: Launcher | None = None,
         report: Callable[[int], None] | None = None) -> NoReturn:
    """The `boxer` command (`args` defaults to sys.argv[1:]). The run server (server.py)
    passes its warm `launcher`, and `report`, told the exit code once the output is out
    and before exit handlers tidy up. The process leaves through os._exit once the exit
    handlers have run and stdio is flushed: Wasmtime's WASI may still be releasing a
    finished run's stdio on a thread of its own, and that must not meet an interpreter that
    is shutting down (the process would abort with a Rust panic after the run's output)."""
    try:
        code = _dispatch(args, launcher)
    except SystemExit as e:
        code = e.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    _flush()
    if report is not None:
        report(code)
    atexit._run_exitfuncs()
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _dispatch(args: list[str] | None, launcher: Launcher | None) -> int:
    try:
        # click's own exits (--help) return their code
        code = cli.main(args, prog_name="boxer", standalone_mode=False, obj=launcher)
        return code if isinstance(code, int) else 0
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) else 1)
    except RunError as e:
        click.echo(f"boxer: {e}", err=True)
        sys.exit(e.exit_code)
    except BoxerError as e:
        click.echo(f"boxer: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
