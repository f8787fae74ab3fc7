"""Runs started from a snapshot of CPython (preinit) behave as runs that start it from scratch.

Every case runs twice with the real Wasmtime: through a launcher that uses the snapshot and
through one that does not, and the two results must be the same, byte for byte.
"""
from __future__ import annotations

import io
import zipfile

import pytest
import wasmtime

import boxer_py
from boxer_py.runtime.launcher import Launcher
from boxer_py.runtime.preinit import snapshot
from boxer_py.runtime.spec import RunSpec

FILES = {
    "main.py": "import sys, helper\nprint('main', __name__, __file__, sys.argv, sys.path[0], helper.VALUE)\n"
               "print(type(__loader__).__name__, __cached__, __spec__)\n",
    "helper.py": "VALUE = 42\n",
    "mymod.py": "import sys\nprint('mymod', __name__, __file__, sys.argv, sys.path[0])\n",
    "sub/x.py": "import sys\nprint('x', __file__, sys.path[0], sys.argv)\n",
    "pkg/__main__.py": "import sys\nprint('pkg main', __name__, sys.argv, sys.path[0])\n",
    "fails.py": "def f():\n    raise ValueError('bad value')\n\nf()\n",
    "syntax.py": "def f(:\n    pass\n",
    "comp.py": "print('compiled', __name__)\n",
}
DOCKERFILE = """\
FROM python:3.12
ENV APP_MODE=test
WORKDIR /app
COPY . .
RUN python -c "import py_compile; py_compile.compile('comp.py', cfile='comp.pyc')"
"""


def _zipapp() -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as z:
        z.writestr("__main__.py", "import sys\nprint('zip main', sys.argv, sys.path[0].endswith('app.zip'))\n")
    return data.getvalue()


@pytest.fixture(scope="module")
def image(tmp_path_factory, cache_dir):
    ctx = tmp_path_factory.mktemp("preinit") / "ctx"
    for rel, text in {**FILES, "Dockerfile": DOCKERFILE}.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(text)
    (ctx / "app.zip").write_bytes(_zipapp())
    out = ctx.parent / "preinit.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir)
    return out


@pytest.fixture(scope="module")
def restores():
    """The `baked` argument of every preinit.restore since the last clear: which runs started
    from the snapshot baked into its module (preinit.bake), which restored its pages."""
    seen: list[bool] = []
    real = snapshot.restore

    def spy(*args, **kwargs):
        seen.append(bool(args[4] if len(args) > 4 else kwargs.get("baked", False)))
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(snapshot, "restore", spy)
        yield seen


@pytest.fixture(scope="module", params=["restored", "baked"])
def fast(request, image, cache_dir, restores):
    """Runs from a snapshot: its pages restored into a fresh instance, or the snapshot baked
    into its module (`same` bakes the snapshot a run needs before the run it compares)."""
    session = boxer_py.Session(image, launcher=Launcher(cache_dir, bake=request.param == "baked"))
    session.baked, session.restores = request.param == "baked", restores
    return session


@pytest.fixture(scope="module")
def slow(image, cache_dir):
    return boxer_py.Session(image, launcher=Launcher(cache_dir, preinit=False))


def ready(fast, command, **options) -> None:
    """For a baked session: bake the snapshot these options need (a snapshot is baked once a
    launcher uses it again, in the background), so the next such run starts from it."""
    if fast.baked:
        for _ in range(2):
            fast.run(command, **{k: v for k, v in options.items() if k != "stdin"})
        fast.launcher.baker.wait()


def same(fast, slow, command, **options):
    ready(fast, command, **options)
    fast.restores.clear()
    a, b = fast.run(command, **options), slow.run(command, **options)
    assert a.preinitialised and not b.preinitialised, (a.stderr, b.stderr)
    assert fast.restores == [fast.baked], "the run did not start as the session does"
    assert (a.exit_code, a.stdout.decode(), a.stderr.decode()) == (b.exit_code, b.stdout.decode(), b.stderr.decode())
    assert a.files == b.files
    return a


INTROSPECT = ("import sys, os; print(sys.argv, sys.orig_argv, sys.path, sys.executable, __name__, "
              "sorted(globals()), __loader__, __spec__, os.getcwd(), sorted(os.environ.items()), sys.flags, "
              "sorted(m for m in sys.modules if not m.startswith('_')), open('/tmp/probe', 'w').fileno())")


