"""The site's stripped runtime (browser/runtime.py): the image's CPython without its custom
sections, compiled by the page while the image downloads, cached by the browser; and the
page's fallback (compiling the image's own program) when a host left the file out.
Real Chromium; the Wasmtime run of the same image is the reference.
"""
from __future__ import annotations

import hashlib
import re
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

from boxer_py.browser import program, runtime, site
from boxer_py.image import imagefile, wasmbin
from chromium import CHROMIUM, CHROMIUM_ARGS
from test_web import RUNTIME_313_MAIN, Page, _static_server


@pytest.fixture(scope="module")
def playwright():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run `make system`")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield b
    b.close()


def test_the_runtime_is_the_images_program_without_custom_sections(hello_image):
    wasm = program.check_runs_in_browser(imagefile.read(hello_image), "hello")
    assert wasm is not None
    found = runtime.for_browser(wasm)
    assert found is not None
    kept = wasmbin.sections(found.data)
    assert [s for s in wasmbin.sections(wasm) if s[0] != 0] == kept and all(sid != 0 for sid, _ in kept)
    # The python:3.12 base already left the upstream file's DWARF out: what is dropped here is small.
    assert [wasmbin.custom_name(p) for sid, p in wasmbin.sections(wasm) if sid == 0] == ["producers", "target_features"]
    assert len(found.data) < len(wasm)
    assert found.cwd_slot is not None


@pytest.mark.parametrize("wasm", [
    b"\0asm\x01\0\0\0\x0a\xff\xff\xff\xff\x0f",  # a section longer than the file
    b"\0asm\x01\0\0\0\x0a\xff\xff\xff\xff\xff\xff",  # a size that never ends
    b"\0asm\x01\0\0\0" + b"\x00\x00" * 100_000,  # only empty custom sections
    b"#!/bin/sh\necho not wasm\n",
])
def test_a_hostile_program_gets_no_runtime_file_and_no_traceback(wasm):
    found = runtime.for_browser(wasm)
    assert found is None or (found.data == b"\0asm\x01\0\0\0" and found.cwd_slot is None)


ORDER = """() => {
  const start = (name) => performance.getEntriesByType('resource').find((e) => e.name.endsWith('/' + name)).startTime;
  return { load: performance.getEntriesByName('boxer:load')[0].startTime, 'terminal.js': start('terminal.js'), 'editor.js': start('editor.js') };
}"""


