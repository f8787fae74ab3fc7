"""Registry benchmark: push and pull time of the example image against a local registry
(Debian's docker-registry on 127.0.0.1), and the bytes a second push sends when only the app
changed. `bench_registry()` returns rows (name, median seconds, extra) for bench/bench.py.

    python bench/registry_bench.py        # prints the rows
"""
from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import boxer_py  # noqa: E402
from boxer_py.registry.distribution import Options  # noqa: E402
from boxer_py.registry.transfer import pull, push  # noqa: E402
from localregistry import REGISTRY_BINARY, LocalRegistry  # noqa: E402

Row = tuple[str, float, str]


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def bench_registry(repeat: int = 3) -> list[Row]:
    if not Path(REGISTRY_BINARY).exists():
        return [("registry push/pull", float("nan"), "skipped: docker-registry is not installed (make system)")]
    work = Path(tempfile.mkdtemp(prefix="boxer-bench-registry-"))
    registry = LocalRegistry(work / "registry").start()
    rows: list[Row] = []
    try:
        image = work / "hello.wasm"
        boxer_py.build(REPO / "examples" / "hello-python", image, tag="hello")
        # The same app with one changed line: only its layer differs.
        changed_ctx = work / "hello-changed"
        shutil.copytree(REPO / "examples" / "hello-python", changed_ctx)
        with open(changed_ctx / "main.py", "a") as f:
            f.write("print('changed')\n")
        changed = work / "hello-changed.wasm"
        boxer_py.build(changed_ctx, changed, tag="hello")
        size = image.stat().st_size
        quiet = Options(mount=False)   # a fresh repository uploads every blob (no cross-repository mount)
        for fmt in ("oci", "wasm"):
            push_times, pull_times, sent = [], [], 0
            for i in range(repeat):
                ref = f"{registry.host}/bench/{fmt}-{i}:1"   # a fresh repository: every blob is sent
                start = time.perf_counter()
                sent = push(image, ref, fmt, quiet).sent
                push_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                pull(ref, work / f"pulled-{fmt}-{i}.wasm", quiet)
                pull_times.append(time.perf_counter() - start)
            rows.append((f"registry push ({fmt}, fresh repository)", _median(push_times),
                         f"image {_mb(size)}, uploaded {_mb(sent)}; first run (cold layer cache) {push_times[0]:.2f} s"))
            rows.append((f"registry pull ({fmt})", _median(pull_times), f"image {_mb(size)}"))
            again_times, again_sent = [], 0
            for i in range(repeat):
                start = time.perf_counter()
                again_sent = push(changed, f"{registry.host}/bench/{fmt}-{i}:2", fmt, quiet).sent
                again_times.append(time.perf_counter() - start)
            rows.append((f"registry re-push after an app change ({fmt})", _median(again_times),
                         f"uploaded {again_sent} bytes (first push {sent})"))
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    for name, seconds, extra in bench_registry():
        print(f"{name:48} {seconds:8.3f} s  {extra}")