@pytest.mark.parametrize("command", [
    ["python", "-c", INTROSPECT, "arg1", "-x"],
    ["python", "main.py", "a", "b"],
    ["python", "/app/main.py"],
    ["python", "sub/x.py", "--flag"],
    ["python", "../app/sub/x.py"],
    ["python", "-m", "mymod", "one"],
    ["python", "pkg", "p1"],
    ["python", "app.zip", "z1"],
    ["python", "comp.pyc"],
    ["python3", "-c", "import sys; print(sys.executable, sys.argv)"],
], ids=["c-introspect", "script", "script-abs", "script-subdir", "script-dotdot", "m-module", "dir-main",
        "zipapp", "pyc", "python3"])
def test_command_forms(fast, slow, command):
    same(fast, slow, command, env={"EXTRA": "1"})


@pytest.mark.parametrize("code", [
    "1/0",
    "import sys; sys.exit(3)",
    "import sys; sys.exit('fatal: no input')",
    "import sys; sys.exit(None)",
    "raise SystemExit(True)",
    "raise KeyboardInterrupt",
    "def f(:",
    "print('no newline', end='')",
    "import sys; sys.stdout.write('ü€𝄞' * 1000); sys.stderr.write('err ü\\n')",
    "import warnings; warnings.warn('careful')",
    "import sys\ndef hook(t, v, tb): print('hooked', t.__name__)\nsys.excepthook = hook\nraise OSError('x')",
    "import atexit; atexit.register(print, 'bye'); print('hi')",
    "class A:\n    def __del__(self): print('finalised')\na = A()",
    "f = open('/out/unclosed.txt', 'w'); f.write('kept at exit')",
    "import threading; t = threading.Thread(target=print, args=('thread',)); print('started')",
    "import helper; print(helper.VALUE)",
    "raise ValueError('chained') from KeyError('cause')",
    "import json, re, collections; print(json.dumps({'a': [1, 2]}), re.sub('a', 'b', 'aa'))",
], ids=["zerodiv", "exit3", "exit-msg", "exit-none", "exit-true", "keyboardinterrupt", "syntaxerror",
        "no-newline", "unicode", "warning", "excepthook", "atexit", "del-at-exit", "unclosed-file",
        "threading", "import-cwd", "chained", "stdlib"])
def test_programs(fast, slow, code):
    same(fast, slow, ["python", "-c", code])


def test_the_exit_keeps_what_cpython_keeps(fast, slow):
    """A run's exit skips CPython's own finalisation (guest.py): what a program left open or
    registered still lands, and every way out keeps its exit code, as from scratch."""
    a = same(fast, slow, ["python", "-c", "import atexit\nf = open('/out/late.txt', 'w')\nf.write('opened, ')\n"
                          "atexit.register(lambda: f.write('then atexit'))\nprint('unflushed', end='')"])
    assert (a.exit_code, a.stdout, a.files) == (0, b"unflushed", {"/out/late.txt": b"opened, then atexit"})
    assert same(fast, slow, ["python", "-c", "import sys; print('out'); sys.exit(3)"]).exit_code == 3
    a = same(fast, slow, ["python", "-c", "import atexit; atexit.register(print, 'bye')\n{}['missing']"])
    assert (a.exit_code, a.stdout) == (1, b"bye\n") and a.stderr.endswith(b"KeyError: 'missing'\n")
    a = same(fast, slow, ["python", "-c", "import atexit, os, sys; atexit.register(print, 'never')\n"
                          "sys.stdout.write('buffered'); os.write(1, b'written '); os._exit(5)"])
    assert (a.exit_code, a.stdout) == (5, b"written ")  # os._exit: no handlers, buffers dropped


def test_environment_and_directory_as_from_scratch(fast, slow):
    """The request's environment, in its order, whether it is the snapshot's own or not; the
    working directory, set by the launcher or by the guest."""
    show = ["python", "-c", "import os; print(list(os.environ.items()), os.getcwd(), os.listdir('.'))"]
    same(fast, slow, show)
    same(fast, slow, show, env={"HOME": "/elsewhere", "ZZ": "last"})
    same(fast, slow, show, workdir="/app/sub")
    same(fast, slow, show, workdir="/")
    same(fast, slow, show, workdir="/app/new/dir")  # made by the launcher
    same(fast, slow, ["python", "-c", "import os; os.chdir('sub'); print(os.getcwd(), os.listdir('.'))"])


def test_scripts_that_fail(fast, slow):
    same(fast, slow, ["python", "fails.py"])
    same(fast, slow, ["python", "syntax.py"])
    same(fast, slow, ["python", "missing.py"])
    same(fast, slow, ["python", "-m", "no_such_module"])
    same(fast, slow, ["python", "/app"])  # a directory without __main__.py


