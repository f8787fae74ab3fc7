"""The browser launcher, end to end in real headless Chromium (Debian's, driven by Playwright).

Every test loads a page served by `boxer serve` (or written by `boxer web`), runs the image
in the tab and checks what a user sees: the terminal, the exit code, the /out files, the
errors. The Wasmtime result of the same command is the reference. Screenshots go to
test-output/web/.
"""
from __future__ import annotations

import ast
import hashlib
import http.server
import io
import json
import re
import shutil
import subprocess
import tarfile
import threading
import urllib.request
from functools import partial
from pathlib import Path

import pytest

import boxer_py
from boxer_py.browser import site
from boxer_py.image import imagefile
from boxer_py.image.config import ImageSpec
from pageclick import click_without_scrolling

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "test-output" / "web"
RUN_TIMEOUT_MS = 180_000  # compiling the 13 MB CPython module takes a few seconds on 2 busy cores
PAGE_ASSETS = {"/", "/boxer.js", "/editor.js", "/terminal.js", "/worker.js", "/preview.html", "/style.css", "/xterm.css", "/image.wasm", "/runtime-*.wasm",
               "/preinit-*.bin"}

APP_DOCKERFILE = """
FROM python:3.12
WORKDIR /app
COPY . .
CMD ["python", "main.py"]
"""
MAIN = "import os\nprint('cwd', os.getcwd())\nprint(open('data.txt').read().strip())\n"
REPORT = r'''
import csv, io, statistics, struct, sys, zlib
rows = [("mon", 3), ("tue", 7), ("wed", 5)]
with open("/out/data.csv", "w", newline="") as f:
    csv.writer(f).writerows([("day", "n"), *rows])
mean = statistics.mean(n for _, n in rows)
bars = "".join(f'<rect x="{i * 40}" y="{100 - n * 10}" width="30" height="{n * 10}" fill="steelblue"/>'
               for i, (_, n) in enumerate(rows))
svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="100">{bars}</svg>'
open("/out/plot.svg", "w").write(svg)
probe = sys.argv[1] if len(sys.argv) > 1 else ""
open("/out/chart.html", "w").write(f"""<!doctype html><html><body><h1>mean {mean}</h1>{svg}
<p id="parent">?</p><p id="cookie">?</p><p id="net">?</p>
<script>
document.body.dataset.rendered = "yes";
try {{ parent.document.body; document.getElementById("parent").textContent = "parent reachable"; }}
catch (e) {{ document.getElementById("parent").textContent = "parent blocked"; }}
try {{ document.getElementById("cookie").textContent = "cookie:" + document.cookie; }}
catch (e) {{ document.getElementById("cookie").textContent = "cookie blocked"; }}
fetch("{probe}chart-exfil").then(() => document.getElementById("net").textContent = "net reachable",
                                 () => document.getElementById("net").textContent = "net blocked");
</script></body></html>""")
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
raw = b"".join(b"\0" + b"\xff\x00\x00" * 4 for _ in range(4))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) + \
      chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open("/out/dot.png", "wb").write(png)
print("mean", mean)
'''
HOSTILE = r'''
import os, sys
secret = sys.argv[1]
url = sys.argv[2]
findings = []
try:
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))))
    findings.append("socket connected")
except Exception as e:
    print("socket:", type(e).__name__)
try:
    import urllib.request
    urllib.request.urlopen(url + "exfil", timeout=3)
    findings.append("urllib reached the server")
except Exception as e:
    print("urllib:", type(e).__name__)
print("env:", sorted(os.environ))
for top, dirs, files in os.walk("/"):
    for name in files:
        path = os.path.join(top, name)
        try:
            if os.path.getsize(path) < 1 << 20 and secret.encode() in open(path, "rb").read():
                findings.append("secret in " + path)
        except OSError:
            pass
if secret in repr(dict(os.environ)):
    findings.append("secret in env")
print("findings:", findings)
sys.exit(1 if findings else 0)
'''


@pytest.fixture(scope="session")
def app_image(tmp_path_factory) -> Path:
    ctx = tmp_path_factory.mktemp("app-ctx")
    files = {"Dockerfile": APP_DOCKERFILE, "main.py": MAIN, "data.txt": "relative read works\n",
             "report.py": REPORT, "hostile.py": HOSTILE}
    for name, text in files.items():
        (ctx / name).write_text(text)
    out = tmp_path_factory.mktemp("app") / "app.wasm"
    boxer_py.build(ctx, out, tag="app")
    return out


@pytest.fixture
def serve():
    servers = []

    def start(image: Path, autorun: bool = True) -> site.Server:
        server = site.serve(image, "127.0.0.1", 0, autorun=autorun)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


class Page:
    """One tab on a served image, with every request it made."""

    def __init__(self, browser, url: str, autorun: bool = True):
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.url = url
        self.page.goto(url if autorun else url + "?run=0")

    def wait_state(self, *states: str) -> str:
        selector = ", ".join(f'#status[data-state="{s}"]' for s in states)
        self.page.wait_for_selector(selector, timeout=RUN_TIMEOUT_MS)
        return self.page.get_attribute("#status", "data-state")

    def last_run(self, count: int = 1) -> dict:
        self.page.wait_for_function("n => window.boxer && window.boxer.runs.length >= n && window.boxer.runs[n - 1].done",
                                    arg=count, timeout=RUN_TIMEOUT_MS)
        return self.page.evaluate("n => { const r = window.boxer.runs[n - 1]; return {...r, files: r.files.map(f => f.path)}; }",
                                  count)

    def run(self, command: str = "", stdin: str = "") -> dict:
        self.page.wait_for_selector("#run:not([disabled])", timeout=RUN_TIMEOUT_MS)
        count = self.page.evaluate("() => window.boxer.runs.length")
        self.page.fill("#command", command)
        self.page.fill("#stdin", stdin)
        self.page.click("#run")
        return self.last_run(count + 1)

    def terminal_text(self) -> str:
        return self.page.inner_text(".xterm-rows")

    def screenshot(self, name: str) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / name
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser):
    pages = []

    def make(url: str, autorun: bool = True) -> Page:
        page = Page(browser, url, autorun)
        pages.append(page)
        return page

    yield make
    for p in pages:
        p.close()


