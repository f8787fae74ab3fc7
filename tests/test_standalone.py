"""`boxer export --format standalone`: one WASI module that the plain `wasmtime` CLI runs with
no launcher and no `--dir`, printing what `boxer run` prints.

Each run starts in an empty directory of its own, which must still be empty afterwards: the
module's writes stay in its memory.
"""
from __future__ import annotations

import lzma
import subprocess
from pathlib import Path

import pytest

import boxer_py

RUNTIME_313 = Path(__file__).resolve().parent.parent / "toolchain/runtimes/cpython-3.13"


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


def test_a_command_the_module_cannot_run_is_one_line(boxer, hello_image, standalone, plain):
    r = plain(standalone(boxer, hello_image), "ls", "-l")
    assert (r.returncode, r.stdout, r.stderr) == (125, "", "ls: not found\n")
    r = plain(standalone(boxer, hello_image), "/app/main.py")
    assert r.returncode == 125 and r.stderr == "/app/main.py: not this module's program (a standalone module " \
                                              "runs only its image's command)\n"


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


def test_shell_form_runs_as_boxer_run_runs_it_and_a_real_shell_script_is_one_line(boxer, tmp_path, standalone, plain):
    (tmp_path / "Dockerfile").write_text("FROM python:3.12\nENV WHO=shell\nCMD python -c 'import sys; print(sys.argv)' $WHO\n")
    image = tmp_path / "shell.wasm"
    assert boxer("build", "-q", str(tmp_path), "-o", str(image)).returncode == 0
    r = plain(standalone(boxer, image))
    assert r.stdout == "['-c', 'shell']\n", r.stderr
    _same(boxer("run", str(image)), r)
    (tmp_path / "Dockerfile").write_text("FROM python:3.12\nCMD python -c 'print(1)' | cat\n")
    assert boxer("build", "-q", str(tmp_path), "-o", str(image)).returncode == 0
    r = boxer("export", "--format", "standalone", str(image), str(tmp_path / "out.wasm"))
    assert r.returncode == 1   # as every other failed export
    assert "needs a shell" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out.wasm").exists()


@pytest.fixture(scope="module")
def cpython_313_image(tmp_path_factory) -> Path:
    """A FROM scratch image of the project's own CPython 3.13 build (toolchain/runtimes)."""
    ctx = tmp_path_factory.mktemp("py313")
    (ctx / "python3.13.wasm").write_bytes(lzma.decompress((RUNTIME_313 / "python3.13.wasm.xz").read_bytes()))
    (ctx / "python313.zip").write_bytes(lzma.decompress((RUNTIME_313 / "python313.zip.xz").read_bytes()))
    (ctx / "main.py").write_text((Path(__file__).resolve().parent.parent / "examples/hello-python/main.py").read_text())
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY python3.13.wasm /usr/local/bin/python3.13\nCOPY python313.zip /usr/local/lib/python313.zip\n"
        "ENV PATH=/usr/local/bin GREETING=Hello\nWORKDIR /app\nCOPY main.py .\nCMD [\"python3.13\", \"main.py\"]\n")
    out = ctx / "py313.wasm"
    boxer_py.build(ctx, out)
    return out


def test_cpython_313_prints_what_boxer_run_prints(boxer, cpython_313_image, standalone, plain):
    module = standalone(boxer, cpython_313_image)
    r = plain(module)
    assert r.stdout == "Hello from cpython 3.13.5 on wasi!\n"
    _same(boxer("run", str(cpython_313_image)), r)
    script = "import sys, os, sqlite3; print(sys.executable, sys.argv, os.getcwd(), os.environ['PYTHONUSERBASE'])"
    r = plain(module, "python3.13", "-c", script, "x")
    assert r.stdout == "/usr/local/bin/python3.13 ['-c', 'x'] /app /root/.local\n", r.stderr
    _same(boxer("run", str(cpython_313_image), "python3.13", "-c", script, "x"), r)
    _same(boxer("run", str(cpython_313_image), "python3.13", "-c", WRITES), plain(module, "python3.13", "-c", WRITES))
