"""Shell-form commands at `boxer run`: `sh -c SCRIPT` (a shell-form CMD or ENTRYPOINT) and
entrypoints that are `#!/bin/sh` scripts, run by the shell that runs the build's RUN lines.

A WebAssembly image has no shell and WASI no fork/exec, so, as a build does, boxer interprets
the script itself, on the host, against the run's container: its file utilities (`echo > f`,
`mkdir`, `cd`...) act on the run's writable layer through rootfs.resolve (nothing outside it),
and every other command is a guest started in the same container by `start` (same layer,
mounts, network and memory limit; the environment and working directory the script has at that
point; stdin passed through when the script's own). The whole command has one `--timeout`: each
guest gets what is left of it, and the script stops between commands once it is over, on
Ctrl-C (130, after the guest that got it has ended) or when cancelled. One RunResult comes back,
with the script's exit status (the last command's, or `exit N`; `exec` ends the script too).
"""
from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from boxer_py.errors import BoxerError, RunError
from boxer_py.image.config import DEFAULT_PATH
from boxer_py.image.variables import shell_words
from boxer_py.runtime.output import Sink
from boxer_py.runtime.spec import INTERRUPT_EXIT_CODE, TIMEOUT_EXIT_CODE, TRAP_EXIT_CODE, Limits, RunResult, RunSpec
from boxer_py.shell.builtins import BUILTINS, UNSUPPORTED_BUILTINS
from boxer_py.shell.interpreter import Completed, Invocation, run_script
from boxer_py.shell.scripts import is_shell, shell_script
from boxer_py.shell.streams import Stream
from boxer_py.shell.utilities.table import find_utility

Start = Callable[[list[str], dict[str, str], str, RunSpec], RunResult]  # argv, env, workdir, spec


class _Stopped(Exception):
    """The whole command must end now: its exit code."""

    def __init__(self, code: int):
        self.code = code


def plan(base: Path, argv: list[str], env: dict[str, str], workdir: str,
         scripts: Callable[[str], bool] | None = None) -> list[str] | str:
    """The argv to start as one program, or the command line the shell runs (a str): `sh -c
    SCRIPT`, `sh FILE`, a `#!/bin/sh` script of the image. A shell with nothing to run (an
    interactive `sh`) stays a program, so that it is refused as having no shell. A `sh -c` of
    one simple command of the image (`python app.py --port $PORT`) starts it directly, as before.
    `scripts(name)`: is_script's answer for this PATH and workdir (the caller may remember it)."""
    path = env.get("PATH", DEFAULT_PATH)
    if is_shell(argv[0]):
        args, command = argv[1:], False
        while args and args[0][:1] in "-+" and args[0] not in ("-", "--", "+"):
            flag = args.pop(0)
            command |= flag[0] == "-" and "c" in flag
            if "o" in flag[1:] and args:
                args.pop(0)
        if args[:1] in (["-"], ["--"]):
            args.pop(0)
        if not args:
            return argv
        if command and argv[1] == "-c" and len(argv) == 3:
            simple = _simple(base, argv[2], env, workdir, path)
            if simple is not None:
                return simple
        return shlex.join(argv)
    script = scripts(argv[0]) if scripts else is_script(base, workdir, path, argv[0])
    return shlex.join(argv) if script else argv


def is_script(base: Path, workdir: str, path: str, name: str) -> bool:
    """Whether the command `name` is a `#!/bin/sh` script of the image unpacked at `base`."""
    return shell_script(base, workdir, path, name) is not None


def _simple(base: Path, script: str, env: dict[str, str], workdir: str, path: str) -> list[str] | None:
    """The words of a script that is one command of the image (no glob, `~`, assignment, builtin
    or utility: those need the shell); `exec` in front changes nothing for one command."""
    if any(c in script for c in "*?[~\\"):
        return None
    try:
        words = shell_words(script, env)
    except (RunError, ValueError):
        return None
    if words[:1] == ["exec"]:
        words = words[1:]
    if not words or "=" in words[0] or words[0] in BUILTINS or words[0] in UNSUPPORTED_BUILTINS \
            or find_utility(words[0]) or is_shell(words[0]) or shell_script(base, workdir, path, words[0]):
        return None
    return words


