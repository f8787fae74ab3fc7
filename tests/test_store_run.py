"""Issue 20: removing images frees the cache for real, measured on disk: `rmi` takes the
image's unpacked copy with it, `system prune` reports exactly what it freed (as Docker's
`Total reclaimed space`). Starts guests (a run unpacks the image into the cache)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from boxer_py.cli.common import human_size

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def cache_bytes(cache: Path) -> int:
    """Bytes of the cache's files, but the store's own small index (tags.json, its lock)."""
    return sum(p.lstat().st_size for p in cache.rglob("*")
               if p.is_file() and not p.is_symlink() and p.name not in ("tags.json", ".lock"))


def test_rmi_and_system_prune_free_what_runs_and_builds_left(tmp_path, cache_dir):
    cache = tmp_path / "cache"
    if (cache_dir / "modules").is_dir():  # CPython compiles once per session, not per test
        shutil.copytree(cache_dir / "modules", cache / "modules", copy_function=os.link)
    env = {**os.environ, "BOXER_CACHE_DIR": str(cache), "BOXER_SERVER": "0"}

    def bx(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "boxer_py", *args], capture_output=True, text=True, env=env,
                           timeout=600)
        assert r.returncode == 0, (args, r.stderr)
        return r

    image_id = bx("build", "-q", "-t", "hello", str(EXAMPLES / "hello-python")).stdout.strip()
    assert bx("run", "hello").stdout.startswith("Hello from cpython")
    unpacked = cache / "rootfs" / image_id.replace(":", "-")
    assert unpacked.is_dir()
    unpacked_bytes = cache_bytes(unpacked)
    blob = cache / "images" / "blobs" / (image_id[7:] + ".wasm")
    blob_bytes = blob.stat().st_size
    before = cache_bytes(cache)
    bx("rmi", "hello")
    assert not blob.exists() and not unpacked.exists()
    assert before - cache_bytes(cache) == unpacked_bytes + blob_bytes and unpacked_bytes > 10_000_000

    # an untagged build, run by its short id, then everything but the compiled modules goes
    again = bx("build", "-q", str(EXAMPLES / "hello-python")).stdout.strip()
    assert again == image_id, "the same context gives the same id, tagged or not"
    assert bx("run", image_id[7:19]).stdout.startswith("Hello from cpython")
    # what only -a removes: compiled modules, their calibration, the base runtime derived for builds
    modules = sum(cache_bytes(cache / part) for part in ("modules", "interrupt", "runtimes"))
    before = cache_bytes(cache)
    r = bx("system", "prune", "-f")
    freed = before - cache_bytes(cache)
    assert r.stdout.splitlines()[-1] == f"Total reclaimed space: {human_size(freed)}"
    assert f"deleted: {image_id}" in r.stdout
    assert cache_bytes(cache) == modules, "only the compiled modules (their calibration, the base runtime) are left"
    r = bx("system", "prune", "-a", "-f")
    assert cache_bytes(cache) == 0 and r.stdout == f"Total reclaimed space: {human_size(modules)}\n"


def test_a_programs_output_streams_while_it_runs(tmp_path, cache_dir):
    """A RUN program's lines reach the progress as it writes them, not when it ends: the line
    printed before a 2 s sleep carries an earlier time than the one after (a lower bound a
    loaded machine can only widen; both would carry the same time if shown at the end)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM python:3.12\nRUN python -c "import time; print(\'first\', flush=True); '
                                    'time.sleep(2); print(\'second\')"\n')
    env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0"}
    r = subprocess.run([sys.executable, "-m", "boxer_py", "build", "--progress=plain", "--no-cache", str(ctx)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    times = {line.split()[2]: float(line.split()[1]) for line in r.stderr.splitlines()
             if line.startswith("#2 ") and line.split()[-1] in ("first", "second")}
    assert times["second"] - times["first"] >= 1.5, r.stderr
