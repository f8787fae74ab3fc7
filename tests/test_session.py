"""The Python API agents use: Session.run / run_python."""
from __future__ import annotations

import threading

import pytest

import boxer_py


@pytest.fixture(scope="module")
def box(hello_image, launcher):
    return boxer_py.Session(hello_image, launcher=launcher)


def test_run_python_returns_a_result(box):
    r = box.run_python("import sys; print(6 * 7); print('warn', file=sys.stderr)")
    assert (r.exit_code, r.stdout, r.stderr) == (0, b"42\n", b"warn\n")


def test_default_command_env_and_workdir(box):
    assert box.run().stdout == b"Hello from cpython 3.12.0 on wasi!\n"
    r = box.run_python("import os; print(os.getcwd(), os.environ['X'])", env={"X": "1"}, workdir="/tmp")
    assert r.stdout == b"/tmp 1\n"


def test_limits_take_docker_sizes(box):
    r = box.run_python("x = []\nwhile True: x.append(bytearray(1 << 20))", memory="48m")
    assert r.out_of_memory and r.exit_code == 1
    r = box.run_python("print('a' * 100)", max_output="16")
    assert r.stdout == b"a" * 15 + b"\n" and r.stdout_truncated  # its first and last 8 bytes
    with pytest.raises(ValueError):
        box.run_python("pass", memory="lots")


def test_files_and_mounts(box, tmp_path):
    (tmp_path / "in.csv").write_text("x\n1\n2\n")
    code = "rows = open('/data/in.csv').read().split()[1:]\nopen('/out/sum.txt', 'w').write(str(sum(map(int, rows))))"
    r = box.run_python(code, mounts=[f"{tmp_path}:/data:ro"])
    assert r.exit_code == 0, r.stderr
    assert r.files == {"/out/sum.txt": b"3"}


def test_runs_do_not_share_state(box):
    assert box.run_python("open('/tmp/state', 'w').write('secret')").exit_code == 0
    r = box.run_python("import os; print(os.path.exists('/tmp/state'))")
    assert r.stdout == b"False\n"


def test_parallel_runs_from_threads(box):
    out = {}
    threads = [threading.Thread(target=lambda n=n: out.__setitem__(n, box.run_python(f"print({n} ** 2)")))
               for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {n: r.stdout for n, r in out.items()} == {n: f"{n ** 2}\n".encode() for n in range(8)}
