"""Constants and helpers shared by the containment tests (conftest modules cannot be imported
by name: there is one per test directory)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SECRET = "host-secret-7f3a9c"  # in the host file and the host env var; must never reach a result
SECRET_ENV = "BOXER_HOST_SECRET"
DATA = "original image data\n"  # /app/data.txt in the hostile image


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def cli_with_rusage(cache_dir: Path, args: list[str], timeout: float = 300) -> tuple[int, dict, int]:
    """Run `boxer ARGS` under a fresh parent that reports the peak RSS (KiB) of that one child.
    Returns (exit code, the --json result, peak RSS in KiB)."""
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
        "json.dump({'rc': p.returncode, 'stdout': p.stdout.decode(errors='replace'),"
        " 'stderr': p.stderr.decode(errors='replace'),"
        " 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, sys.stdout)\n"
    )
    env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0"}  # the measured child runs it
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "boxer_py", *args],
                          capture_output=True, text=True, env=env, timeout=timeout)
    report = json.loads(proc.stdout)
    try:
        result = json.loads(report["stdout"])
    except ValueError:
        raise AssertionError(f"no JSON result: {report['stdout'][:500]!r} {report['stderr'][-2000:]!r}") from None
    return report["rc"], result, report["rss"]