def run_scripts(page, index: int = 0) -> None:
    """Click "Run this file's scripts" on an HTML preview and say yes."""
    accept = lambda dialog: dialog.accept()  # noqa: E731
    page.on("dialog", accept)
    try:
        click_without_scrolling(page, page.locator("#preview .run-scripts").nth(index))
        # The confirm() may reach Playwright after click() returns: the handler stays until the
        # frame is there (without one, Playwright dismisses the dialog and nothing runs).
        page.locator('#preview iframe[data-scripts="on"]').wait_for(state="attached", timeout=60_000)
    finally:
        page.remove_listener("dialog", accept)


def same_origin_assets(page: Page, server_url: str) -> set[str]:
    paths = set()
    for url in page.requests:
        assert url.startswith(server_url) or url.startswith(("blob:", "data:")), f"request left the page: {url}"
        if url.startswith(server_url):
            path = re.sub(r"^/runtime-[0-9a-f]{64}\.wasm$", "/runtime-*.wasm", "/" + url[len(server_url):].split("?")[0])
            paths.add(re.sub(r"^/preinit-[0-9a-f]{64}\.bin$", "/preinit-*.bin", path))
    return paths


def test_hello_example_prints_the_same_as_boxer_run(boxer, hello_image, serve, open_page):
    expected = boxer("run", str(hello_image))
    assert expected.returncode == 0, expected.stderr
    server = serve(hello_image)
    page = open_page(server.url)
    run = page.last_run()
    assert (run["exitCode"], run["stdout"], run["stderr"]) == (0, expected.stdout, expected.stderr)
    assert run["stdout"] == "Hello from cpython 3.12.0 on wasi!\n"
    assert "Hello from cpython 3.12.0 on wasi!" in page.terminal_text()
    assert page.page.inner_text("#exit-code") == "0"
    assert page.page.inner_text("#duration").endswith(" ms")
    assert page.page.inner_text("#status") == "done"
    assert page.errors == []
    page.screenshot("hello.png")


RUNTIME_313_MAIN = ("import sys, json, sqlite3\nprint(sys.version_info[:3], json.dumps({'ok': True}),\n"
                    "      sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0])\n")


@pytest.mark.parametrize("cmd", [
    '["python", "/app/main.py"]',
    '["python", "main.py"]',  # relative to WORKDIR: the ThinLTO module's cwd global is found too
])
def test_the_313_runtime_runs_in_the_page_as_under_boxer_run(boxer, build, serve, open_page, cmd):
    # The runtime built here (toolchain/cpython) is plain WASI preview 1: the page runs it as is.
    image = build(f"FROM python:3.13\nWORKDIR /app\nCOPY main.py .\nCMD {cmd}\n", {"main.py": RUNTIME_313_MAIN})
    expected = boxer("run", str(image))
    assert (expected.returncode, expected.stdout) == (0, '(3, 13, 5) {"ok": true} 42\n'), expected.stderr
    page = open_page(serve(image).url)
    run = page.last_run()
    assert (run["exitCode"], run["stdout"], run["stderr"]) == (0, expected.stdout, expected.stderr)
    assert page.errors == []


@pytest.mark.parametrize("code, expected", [("import sys; print('bye'); sys.exit(3)", 3),
                                            ("raise ValueError('boom')", 1),
                                            ("import sys; sys.exit(255)", 134)])
def test_exit_codes_match_boxer_run(boxer, hello_image, serve, open_page, code, expected):
    reference = boxer("run", str(hello_image), "python", "-c", code)
    assert reference.returncode == expected
    page = open_page(serve(hello_image).url, autorun=False)
    run = page.run(f'python -c "{code}"')
    assert run["exitCode"] == expected
    assert run["stdout"] == reference.stdout
    assert page.page.inner_text("#exit-code") == str(expected)
    if expected == 1:
        assert "ValueError: boom" in run["stderr"]
    if expected == 134:
        assert "invalid exit status" in run["trap"] and "invalid exit status" in reference.stderr


def test_a_run_writing_into_an_image_file_leaves_it_unchanged_for_the_next_run(hello_image, serve, open_page):
    """The page shares the image's files with every run (no copy per run); a run's worker copies
    a file before writing into it in place, so the next run reads the image's bytes."""
    page = open_page(serve(hello_image).url)
    page.last_run()
    assert page.page.evaluate("() => window.boxer.app.sharedFiles") is True  # boxer serve's page is isolated
    original = (REPO / "examples" / "hello-python" / "main.py").read_bytes()
    write = ("python -c \"f = open('/app/main.py', 'r+b'); f.write(b'#X'); f.seek(10); f.write(b'YY'); f.close(); "
             "print(open('/app/main.py', 'rb').read(12))\"")
    run = page.run(write)
    assert (run["exitCode"], run["stdout"]) == (0, repr(b"#X" + original[2:10] + b"YY") + "\n"), run
    run = page.run("python -c \"print(open('/app/main.py', 'rb').read(12))\"")
    assert (run["exitCode"], run["stdout"]) == (0, repr(original[:12]) + "\n"), run
    run = page.run()
    assert (run["exitCode"], run["stdout"]) == (0, "Hello from cpython 3.12.0 on wasi!\n")