def run(line: str, root: Path, env: dict[str, str], workdir: str, spec: RunSpec, start: Start) -> RunResult:
    """Run the command line `line` with boxer's shell in the container whose layer is `root`."""
    started = time.perf_counter()
    cap = spec.limits.max_output
    stdout = Sink(cap, 1 if spec.stream else None, spec.on_stdout)
    stderr = Sink(cap, 2 if spec.stream else None, spec.on_stderr)
    out, err = Stream(stdout), Stream(stderr)
    deadline = None if spec.limits.timeout is None else time.monotonic() + spec.limits.timeout
    prepared = [0.0]  # seconds spent making guests ready (compiling, snapshots): not the command's time,
    #                   as a run's timeout starts with its guest

    def clock() -> float:
        return time.monotonic() - prepared[0]

    total = RunResult(exit_code=0)
    terminal = spec.tty and spec.stream and os.isatty(1) and os.isatty(2)

    def stop() -> None:
        if any(e is not None and e.is_set() for e in (spec.cancel, spec.interrupt)):
            total.trap = "interrupted"
            raise _Stopped(INTERRUPT_EXIT_CODE)
        if deadline is not None and clock() >= deadline:
            total.timed_out, total.trap = True, f"timed out after {spec.limits.timeout:g}s"
            raise _Stopped(TIMEOUT_EXIT_CODE)

    def external(inv: Invocation) -> Completed:
        stop()
        left = None if deadline is None else max(0.001, deadline - clock())
        direct = terminal and inv.out == out.write and inv.err == err.write  # -t: the guest gets the terminal
        guest = replace(spec, command=(), entrypoint=None, env=inv.env, workdir=inv.cwd, output_dir=None,
                        on_stop=None if spec.on_stop is None else stopped,
                        stdin=spec.stdin if inv.inherited and isinstance(spec.stdin, str) else inv.stdin,
                        files=(), on_start=on_start.pop() if on_start else None,  # the first guest arms it
                        limits=Limits(left, spec.limits.memory, None, spec.limits.disk),
                        stream=direct, tty=direct, on_stdout=None if direct else inv.out,
                        on_stderr=None if direct else inv.err)
        began, result = time.monotonic(), None
        try:
            result = start(inv.argv, inv.env, inv.cwd, guest)
        except RunError as e:  # not found (127), not a WebAssembly program (126): as sh says it
            said = f"{inv.argv[0]}: not found" if e.exit_code == 127 else str(e)  # the no-shell hint is not for here
            (inv.err or err.write)(f"sh: {said}\n".encode())
            return Completed(e.exit_code, echoed=True)
        finally:
            ran = 0.0 if result is None else result.duration_ms / 1000
            prepared[0] += max(0.0, time.monotonic() - began - ran)
        _add(total, result)
        if result.timed_out:
            total.trap = f"timed out after {spec.limits.timeout:g}s"
            raise _Stopped(TIMEOUT_EXIT_CODE)
        if result.disk_full:
            raise _Stopped(result.exit_code)
        if result.exit_code == INTERRUPT_EXIT_CODE and spec.interrupt is not None:
            raise _Stopped(INTERRUPT_EXIT_CODE)  # Ctrl-C ended it (the request is cleared once delivered): as sh, stop
        stop()
        return Completed(result.exit_code, echoed=True)

    def stopped(result: RunResult) -> None:
        """One program stopped by ending the process (a launcher without epochs, exitwatch.py):
        reported as the whole command's result, as `_Stopped` would have ended it."""
        _add(total, result)
        if result.timed_out:
            total.trap = f"timed out after {spec.limits.timeout:g}s"
        total.exit_code = result.exit_code
        finish()
        assert spec.on_stop is not None, "stopped is passed on only with an on_stop"
        spec.on_stop(total)

    def finish() -> None:
        total.stdout, total.stderr = stdout.finish(), stderr.finish()
        total.stdout_truncated, total.stderr_truncated = stdout.truncated, stderr.truncated
        total.stdout_dropped, total.stderr_dropped = stdout.dropped, stderr.dropped
        total.duration_ms = (time.perf_counter() - started - prepared[0]) * 1000  # as a run's: from its guest on

    on_start = [spec.on_start] if spec.on_start is not None else []  # the CLI's backstop for a blocked guest
    stdin = spec.stdin if isinstance(spec.stdin, bytes) else b""
    try:
        total.exit_code = run_script(line, root=root, env=env, cwd=workdir, external=external, out=out, err=err,
                                     stdin=stdin, stop=stop).exit_code
    except _Stopped as e:
        total.exit_code = e.code
    except (BoxerError, OSError) as e:  # the shell's own refusal (ShellError: a limit, unsupported syntax)
        said = str(e).replace(" in one RUN", " in one run").replace(" in RUN", "")  # the build's words
        err.write(f"sh: {said}\n".encode())
        total.exit_code = 2 if not isinstance(e, OSError) else TRAP_EXIT_CODE
    finish()
    for sink in (stdout, stderr):
        if sink.error is not None:
            raise sink.error
    return total


def _add(total: RunResult, one: RunResult) -> None:
    """What one guest of the script adds to the whole command's result."""
    total.timed_out |= one.timed_out
    total.out_of_memory |= one.out_of_memory
    total.disk_full |= one.disk_full
    total.peak_memory = max(total.peak_memory, one.peak_memory)
    total.cpu_ms += one.cpu_ms
    total.preinitialised = one.preinitialised
    total.trap, total.error = one.trap, one.error
    if one.network is not None:
        total.network = one.network
