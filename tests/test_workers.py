"""Session(image, workers=N): runs in worker processes give what in-process runs give."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import wasmtime

import boxer_py
from boxer_py import ImageError, RunError
from boxer_py.runtime.launcher import Launcher


@pytest.fixture(scope="module")
def pair(hello_image, cache_dir):
    """The same image in-process and on 2 workers."""
    here = boxer_py.Session(hello_image, launcher=Launcher(cache_dir))
    there = boxer_py.Session(hello_image, cache_dir=cache_dir, workers=2)
    yield here, there
    there.close()
    here.close()


def same(r1, r2) -> None:
    measured = {"duration_ms": 0, "cpu_ms": 0, "peak_memory": 0}  # what differs run to run
    assert r1.to_json() | measured == r2.to_json() | measured


def test_results_match_in_process_runs(pair, tmp_path, monkeypatch):
    here, there = pair
    (tmp_path / "in.txt").write_text("from the host\n")
    (tmp_path / "stdin.txt").write_text("from a file\n")
    monkeypatch.chdir(tmp_path)  # relative host paths mean this directory, not the workers'
    cases = [
        dict(command=["python", "-c", "import sys; print(6 * 7); print('warn', file=sys.stderr); sys.exit(3)"]),
        dict(command=["python", "-c", "import os, sys; print(os.getcwd(), os.environ['X'], sys.stdin.read())"],
             env={"X": "1"}, workdir="/tmp", stdin=b"bytes in"),
        dict(command=["python", "-c", "import sys; print(sys.stdin.read())"], stdin="stdin.txt"),
        dict(command=["python", "-c", "open('/out/r.txt', 'w').write(open('/data/in.txt').read().upper())"],
             mounts=["./:/data:ro"]),
        dict(command=["python", "-c", "print('a' * 100)"], max_output="16"),
        dict(command=["python", "-c", "x = []\nwhile True: x.append(bytearray(1 << 20))"], memory="48m"),
        dict(command=["python", "-c", "while True: pass"], timeout=1),
        dict(),  # the image's CMD
    ]
    for case in cases:
        same(here.run(**case), there.run(**case))
    r = there.run(["python", "-c", "open('/out/r.txt', 'w').write(open('/data/in.txt').read().upper())"],
                  mounts=["./:/data:ro"])
    assert r.files == {"/out/r.txt": b"FROM THE HOST\n"}


def test_errors_come_back_as_errors(pair):
    here, there = pair
    for box in pair:
        with pytest.raises(RunError) as caught:
            box.run(["no-such-program"])
        assert caught.value.exit_code == 127 and "not found" in str(caught.value)


def test_runs_go_to_other_processes_side_by_side(pair):
    _, there = pair
    there.workers.start()
    pids = [w.process.pid for w in there.workers._started]
    assert len(set(pids)) == 2 and os.getpid() not in pids
    results = []

    def go(i: int) -> None:
        for _ in range(5):
            results.append(there.run_python(f"open('/tmp/x', 'w').write('{i}'); print(len(open('/tmp/x').read()))"))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 30 and all((r.exit_code, r.stdout) == (0, b"1\n") for r in results)
    assert there.launcher.held() == ([], [])  # this process never loaded the guest


def test_a_worker_that_dies_fails_its_run_and_is_replaced(hello_image, cache_dir):
    box = boxer_py.Session(hello_image, cache_dir=cache_dir, workers=1)
    try:
        box.workers.start()
        victim = box.workers._started[0].process

        def kill_soon() -> None:
            time.sleep(1)
            victim.send_signal(signal.SIGKILL)

        threading.Thread(target=kill_soon).start()
        with pytest.raises(RunError, match="worker process ended"):
            box.run_python("while True: pass", timeout=60)
        r = box.run_python("print('again')")
        assert (r.exit_code, r.stdout) == (0, b"again\n")
        assert box.workers._started[0].process.pid != victim.pid
    finally:
        box.close()
    assert victim.poll() is not None


def test_close_ends_the_workers_and_the_session_stays_usable(hello_image, cache_dir):
    box = boxer_py.Session(hello_image, cache_dir=cache_dir, workers=2)
    box.workers.start()
    processes = [w.process for w in box.workers._started]
    box.close()
    assert all(p.poll() == 0 for p in processes)  # each ended at EOF, cleanly
    assert box.run_python("print(1)").stdout == b"1\n"
    box.close()


def test_workers_need_the_image_as_a_file(hello_image, launcher):
    image = launcher.open(hello_image)
    with pytest.raises(ValueError, match="file or a tag"):
        boxer_py.Session(image, launcher=launcher, workers=2)


def test_workers_run_the_session_image_and_settings(hello_image, cache_dir, tmp_path, build):
    other = build('FROM scratch\nCOPY tiny.wasm /tiny.wasm\nENTRYPOINT ["/tiny.wasm"]\n',
                  {"tiny.wasm": bytes(wasmtime.wat2wasm('(module (func (export "_start")))'))})
    copy = tmp_path / "session.wasm"
    copy.write_bytes(hello_image.read_bytes())
    box = boxer_py.Session(copy, launcher=Launcher(cache_dir, preinit=False), workers=1)
    try:
        r = box.run_python("print(1)")
        assert (r.stdout, r.preinitialised) == (b"1\n", False)  # as the session's launcher would
        box.close()
        copy.write_bytes(other.read_bytes())  # the file now holds another image
        with pytest.raises(RunError, match="no longer holds the session's image"):
            box.run_python("print(1)")
        copy.write_bytes(hello_image.read_bytes()[:-1] + b"x")
        with pytest.raises(ImageError, match="tampered"):
            box.run_python("print(1)")
    finally:
        box.close()


def test_workers_leave_with_their_session_process(hello_image, cache_dir):
    """A session's process that ends without closing (even by os._exit) leaves no worker behind."""
    import subprocess
    import sys

    code = ("import boxer_py, os\n"
            f"box = boxer_py.Session({str(hello_image)!r}, cache_dir={str(cache_dir)!r}, workers=2)\n"
            "box.workers.start()\n"
            "print(*[w.process.pid for w in box.workers._started], flush=True)\n"
            "os._exit(0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2, done.stderr
    deadline = time.monotonic() + 30
    while any(map(running, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(running, pids))
    assert "Traceback" not in done.stderr  # the workers held that pipe too: run() waited for them


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_close_during_a_run_lets_that_run_finish(hello_image, cache_dir):
    """close() ends idle workers now and a busy one when its run is done; the session keeps
    at most its count of workers afterwards."""
    box = boxer_py.Session(hello_image, cache_dir=cache_dir, workers=1)
    try:
        box.workers.start()
        busy = box.workers._started[0].process
        results = []
        runner = threading.Thread(target=lambda: results.append(
            box.run_python("import time; time.sleep(2); print('finished')", timeout=60)))
        runner.start()
        time.sleep(0.5)
        box.close()  # while that run goes on
        runner.join()
        assert results and (results[0].exit_code, results[0].stdout) == (0, b"finished\n")
        assert busy.wait(timeout=30) == 0  # ended once its run was done
        assert box.run_python("print(2)").stdout == b"2\n"
        assert len(box.workers._started) == 1
    finally:
        box.close()