def test_stdin_from_the_form(hello_image, serve, open_page):
    page = open_page(serve(hello_image).url, autorun=False)
    run = page.run("python -c 'import sys; data = sys.stdin.read(); print(data.upper(), len(data))'",
                   stdin="hello\nworld")
    assert (run["exitCode"], run["stdout"]) == (0, "HELLO\nWORLD 11\n")


def test_workdir_is_the_cwd_and_relative_paths_resolve(boxer, app_image, serve, open_page):
    reference = boxer("run", str(app_image))
    assert reference.stdout == "cwd /app\nrelative read works\n"
    page = open_page(serve(app_image).url)
    run = page.last_run()
    assert (run["exitCode"], run["stdout"]) == (0, reference.stdout)
    run = page.run("python -c 'import os; open(\"made-here\", \"w\").write(\"x\"); print(sorted(os.listdir(\"/app\")))'")
    assert run["stdout"] == "['Dockerfile', 'data.txt', 'hostile.py', 'made-here', 'main.py', 'report.py']\n"
    # each run gets a fresh copy of the filesystem
    run = page.run("python -c 'import os; print(os.path.exists(\"made-here\"))'")
    assert run["stdout"] == "False\n"


def test_out_files_are_listed_downloadable_and_previewed(boxer, app_image, serve, open_page):
    server = serve(app_image)
    reference = boxer("run", "--json", str(app_image), "python", "report.py", server.url)
    ref = json.loads(reference.stdout)
    page = open_page(server.url, autorun=False)
    run = page.run(f"python report.py {server.url}")
    assert (run["exitCode"], run["stdout"]) == (0, ref["stdout"]) == (0, "mean 5\n")
    assert run["files"] == sorted(f["path"] for f in ref["files"]) == \
        ["/out/chart.html", "/out/data.csv", "/out/dot.png", "/out/plot.svg"]
    links = page.page.locator("#files a")
    assert links.all_inner_texts() == run["files"]
    with page.page.expect_download() as download:
        links.nth(1).click()
    assert download.value.suggested_filename == "data.csv"
    assert Path(download.value.path()).read_bytes() == b"day,n\r\nmon,3\r\ntue,7\r\nwed,5\r\n"
    # the HTML output is shown without scripts; its scripts run (in a sandboxed frame with an
    # opaque origin and preview.html's policy) only when the user asks for it
    frame_el = page.page.locator("#preview iframe")
    assert frame_el.get_attribute("sandbox") == ""
    frame = page.page.frame_locator("#preview iframe")
    assert frame.locator("h1").inner_text() == "mean 5"
    assert frame.locator("#parent").inner_text() == "?"
    run_scripts(page.page)
    assert frame_el.get_attribute("sandbox") == "allow-scripts"
    assert frame.locator("h1").inner_text() == "mean 5"
    frame.locator("body[data-rendered=yes]").wait_for(timeout=60_000)
    assert frame.locator("#parent").inner_text() == "parent blocked"
    frame.locator("#net:not(:text('?'))").wait_for(timeout=60_000)
    assert frame.locator("#net").inner_text() == "net blocked"
    assert frame.locator("#cookie").inner_text() == "cookie blocked"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    frame_el.screenshot(path=str(OUTPUT / "out-chart.png"))
    # images are shown inline
    sizes = page.page.eval_on_selector_all(
        "#preview img", "imgs => imgs.map(i => [i.alt, i.complete && i.naturalWidth, i.naturalHeight])")
    assert sizes == [["/out/dot.png", 4, 4], ["/out/plot.svg", 120, 100]]
    page.screenshot("out-files.png")
    assert not any("exfil" in r for r in server.requests)


def test_guest_cannot_reach_network_cookies_or_page(app_image, serve, open_page):
    server = serve(app_image)
    page = open_page(server.url, autorun=False)
    secret = "s3cr3t-" + hashlib.sha256(b"cookie").hexdigest()[:12]
    page.page.evaluate("s => { document.cookie = `session=${s}; path=/`; localStorage.setItem('token', s); }", secret)
    assert secret in page.page.evaluate("() => document.cookie")
    run = page.run(f"python hostile.py {secret} {server.url}")
    assert "findings: []" in run["stdout"], run["stdout"] + run["stderr"]
    assert run["exitCode"] == 0
    assert "socket: OSError" in run["stdout"]
    assert "urllib:" in run["stdout"]
    assert secret not in run["stdout"] + run["stderr"]
    assert same_origin_assets(page, server.url) <= PAGE_ASSETS
    assert not any("exfil" in r for r in server.requests)


def _scratch_image(make_context, wasm: bytes, name: str) -> Path:
    ctx = make_context('FROM scratch\nCOPY app.wasm /app.wasm\nENTRYPOINT ["/app.wasm"]\n', {"app.wasm": wasm}, name)
    out = ctx.parent / f"{name}.wasm"
    boxer_py.build(ctx, out)
    return out


def _module(imports: list[tuple[str, str]]) -> bytes:
    """A WASI-looking command that imports `imports` (each a () -> i32 function, like
    sched_yield) and exports memory and an empty _start."""

    def vec(items: list[bytes]) -> bytes:
        return bytes([len(items)]) + b"".join(items)

    def name(s: str) -> bytes:
        return bytes([len(s)]) + s.encode()

    def section(sid: int, body: bytes) -> bytes:
        return bytes([sid, len(body)]) + body

    types = section(1, vec([b"\x60\x00\x00", b"\x60\x00\x01\x7f"]))
    imps = section(2, vec([name(m) + name(n) + b"\x00\x01" for m, n in imports]))
    funcs = section(3, vec([b"\x00"]))
    mem = section(5, vec([b"\x00\x01"]))
    exports = section(7, vec([name("memory") + b"\x02\x00", name("_start") + bytes([0, len(imports)])]))
    code = section(10, vec([b"\x02\x00\x0b"]))
    return b"\0asm\x01\0\0\0" + types + imps + funcs + mem + exports + code


