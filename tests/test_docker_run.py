"""`boxer run` as a Docker user types it (issue 20): Docker's flags accepted with their meaning
or refused in one line, no shell in the image said so, single-file mounts, a terminal for -t,
and Ctrl-C stopping a busy guest. Terminal tests drive the real CLI in a pseudo-terminal."""
from __future__ import annotations

import os
import signal
import sys

import pexpect
import pytest

import boxer_py


@pytest.fixture(scope="module")
def py313_image(tmp_path_factory, cache_dir):
    """`FROM python:3.13`: boxer's own CPython 3.13 runtime, whose eval breaker is a word of bits."""
    ctx = tmp_path_factory.mktemp("py313")
    (ctx / "Dockerfile").write_text("FROM python:3.13\n")
    out = ctx.parent / "py313.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir)
    return out


@pytest.fixture(scope="module")
def py39_image(tmp_path_factory, cache_dir):
    """`FROM python:3.9`: boxer's own CPython 3.9, whose interpreter state (its eval breaker) is
    on the heap: its Ctrl-C words are the static ones, which its eval loop also polls."""
    ctx = tmp_path_factory.mktemp("py39")
    (ctx / "Dockerfile").write_text("FROM python:3.9\n")
    out = ctx.parent / "py39.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir)
    return out


@pytest.fixture(params=["hello_image", "py313_image"])
def cpython_image(request):
    """Each CPython layout of signal words: 3.12's (hello-python) and 3.13's."""
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["hello_image", "py313_image", "py39_image"])
def interruptible_image(request):
    """The layouts of Ctrl-C words: 3.12's, 3.13's, and 3.9's (no SIGWINCH words: no resize)."""
    return request.getfixturevalue(request.param)


def py(boxer, image, code, *args, **kwargs):
    return boxer("run", *args, str(image), "python", "-c", code, **kwargs)


def spawn(cache_dir, *args: str, env: dict | None = None, size=(24, 80)) -> pexpect.spawn:
    """The real `boxer` on a pseudo-terminal of `size` (rows, columns), as a user's shell starts it."""
    full = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0", "TERM": "xterm-256color",
            **(env or {})}
    return pexpect.spawn(sys.executable, ["-m", "boxer_py", *args], env=full, encoding="utf-8", timeout=120,
                         dimensions=size)


def finish(child: pexpect.spawn) -> tuple[int | None, str]:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


def test_docker_flags_with_their_meaning(boxer, hello_image):
    r = py(boxer, hello_image, "import os; print(os.environ['HOME'])", "--rm", "--init", "--name", "web",
           "--network", "none", "--platform", "wasi/wasm", "-u", "1000")
    assert (r.returncode, r.stdout, r.stderr) == (0, "/\n", "")
    r = py(boxer, hello_image, "import os; print(os.environ['HOME'])", "--user", "root")
    assert r.stdout == "/root\n"


@pytest.mark.parametrize(("args", "says"), [
    (["--frobnicate"], "unknown option --frobnicate"),
    (["-d"], "-d: detached runs are not supported"),
    (["--network", "host"], "--network host: only --network none is accepted; give a guest network with -p"),
    (["--network", "none", "-p", "8000:8000"], "--network none: contradicts -p/-P/--allow-net"),
    (["--platform", "linux/amd64"], "--platform linux/amd64: boxer images are WebAssembly"),
    (["-t", "--json"], "-t and --json"),
])
def test_unsupported_options_are_one_line_125(boxer, hello_image, args, says):
    r = boxer("run", *args, str(hello_image), "python", "-c", "print('ran')")
    assert r.returncode == 125 and r.stdout == ""
    assert r.stderr.startswith("boxer: " + says) and r.stderr.count("\n") == 1, r.stderr


def test_missing_image_and_env_file_are_125(boxer, hello_image, tmp_path):
    r = boxer("run", str(tmp_path / "nosuch.wasm"))
    assert r.returncode == 125 and "no such image" in r.stderr and r.stderr.count("\n") == 1
    r = py(boxer, hello_image, "pass", "--env-file", str(tmp_path / "missing.env"))
    assert r.returncode == 125 and r.stderr == f"boxer: --env-file {tmp_path / 'missing.env'}: cannot read " \
                                               "(No such file or directory)\n"