def test_stdin_env_workdir_and_limits(fast, slow):
    same(fast, slow, ["python", "-c", "import sys; print(sys.stdin.read().upper())"], stdin="from stdin\n")
    same(fast, slow, ["python", "-m", "json.tool"], stdin='{"b": 1, "a": [1, 2]}')
    same(fast, slow, ["python", "-c", "import os; print(os.getcwd(), os.environ.get('HOME'), os.listdir('.'))"],
         workdir="/tmp", env={"HOME": "/tmp"})
    same(fast, slow, ["python", "-c", "print(len('x' * 100000))"], max_output="4")
    r = fast.run_python("while True: pass", timeout=1)
    assert r.preinitialised and r.timed_out and r.exit_code == 124
    r = fast.run_python("x = []\nwhile True: x.append(bytearray(1 << 20))", memory="64m")
    assert r.preinitialised and r.out_of_memory


def test_mounts_are_attached_to_a_restored_snapshot(fast, slow, tmp_path):
    """A snapshot booted with empty stand-ins at the mount points: the run sees the real
    mounts, reads and writes through them, and relative paths and imports under them work."""
    data, code, extra = tmp_path / "data", tmp_path / "code", tmp_path / "extra"
    for d in (data, code, extra):
        d.mkdir()
    (data / "in.txt").write_text("mounted data")
    (code / "tool.py").write_text("import sys\nprint('tool', sys.argv[1:], __name__)\n")
    (code / "helper.py").write_text("VALUE = 42\n")
    mounts = [f"{data}:/data", f"{code}:/code:ro", f"{extra}:/app/extra"]
    probe = ("import os, sys; print(open('/data/in.txt').read(), sorted(os.listdir('/code')), os.listdir('/app'));"
             "sys.path.insert(0, '/code'); import helper; print(helper.VALUE);"
             "open('/app/extra/out.txt', 'w').write('from the guest')")
    a = same(fast, slow, ["python", "-c", probe], mounts=mounts)
    assert a.stdout.startswith(b"mounted data ['helper.py', 'tool.py']")
    assert (extra / "out.txt").read_text() == "from the guest"
    same(fast, slow, ["python", "/code/tool.py", "x"], mounts=mounts)
    same(fast, slow, ["python", "tool.py", "y"], mounts=mounts, workdir="/code")
    same(fast, slow, ["python", "-m", "tool"], mounts=[f"{code}:/app/code"], workdir="/app/code")
    r = fast.run_python("open('/code/new', 'w')", mounts=mounts)
    assert r.preinitialised and b"Read-only file system" in r.stderr and not (code / "new").exists()  # EROFS, as Docker
    r = fast.run_python("import os; print(os.listdir('/data'))")  # a run without them has none of them
    assert r.preinitialised and r.exit_code == 1 and b"FileNotFoundError" in r.stderr


def test_memory_cap_below_the_snapshot(fast):
    ready(fast, ["python", "-c", "pass"])
    r = fast.run_python("print(1)", memory="8m")
    assert r.exit_code != 0 and r.out_of_memory and b"1" not in r.stdout


def test_runs_leave_nothing_for_the_next(fast):
    ready(fast, ["python", "-c", "pass"])
    scan = ("import gc\n"
            "def scan(needle):\n"
            "    kinds = (str, bytes, bytearray, dict, list, tuple)\n"
            "    import os, sys\n"
            "    found = gc.get_objects() + [vars(m) for m in list(sys.modules.values())] + [os.environ._data]\n"
            "    return any(needle in repr(o) for o in found if isinstance(o, kinds))\n"
            "print(scan(''.join(reversed('2retnuh'))))\n")
    first = fast.run_python(
        scan +
        "import builtins, os, sys, gc\n"
        "builtins.LEAK = 'x'; sys.modules['leaky'] = sys; os.environ['LEAKED'] = '1'\n"
        "for o in gc.get_objects():\n"
        "    if isinstance(o, bytearray) and len(o) == 1 << 20: o[:] = b'Z' * len(o)\n",
        env={"SECRET_TOKEN": "hunter2-secret-value"})
    assert (first.exit_code, first.stdout, first.preinitialised) == (0, b"True\n", True), first.stderr
    assert fast.restores[-1:] == [fast.baked]  # a baked module's instances share its memory image
    second = fast.run_python(
        "import builtins, os, sys, gc\n"
        "print(hasattr(builtins, 'LEAK'), 'leaky' in sys.modules, 'LEAKED' in os.environ)\n"
        + scan)
    assert second.preinitialised
    assert second.stdout == b"False False False\nFalse\n", second.stderr