def test_a_module_importing_anything_but_wasi_is_refused(boxer, make_context, serve, open_page):
    ok, fetch = _module([("wasi_snapshot_preview1", "sched_yield")]), _module([("env", "fetch")])
    ctx = make_context('FROM scratch\nCOPY ok.wasm fetch.wasm /\nENTRYPOINT ["/ok.wasm"]\n',
                       {"ok.wasm": ok, "fetch.wasm": fetch}, "two")
    image = ctx.parent / "two.wasm"
    boxer_py.build(ctx, image)
    assert boxer("run", "--entrypoint", "/fetch.wasm", str(image)).returncode == 126
    assert boxer("run", str(image)).returncode == 0
    page = open_page(serve(image).url, autorun=False)
    page.page.fill("#entrypoint", "/fetch.wasm")
    run = page.run("")
    assert run["exitCode"] == 126
    assert page.page.inner_text("#error") == \
        "/fetch.wasm: imports env.fetch, which is not WASI preview1: only WASI programs run here"
    page.page.fill("#entrypoint", "")
    assert page.run("")["exitCode"] == 0


# A reactor as the data-science base's CPython is one (`run`, no `_start`, host.call), importing
# `extra` too. Its run asks host.call for something and exits 42 only if the call answered -1 and
# wrote nothing (1: another answer, 2: its answer buffer changed).
def _reactor(extra: str = "", host_call: str = "(param i32 i32 i32 i32) (result i32)") -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm(f"""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "host" "call" (func $call {host_call}))
  {extra}
  (memory (export "memory") 1)
  (data (i32.const 64) "read /etc/shadow")
  (func (export "run") (result i32)
    (if (result i32) (i32.ne (call $call (i32.const 64) (i32.const 16) (i32.const 128) (i32.const 64)) (i32.const -1))
      (then (i32.const 1))
      (else (if (result i32) (i64.eqz (i64.load (i32.const 128))) (then (i32.const 42)) (else (i32.const 2)))))))"""))


