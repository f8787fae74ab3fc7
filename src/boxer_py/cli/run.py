"""`boxer run` and `boxer mcp`: options to a RunSpec, the result to the terminal or JSON."""
from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from boxer_py.cli.common import cli, limits, locate, store, utf8_clean, variables
from boxer_py.errors import BoxerError, RunError
from boxer_py.image import hostfs
from boxer_py.image.store import default_cache_dir
from boxer_py.runtime import inputs, watchdog
from boxer_py.runtime.net.policy import Network
from boxer_py.runtime.spec import INTERRUPT_EXIT_CODE, Mount, RunResult, RunSpec, parse_size

if TYPE_CHECKING:
    from boxer_py.runtime.launcher import Launcher

READY = "boxer.ready"  # click's meta: the run's RunSpec.ready, given by the run server (cli/main.py)
PLATFORMS = ("wasi/wasm", "wasip1/wasm", "wasi/wasm32", "wasm32/wasi", "wasm/wasi", "wasi", "wasm")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                               "help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[COMMAND] [ARG...]")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable.")
@click.option("--env-file", multiple=True, metavar="FILE", help="Read variables from a file.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the guest.")
@click.option("--entrypoint", metavar="CMD", help="Override the image's ENTRYPOINT.")
@click.option("-v", "--volume", multiple=True, metavar="HOST:GUEST[:ro|rw]",
              help="Mount a host directory or file (:ro read-only; a writable file is written back when the run ends).")
@click.option("--file", "copies", multiple=True, metavar="HOST:GUEST",
              help="Copy a host file into the run's writable layer at GUEST before it starts.")
@click.option("-i", "--interactive", is_flag=True, help="Pass this process's stdin to the guest.")
@click.option("-t", "--tty", is_flag=True, help="Give the guest this terminal (isatty() true, TERM, its size, followed).")
@click.option("--stdin", "stdin_file", metavar="FILE|-", help="Feed the guest's stdin from a file (- for this stdin).")
@click.option("--timeout", metavar="SECONDS", help="Stop the guest after this long (exit code 124).")
@click.option("--memory", "-m", metavar="SIZE", help="Cap the guest's memory, e.g. 256m.")
@click.option("--max-output", metavar="SIZE", help="Keep at most this much of stdout, of stderr and of /out files.")
@click.option("--disk", metavar="SIZE", help="Stop the guest when its writable layer grows by more than this.")
@click.option("--read-only", is_flag=True, help="Make the image's files read-only to the guest (mounts stay as given).")
@click.option("-u", "--user", metavar="USER", help="Run as USER (WASI has no users: sets the default HOME only).")
@click.option("--rm", is_flag=True, help="Accepted: every run's writable layer is removed when it ends.")
@click.option("--init", is_flag=True, help="Accepted: a guest is one process, there is nothing to reap.")
@click.option("--name", metavar="NAME", help="Accepted: runs are not listed, so a name has no use.")
@click.option("-p", "--publish", multiple=True, metavar="[IP:]HOSTPORT:GUESTPORT",
              help="Publish a guest TCP port on the host. IP defaults to 127.0.0.1, not Docker's 0.0.0.0 "
                   "(give 0.0.0.0:HOSTPORT:GUESTPORT for every interface); HOSTPORT 0 picks a free one.")
@click.option("-P", "--publish-all", is_flag=True, help="Publish every EXPOSEd port on a free 127.0.0.1 port (printed).")
@click.option("--allow-net", multiple=True, metavar="HOST[:PORT]",
              help="Let the guest connect to HOST (on PORT; * or no port: any). TLS is done and verified by the host.")
