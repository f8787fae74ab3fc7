"""Limits an agent needs: time, memory, output; and the machine-readable result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import wasmtime

import boxer_py
from boxer_py import Limits, RunSpec


def run_json(boxer, image, code, *flags, **kwargs):
    r = boxer("run", "--json", *flags, str(image), "python", "-c", code, **kwargs)
    return r.returncode, json.loads(r.stdout)


def test_timeout_stops_an_infinite_loop(boxer, hello_image):
    code, result = run_json(boxer, hello_image, "print('start', flush=True)\nwhile True: pass", "--timeout", "3")
    assert code == 124
    assert result["timed_out"] is True and result["exit_code"] == 124
    assert result["stdout"] == "start\n"
    assert "timed out" in result["trap"]


def test_timeout_streams_and_reports(boxer, hello_image):
    r = boxer("run", "--timeout", "0.5", str(hello_image), "python", "-c", "while True: pass")
    assert r.returncode == 124
    assert "timed out after 0.5s" in r.stderr
    assert "panicked" not in r.stderr


def test_memory_cap_stops_a_memory_bomb_and_host_stays_bounded(hello_image, cache_dir):
    # RUSAGE_CHILDREN keeps the largest child ever waited for, and Linux counts a forked child's
    # RSS before its exec (a copy of this big test process): measure from a fresh, small parent
    bomb = "x = []\nwhile True: x.append(bytearray(1 << 20))"
    wrapper = ("import resource, subprocess, sys\np = subprocess.run(sys.argv[1:], capture_output=True)\n"
               "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.stdout.write(p.stdout.decode())")
    r = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "boxer_py", "run", "--json",
                        "--memory", "64m", str(hello_image), "python", "-c", bomb], capture_output=True, text=True,
                       env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir)}, timeout=300)
    first, _, rest = r.stdout.partition("\n")
    code, peak_kib = map(int, first.split())
    result = json.loads(rest)
    assert code != 0
    assert result["out_of_memory"] is True
    assert "MemoryError" in result["stderr"]
    # the boxer process itself (Python + Wasmtime + the mapped module) plus at most the 64 MiB cap
    assert peak_kib < 450 * 1024


def test_memory_cap_leaves_normal_programs_alone(boxer, hello_image):
    code, result = run_json(boxer, hello_image, "x = bytearray(8 << 20); print(len(x))", "--memory", "128m")
    assert (code, result["stdout"], result["out_of_memory"]) == (0, "8388608\n", False)


def test_output_cap_truncates_and_flags(boxer, hello_image):
    flood = "import sys\nfor _ in range(10000): sys.stdout.write('y' * 1000); sys.stderr.write('e' * 100)"
    code, result = run_json(boxer, hello_image, flood, "--max-output", "1k")
    assert code == 0
    assert result["stdout"] == "y" * 1024 and result["stdout_truncated"] is True
    assert result["stderr"] == "e" * 1024 and result["stderr_truncated"] is True


def test_output_cap_when_streaming(boxer, hello_image):
    r = boxer("run", "--max-output", "10", str(hello_image), "python", "-c", "print('z' * 100)")
    assert r.stdout == "z" * 9 + "\n"  # the first 5 bytes and the last 5, as the result keeps them
    assert "stdout truncated at 10 bytes: 91 bytes from its middle dropped" in r.stderr


def test_json_result_shape_and_out_files(boxer, hello_image):
    code = ("import os\nos.makedirs('/out/sub', exist_ok=True)\nopen('/out/report.csv', 'w').write('a,b\\n1,2\\n')\n"
            "open('/out/sub/blob.bin', 'wb').write(bytes(range(256)))\nprint('done')")
    rc, result = run_json(boxer, hello_image, code)
    assert rc == 0
    assert set(result) == {"exit_code", "stdout", "stderr", "stdout_encoding", "stderr_encoding", "stdout_truncated",
                           "stderr_truncated", "stdout_dropped", "stderr_dropped", "duration_ms", "cpu_ms",
                           "peak_memory", "timed_out", "out_of_memory", "trap", "error", "files", "files_truncated",
                           "disk_full", "preinitialised"}
    assert result["stdout"] == "done\n" and result["duration_ms"] > 0
    assert result["preinitialised"] is True  # `python -c` starts from the snapshot of CPython
    files = {f["path"]: f for f in result["files"]}
    assert files["/out/report.csv"]["content"] == "a,b\n1,2\n"
    assert files["/out/sub/blob.bin"]["encoding"] == "base64" and files["/out/sub/blob.bin"]["size"] == 256


def test_crash_is_reported_in_json(boxer, build):
    crash = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "_start") unreachable))')
    image = build('FROM scratch\nCOPY crash.wasm /crash.wasm\nENTRYPOINT ["/crash.wasm"]\n', {"crash.wasm": bytes(crash)})
    r = boxer("run", "--json", str(image))
    result = json.loads(r.stdout)
    assert r.returncode == result["exit_code"] == 134
    assert "unreachable" in result["trap"]


def test_stdin_from_file(boxer, hello_image, tmp_path):
    f = tmp_path / "input.txt"
    f.write_text("line one\nline two\n")
    rc, result = run_json(boxer, hello_image, "import sys; print(len(sys.stdin.readlines()))", "--stdin", str(f))
    assert result["stdout"] == "2\n"


def test_api_captures_and_runs_concurrently(launcher, hello_image):
    image = boxer_py.read_image(hello_image)
    results = {}

    def work(n):
        spec = RunSpec(command=("python", "-c", f"import sys; print({n} * 2); sys.exit({n})"), stdin=b"")
        results[n] = launcher.run(image, spec)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in range(1, 5):
        assert (results[n].exit_code, results[n].stdout) == (n, f"{n * 2}\n".encode())


def test_api_stdin_bytes_and_limits(launcher, hello_image):
    image = boxer_py.read_image(hello_image)
    r = launcher.run(image, RunSpec(command=("python", "-c", "import sys; print(sys.stdin.read()[::-1])"),
                                    stdin=b"abc"))
    assert r.stdout == b"cba\n"
    r = launcher.run(image, RunSpec(command=("python", "-c", "while 1: pass"), limits=Limits(timeout=0.3)))
    assert r.timed_out and r.exit_code == 124


def test_timeout_also_ends_a_guest_blocked_in_sleep(boxer, hello_image):
    code, result = run_json(boxer, hello_image, "import time; print('zz', flush=True); time.sleep(600)", "--timeout", "1")
    assert code == 124
    assert result["timed_out"] is True


def test_writable_layer_of_a_timed_out_run_is_removed_before_it_reports(boxer, hello_image, cache_dir):
    # a guest blocked reading this process's stdin (a pipe that stays open) is out of Wasmtime's
    # reach: the watcher ends the guest's process, and the run removes its layer before it reports
    runs = cache_dir / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    cmd = [sys.executable, "-m", "boxer_py", "run", "-i", "--timeout", "0.5", str(hello_image),
           "python", "-c", "import sys; sys.stdin.read()"]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0"}) as proc:
        assert proc.wait(timeout=600) == 124  # a guard against a hang, not a measure: it compiles first
    assert set(runs.iterdir()) - before == set()


def test_writable_layer_of_a_killed_run_is_swept(boxer, hello_image, cache_dir):
    # SIGKILL leaves no chance to clean up: the layer stays until the next launcher sweeps it
    runs = cache_dir / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    cmd = [sys.executable, "-m", "boxer_py", "run", "-i", str(hello_image),
           "python", "-c", "import sys; print('up', flush=True); sys.stdin.read()"]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True,
                          env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0"}) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"up\n"  # the guest runs, so its layer exists
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    left = list(set(runs.iterdir()) - before)
    assert left
    # the next run's launcher sweeps it as it starts, before its own run (which it removes as it
    # exits): run in-process, so that nothing is left to a server's background reaping
    r = boxer("run", str(hello_image), "python", "-c", "pass", env={"BOXER_SERVER": "0"})
    assert r.returncode == 0, r.stderr
    assert [p for p in left if os.path.lexists(p)] == []