REFUSED = {  # what the program imports: (the module, the reason in the one line)
    "env.fetch": (lambda: _module([("wasi_snapshot_preview1", "sched_yield"), ("env", "fetch")]),
                  "/app.wasm imports env.fetch, which is not WASI preview 1: the browser launcher provides nothing "
                  "else, so the page could not run it"),
    "host.call in a command": (lambda: _module([("wasi_snapshot_preview1", "sched_yield"), ("host", "call")]),
                               "/app.wasm imports host.call, which is not WASI preview 1: the browser launcher "
                               "provides nothing else, so the page could not run it"),
    "host.call and env.fetch in a reactor": (
        lambda: _reactor('(import "env" "fetch" (func (result i32)))'),
        "/app.wasm imports env.fetch, which is not WASI preview 1: the browser launcher provides nothing else, so "
        "the page could not run it"),
    "host.call of another type": (
        lambda: _reactor(host_call="(param i32 i32 i32 i32 i32) (result i32)"),
        "/app.wasm: the page cannot run it (it imports host.call with another signature than boxer's "
        "(i32 x4 -> i32))"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_boxer_web_and_serve_refuse_an_image_whose_program_imports_more_than_wasi(case, boxer, make_context,
                                                                                  tmp_path):
    """A program importing anything the page cannot answer: one line, and no site (only a reactor
    CPython's host.call is answered, inside the runtime the site writes for it)."""
    module, reason = REFUSED[case]
    image = _scratch_image(make_context, module(), "refused")
    line = f"boxer: {image}: {reason}\n"
    r = boxer("web", str(image), "-o", str(tmp_path / "site"))
    assert (r.returncode, r.stderr) == (1, line)
    assert not (tmp_path / "site").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    r = boxer("serve", str(image), "--port", "0", timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", line)


def test_a_reactors_host_call_is_answered_inside_the_page_and_reaches_nothing(boxer, make_context, serve,
                                                                             open_page):
    """Issue 19: a reactor importing host.call runs in the page as the command the site writes
    for it: host.call answers -1 and writes nothing, as under boxer run (exit 42 both), and the
    site's runtime imports nothing but WASI."""
    from boxer_py.image import wasmbin

    image = _scratch_image(make_context, _reactor(), "asks")
    assert boxer("run", str(image)).returncode == 42
    server = serve(image, autorun=False)
    page = open_page(server.url, autorun=False)
    run = page.run("")
    assert (run["exitCode"], run["stdout"], run["stderr"], run["runtime"]) == (42, "", "", "layer")
    name = next(r.rsplit("/", 1)[1] for r in page.requests if "/runtime-" in r)
    served = urllib.request.urlopen(server.url + name).read()
    imports = wasmbin.import_entries(dict(wasmbin.sections(served))[wasmbin.IMPORT])
    assert {module for module, _, _ in imports} == {"wasi_snapshot_preview1"}


def _layer(members: list[tuple[str, str, str]], format: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=format) as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(value.encode())
                tar.addfile(info, io.BytesIO(value.encode()))
            else:
                info.type, info.linkname = tarfile.SYMTYPE, value
                tar.addfile(info)
    return buf.getvalue()


LONG = "deep/" + "d" * 120 + "/" + "e" * 80


def _image_with(base: Path, out: Path, layers: list[bytes]) -> Path:
    """`base`'s layers plus `layers`, written with the real encoder (so digests are right)."""
    img = imagefile.read(base)
    blobs = [img.layer(d) for d in img.layers] + layers
    spec = ImageSpec(img.spec.config, tuple(imagefile.sha256(b) for b in blobs))
    imagefile.write(out, imagefile.encode(spec, blobs)[0])
    return out


def test_symlinks_in_layers_stay_inside_the_root(hello_image, tmp_path, serve, open_page):
    image = _image_with(hello_image, tmp_path / "links.wasm", [
        _layer([("symlink", "escape", "../../../../etc"), ("symlink", "abs", "/../../etc/hosts")]),
        _layer([("file", "escape/hosts", "inside the image\n")]),
        # long names: a pax header in one layer, GNU ././@LongLink entries in the other
        _layer([("file", LONG + "/pax.txt", "pax\n")]),
        _layer([("file", LONG + "/gnu.txt", "gnu\n"), ("symlink", "short", LONG)], tarfile.GNU_FORMAT),
    ])
    page = open_page(serve(image).url, autorun=False)
    run = page.run("python -c 'print(open(\"/etc/hosts\").read(), end=\"\"); print(open(\"/abs\").read(), end=\"\")'")
    assert (run["exitCode"], run["stdout"]) == (0, "inside the image\ninside the image\n"), run["stderr"]
    run = page.run("python -c 'import os; print(sorted(os.listdir(\"/short\")), open(\"/short/gnu.txt\").read())'")
    assert (run["exitCode"], run["stdout"]) == (0, "['gnu.txt', 'pax.txt'] gnu\n\n"), run["stderr"]


def test_a_layer_member_with_dotdot_is_refused(hello_image, tmp_path, serve, open_page):
    image = _image_with(hello_image, tmp_path / "dotdot.wasm", [_layer([("file", "../evil", "x")])])
    page = open_page(serve(image).url)
    assert page.wait_state("error") == "error"
    assert "points outside its root ('..')" in page.page.inner_text("#error")


def _tampered(hello_image: Path, tmp_path: Path) -> Path:
    data = bytearray(hello_image.read_bytes())
    data[-100] ^= 0xFF  # inside the last layer blob
    path = tmp_path / "tampered.wasm"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind, message", [
    ("tampered", "fails its digest check (tampered or corrupt)"),
    ("program", "not a boxer image (it is a WebAssembly program"),
    ("not-wasm", "image.wasm: not a WebAssembly file"),
])
def test_bad_image_files_show_a_clear_error(hello_image, tmp_path, open_page, boxer, kind, message):
    site_dir = site.write_site(hello_image, tmp_path / "site")
    bad = {"tampered": lambda: _tampered(hello_image, tmp_path).read_bytes(),
           "program": lambda: _module([("wasi_snapshot_preview1", "sched_yield")]),
           "not-wasm": lambda: b"<html>not an image</html>"}[kind]()
    (site_dir / "image.wasm").write_bytes(bad)
    with _static_server(site_dir) as url:
        page = open_page(url)
        assert page.wait_state("error") == "error"
        text = page.page.inner_text("#error")
    assert message in text
    assert page.page.inner_text("#image-id") == "(not verified)"
    assert page.page.is_disabled("#run")
    assert page.page.evaluate("() => window.boxer.runs.length") == 0
    page.screenshot(f"error-{kind}.png")
    reference = boxer("run", str(site_dir / "image.wasm"))
    assert reference.returncode != 0


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


class _static_server:
    """A plain static file server (Python's http.server), as any static host would be."""

    def __init__(self, directory: Path):
        handler = partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_boxer_web_writes_a_static_site_that_runs(boxer, hello_image, tmp_path, open_page):
    out = tmp_path / "site"
    r = boxer("web", str(hello_image), "-o", str(out), "--autorun")
    assert r.returncode == 0, r.stderr
    runtime = [p.name for p in out.glob("runtime-*.wasm")]
    snapshot = [p.name for p in out.glob("preinit-*.bin")]
    assert sorted(p.name for p in out.iterdir()) == \
        sorted(["boxer.js", "editor.js", "image.wasm", "index.html", "preview.html", "style.css", "sw.js", "terminal.js", "worker.js", "xterm.css",
                *runtime, *snapshot])
    # The image's CPython without its custom sections (resumable), and the same with its memory
    # shared (for an isolated page's Ctrl-C), each named by its digest; its pre-initialised interpreter.
    assert len(runtime) == 2 and len(snapshot) == 1
    index = (out / "index.html").read_text()
    assert all(f'"{name}"' in index for name in runtime + snapshot)
    assert (out / "image.wasm").read_bytes() == hello_image.read_bytes()
    with _static_server(out) as url:
        page = open_page(url)  # built with --autorun: the image's command runs as the page opens
        run = page.last_run()
    assert (run["exitCode"], run["stdout"]) == (0, "Hello from cpython 3.12.0 on wasi!\n")


def test_a_page_built_without_autorun_runs_only_when_run_is_pressed(boxer, hello_image, tmp_path, open_page):
    out = tmp_path / "site"
    assert boxer("web", str(hello_image), "-o", str(out)).returncode == 0
    with _static_server(out) as url:
        page = open_page(url)  # no ?run=0: the page itself must wait
        page.page.wait_for_selector("#run:not([disabled])", timeout=RUN_TIMEOUT_MS)
        # the page enables Run and would start an automatic run in the same task: none started
        assert page.page.evaluate("() => window.boxer.runs.length") == 0
        assert page.page.get_attribute("#status", "data-state") == "ready"
        assert page.terminal_text().strip() == ""
        page.page.click("#run")
        run = page.last_run()
    assert (run["exitCode"], run["stdout"]) == (0, "Hello from cpython 3.12.0 on wasi!\n")


def test_the_previous_exit_code_goes_when_a_run_starts(hello_image, serve, open_page):
    page = open_page(serve(hello_image).url, autorun=False)
    run = page.run("python -c 'import sys; sys.exit(3)'")
    assert run["exitCode"] == 3 and page.page.inner_text("#exit-code") == "3"
    page.page.fill("#command", "python -c 'import time; time.sleep(600)'")
    page.page.click("#run")
    page.wait_state("compiling", "running")
    assert page.page.inner_text("#exit-code") == "–" and page.page.inner_text("#duration") == "–"
    assert page.page.get_attribute("#exit-code", "data-code") is None
    page.page.click("#stop")
    assert page.last_run(2)["exitCode"] == 137
    assert page.page.inner_text("#exit-code") == "137"


def test_the_entrypoint_can_be_overridden_as_docker_run_does(boxer, app_image, serve, open_page):
    reference = boxer("run", "--entrypoint", "python", str(app_image), "-c", "import sys; print(sys.argv)")
    assert reference.returncode == 0, reference.stderr
    page = open_page(serve(app_image).url, autorun=False)
    assert page.page.get_attribute("#entrypoint", "placeholder") == "none"
    assert page.page.get_attribute("#command", "placeholder") == "python main.py"
    page.page.fill("#entrypoint", "python")
    run = page.run("-c 'import sys; print(sys.argv)'")
    assert (run["exitCode"], run["stdout"]) == (0, reference.stdout) == (0, "['-c']\n")
    # emptied again: the image's own command
    page.page.fill("#entrypoint", "")
    run = page.run("")
    assert (run["exitCode"], run["stdout"]) == (0, "cwd /app\nrelative read works\n")


def _terminal_size(page: Page) -> dict:
    return page.page.evaluate("""() => { const t = window.boxer.app.terminal, box = document.getElementById("terminal");
        const screen = box.querySelector(".xterm-screen").getBoundingClientRect();
        const style = getComputedStyle(box);
        const inner = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        const innerH = box.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
        return {cols: t.cols, rows: t.rows, width: screen.width, height: screen.height, inner, innerH,
                cell: screen.width / t.cols, line: screen.height / t.rows}; }""")


def _fills(size: dict) -> bool:
    """The terminal's grid uses its box: less than one cell (plus a scrollbar) left over each way
    (clientWidth/Height are whole pixels: one pixel of rounding)."""
    return (size["inner"] - 20 - size["cell"] < size["width"] <= size["inner"] + 1
            and size["innerH"] - size["line"] < size["height"] <= size["innerH"] + 1)


def test_the_terminal_fills_its_box_and_follows_its_size(hello_image, serve, open_page):
    page = open_page(serve(hello_image).url, autorun=False)
    page.page.set_viewport_size({"width": 1280, "height": 900})
    page.page.wait_for_selector("#run:not([disabled])", timeout=RUN_TIMEOUT_MS)
    wide = _terminal_size(page)
    assert _fills(wide), str(wide)
    page.page.set_viewport_size({"width": 700, "height": 900})  # a narrower window
    page.page.wait_for_function("cols => window.boxer.app.terminal.cols < cols", arg=wide["cols"])
    narrow = _terminal_size(page)
    assert _fills(narrow), narrow
    # The user drags the box's corner down (it is resizable): more rows.
    box = page.page.locator("#terminal").bounding_box()
    page.page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] - 3)
    page.page.mouse.down()
    page.page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] + 150, steps=5)
    page.page.mouse.up()
    page.page.wait_for_function("rows => window.boxer.app.terminal.rows > rows", arg=narrow["rows"])
    assert _fills(_terminal_size(page))
    line = "x" * (narrow["cols"] + 5)
    run = page.run(f"python -c 'print(\"{line}\")'")
    assert run["stdout"] == line + "\n"
    assert line[:narrow["cols"]] in page.terminal_text().splitlines()  # wraps at the box's width