@click.option("--allow-net-ca", metavar="FILE", help="Also trust these CA certificates (PEM) for TLS to allowed hosts.")
@click.option("--network", "--net", metavar="none", help="Only none (the default: no network unless -p/--allow-net).")
@click.option("--platform", metavar="wasi/wasm", help="Only wasi/wasm (every boxer image is one).")
@click.option("-d", "--detach", is_flag=True, help="Refused: a run lives in the boxer process.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result instead of streaming.")
@click.pass_obj
def run(launcher, image, command, env, env_file, workdir, entrypoint, volume, copies, interactive, tty, stdin_file,
        timeout, memory, max_output, disk, read_only, user, rm, init, name, publish, publish_all, allow_net,
        allow_net_ca, network, platform, detach, as_json):
    """Run a command in a new sandbox from IMAGE.

    The guest sees only the image's files (a private copy, discarded after the run), the
    mounted directories, the given environment and stdio. It has no network unless -p/-P
    (inbound) or --allow-net (outbound) give it some. boxer exits
    with the guest's exit code: 124 on --timeout, 130 on Ctrl-C, 134 on a crash, 125 when
    boxer cannot start it.
    """
    del rm, init, name  # Docker's meaning is what boxer always does (see the options' help)
    _refuse_unsupported(image, detach, network, platform, tty, as_json)  # option errors, as click's: no JSON
    wanted = Network.parse(publish, allow_net, allow_net_ca)
    if network == "none" and (publish or publish_all or allow_net):
        raise RunError("--network none: contradicts -p/-P/--allow-net; give one or the other")
    try:
        result, spec = _run(launcher, image, command, env, env_file, workdir, entrypoint, volume, copies,
                            interactive, tty, stdin_file, timeout, memory, max_output, disk, read_only, user, as_json,
                            wanted, publish_all)
    except BoxerError as e:
        if not as_json:
            raise
        code = e.exit_code if isinstance(e, RunError) else 1  # as main() exits without --json
        error = {"type": type(e).__name__, "message": str(e), "traceback": None}
        click.echo(json.dumps(utf8_clean(RunResult(code, error=error).to_json())))
        click.echo(f"boxer: {e}", err=True)
        sys.exit(code)
    _show(result, spec, as_json)
    sys.exit(result.exit_code)


def run_defaults() -> dict[str, Any]:
    """click's parameters of `run` given an IMAGE alone (for plain(): the run server parses
    them once, before it forks any run)."""
    return run.make_context("run", ["IMAGE"]).params


def plain(args: list[str], defaults: dict[str, Any]) -> dict[str, Any] | None:
    """click's parameters of `run` for `run IMAGE [COMMAND] [ARG...]` with no option before
    IMAGE, without click's parsing: after IMAGE every word is the command's, options too
    (allow_interspersed_args=False). None for any other command line (click parses it)."""
    if len(args) < 2 or args[0] != "run" or args[1].startswith("-"):
        return None
    return {**defaults, "image": args[1], "command": tuple(args[2:])}


def _show(result: RunResult, spec: RunSpec, as_json: bool) -> None:
    """A run's result as `boxer run` reports it: the JSON object, or the lines about truncated
    output and a trap on stderr (the output itself was streamed)."""
    if as_json:
        click.echo(json.dumps(utf8_clean(result.to_json())))
    else:
        for stream, cut, dropped in (("stdout", result.stdout_truncated, result.stdout_dropped),
                                     ("stderr", result.stderr_truncated, result.stderr_dropped)):
            if cut:
                click.echo(f"boxer: {stream} truncated at {spec.limits.max_output} bytes: {dropped} bytes from "
                           "its middle dropped (its start and end are kept)", err=True)
        if result.trap:
            click.echo(f"boxer: {spec.command[0] if spec.command else 'guest'}: {result.trap}", err=True)


def new_launcher(cache_dir: str | Path) -> Launcher:
    """The launcher of `boxer run` (in its own process, or in a process the run server forks
    for it, from the server's launcher): the one place that decides a run is stopped by ending
    its process. Such a process runs one command, so its guests run on engines without epoch
    checks (13-25% of CPython's CPU loops, modcache.new_engine) and a timeout, --disk, SIGTERM
    or a Ctrl-C that cannot be delivered ends the process after reporting (exitwatch.py)."""
    from boxer_py.runtime.launcher import Launcher

    return Launcher(cache_dir, epochs=False)


def _stopped(spec: RunSpec, as_json: bool, signalled: Callable[[], int | None], result: RunResult) -> None:
    """RunSpec.on_stop of a `boxer run`: the result of a run stopped from outside, reported as
    run() reports one that ended, then the process ends (its guest's thread cannot return)."""
    if signalled() is not None and result.exit_code == INTERRUPT_EXIT_CODE:
        result.exit_code = 128 + (signalled() or 0)
    _show(result, spec, as_json)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(result.exit_code)


