"""Shell-form commands at `boxer run` (issue 16): `CMD sh -c '... && ...'`, entrypoints that are
`#!/bin/sh` scripts, `$*`/`$@`, `set -e`, sh's exit codes, the script's files in the run's
writable layer, output in order, stdin, Ctrl-C, and one result for the whole command through the
CLI, the run server and the Python API. Real Wasmtime, the real CLI (runtime/shellrun.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

DOCKERFILE = """FROM python:3.12
WORKDIR /app
COPY etl.py test_etl.py /app/
COPY entrypoint.sh /entrypoint.sh
CMD sh -c 'python3 etl.py && python3 test_etl.py'
"""
# the two corpus patterns, small: etl-products-pandas's CMD and autopep8-action's entrypoint
ETL = "import os, sys\nif os.environ.get('FAIL'):\n    sys.exit(3)\nopen('out.txt', 'w').write('rows=3\\n')\nprint('etl done')\n"
TEST_ETL = "print('test sees', open('out.txt').read().strip())\n"
ENTRYPOINT = """#!/bin/sh -
set -uo pipefail
echo "star: $*"
python3 -c 'import sys; print(sys.argv[1:])' $*
python3 -c 'import sys; print(sys.argv[1:])' "$@"
"""
ARGV = "import sys; print(sys.argv[1:])"


@pytest.fixture(scope="module")
def image(tmp_path_factory, cli_build):
    ctx = tmp_path_factory.mktemp("rtshell")
    files = {"Dockerfile": DOCKERFILE, "etl.py": ETL, "test_etl.py": TEST_ETL, "entrypoint.sh": ENTRYPOINT}
    for name, text in files.items():
        (ctx / name).write_text(text)
    (ctx / "entrypoint.sh").chmod(0o755)
    out = ctx / "app.wasm"
    return str(cli_build(ctx, out))


def test_a_shell_form_cmd_with_and_runs_both_programs_in_one_container(boxer, image):
    r = boxer("run", "--rm", image)
    assert (r.returncode, r.stdout) == (0, "etl done\ntest sees rows=3\n"), r.stderr
    r = boxer("run", "--rm", "-e", "FAIL=1", image)  # && stops at the failing program, whose code is sh's
    assert (r.returncode, r.stdout) == (3, ""), r.stderr


def test_an_entrypoint_script_gets_the_run_arguments_as_star_and_at(boxer, image):
    r = boxer("run", "--rm", "--entrypoint", "/entrypoint.sh", image, "a", "b c")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "star: a b c\n['a', 'b', 'c']\n['a', 'b c']\n"


@pytest.mark.parametrize("script, code, out", [
    ("python3 -c 'raise SystemExit(4)'; echo after", 0, "after\n"),
    ("set -e; python3 -c 'raise SystemExit(4)'; echo after", 4, ""),
    ("python3 -c 'print(1)' && exit 9", 9, "1\n"),
    ("exec python3 -c 'raise SystemExit(5)'; echo never", 5, ""),
    ("false || python3 -c 'print(2)' | python3 -c 'import sys; print(sys.stdin.read().strip() * 2)'", 0, "22\n"),
    ("for f in etl.py test_etl.py; do test -f $f && echo $f; done; nosuch", 127, "etl.py\ntest_etl.py\n"),
])
def test_exit_codes_and_control_flow_are_shs(boxer, image, script, code, out):
    r = boxer("run", "--rm", image, "sh", "-c", script)
    assert (r.returncode, r.stdout) == (code, out), r.stderr
    if code == 127:
        assert "nosuch: not found" in r.stderr and "Traceback" not in r.stderr


def test_the_script_works_in_the_runs_writable_layer_and_leaves_the_image_as_it_was(boxer, image):
    script = ("mkdir -p /data/in && cd /data/in && echo hello > note.txt && "
              "python3 -c \"import os; print(os.getcwd(), open('note.txt').read().strip())\" && "
              "python3 -c \"open('/data/from-guest', 'w').write('g')\" && cat /data/from-guest && pwd")
    r = boxer("run", "--rm", image, "sh", "-c", script)
    assert (r.returncode, r.stdout) == (0, "/data/in hello\ng/data/in\n"), r.stderr
    r = boxer("run", "--rm", image, "sh", "-c", "test -e /data && echo kept || echo fresh")
    assert r.stdout == "fresh\n", r.stderr


def test_output_comes_in_order_and_json_is_one_result(boxer, image):
    script = "echo a; python3 -c \"import sys; print('b'); print('e', file=sys.stderr)\"; echo c; exit 6"
    r = boxer("run", "--rm", image, "sh", "-c", script)
    assert (r.returncode, r.stdout, r.stderr) == (6, "a\nb\nc\n", "e\n")
    r = boxer("run", "--rm", "--json", image, "sh", "-c", script)
    doc = json.loads(r.stdout)
    assert (r.returncode, doc["exit_code"], doc["stdout"], doc["stderr"]) == (6, 6, "a\nb\nc\n", "e\n")


def test_stdin_goes_to_the_guest_that_reads_it(boxer, image):
    upper = "import sys; print(sys.stdin.read().strip().upper())"
    r = boxer("run", "--rm", "-i", image, "sh", "-c", f"echo first; python3 -c '{upper}'", input="from the user\n")
    assert (r.returncode, r.stdout) == (0, "first\nFROM THE USER\n"), r.stderr
    r = boxer("run", "--rm", image, "sh", "-c", f"python3 -c '{upper}' <<EOF\nhere doc\nEOF")
    assert r.stdout == "HERE DOC\n", r.stderr


def test_served_and_unserved_runs_and_the_api_give_the_same_result(boxer, image, cache_dir):
    from boxer_py import Session

    script = "echo one; python3 -c 'import os; print(os.environ[\"X\"])'; exit 3"
    served = boxer("run", "--rm", "-e", "X=env", image, "sh", "-c", script)
    plain = boxer("run", "--rm", "-e", "X=env", image, "sh", "-c", script, env={"BOXER_SERVER": "0"})
    assert (served.returncode, served.stdout) == (plain.returncode, plain.stdout) == (3, "one\nenv\n")
    rest = "read first; echo got $first; python3 -c 'import sys; print(sys.stdin.read().split())'"
    with Session(image, cache_dir=cache_dir) as session:
        result = session.run(["sh", "-c", script], env={"X": "env"})
        assert (result.exit_code, result.stdout) == (3, b"one\nenv\n")
        result = session.run(["sh", "-c", rest], stdin=b"l1\nl2\nl3\n")  # read takes a line, the guest the rest
        assert (result.exit_code, result.stdout) == (0, b"got l1\n['l2', 'l3']\n")


def test_an_interactive_shell_is_still_refused(boxer, image):
    r = boxer("run", "--rm", image, "sh")
    assert r.returncode == 127 and "a WebAssembly image has no shell" in r.stderr, r.stderr


def test_ctrl_c_stops_the_guest_and_the_rest_of_the_script(image, cache_dir):
    script = "python3 -c \"print('started', flush=True)\nwhile True: pass\"; echo after"
    env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir)}
    p = subprocess.Popen([sys.executable, "-m", "boxer_py", "run", "--rm", image, "sh", "-c", script],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert p.stdout is not None and p.stdout.readline() == b"started\n"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 130 and b"after" not in out, err