CODE = "import sys\nfor n in range(3):\n    print(n, sys.platform, 'it\\'s', \"$HOME|x\")\n"


def test_code_typed_into_the_editor_runs_as_python_c(boxer, app_image, serve, open_page):
    reference = boxer("run", str(app_image), "python", "-c", CODE)
    assert reference.returncode == 0, reference.stderr
    page = open_page(serve(app_image, autorun=False).url, autorun=False)
    page.page.wait_for_selector("#run-code:not([disabled])", timeout=RUN_TIMEOUT_MS)
    page.page.click("#editor .cm-content")
    # Typed as a user types it: the editor indents after the colon and closes brackets and quotes
    # itself (the typed closer steps over the one it inserted), so each line is typed without
    # its indentation, and the dedent is a Backspace.
    page.page.keyboard.type("import sys\nfor n in range(3):\n")
    page.page.keyboard.type("print(n, sys.platform, 'it\\'s', \"$HOME|x\")\n")
    page.page.keyboard.press("Backspace")
    assert page.page.evaluate("() => window.boxer.app.editor.state.doc.toString()") == CODE
    page.page.click("#run-code")
    run = page.last_run()
    assert (run["exitCode"], run["stdout"]) == (0, reference.stdout) == (0, "".join(
        f"{n} wasi it's $HOME|x\n" for n in range(3)))
    # Ctrl+Enter in the editor runs it again, as the button does
    page.page.click("#editor .cm-content")
    page.page.keyboard.press("Control+End")
    page.page.keyboard.type("print(6 * 7)")
    page.page.keyboard.press("Control+Enter")
    run = page.last_run(2)
    assert (run["exitCode"], run["stdout"].splitlines()[-1]) == (0, "42")
    assert page.errors == []