def _run(launcher, image, command, env, env_file, workdir, entrypoint, volume, copies, interactive, tty, stdin_file,
         timeout, memory, max_output, disk, read_only, user, as_json, wanted, publish_all) -> tuple[RunResult, RunSpec]:
    environment = variables(env, env_file)
    # -t on a terminal: the size is followed (runtime/winsize.py), unless -e gave one
    resize = threading.Event() if tty and sys.stdout.isatty() and not {"COLUMNS", "LINES"} & set(environment) else None
    if tty and sys.stdout.isatty():
        environment = {**_terminal_env(), **environment}
    checked = limits(timeout, memory, max_output, disk)
    cancel, interrupt = threading.Event(), threading.Event()
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
        tty=tty,
        read_only=read_only,
        user=user,
        cancel=cancel,
        interrupt=interrupt,
        resize=resize,
        files=inputs.check([_host_file(c) for c in copies], checked.disk),
        network=wanted,
        on_listen=_show_ports,
        on_refused=None if as_json else _RefusalLines(),
        ready=_given(READY),
    )
    path = _image_path(image, as_json)
    sys.stdout.flush()
    if launcher is None:  # the run server passes a warm one (new_launcher's too)
        launcher = new_launcher(default_cache_dir())
    signalled = watchdog.cancel_on_signals(cancel, interrupt, resize=resize)
    spec = replace(spec, on_stop=partial(_stopped, spec, as_json, signalled))
    opened = launcher.open(path)
    if publish_all:
        spec = replace(spec, network=wanted.publish_exposed(opened.spec.config.exposed_ports))
    result = launcher.run(opened, spec)
    if signalled() is not None and result.exit_code == INTERRUPT_EXIT_CODE:
        result.exit_code = 128 + (signalled() or 0)  # 143 for SIGTERM, as a native program's
    return result, spec


def _given(key: str) -> Any:
    """What the caller of the CLI put in click's meta under `key` (None if nothing)."""
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(key)


def _host_file(option: str) -> tuple[str, bytes]:
    """--file HOST:GUEST: the host file's content (a regular file, size-capped) for GUEST."""
    host, sep, guest = option.rpartition(":")
    if not sep or not host or not guest:
        raise RunError(f"--file {option}: expected HOST:GUEST")
    try:
        return guest, hostfs.read_file(host, inputs.MAX_FILES_BYTES, follow=True)
    except hostfs.Unreadable as e:
        raise RunError(f"--file {option}: {host} {e}") from None


def _refuse_unsupported(image: str, detach: bool, network: str | None, platform: str | None, tty: bool,
                        as_json: bool) -> None:
    """Docker's options that boxer cannot honour: one line each, exit 125 (as docker run's own errors)."""
    if image.startswith("-") and image != "-":
        raise RunError(f"unknown option {image} (see boxer run --help)")
    if detach:
        raise RunError("-d: detached runs are not supported: a run lives in the boxer process that started it "
                       "(run it in the background with your shell's & instead)")
    if network is not None and network != "none":
        raise RunError(f"--network {network}: only --network none is accepted; give a guest network with "
                       "-p (inbound) or --allow-net HOST (outbound)")
    if platform is not None and platform.lower() not in PLATFORMS:
        raise RunError(f"--platform {platform}: boxer images are WebAssembly (wasi/wasm); a native platform "
                       "cannot run here")
    if tty and as_json:
        raise RunError("-t and --json: a terminal cannot be captured into JSON; choose one")


def _show_ports(ports: list[dict[str, object]]) -> None:
    """The host ports of -P (and of -p with host port 0), which the user cannot know otherwise."""
    for port in ports:
        if port["asked"] == 0:
            click.echo(f"boxer: {port['guest_port']}/tcp -> {port['host_ip']}:{port['host_port']}", err=True)


class _RefusalLines:
    """Each connect or bind the network options refused, as one line on this process's stderr
    (the guest only sees an OSError, which an app may swallow or log vaguely). Capped: a guest
    retrying in a loop must not flood the terminal; --json lists them all (up to 1,000)."""

    SHOWN = 20

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, entry: dict[str, object]) -> None:
        self.count += 1
        if self.count > self.SHOWN + 1:
            return
        if self.count > self.SHOWN:
            line = "boxer: further refused connections are not shown (--json lists them)"
        elif entry["direction"] == "in":
            port = entry["port"]
            line = f"boxer: refused the guest's bind to port {port}: not published (add -p HOSTPORT:{port})"
        else:
            target, reason = f"{entry['host']}:{entry['port']}", entry["reason"]
            hint = f" (add --allow-net {target})" if reason == "not in --allow-net" else " (allow that IP itself)"
            line = f"boxer: refused the guest's connection to {target}: {reason}{hint}"
        click.echo(line, err=True)


