"""A `boxer run` runs its guest on an engine without epoch checks (cli/run.new_launcher): no
Wasmtime tick can stop it, so the run's process is ended instead (runtime/exitwatch.py). A guest
that never calls the host must still be stopped at its timeout, its disk quota and by SIGTERM,
with what it printed until then and the result boxer reports for a stopped run; served or not."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_server import Served  # noqa: E402  (the run server's test helper: its own socket dir)

SPIN = "print('before', flush=True)\nwhile True: pass"
# A program that says "up", then spins in one Wasm loop: no call, no memory access, nothing a host could hook.
PURE_SPIN = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\\10\\00\\00\\00\\03\\00\\00\\00")
  (data (i32.const 16) "up\\0a")
  (func (export "_start")
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop (br 0))))"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("noepoch-cache")


@pytest.fixture
def served(tmp_path, cache, hello_image):
    s = Served(tmp_path, cache, hello_image)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def spinner(build, tmp_path) -> Path:
    wasm = tmp_path / "spin.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(PURE_SPIN))
    return build('FROM scratch\nCOPY spin.wasm /spin.wasm\nENTRYPOINT ["/spin.wasm"]\n',
                 {"spin.wasm": wasm.read_bytes()})


def _no_epoch_modules(cache: Path) -> list[Path]:
    return [p for p in (cache / "modules").glob("*.cwasm") if "-epoch+" not in p.name]


@pytest.mark.parametrize("where", ["served", "own process"])
def test_a_spinning_python_guest_stops_at_its_timeout_with_its_output(served, where):
    before = len(served.served_runs())
    r = served("run", "--timeout", "2", str(served.image), "python", "-c", SPIN, served=where == "served")
    assert (r.returncode, r.stdout) == (124, "before\n"), r.stderr
    assert "timed out after 2s" in r.stderr
    assert (len(served.served_runs()) > before) == (where == "served")
    assert _no_epoch_modules(served.cache), "the run was not on an engine without epochs"


def test_json_reports_a_stopped_run_with_its_output(served):
    r = served("run", "--json", "--timeout", "1", str(served.image), "python", "-c", SPIN)
    doc = json.loads(r.stdout)
    assert (r.returncode, doc["exit_code"], doc["timed_out"], doc["stdout"]) == (124, 124, True, "before\n")
    # what it ran until it was stopped: its 1 s deadline comes after its start, and it spun meanwhile
    assert doc["duration_ms"] > 900 and doc["cpu_ms"] > 0, doc


def test_a_pure_wasm_loop_stops_at_its_timeout_and_on_sigterm(served, spinner):
    before = len(served.served_runs())
    r = served("run", "--timeout", "1", str(spinner))
    assert (r.returncode, r.stdout) == (124, "up\n") and "timed out after 1s" in r.stderr, r.stderr
    p = served.popen("run", str(spinner))
    assert p.stdout.readline() == "up\n"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 128 + signal.SIGTERM
    assert len(served.served_runs()) >= before + 2, served.log()


def test_a_guest_writing_past_its_disk_quota_is_stopped_with_its_output(served):
    r = served("run", "--disk", "1m", str(served.image), "python", "-c",
               "print('before', flush=True)\nf = open('/tmp/big', 'wb')\n"
               "while True:\n    f.write(b'x' * 65536); f.flush()")
    assert (r.returncode, r.stdout) == (134, "before\n"), r.stderr
    assert "wrote more than the 1048576-byte disk limit" in r.stderr


def test_sigterm_stops_a_spinning_served_guest_with_its_output(served):
    p = served.popen("run", str(served.image), "python", "-c", "print('up', flush=True)\nwhile True: pass")
    assert p.stdout.readline() == "up\n"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM and "interrupted" in err, err
