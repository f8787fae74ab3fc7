"""`boxer export --format standalone`: one WASI module that the plain `wasmtime` CLI runs with
no launcher and no `--dir`, printing what `boxer run` prints.

Each run starts in an empty directory of its own, which must still be empty afterwards: the
module's writes stay in its memory.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def wasmtime_cache(tmp_path_factory) -> Path:
    """A private compile cache for the wasmtime CLI, so each module compiles once per session."""
    directory = tmp_path_factory.mktemp("wasmtime-cache")
    config = directory / "cache.toml"
    config.write_text(f'[cache]\ndirectory = "{directory / "modules"}"\n')
    return config


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """image -> its standalone module (exported once per module)."""
    made: dict[Path, Path] = {}

    def export(boxer, image: Path) -> Path:
        if image not in made:
            out = tmp_path_factory.mktemp("standalone") / f"{image.stem}-standalone.wasm"
            r = boxer("export", "--format", "standalone", str(image), str(out))
            assert r.returncode == 0, r.stderr
            assert r.stdout == f"{out}\n"
            made[image] = out
        return made[image]

    return export


@pytest.fixture
def plain(wasmtime_cli, wasmtime_cache, tmp_path):
    """Runs a module with the wasmtime CLI and nothing else: no --dir, no --env."""

    def run(module: Path, *args: str, input: str | None = None, options: tuple[str, ...] = ()):
        empty = tmp_path / "cwd"
        empty.mkdir(exist_ok=True)
        r = subprocess.run([str(wasmtime_cli), "run", "-C", f"cache-config={wasmtime_cache}", *options,
                            str(module), *args], input=input, capture_output=True, text=True, cwd=empty,
                           timeout=600)
        assert list(empty.iterdir()) == []
        return r

    return run


def _same(ours: subprocess.CompletedProcess, theirs: subprocess.CompletedProcess) -> None:
    assert (theirs.stdout, theirs.stderr, theirs.returncode) == (ours.stdout, ours.stderr, ours.returncode)


def test_hello_python_prints_what_boxer_run_prints(boxer, hello_image, standalone, plain):
    module = standalone(boxer, hello_image)
    r = plain(module)
    assert r.stdout == "Hello from cpython 3.12.0 on wasi!\n"
    _same(boxer("run", str(hello_image)), r)


def test_arguments_after_the_module_replace_cmd(boxer, hello_image, standalone, plain):
    script = "import os, sys; print(sys.argv, os.getcwd(), os.environ['GREETING'], os.environ['PATH'])"
    r = plain(standalone(boxer, hello_image), "python", "-c", script, "one", "two words")
    assert r.stdout == "['-c', 'one', 'two words'] /app Hello /usr/local/bin:/usr/bin:/bin\n", r.stderr
    _same(boxer("run", str(hello_image), "python", "-c", script, "one", "two words"), r)


WRITES = """
import os
open("notes.txt", "w").write("written in the run")
os.makedirs("/tmp/a/b")
os.rename("/app/notes.txt", "/tmp/a/b/moved.txt")
with open("/tmp/a/b/moved.txt", "a") as f:
    f.write(", appended")
print(open("/tmp/a/b/moved.txt").read(), os.path.getsize("/tmp/a/b/moved.txt"))
print(sorted(os.listdir("/app")), sorted(os.listdir("/tmp/a/b")))
with open("/app/main.py", "r+") as f:
    f.write("# changed")
print(open("/app/main.py").read().splitlines()[0])
os.remove("/tmp/a/b/moved.txt")
os.rmdir("/tmp/a/b")
print(os.path.exists("/tmp/a/b"), sorted(os.listdir("/tmp/a")))
try:
    open("/app/missing.txt")
except FileNotFoundError as e:
    print("missing:", e.errno)
"""


def test_writes_stay_in_the_modules_memory(boxer, hello_image, standalone, plain):
    module = standalone(boxer, hello_image)
    before = module.read_bytes()
    r = plain(module, "python", "-c", WRITES)
    assert r.stdout.splitlines() == [
        "written in the run, appended 28", "['main.py'] ['moved.txt']", "# changed", "False []", "missing: 44",
    ], r.stderr
    _same(boxer("run", str(hello_image), "python", "-c", WRITES), r)
    again = plain(module)   # a new run starts from the image's files again
    assert again.stdout == "Hello from cpython 3.12.0 on wasi!\n"
    assert module.read_bytes() == before


def test_stdin_and_exit_code_are_the_runtimes(boxer, hello_image, standalone, plain):
    script = "import sys; data = sys.stdin.read(); print(data.upper(), end=''); sys.exit(3)"
    r = plain(standalone(boxer, hello_image), "python", "-c", script, input="from stdin\n")
    assert (r.stdout, r.returncode) == ("FROM STDIN\n", 3)


def test_the_runtimes_env_adds_to_the_images(boxer, hello_image, standalone, plain):
    script = "import os; print(os.environ['GREETING'], os.environ['EXTRA'], os.environ['LANG'])"
    r = plain(standalone(boxer, hello_image), "python", "-c", script, options=("--env", "GREETING=Hi",
                                                                               "--env", "EXTRA=1"))
    assert r.stdout == "Hi 1 C.UTF-8\n", r.stderr


def test_c_program_prints_what_boxer_run_prints(boxer, hello_c_image, standalone, plain):
    module = standalone(boxer, hello_c_image)
    r = plain(module)
    assert r.stdout.splitlines()[-1] == "This file was read through a relative path, from the WORKDIR.", r.stderr
    _same(boxer("run", str(hello_c_image)), r)
    args = ("--write", "out.txt", "text", "--read", "out.txt", "--cd", "/", "--read", "work/greeting.txt", "--env")
    _same(boxer("run", str(hello_c_image), *args), plain(module, *args))


def test_shell_form_command_is_refused_in_one_line(boxer, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM python:3.12\nCMD python -c 'print(1)'\n")
    image = tmp_path / "shell.wasm"
    assert boxer("build", "-q", str(tmp_path), "-o", str(image)).returncode == 0
    r = boxer("export", "--format", "standalone", str(image), str(tmp_path / "out.wasm"))
    assert r.returncode == 1   # as every other failed export
    assert "shell form" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.wasm").exists()
