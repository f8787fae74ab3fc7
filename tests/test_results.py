"""What a run gives back to an agent: head-and-tail truncation, the structured error, binary
output flagged, out_of_memory from a MemoryError, peak memory and CPU time, JSON on start
errors, files handed in without mounts, streaming callbacks, cancellation and asyncio."""
from __future__ import annotations

import asyncio
import base64
import inspect
import json
import threading
import time

import pytest

import boxer_py


@pytest.fixture(scope="module")
def box(hello_image, cache_dir):
    with boxer_py.Session(hello_image, cache_dir) as session:
        yield session


def test_truncation_keeps_head_and_tail_with_the_dropped_count(box):
    flood = "for i in range(5000): print('line', i)\nraise ValueError('the end')"
    r = box.run_python(flood, max_output="2k")
    assert r.stdout_truncated and r.stdout.startswith(b"line 0\nline 1\n")
    assert r.stdout.endswith(b"line 4999\n")  # the tail survives
    written = sum(len(f"line {i}\n") for i in range(5000))
    assert len(r.stdout) <= 2048 and r.stdout_dropped == written - len(r.stdout)
    assert not r.stderr_truncated and r.stderr.endswith(b"ValueError: the end\n")


def test_truncation_never_splits_a_utf8_character(box):
    r = box.run_python("print('é' * 5000)", max_output="1001")
    assert r.stdout_truncated
    r.stdout.decode()  # strict: no half character at the cut
    assert r.to_json()["stdout_encoding"] == "utf-8"


def test_python_error_is_structured(box):
    r = box.run_python("def f():\n    raise KeyError('k')\nf()")
    assert r.exit_code == 1
    assert r.error["type"] == "KeyError" and r.error["message"] == "'k'"
    assert 'line 2, in f' in r.error["traceback"]
    assert box.run_python("print(1)").error is None


def test_binary_output_is_flagged_base64(box):
    doc = box.run_python("import sys; sys.stdout.buffer.write(bytes(range(5)))").to_json()
    assert doc["stdout_encoding"] == "base64" and base64.b64decode(doc["stdout"]) == bytes(range(5))
    files = box.run_python("open('/out/b.bin', 'wb').write(bytes(range(5)))").to_json()["files"]
    assert files[0]["encoding"] == "base64"
    assert box.run_python("print('tab\\there')").to_json()["stdout_encoding"] == "utf-8"


def test_memory_error_under_a_cap_is_out_of_memory(box):
    r = box.run_python("x = bytearray(200 << 20)", memory="64m")
    assert r.exit_code == 1 and r.error["type"] == "MemoryError" and r.out_of_memory
    assert box.run_python("raise MemoryError").out_of_memory is False  # no cap: not the sandbox's doing


def test_peak_memory_and_cpu_time(box):
    small = box.run_python("pass")
    big = box.run_python("x = bytearray(64 << 20)\nsum(range(3_000_000))")
    assert big.peak_memory >= small.peak_memory + (64 << 20)
    assert big.cpu_ms > small.cpu_ms and big.cpu_ms > 0


def test_json_on_start_errors(boxer, hello_image):
    r = boxer("run", "--json", str(hello_image), "nosuch")
    doc = json.loads(r.stdout)
    assert r.returncode == doc["exit_code"] == 127
    assert "nosuch: not found" in doc["error"]["message"] and doc["stdout"] == ""


def test_files_go_into_the_layer_without_a_mount(box):
    r = box.run_python("print(open('/inputs/data.csv').read(), end='')", files={"/inputs/data.csv": b"a,b\n1,2\n"})
    assert r.stdout == b"a,b\n1,2\n"
    assert box.run_python("import os; print(os.path.exists('/inputs/data.csv'))").stdout == b"False\n"


def test_cli_file_option(boxer, hello_image, tmp_path):
    (tmp_path / "in.txt").write_text("from the host")
    r = boxer("run", "--file", f"{tmp_path / 'in.txt'}:/data/in.txt", str(hello_image), "python", "-c",
              "print(open('/data/in.txt').read())")
    assert r.returncode == 0 and r.stdout == "from the host\n"
    r = boxer("run", "--file", f"{tmp_path / 'missing'}:/x", str(hello_image), "python", "-c", "pass")
    assert r.returncode == 125 and "--file" in r.stderr and "Traceback" not in r.stderr


def test_callbacks_stream_output_as_it_comes(box):
    seen: list[tuple[float, bytes]] = []
    start = time.monotonic()
    r = box.run_python("import sys, time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)\n"
                       "sys.stderr.write('bye\\n')", on_stdout=lambda b: seen.append((time.monotonic() - start, b)),
                       on_stderr=lambda b: seen.append((-1, b)))
    assert b"".join(b for t, b in seen if t >= 0) == r.stdout == b"0\n1\n2\n"
    assert seen[0][0] < r.duration_ms / 1000 - 0.5  # the first line came long before the end
    assert (-1, b"bye\n") in seen


def test_callback_error_is_raised_after_the_run(box):
    def fail(_data: bytes) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        box.run_python("print(1)", on_stdout=fail)


@pytest.mark.parametrize("code", ["while True: pass", "import time; time.sleep(60)"])
def test_cancel_stops_the_guest_at_once(box, code):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    r = box.run_python(code, cancel=cancel, timeout=60)
    assert (r.exit_code, r.trap) == (130, "interrupted")
    assert time.monotonic() - started < 10


def test_async_session_runs_and_cancels(hello_image, cache_dir):
    async def main() -> tuple[boxer_py.RunResult, list[bytes], float]:
        async with boxer_py.AsyncSession(hello_image, cache_dir) as box:
            chunks: list[bytes] = []
            done = await box.run_python("print('hi')", on_stdout=chunks.append)
            task = asyncio.create_task(box.run_python("while True: pass", timeout=60))
            await asyncio.sleep(1)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return done, chunks, time.monotonic() - started

    done, chunks, stopping = asyncio.run(main())
    assert done.stdout == b"hi\n" and chunks == [b"hi\n"]
    assert stopping < 5


def test_public_api_is_listed_and_documented():
    names = dir(boxer_py)
    for name in ("Session", "AsyncSession", "Interpreter", "RunResult", "Limits", "build", "push", "pull"):
        assert name in names
    for name in boxer_py.__all__:
        value = getattr(boxer_py, name)
        if inspect.isclass(value):
            doc = value.__doc__ or ""
            assert doc.strip() and not doc.startswith(f"{name}("), f"{name} has no docstring of its own"