def test_the_page_compiles_the_served_runtime_and_caches_it_for_good(playwright, hello_image, tmp_path):
    server = site.serve(hello_image, "127.0.0.1", 0, autorun=True)
    # A browser profile on disk, as a visitor's is (a private window's memory cache keeps no 13 MB entry).
    context = playwright.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                            args=CHROMIUM_ARGS)
    fetched = "() => performance.getEntriesByType('resource').filter(e => e.name.includes('/runtime-')).map(e => e.transferSize)"
    # The launcher's own files: [transferred bytes, body bytes] (a revalidated copy transfers its headers only).
    launcher = ("() => performance.getEntriesByType('resource').filter(e => /[/](boxer|terminal|worker)[.]js$/.test(e.name))"
                ".map(e => [e.name.split('/').pop(), e.transferSize, e.encodedBodySize])")
    try:
        for visit in range(2):
            tab = context.new_page()
            tab.goto(server.url)
            tab.wait_for_function("() => window.boxer && window.boxer.runs[0] && window.boxer.runs[0].done", timeout=180_000)
            run = tab.evaluate("() => window.boxer.runs[0]")
            assert (run["exitCode"], run["stdout"]) == (0, "Hello from cpython 3.12.0 on wasi!\n")
            assert run["runtime"] == "layer"  # known from the checked layer: no second hash of the program
            sizes = tab.evaluate(fetched)
            # then from the cache (the page's store: no request at all; or the HTTP cache)
            assert (len(sizes) == 1 and sizes[0] > 1 << 20) if visit == 0 else all(size == 0 for size in sizes), sizes
            # boxer.js, terminal.js (xterm) and worker.js: downloaded once, then answered 304 (the browser keeps them, and its compiled code)
            # (a worker is started again after the run, for the next one: from the browser's cache)
            files = tab.evaluate(launcher)
            assert {name for name, _, _ in files} == {"boxer.js", "terminal.js", "worker.js"}, files
            if visit == 0:
                first: dict[str, tuple[int, int]] = {}
                for name, sent, body in files:
                    first.setdefault(name, (sent, body))
                assert all(sent > body for sent, body in first.values()), files
            else:
                assert all(sent < 1024 < body for _, sent, body in files), files
            # Where the time went: every step recorded, each thread's in its order (the worker's
            # are converted to the page's clock; across threads only causality orders them).
            t = run["timings"]
            # The page starts its work (reading the image, compiling the runtime) before it asks for
            # xterm's module, and for the code pane's only once the first run is in its worker.
            tab.wait_for_function("() => performance.getEntriesByType('resource').some((e) => e.name.endsWith('/editor.js'))")
            start = tab.evaluate(ORDER)
            assert start["load"] <= start["terminal.js"] and t["posted"] <= start["editor.js"], (start, t)
            for steps in (("imageReady", "requested", "compiled", "posted", "firstOutput"), ("received", "instantiated", "started")):
                times = [t[k] for k in steps]
                assert all(isinstance(v, (int, float)) for v in times) and times == sorted(times), t
            tab.close()
        names = [r for r in server.requests if r.startswith("/runtime-")]
        assert len(names) == 1
        with urllib.request.urlopen(server.url + names[0][1:]) as resp:
            assert resp.headers["Content-Type"] == "application/wasm"
            assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    finally:
        context.close()
        server.close()


def test_a_page_that_names_another_place_for_the_program_hashes_it_instead(browser, boxer, hello_image, tmp_path):
    """data-runtime-source saves hashing the program a second time only when it names exactly
    where the program lies in a layer the page has checked; anything else is hashed."""
    out = tmp_path / "site"
    assert boxer("web", str(hello_image), "-o", str(out), "--autorun").returncode == 0
    index = out / "index.html"
    html = index.read_text()
    source = re.search(r'data-runtime-source="(sha256:[0-9a-f]{64}):(\d+):(\d+)"', html)
    assert source is not None
    layer, offset, size = source.group(1), int(source.group(2)), int(source.group(3))
    image = imagefile.read(hello_image)
    data = image.layer(next(d for d in image.layers if d.digest == layer))
    assert hashlib.sha256(data[offset:offset + size]).hexdigest() == re.search(r'data-runtime-program="sha256:([0-9a-f]{64})"', html).group(1)
    index.write_text(html.replace(source.group(0), f'data-runtime-source="{layer}:{offset + 512}:{size}"'))
    with _static_server(out) as url:
        tab = Page(browser, url)
        try:
            run = tab.last_run()
            assert (run["exitCode"], run["stdout"], run["runtime"]) == (0, "Hello from cpython 3.12.0 on wasi!\n", "sha256")
        finally:
            tab.close()


def test_without_the_runtime_file_the_page_compiles_the_images_program(browser, boxer, build, tmp_path):
    # The 3.13 runtime is built with ThinLTO: the page's own finder locates its cwd global too.
    image = build("FROM python:3.13\nWORKDIR /app\nCOPY main.py .\nCMD [\"python\", \"main.py\"]\n",
                  {"main.py": RUNTIME_313_MAIN})
    expected = boxer("run", str(image))
    assert expected.returncode == 0, expected.stderr
    out = tmp_path / "site"
    assert boxer("web", str(image), "-o", str(out), "--autorun").returncode == 0
    for f in out.glob("runtime-*.wasm"):
        f.unlink()
    with _static_server(out) as url:
        tab = Page(browser, url)
        try:
            run = tab.last_run()
            assert (run["exitCode"], run["stdout"], run["stderr"]) == (0, expected.stdout, expected.stderr)
            assert tab.errors == []
        finally:
            tab.close()