@pytest.mark.parametrize("command", ["sh", "bash", "/bin/sh", "ls"])
def test_no_shell_says_how_to_get_in(boxer, hello_image, command):
    r = boxer("run", str(hello_image), command)
    assert r.returncode == 127 and r.stderr.count("\n") == 1
    assert "a WebAssembly image has no shell" in r.stderr and "python -c" in r.stderr


def test_a_single_file_mount_ro_refuses_writes_and_rw_writes_back(boxer, hello_image, tmp_path):
    """As Docker's file bind mounts: `:ro` answers a write with EROFS and the host file stays;
    without `:ro` (or with `:rw`) what the guest wrote is in the host file after the run."""
    config = tmp_path / "config.yaml"
    config.write_text("debug: true\n")
    code = ("import os; print(open('/app/config.yaml').read(), end=''); print(sorted(os.listdir('/app')));"
            "open('/app/config.yaml', 'w').write('changed\\n')")
    for option in ("ro", "ro,Z", "z,ro"):
        r = py(boxer, hello_image, code, "-v", f"{config}:/app/config.yaml:{option}")
        assert r.returncode == 1 and r.stdout == "debug: true\n['config.yaml', 'main.py']\n", r.stderr
        assert "OSError: [Errno 69] Read-only file system: '/app/config.yaml'" in r.stderr, r.stderr
    assert config.read_text() == "debug: true\n"
    for option in (":rw", ""):
        config.write_text("debug: true\n")
        r = py(boxer, hello_image, code, "-v", f"{config}:/app/config.yaml{option}")
        assert (r.returncode, r.stdout) == (0, "debug: true\n['config.yaml', 'main.py']\n"), r.stderr
        assert config.read_text() == "changed\n"
    r = py(boxer, hello_image, "print(open('/app/main.py').read())", "-v", f"{config}:/app/main.py:ro")
    assert r.stdout == "changed\n\n"  # the image's file is hidden by the mount, as in Docker


def test_mount_options_and_read_only(boxer, hello_image, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write = "open('/data/out', 'w').write('x'); print('wrote')"
    for option in (":z", ":Z", ":rw,z", ""):
        r = py(boxer, hello_image, write, "-v", f"{data}:/data{option}")
        assert (r.returncode, r.stdout) == (0, "wrote\n"), (option, r.stderr)
    r = py(boxer, hello_image, write, "-v", f"{data}:/data:ro,z")
    assert r.returncode == 1 and "OSError: [Errno 69] Read-only file system: '/data/out'" in r.stderr, r.stderr
    r = py(boxer, hello_image, write, "-v", f"{data}:/data:rx")
    assert r.returncode == 125 and "unknown mount option rx" in r.stderr
    r = py(boxer, hello_image, "open('/app/new', 'w')", "--read-only")
    assert r.returncode == 1 and "OSError: [Errno 69] Read-only file system: '/app/new'" in r.stderr, r.stderr
    r = py(boxer, hello_image, write + "; print(open('/app/main.py').read()[:6])", "--read-only",
           "-v", f"{data}:/data")
    assert (r.returncode, r.stdout) == (0, "wrote\nimport\n"), r.stderr


EROFS_CODE = """import errno, os
def attempt(what, call):
    try:
        call()
        print(what, 'WROTE')
    except OSError as e:
        print(what, errno.errorcode[e.errno], e.strerror)
d = os.open('/data/sub', os.O_RDONLY)
for what, call in [('create', lambda: open('/data/new', 'w')), ('append', lambda: open('/data/f', 'a')),
                   ('truncate', lambda: open('/data/f', 'r+').truncate()),
                   ('mkdir', lambda: os.mkdir('/data/d')), ('rmdir', lambda: os.rmdir('/data/sub')),
                   ('unlink', lambda: os.unlink('/data/f')), ('rename', lambda: os.rename('/data/f', '/data/g')),
                   ('symlink', lambda: os.symlink('f', '/data/l')), ('utime', lambda: os.utime('/data/f')),
                   ('dirfd', lambda: os.open('x', os.O_WRONLY | os.O_CREAT, dir_fd=d)),
                   ('escape-in-rw', lambda: os.symlink('/etc', '/rw/etc'))]:
    attempt(what, call)
print(open('/data/f').read(), sorted(os.listdir('/data')))
"""


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_writes_under_a_read_only_mount_are_erofs(build, boxer, tmp_path, version):
    """As in a container: every write under a `:ro` mount is EROFS ("Read-only file system"),
    on every runtime, even through a descriptor opened below the mount; a refusal under a
    writable mount keeps its own errno (a link out of its mount is EPERM)."""
    image = build(f"FROM python:{version}\n")
    data, rw = tmp_path / "data", tmp_path / "rw"
    (data / "sub").mkdir(parents=True)
    rw.mkdir()
    (data / "f").write_text("kept")
    r = py(boxer, image, EROFS_CODE, "-v", f"{data}:/data:ro", "-v", f"{rw}:/rw")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:-2] == [f"{what} EROFS Read-only file system" for what in
                          ("create", "append", "truncate", "mkdir", "rmdir", "unlink", "rename", "symlink", "utime",
                           "dirfd")], r.stdout
    assert lines[-2:] == ["escape-in-rw EPERM Operation not permitted", "kept ['f', 'sub']"]
    assert sorted(p.name for p in data.iterdir()) == ["f", "sub"] and not list(rw.iterdir())


