"""The `boxer` command: each command group's module registers its commands on one click group;
this module runs it and turns errors into one line and an exit code."""
from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from boxer_py.cli import browser, build, images, prune, registry, run  # noqa: F401  (they register the commands)
from boxer_py.cli.common import cli
from boxer_py.errors import BoxerError, RunError

if TYPE_CHECKING:
    from boxer_py.runtime.launcher import Launcher
    from boxer_py.runtime.spec import Ready


def main(args: list[str] | None = None, launcher: Launcher | None = None,
         report: Callable[[int], None] | None = None, run_defaults: dict[str, Any] | None = None,
         ready: Ready | None = None) -> NoReturn:
    """The `boxer` command (`args` defaults to sys.argv[1:]). The run server (server.py)
    passes its warm `launcher`, and `report`, told the exit code once the output is out
    and before exit handlers tidy up, and `run_defaults` (run.run_defaults()), with which a
    plain `run IMAGE COMMAND...` skips click's parsing (run.plain), and `ready` (RunSpec.ready)
    is called once such a run's guest is about to start. The process leaves through os._exit once the exit
    handlers have run and stdio is flushed: Wasmtime's WASI may still be releasing a
    finished run's stdio on a thread of its own, and that must not meet an interpreter that
    is shutting down (the process would abort with a Rust panic after the run's output)."""
    status: object
    try:
        status = _dispatch(args, launcher, run_defaults, ready)
    except SystemExit as e:
        status = e.code
    if isinstance(status, int):
        code = status
    else:
        if status is not None:
            print(status, file=sys.stderr)
        code = 0 if status is None else 1
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

def _dispatch(args: list[str] | None, launcher: Launcher | None, run_defaults: dict[str, Any] | None = None,
              ready: Ready | None = None) -> int:
    try:
        params = None if args is None or run_defaults is None else run.plain(args, run_defaults)
        if params is not None:  # as click would invoke it, in the contexts it would make
            with click.Context(cli, info_name="boxer", obj=launcher) as root, \
                    click.Context(run.run, info_name="run", parent=root) as ctx:
                ctx.params = params
                if ready is not None:
                    root.meta[run.READY] = ready
                code = ctx.invoke(run.run.callback, **params)  # type: ignore[arg-type]
        else:  # click's own exits (--help) return their code
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