def test_the_editor_takes_a_completion_with_tab_and_enter_always_ends_the_line(app_image, serve, open_page):
    page = open_page(serve(app_image, autorun=False).url, autorun=False)
    page.page.wait_for_selector("#run-code:not([disabled])", timeout=RUN_TIMEOUT_MS)
    page.page.click("#editor .cm-content")
    doc = "() => window.boxer.app.editor.state.doc.toString()"
    page.page.keyboard.type("import sys")
    page.page.wait_for_selector(".cm-tooltip-autocomplete")  # the list is open (it offers SystemExit)...
    page.page.wait_for_timeout(300)  # past the 75 ms in which CodeMirror ignores keys in a new list
    page.page.keyboard.press("Enter")  # ...and Enter still ends the line
    assert page.page.evaluate(doc) == "import sys\n"
    page.page.keyboard.type("SystemEx")
    page.page.wait_for_selector(".cm-tooltip-autocomplete")
    page.page.wait_for_timeout(300)
    page.page.keyboard.press("Tab")
    assert page.page.evaluate(doc) == "import sys\nSystemExit"
    assert page.errors == []


def test_the_page_works_at_phone_width(hello_image, serve, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=3)
    try:
        page = context.new_page()
        page.goto(serve(hello_image, autorun=False).url)
        page.wait_for_selector("#run:not([disabled])", timeout=RUN_TIMEOUT_MS)
        width = page.evaluate("() => window.innerWidth")
        assert width == 390
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width  # no sideways scrolling
        for selector in ("#command", "#entrypoint", "#stdin", "#run", "#stop", "#terminal"):
            box = page.locator(selector).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, box)
        page.tap("#run")
        page.wait_for_function("() => window.boxer.runs.length && window.boxer.runs[0].done", timeout=RUN_TIMEOUT_MS)
        assert page.evaluate("() => window.boxer.runs[0].stdout") == "Hello from cpython 3.12.0 on wasi!\n"
        cols = page.evaluate("() => window.boxer.app.terminal.cols")
        assert 20 <= cols < 60
        assert "Hello from cpython" in page.inner_text(".xterm-rows")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / "phone.png"), full_page=True)
    finally:
        context.close()