def test_tty_gives_the_guest_a_terminal(cache_dir, hello_image):
    code = ("import os, shutil, sys; print([s.isatty() for s in (sys.stdin, sys.stdout, sys.stderr)], "
            "os.environ.get('TERM'), tuple(shutil.get_terminal_size()))")
    exit_code, out = finish(spawn(cache_dir, "run", "-it", str(hello_image), "python", "-c", code, size=(33, 101)))
    assert exit_code == 0 and "[True, True, True] xterm-256color (101, 33)" in out, out
    exit_code, out = finish(spawn(cache_dir, "run", str(hello_image), "python", "-c", code))
    assert exit_code == 0 and "[False, False, False] None" in out, out  # no -t: no terminal, as in Docker


RESIZE = r"""
import os, shutil, signal, sys, time
print("env", "COLUMNS" in os.environ, "LINES" in os.environ, tuple(os.get_terminal_size()), flush=True)
while os.get_terminal_size() == (80, 24):  # no handler yet: the size is still followed
    time.sleep(0.05)
print("polled", tuple(os.get_terminal_size()), tuple(shutil.get_terminal_size()), flush=True)
got = []
signal.signal(signal.SIGWINCH, lambda *_: got.append(tuple(shutil.get_terminal_size())))
print("busy", flush=True)
while (100, 30) not in got:  # a busy guest: the handler runs at an epoch tick
    pass
print("busy handler", got[-1], flush=True)
print("sleeping", flush=True)
while (90, 20) not in got:  # a sleeping guest: the handler runs when the sleep ends
    time.sleep(0.05)
print("sleep handler", got[-1], os.get_terminal_size(sys.stdout.fileno()), flush=True)
"""


def test_a_resize_is_followed_by_the_guest(cache_dir, cpython_image):
    """`-t`: when the window is resized (TIOCSWINSZ on the pseudo-terminal, so the kernel
    sends boxer SIGWINCH), os.get_terminal_size() and shutil.get_terminal_size() give the new
    size, and the guest's SIGWINCH handler runs, busy or sleeping, as in `docker run -t`;
    COLUMNS and LINES are not in its environment (they would pin shutil's answer)."""
    child = spawn(cache_dir, "run", "-t", str(cpython_image), "python", "-c", RESIZE, size=(24, 80))
    child.expect_exact("env False False (80, 24)")
    child.setwinsize(40, 120)
    child.expect_exact("polled (120, 40) (120, 40)")
    child.expect_exact("busy")
    child.setwinsize(30, 100)
    child.expect_exact("busy handler (100, 30)")
    child.expect_exact("sleeping")
    child.setwinsize(20, 90)
    exit_code, out = finish(child)
    assert exit_code == 0 and "sleep handler (90, 20) os.terminal_size(columns=90, lines=20)" in out, out
    assert "ignored" not in out and "Error" not in out, out