def test_not_for_what_cpython_starts_differently(fast, tmp_path):
    for command in (["python", "-u", "-c", "pass"], ["python", "-"], ["python"], ["python", "-I", "main.py"]):
        assert not fast.run(command, stdin="").preinitialised
    assert not fast.run_python("pass", mounts=[f"{tmp_path}:/lib/python3.12/site-packages"]).preinitialised
    assert not fast.run_python("pass", mounts=[f"{tmp_path}:/usr"]).preinitialised
    r = fast.run_python("import sys; print(sys.flags.hash_randomization)", env={"PYTHONHASHSEED": "0"})
    assert (r.stdout, r.preinitialised) == (b"0\n", True)  # a start-up variable gets a snapshot of its own
    # Networking runs number their socket slots after the preopens: they start CPython from scratch.
    r = fast.run_python("print('net')", allow_net=["127.0.0.1"])
    assert (r.exit_code, r.stdout, r.preinitialised) == (0, b"net\n", False), r.stderr


def test_a_damaged_snapshot_is_made_again(image, cache_dir):
    session = boxer_py.Session(image, launcher=Launcher(cache_dir))
    assert session.run_python("print('a')").preinitialised
    for snap in (cache_dir / "preinit").glob("*.snap"):
        data = bytearray(snap.read_bytes())
        data[len(data) // 2] ^= 0xFF
        snap.write_bytes(bytes(data))
    again = boxer_py.Session(image, launcher=Launcher(cache_dir))
    r = again.run_python("print('b')")
    assert (r.exit_code, r.stdout, r.preinitialised) == (0, b"b\n", True)


def test_images_without_the_label_start_from_scratch(build, launcher):
    image = build('FROM python:3.12\nLABEL "boxer.preinit:/usr/local/bin/python3.12"=""\n')
    r = boxer_py.Session(image, launcher=launcher).run_python("print(5)")
    assert (r.exit_code, r.stdout, r.preinitialised) == (0, b"5\n", False)


def test_a_label_on_something_else_changes_nothing(build, launcher):
    """A module that is not CPython, labelled as if it were: its runs start as they always do."""
    tiny = wasmtime.wat2wasm("""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (global $sp (mut i32) (i32.const 1024))
  (memory (export "memory") 1)
  (data (i32.const 16) "tiny\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 5))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")
    image = build('FROM scratch\nCOPY tiny.wasm /python\nLABEL "boxer.preinit:/python"="cpython"\n',
                  {"tiny.wasm": bytes(tiny)})
    r = boxer_py.Session(image, launcher=launcher).run(["/python", "-c", "pass"])
    assert (r.exit_code, r.stdout, r.preinitialised) == (0, b"tiny\n", False), r.stderr


SCAN = ("import gc, os, sys\n"
        "def scan(needle):\n"
        "    kinds = (str, bytes, bytearray, dict, list, tuple)\n"
        "    found = gc.get_objects() + [vars(m) for m in list(sys.modules.values())] + [os.environ._data]\n"
        "    return any(needle in repr(o) for o in found if isinstance(o, kinds))\n")


@pytest.mark.parametrize("other", [
    ["python", "-c", SCAN + "print(sys.argv, sys.orig_argv, scan(''.join(reversed('tnemugra-deraperp'))))", "b"],
    ["python", "-c", "import sys; print(sys.argv)"],  # a shorter request than the one in the inbox
    ["python", "main.py", "x"],
    ["python", "-c", "import sys; print('out'); sys.exit(3)"],
    ["python", "fails.py"],  # a traceback, exit code 1
    ["python", "-u", "-c", "import sys; print(sys.argv)"],  # CPython starts differently: from scratch
    ["python3", "-c", "import sys; print(sys.argv)"],  # another snapshot
], ids=["scan", "shorter", "script", "exit-code", "traceback", "from-scratch", "python3"])
def test_a_run_made_ready_for_another_command_runs_this_one_as_from_scratch(fast, slow, other):
    """A run made ready up to its guest's first instruction (RunSpec.ready, the run server's
    spare) for one command may be given another (ready returns it): the same program from the
    same snapshot takes over the instance, with this command's arguments and request in place
    of the other's (one restore); anything else starts anew in the same writable layer. Either
    way the result is this command's from scratch, and nothing of the other command shows."""
    made = ["python", "-c", "print('never runs')", "prepared-argument" + "x" * 300]
    ready(fast, made)
    ready(fast, other)
    fast.restores.clear()
    asked: list[int] = []

    def given() -> tuple[str, ...]:
        asked.append(1)
        return tuple(other)

    a = fast.launcher.run(fast.image, RunSpec(command=tuple(made), ready=given))
    b = slow.run(other)
    assert asked == [1]
    assert (a.exit_code, a.stdout.decode(), a.stderr.decode()) == (b.exit_code, b.stdout.decode(), b.stderr.decode())
    assert b"never runs" not in a.stdout and b"prepared" not in a.stdout + a.stderr
    in_place = other[0] == "python" and other[1] != "-u"
    assert a.preinitialised == (other[1] != "-u")
    assert fast.restores == [fast.baked] * (1 if in_place else 1 + a.preinitialised), fast.restores
