"""A hostile image's shell-form command or `#!/bin/sh` entrypoint at `boxer run` (issue 16):
boxer's shell interprets it on the run host (runtime/shellrun.py), so it must stay inside the
run's writable layer, stop at `--timeout` whatever it loops on, and keep every expansion,
recursion and pipe bounded (shell/limits.py), ending in one line, never a traceback. Real
Wasmtime, the real CLI."""
from __future__ import annotations

import os
import subprocess

import pytest

DOCKERFILE = """FROM python:3.12
WORKDIR /app
COPY bomb.sh /app/bomb.sh
"""
BOMB = "#!/bin/sh\n/app/bomb.sh\n/app/bomb.sh\n"


@pytest.fixture(scope="module")
def image(tmp_path_factory, cli_build):
    ctx = tmp_path_factory.mktemp("rtshell-hostile")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "bomb.sh").write_text(BOMB)
    (ctx / "bomb.sh").chmod(0o755)
    out = ctx / "hostile.wasm"
    return str(cli_build(ctx, out))


def one_line(r: subprocess.CompletedProcess, code: int, needle: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("script", [
    "while :; do python3 -c pass; done",                         # guests, one after another, forever
    "python3 -c 'while True: pass'; echo never",                 # one guest that never ends
    "while :; do python3 -c 'import time; time.sleep(0.2)'; done; echo never",
])
def test_a_script_that_never_ends_is_ended_by_the_timeout(boxer, image, script):
    r = boxer("run", "--rm", "--timeout", "3", image, "sh", "-c", script)
    assert r.returncode == 124 and "never" not in r.stdout, r.stderr
    assert "timed out after 3s" in r.stderr and "Traceback" not in r.stderr


def test_a_shell_loop_without_guests_ends_at_the_loop_budget(boxer, image):
    one_line(boxer("run", "--rm", image, "sh", "-c", "while :; do :; done"), 2, "loop still running after")


def test_writes_through_dotdot_and_symlinks_stay_in_the_runs_layer(boxer, image, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "pwned"
    depth = "../" * 40
    script = (f"ln -s / /tmp/up && echo a > /tmp/up/{depth}{target} ; "
              f"ln -s {outside} /abs && echo b > /abs/pwned ; "
              f"cd {depth} && mkdir -p {outside} && echo c > {depth}{target} ; "
              f"cp /etc/passwd {depth}{outside}/passwd ; "
              f"python3 -c \"print(open('{target}').read().split())\"")
    r = boxer("run", "--rm", image, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "['c']\n"  # the file the script wrote, at that guest path in its own layer
    assert os.listdir(outside) == []  # and nothing on the host


def test_huge_expansions_are_one_line(boxer, image):
    one_line(boxer("run", "--rm", image, "sh", "-c", "A=aaaaaaaa; while :; do A=$A$A; done"), 2, "more than 1 MiB")
    flood = "python3 -c \"import sys; sys.stdout.write('x' * (20 << 20))\" | cat; echo never"
    r = boxer("run", "--rm", image, "sh", "-c", flood)
    one_line(r, 2, "larger than 16 MiB")
    assert "never" not in r.stdout


@pytest.mark.parametrize("command", [
    ["sh", "-c", "f() { f; f; }; f"],
    ["sh", "-c", "s='sh -c \"$s\"'; export s; sh -c \"$s\""],
    ["/app/bomb.sh"],  # a script that starts itself, twice
])
def test_recursion_like_a_fork_bomb_ends_at_the_nesting_limit(boxer, image, command):
    one_line(boxer("run", "--rm", image, *command), 2, "nested more than 64 deep")


def test_background_jobs_are_refused_in_one_line(boxer, image):
    one_line(boxer("run", "--rm", image, "sh", "-c", "python3 -c pass & echo x"), 2, "background commands (&)")
