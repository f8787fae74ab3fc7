"""Many runs through one Session leave nothing behind: no growth in host memory, open file
descriptors or temp dirs. A tiny WASI command keeps 1,000 sequential runs within seconds
(every run still gets its own rootfs copy, store, stdio and /out); CPython covers the
concurrent case."""
from __future__ import annotations

import os
import tempfile
import threading
import time

import wasmtime
from hostile_world import open_fds

import boxer_py

# Writes "ok\n" to stdout, touches 64 pages of memory, exits 3.
TINY = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ok\\n")
  (func (export "_start")
    (drop (memory.grow (i32.const 64)))
    (i32.store (i32.const 70000) (i32.const 1))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 3))))
"""


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def measure(cache_dir, launcher):
    launcher.settle()  # writable layers are removed in the background, after each result is back
    return {"rss_kib": rss_kib(), "fds": open_fds(), "runs": sorted(os.listdir(cache_dir / "runs")),
            "tmp": sorted(os.listdir(tempfile.gettempdir()))}


def test_a_thousand_sequential_runs_leave_nothing_behind(build, launcher, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "private-tmp"))
    (tmp_path / "private-tmp").mkdir()
    image = build('FROM scratch\nCOPY tiny.wasm /tiny.wasm\nENTRYPOINT ["/tiny.wasm"]\n',
                  {"tiny.wasm": bytes(wasmtime.wat2wasm(TINY))})
    box = boxer_py.Session(image, launcher=launcher)
    for _ in range(50):  # warm up: module loaded, allocator settled
        assert box.run(timeout=10).exit_code == 3
    before = measure(cache_dir, launcher)
    started = time.monotonic()
    for i in range(1000):
        r = box.run(timeout=10, memory="16m")
        assert (r.exit_code, r.stdout) == (3, b"ok\n"), (i, r)
    elapsed = time.monotonic() - started
    after = measure(cache_dir, launcher)
    print(f"1000 runs in {elapsed:.1f}s; {before} -> {after}")
    assert after["runs"] == before["runs"] == []
    assert after["tmp"] == before["tmp"] == []
    assert after["fds"] <= before["fds"] + 2
    assert after["rss_kib"] - before["rss_kib"] < 32 * 1024, (before, after)


def test_eight_concurrent_python_runs_leave_nothing_behind(hostile_box, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "private-tmp"))
    (tmp_path / "private-tmp").mkdir()

    def batch(n: int, out: list) -> None:
        for i in range(n):
            r = hostile_box.run_python(f"open('/tmp/x', 'w').write('y' * 100000); print({i})", timeout=60)
            out.append((r.exit_code, r.stdout))

    def round_of_eight(n: int) -> list:
        outs = [[] for _ in range(8)]
        threads = [threading.Thread(target=batch, args=(n, o)) for o in outs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outs

    round_of_eight(2)  # warm up
    before = measure(cache_dir, hostile_box.launcher)
    outs = round_of_eight(12)
    after = measure(cache_dir, hostile_box.launcher)
    print(f"8 x 12 concurrent runs; {before} -> {after}")
    assert all(o == [(0, f"{i}\n".encode()) for i in range(12)] for o in outs)
    assert after["runs"] == before["runs"] == []
    assert after["tmp"] == before["tmp"] == []
    assert after["fds"] <= before["fds"] + 2
    assert after["rss_kib"] - before["rss_kib"] < 64 * 1024, (before, after)
