"""Constants and helpers shared by the containment tests (conftest modules cannot be imported
by name: there is one per test directory)."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SECRET = "host-secret-7f3a9c"  # in the host file and the host env var; must never reach a result
SECRET_ENV = "BOXER_HOST_SECRET"
DATA = "original image data\n"  # /app/data.txt in the hostile image


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass(frozen=True)
class Measured:
    """A finished `boxer` command: exit code, output, and its peak RSS in KiB."""

    returncode: int
    stdout: str
    stderr: str
    rss_kib: int


WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "cap = int(sys.argv[1])\n"
    "limit = (lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap))) if cap else None\n"
    "p = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit)\n"
    "json.dump({'rc': p.returncode, 'stdout': p.stdout.decode(errors='replace'),"
    " 'stderr': p.stderr.decode(errors='replace'),"
    " 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, sys.stdout)\n"
)


def cli_measured(cache_dir: Path, args: list[str], timeout: float = 300, address_space: int = 0) -> Measured:
    """Run `boxer ARGS` under a fresh parent that reports the peak RSS of that one child, whose
    address space is capped at `address_space` bytes if given (so that a bound removed by mistake
    fails the test instead of taking the machine's memory). `timeout` is a hang guard, not a
    speed check: past it, the command's whole process group is killed and the test fails saying so."""
    env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0"}  # the measured child runs it
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(address_space), sys.executable, "-m", "boxer_py", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"boxer {shlex.join(args)[:300]} did not end within {timeout} s (the hang guard): "
                    "whatever should stop it did not", pytrace=False)
    report = json.loads(out)
    return Measured(report["rc"], report["stdout"], report["stderr"], report["rss"])


def cli_with_rusage(cache_dir: Path, args: list[str], timeout: float = 300) -> tuple[int, dict, int]:
    """`cli_measured` of a command that prints a --json result: (exit code, the result, peak RSS in KiB)."""
    run = cli_measured(cache_dir, args, timeout)
    try:
        result = json.loads(run.stdout)
    except ValueError:
        raise AssertionError(f"no JSON result: {run.stdout[:500]!r} {run.stderr[-2000:]!r}") from None
    return run.returncode, result, run.rss_kib
