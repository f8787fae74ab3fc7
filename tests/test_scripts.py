"""Console scripts and `#!` scripts: `CMD ["uvicorn", ...]`, `flask run`, `pycodestyle`...
pip's scripts land where pip puts them for the image's Python (PREFIX/bin, a venv's bin/) and
run as exec runs them, through their `#!` interpreter when that is a WebAssembly program of the
image; a `#!/bin/sh` script runs in boxer's shell (test_run_shell.py). Real pip, real Wasmtime, the real CLI."""
from __future__ import annotations

import pytest

DOCKERFILE = """FROM python:3.12-slim
RUN pip install pycodestyle==2.11.1
RUN python -m venv /opt/venv && /opt/venv/bin/pip install pycodestyle==2.11.1
RUN pycodestyle --version > /built-with.txt
COPY hello.py run.sh /app/
WORKDIR /app
CMD ["pycodestyle", "--max-line-length=20", "hello.py"]
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory, cache_dir):
    import os
    import subprocess
    import sys
    ctx = tmp_path_factory.mktemp("scripts")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "hello.py").write_text("#!/usr/bin/env python3\nimport sys\nprint('hello', sys.argv[1:], sys.prefix)\n")
    (ctx / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (ctx / "run.sh").chmod(0o755)
    (ctx / "hello.py").chmod(0o755)
    out = ctx / "app.wasm"
    r = subprocess.run([sys.executable, "-m", "boxer_py", "build", "-q", "-o", str(out), str(ctx)],
                       capture_output=True, text=True, timeout=900, env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0, r.stderr
    return out


def test_a_console_script_runs_as_the_images_cmd_and_in_run(boxer, image):
    r = boxer("run", "--rm", str(image))
    assert r.returncode == 1, r.stderr  # pycodestyle found a long line: its own exit code
    assert r.stdout == "hello.py:3:21: E501 line too long (40 > 20 characters)\n", r.stdout
    r = boxer("run", "--rm", str(image), "python", "-c", "print(open('/built-with.txt').read(), end='')")
    assert r.stdout == "2.11.1\n", r.stderr


def test_a_venvs_script_runs_with_the_venv_and_a_hashbang_script_through_env(boxer, image):
    code = "import sys; print(open(sys.argv[1]).readline(), end='')"
    r = boxer("run", "--rm", str(image), "python", "-c", code, "/opt/venv/bin/pycodestyle")
    assert r.stdout == "#!/opt/venv/bin/python\n", r.stderr
    r = boxer("run", "--rm", str(image), "/opt/venv/bin/pycodestyle", "--version")
    assert (r.returncode, r.stdout) == (0, "2.11.1\n"), r.stderr
    r = boxer("run", "--rm", str(image), "./hello.py", "a b", "c")
    assert (r.returncode, r.stdout) == (0, "hello ['a b', 'c'] /usr/local\n"), r.stderr


def test_a_shell_script_runs_in_boxers_shell(boxer, image):
    r = boxer("run", "--rm", str(image), "./run.sh")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