def test_boxer_web_refuses_bad_input_without_leaving_a_site(boxer, hello_image, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("x")
    r = boxer("web", str(hello_image), "-o", str(full))
    assert r.returncode == 1 and r.stderr == f"boxer: {full}: already exists and is not an empty directory\n"
    r = boxer("web", str(_tampered(hello_image, tmp_path)), "-o", str(tmp_path / "new"))
    assert r.returncode == 1 and "fails its digest check" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_boxer_serve_prints_the_url_and_serves_only_the_site(hello_image, cache_dir):
    import os
    import sys
    import urllib.error
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "boxer_py", "serve", str(hello_image), "--port", "0"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir)})
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "image.wasm") as resp:
            assert resp.headers["Content-Type"] == "application/wasm"
            assert resp.read() == hello_image.read_bytes()
        with urllib.request.urlopen(url) as resp:
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "Content-Security-Policy" in resp.headers
            assert '<script src="boxer.js" defer></script>' in resp.read().decode()
        # A returning visitor's copy is revalidated: its ETag gives 304 and no body (HTTP/1.1:
        # Chromium ignores an ETag on an HTTP/1.0 answer); another ETag gets the file.
        with urllib.request.urlopen(url + "boxer.js") as resp:
            tag, body = resp.headers["ETag"], resp.read()
            assert resp.version == 11 and tag and body == (site.asset_dir() / "boxer.js").read_bytes()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(url + "boxer.js", headers={"If-None-Match": tag}))
        assert (e.value.code, e.value.headers["ETag"], e.value.read()) == (304, tag, b"")
        with urllib.request.urlopen(urllib.request.Request(url + "boxer.js", headers={"If-None-Match": '"old"'})) as resp:
            assert resp.status == 200 and resp.read() == body
        for path in ["../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "templates/index.html", "SOURCES.json"]:
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(url + path)
            assert e.value.code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_committed_launcher_is_built_from_the_sources():
    """The built files under src/boxer_py/web are committed (pip install needs no Node), so
    they must match toolchain/web: SOURCES.json records the sha256 of every build input and is
    checked always; where `npm ci` has been run, a rebuild must give the same bytes."""
    web = REPO / "toolchain" / "web"
    built = site.asset_dir()
    recorded = json.loads((built / "SOURCES.json").read_text())["sources"]
    inputs = ["package.json", "package-lock.json", "build.mjs", *sorted("src/" + p.name for p in (web / "src").iterdir())]
    actual = {f: hashlib.sha256((web / f).read_bytes()).hexdigest() for f in inputs}
    assert recorded == actual, "toolchain/web changed since the launcher was built: run `make web` and commit"
    for name in site.ASSETS:
        assert (built / name).stat().st_size > 0
    if (web / "node_modules" / "esbuild").is_dir() and shutil.which("node"):
        out = REPO / "build" / "web-check"
        subprocess.run(["node", str(web / "build.mjs"), str(out)], check=True, capture_output=True)
        try:
            for name in [*site.ASSETS, "SOURCES.json"]:
                assert (out / name).read_bytes() == (built / name).read_bytes(), f"{name} is stale: run `make web`"
        finally:
            shutil.rmtree(out, ignore_errors=True)


def test_the_page_loads_exactly_the_shipped_assets(hello_image):
    html = site.render_index(imagefile.read(hello_image))
    for name in site.ASSETS:
        if name not in ("worker.js", "editor.js", "terminal.js"):  # started by boxer.js
            assert f'"{name}"' in html
    assert "'unsafe-inline'" not in site.CSP.split("style-src")[0]
    assert '"image.wasm"' in html and "Content-Security-Policy" in html
    assert set(site.ASSETS) | {"SOURCES.json"} == {p.name for p in site.asset_dir().iterdir()}


def test_argv_env_and_shell_form_cmd_match_boxer_run(boxer, build, serve, open_page):
    image = build("FROM python:3.12\nENV A=1 B='two words'\nWORKDIR /srv\n"
                  "CMD python -c \"import os, sys; print(sys.argv, os.getcwd(), os.environ['B'])\"\n")
    page = open_page(serve(image).url)
    commands = [
        ([], ""),
        (["python", "-c", "import os; print(sorted(os.environ.items()))"],
         """python -c 'import os; print(sorted(os.environ.items()))'"""),
        (["python", "-c", "import sys; print(sys.argv)", "a b", "c\"d", "$HOME"],
         """python -c "import sys; print(sys.argv)" 'a b' "c\\"d" '$HOME'"""),
    ]
    for index, (args, line) in enumerate(commands, start=1):
        reference = boxer("run", str(image), *args)
        assert reference.returncode == 0, reference.stderr
        expected = reference.stdout
        if index == 2:  # a typed command's stdin is the page's terminal: as `boxer run -t`, it has BOXER_TTY
            expected = f"{sorted([*ast.literal_eval(expected), ('BOXER_TTY', '/.boxer/tty/size')])}\n"
        run = page.last_run() if index == 1 else page.run(line)
        assert (run["exitCode"], run["stdout"], run["stderr"]) == (0, expected, reference.stderr), line
    assert "['-c'] /srv two words" in page.last_run(1)["stdout"]


def test_a_command_that_needs_a_shell_or_is_missing_is_refused(hello_image, serve, open_page):
    page = open_page(serve(hello_image).url, autorun=False)
    run = page.run("python -c 'print(1)' | cat")
    assert run["exitCode"] == 125 and "needs a shell (|)" in page.page.inner_text("#error")
    run = page.run("nosuch --flag")
    assert run["exitCode"] == 127
    assert page.page.inner_text("#error") == "nosuch: not found in PATH (/usr/local/bin:/usr/bin:/bin)"
    run = page.run("/app/main.py")
    assert run["exitCode"] == 126 and "is not a WebAssembly program" in page.page.inner_text("#error")


def test_timeout_and_stop_end_a_runaway_guest(hello_image, serve, open_page):
    page = open_page(serve(hello_image).url, autorun=False)
    page.wait_state("ready")
    # 20 s: what the guest printed before its timeout is kept, and CPython's start on a busy
    # machine has taken more than 3 s of it.
    page.page.fill("#timeout", "20")
    run = page.run("python -c 'print(\"spinning\", flush=True); all(iter(lambda: 1, 0))'")
    assert (run["exitCode"], run["stdout"], run["trap"]) == (124, "spinning\n", "timed out after 20s")
    assert page.page.inner_text("#exit-code") == "124"
    page.page.fill("#timeout", "")
    page.page.fill("#command", "python -c 'while True: pass'")
    page.page.click("#run")
    page.wait_state("running")
    page.page.click("#stop")
    run = page.last_run(2)
    assert (run["exitCode"], run["trap"]) == (137, "stopped")
    run = page.run("python -c 'print(\"still works\")'")
    assert (run["exitCode"], run["stdout"]) == (0, "still works\n")


def test_boxer_serve_reports_a_busy_port_in_one_line(boxer, hello_image, serve):
    server = serve(hello_image)
    port = server.url.rsplit(":", 1)[1].strip("/")
    r = boxer("serve", str(hello_image), "--port", port)
    assert r.returncode == 1
    assert r.stderr.startswith(f"boxer: cannot listen on 127.0.0.1:{port} (") and "Traceback" not in r.stderr


def test_files_deleted_by_a_later_layer_are_gone_in_the_page_too(boxer, build, serve, open_page):
    image = build("FROM python:3.12\nCOPY a.txt b.txt /data/\nRUN rm /data/a.txt\n"
                  "CMD [\"python\", \"-c\", \"import os; print(sorted(os.listdir('/data')))\"]\n",
                  {"a.txt": "a", "b.txt": "b"})
    reference = boxer("run", str(image))
    assert reference.stdout == "['b.txt']\n"
    run = open_page(serve(image).url).last_run()
    assert (run["exitCode"], run["stdout"]) == (0, reference.stdout)


def test_the_agent_examples_plotly_chart_shows_in_the_page(build, boxer, cache_dir, serve, open_page):
    agent = Path(__file__).resolve().parent.parent / "examples" / "agent"
    boxer_py.build(agent, None, tag="agent-sandbox", cache_dir=cache_dir)
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("agent_example", agent / "agent.py")
    example = module_from_spec(spec)
    spec.loader.exec_module(example)
    image = build("FROM agent-sandbox\nCOPY chart.py /work/\nCOPY sales.csv /data/\n",
                  {"chart.py": example.PLOTLY_CHART, "sales.csv": (agent / "data" / "sales.csv").read_text()})
    page = open_page(serve(image).url, autorun=False)
    run = page.run("python chart.py")
    assert run["exitCode"] == 0, run["stderr"]
    assert run["files"] == ["/out/plotly.html"]
    run_scripts(page.page)
    frame = page.page.frame_locator("#preview iframe")
    frame.locator(".main-svg").first.wait_for(timeout=60_000)
    assert frame.locator(".gtitle").text_content() == "Revenue by region"
    assert frame.locator(".point").count() == 4
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.page.locator("#preview iframe").screenshot(path=str(OUTPUT / "agent-plotly.png"))