def test_a_size_given_with_e_is_kept(cache_dir, hello_image):
    code = "import os, shutil; print(os.environ.get('COLUMNS'), tuple(shutil.get_terminal_size()))"
    exit_code, out = finish(spawn(cache_dir, "run", "-t", "-e", "COLUMNS=50", str(hello_image), "python", "-c", code,
                                  size=(33, 101)))
    assert exit_code == 0 and "50 (50, 33)" in out, out


def test_ctrl_c_is_a_keyboard_interrupt_in_the_guest(cache_dir, interruptible_image):
    """As in a native CPython: a busy loop ends with KeyboardInterrupt's traceback and 130; a
    guest that catches it (in a sleep) goes on and ends as it likes."""
    child = spawn(cache_dir, "run", str(interruptible_image), "python", "-c", "print('started', flush=True)\nwhile True: pass")
    child.expect_exact("started")
    child.sendintr()
    exit_code, out = finish(child)
    assert exit_code == 130 and out.rstrip().endswith("KeyboardInterrupt"), out
    code = ("import time\ntry:\n    print('started', flush=True)\n    time.sleep(3600)\n"
            "except KeyboardInterrupt:\n    print('cleaned up')\n    raise SystemExit(3)\n")
    child = spawn(cache_dir, "run", str(interruptible_image), "python", "-c", code)
    child.expect_exact("started")
    child.sendintr()
    exit_code, out = finish(child)
    assert exit_code == 3 and "cleaned up" in out, out


def test_ctrl_c_ends_a_guest_blocked_reading_stdin(cache_dir, hello_image):
    child = spawn(cache_dir, "run", "-i", str(hello_image), "python", "-c",
                  "import sys\nprint('started', flush=True)\nsys.stdin.read()")
    child.expect_exact("started")
    child.sendintr()
    assert finish(child)[0] == 130


INTERRUPTED = "KeyboardInterrupt(\x1b\\[0m)?\r\n>>> "  # 3.13's REPL colours its tracebacks


def test_the_repl_edits_lines_keeps_history_and_survives_ctrl_c(cache_dir, interruptible_image):
    """`boxer run -it IMAGE python`: line editing and history (Up-arrow once gave
    `SyntaxError: invalid non-printable character U+001B`), Ctrl-C as in CPython's REPL
    (KeyboardInterrupt, a new prompt, the session's state kept), Ctrl-D to leave."""
    child = spawn(cache_dir, "run", "-it", str(interruptible_image), "python")
    child.expect_exact(">>> ")
    child.send("x = 6 * 7\r")
    child.expect_exact(">>> ")
    child.send("\x1b[A" + "\x1b[D" * 4 + "\x7f8\r")  # Up recalls `x = 6 * 7`; 6 becomes 8
    child.expect_exact(">>> ")
    child.send("prnt(x)\x01\x1b[C\x1b[Ci\x05\r")  # Home, Right x2, insert i, End
    child.expect_exact("56\r\n>>> ")
    child.send("import time; time.sleep(3600)\r")
    child.expect_exact("time.sleep(3600)")
    child.sendintr()
    child.expect(INTERRUPTED)
    # the loop says once that it runs: a Ctrl-C sent before would only drop the unfinished line
    child.send("while True: x += 1; x == 57 and print('spinning')\r\r")
    child.expect_exact("\r\nspinning\r\n")  # its output, not the echo of the line
    child.sendintr()
    child.expect(INTERRUPTED)
    child.send("for i in range(3):\r")
    child.expect_exact("... ")
    child.sendintr()  # drops the unfinished block, as CPython's REPL does
    child.expect(INTERRUPTED)
    child.send("print(x > 56, 'kept') garbage\x17\r")  # Ctrl-W cuts a word
    child.expect_exact("True kept\r\n>>> ")
    child.send("\x04")
    exit_code, out = finish(child)
    assert exit_code == 0 and "SyntaxError" not in out and "Error" not in out, out


def test_sigterm_stops_a_busy_guest_with_143(cache_dir, hello_image):
    child = spawn(cache_dir, "run", str(hello_image), "python", "-c", "print('started', flush=True)\nwhile 1: pass")
    child.expect_exact("started")
    child.kill(signal.SIGTERM)
    assert finish(child)[0] == 143