def _terminal_env() -> dict[str, str]:
    """What a program in `docker run -t` learns of its terminal: TERM (xterm when unset, as
    Docker), and its size at start as COLUMNS and LINES, for programs that read them (WASI has
    no ioctl for it). Boxer's sitecustomize drops those two for os.get_terminal_size, which
    follows the window (runtime/winsize.py)."""
    out = {"TERM": os.environ.get("TERM") or "xterm"}
    try:
        size = os.get_terminal_size(1)
        out.update(COLUMNS=str(size.columns), LINES=str(size.lines))
    except OSError:
        pass
    return out


def _image_path(image: str, quiet: bool = False) -> Path:
    """The image file or stored image; none is boxer's own error, 125 as docker run's. A
    reference that names a registry (`localhost:5000/app:1`, `ghcr.io/me/app`) and is not in
    the local store is pulled into it first, as docker run does (progress on stderr)."""
    try:
        return locate(image)
    except RunError:
        raise
    except BoxerError as e:
        if not _names_registry(image):
            raise RunError(str(e)) from None
    from boxer_py.cli.progress import TransferProgress
    from boxer_py.image.progress import Progress
    from boxer_py.registry.distribution import Options
    from boxer_py.registry.transfer import fetch
    shown = TransferProgress()
    say = (lambda _: None) if quiet else shown.line
    say(f"Unable to find image '{image}' locally")
    try:
        fetched = fetch(image, Options(progress=say, blob=(lambda *_: None) if quiet else shown.blob))
        with nullcontext() if quiet else Progress(f"storing the image ({len(fetched.data) / 1e6:.0f} MB)"):
            store().add(fetched.data, fetched.transferred.image_id, [fetched.local_name] if fetched.local_name else [])
        say(f"Status: Downloaded newer image for {fetched.local_name or image}")
        return locate(fetched.local_name or fetched.transferred.image_id)
    except RunError:
        raise
    except BoxerError as e:
        raise RunError(str(e)) from None


def _names_registry(image: str) -> bool:
    """Whether IMAGE is a reference with a registry host (not a file path, not a bare name)."""
    host, slash, _ = image.partition("/")
    return bool(slash) and not os.path.exists(image) and ("." in host or ":" in host or host == "localhost")


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", metavar="IMAGE")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable.")
@click.option("--env-file", multiple=True, metavar="FILE", help="Read variables from a file.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the guest.")
@click.option("-v", "--volume", multiple=True, metavar="HOST:GUEST[:ro|rw]",
              help="Mount a host directory or file (:ro read-only; a writable file is written back when the run ends).")
@click.option("--timeout", default="60", show_default=True, metavar="SECONDS",
              help="Longest a call may run (a call may ask for less).")
@click.option("--memory", "-m", metavar="SIZE", help="Cap the guest's memory, e.g. 256m.")
@click.option("--max-output", default="16k", show_default=True, metavar="SIZE",
              help="Keep at most this much of stdout and of stderr per call (its start and end), sized for a model.")
@click.option("--max-files", default="8m", show_default=True, metavar="SIZE",
              help="Return at most this much of the files a call leaves under /out.")
@click.option("--max-upload", default="16m", show_default=True, metavar="SIZE",
              help="Accept at most this much in a call's `files`.")
@click.option("--disk", default="1g", show_default=True, metavar="SIZE",
              help="Stop a call whose writable layer grows by more than this.")
@click.option("--allow-net", multiple=True, metavar="HOST[:PORT]",
              help="Hosts a call may connect to (a call may ask for fewer, never more).")
@click.option("--stateful", is_flag=True,
              help="run_python keeps one live interpreter for the connection (variables persist; a reset tool).")
def mcp(image, env, env_file, workdir, volume, timeout, memory, max_output, max_files, max_upload, disk, allow_net,
        stateful):
    """Serve IMAGE as an MCP server on stdio, with tools run_python and run_command.

    Each call runs in a fresh sandbox with these limits and mounts (with --stateful,
    run_python shares one interpreter, and a reset tool starts it anew); see the README for
    an mcpServers config snippet.
    """
    from boxer_py.cli.mcp import ServerOptions, serve  # the mcp stack loads only for `boxer mcp`

    options = ServerOptions(limits(timeout, memory, max_output, disk), tuple(Mount.parse(v) for v in volume),
                            variables(env, env_file), workdir, stateful,
                            parse_size(max_files, "--max-files") or 0, parse_size(max_upload, "--max-upload") or 0,
                            tuple(str(a) for a in Network.parse(allow=allow_net).allow))
    serve(image, options, str(default_cache_dir()))
