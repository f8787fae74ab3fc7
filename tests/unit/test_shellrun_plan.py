"""Which run commands go to boxer's shell at `boxer run` (runtime/shellrun.plan) and which start
one program of the image directly; no guest starts here (the runs: tests/test_run_shell.py)."""
from __future__ import annotations

import pytest

from boxer_py.runtime.shellrun import plan

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PORT": "8000"}


@pytest.fixture
def base(tmp_path):
    """A rootfs with a #!/bin/sh entrypoint, a #!/usr/bin/env sh one, a non-executable one and
    a program that is not a script."""
    (tmp_path / "app").mkdir()
    (tmp_path / "usr/local/bin").mkdir(parents=True)
    for name, text, mode in [("entrypoint.sh", "#!/bin/sh -\nset -e\n", 0o755), ("env.sh", "#!/usr/bin/env sh\n", 0o755),
                             ("plain.sh", "#!/bin/sh\n", 0o644), ("app/tool.py", "#!/usr/bin/env python3\n", 0o755)]:
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(mode)
    (tmp_path / "usr/local/bin/python3").write_bytes(b"\0asm\x01\0\0\0")
    return tmp_path


@pytest.mark.parametrize("argv, expected", [
    (["/bin/sh", "-c", "python app.py --port $PORT"], ["python", "app.py", "--port", "8000"]),   # as before
    (["/bin/sh", "-c", "exec gunicorn app:app"], ["gunicorn", "app:app"]),
    (["python", "app.py"], ["python", "app.py"]),
    (["/app/tool.py"], ["/app/tool.py"]),           # a python script: through its interpreter, no shell
    (["sh"], ["sh"]),                                # interactive: refused later as having no shell
    (["bash", "-l"], ["bash", "-l"]),
])
def test_a_program_starts_directly(base, argv, expected):
    assert plan(base, argv, ENV, "/app") == expected


@pytest.mark.parametrize("argv", [
    ["/bin/sh", "-c", "python3 etl.py && python3 test_etl.py"],
    ["sh", "-c", "echo hi > /tmp/x"],               # a utility of the shell
    ["sh", "-c", "python *.py"],                     # a glob
    ["sh", "-c", "X=1 python app.py"],               # an assignment
    ["sh", "-ec", "python app.py"],                  # options
    ["/bin/sh", "-c", "python \"$@\"", "sh", "a"],   # $0 and $@
    ["sh", "/entrypoint.sh", "x"],
    ["/entrypoint.sh", "--version"],
    ["/env.sh"],
    ["/plain.sh"],                                   # not executable: the shell says 126, as exec
])
def test_a_shell_command_goes_to_the_shell_as_one_line(base, argv):
    import shlex

    line = plan(base, argv, ENV, "/app")
    assert isinstance(line, str) and shlex.split(line) == argv
