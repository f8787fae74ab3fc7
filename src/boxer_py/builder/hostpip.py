"""The build host's pip, run for the guest: isolated and wheels only (docs/security.md).

Every run of the host's pip goes through `argv` (what it is told: `-I` Python, `--isolated`
pip, no input, no keyring, `--only-binary=:all:` for the guest's platform and Python, so it
only ever downloads and unpacks wheels and never builds) and `environment` (what it gets of
the host's environment: only what reaching an index needs), in a private working directory
and HOME under `work`. What it installs goes into a private `--target`; pip.py copies it into
the rootfs. Callers: pip.py (the RUN's `pip install`), sdist.py (build requirements) and
extras.py (a package's metadata).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from boxer_py import locations

PIP_TIMEOUT = 30 * 60  # seconds for the host's pip

# The host's pip, with marker evaluation for the guest: pip evaluates the markers of every
# dependency against the interpreter it runs on, whatever --python-version says.
PIP_MAIN = """\
import json, sys
guest = json.loads(sys.argv[1])
from pip._vendor.packaging import markers
markers.default_environment = lambda: dict(guest)
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

# What the host's pip gets from the host's environment: only what reaching an index needs.
NETWORK_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                     "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")

# What pip says about its progress (shown on a terminal's status line, not kept in the log
# when the build would have run pip --quiet).
_PROGRESS = re.compile(rb"^\s*(Collecting|Downloading|Using cached|Obtaining|Looking in indexes|Saved|Processing"
                       rb"|Installing collected packages|Successfully installed|Requirement already satisfied)\b")


def argv(markers: dict[str, str], python: str, target: str, *more: str) -> list[str]:
    """`pip install` for the guest's `python` ("3.12") into the host directory `target`,
    wheels only, isolated; `more` are the request's own validated options and files.
    --no-warn-conflicts: pip checks what it installed into `target` against the packages of the
    host's own environment ("mcp 2.3.0 requires pydantic>=2.12.0, but you have pydantic 1.10.27"),
    which are not the guest's; its resolver already made the guest's set consistent."""
    return [sys.executable, "-I", "-c", PIP_MAIN, json.dumps(markers),
            "install", "--isolated", "--no-input", "--disable-pip-version-check", "--keyring-provider=disabled",
            "--cache-dir", os.path.join(locations.cache_dir(), "pip"),
            "--target", target, "--only-binary=:all:",
            "--platform", "any", "--platform", "wasi_0_0_0_wasm32", "--python-version", python,
            "--implementation", "cp", "--abi", "none", "--abi", "abi3", "--abi", "cp" + python.replace(".", ""),
            "--no-compile", "--no-warn-script-location", "--no-warn-conflicts", *more]


def index_options(options: list[str]) -> list[str]:
    """The index settings among a request's validated host-pip options."""
    index = []
    for i, o in enumerate(options):
        if o in ("--index-url", "--extra-index-url", "--trusted-host") and i + 1 < len(options):
            index += [o, options[i + 1]]
        elif o in ("--no-index", "--pre"):
            index.append(o)
    return index


def prepare(work: Path) -> None:
    """The private working directory and HOME of a host pip run in `work`."""
    (work / "home").mkdir(exist_ok=True)
    (work / "cwd").mkdir(exist_ok=True)


def environment(work: Path) -> dict[str, str]:
    env = {"PATH": os.defpath, "HOME": str(work / "home"), "TMPDIR": str(work), "LC_ALL": "C.UTF-8",
           "PYTHONNOUSERSITE": "1"}
    env.update({k: os.environ[k] for k in NETWORK_VARIABLES if k in os.environ})
    return env


def run(argv: list[str], work: Path, timeout: float = PIP_TIMEOUT) -> subprocess.CompletedProcess:
    """The host's pip in `work`, its output (stdout and stderr) as one bytes stdout."""
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          cwd=work / "cwd", env=environment(work), timeout=timeout)


def run_told(argv: list[str], work: Path, status: Callable[[str], None] | None,
             quiet: bool) -> subprocess.CompletedProcess:
    """The host's pip, in `work`; with `status`, its lines are told as they come (a download
    shows while it runs) and the progress lines --quiet would have hidden are left out."""
    if status is None:
        return run(argv, work)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=work / "cwd", env=environment(work))
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(PIP_TIMEOUT, expire)
    timer.start()
    kept: list[bytes] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            text = line.decode(errors="replace").strip()
            if text:
                status(text[:200])
            if not (quiet and _PROGRESS.match(line)):
                kept.append(line)
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if expired.is_set():
        raise subprocess.TimeoutExpired(argv, PIP_TIMEOUT)
    return subprocess.CompletedProcess(argv, proc.returncode, b"".join(kept))
