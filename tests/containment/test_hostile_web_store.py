"""Hostile bytes against the page's start (issue 19), in real Chromium: a copy of the image,
runtime or snapshot damaged in the page's Cache Storage (by a disk error, or by other page code
of the same origin) is never used, but dropped, fetched again and stored intact; a snapshot
file whose bytes do not match its name (a tampering host or proxy) is not used, and the run
starts from scratch with the right output.
"""
from __future__ import annotations

import hashlib

import pytest

from boxer_py.browser import site
from boxer_py.cli.browser import page_preinit
from boxer_py.image import imagefile
from test_web import Page, _static_server

pytestmark = pytest.mark.browser
# What the page's store holds, as {key: sha256 hex of the bytes}.
STORED = """async () => {
  const out = {};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) {
      const bytes = await (await cache.match(request)).arrayBuffer();
      const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      out[request.url] = Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
    }
  }
  return out;
}"""


@pytest.fixture(scope="module")
def preinit(hello_image, cache_dir):
    found = page_preinit(hello_image, cache_dir)
    assert found is not None
    return found


def test_a_damaged_stored_copy_is_fetched_again(browser, hello_image, preinit):
    server = site.serve(hello_image, "127.0.0.1", 0, autorun=True, preinit=preinit)
    context = browser.new_context()
    damage = """async () => {
      let n = 0;
      for (const name of await caches.keys()) {
        const cache = await caches.open(name);
        for (const request of await cache.keys()) {
          const bytes = new Uint8Array(await (await cache.match(request)).arrayBuffer());
          bytes[bytes.length >> 1] ^= 1;
          await cache.put(request, new Response(bytes, { headers: { "Content-Type": "application/wasm" } }));
          n += 1;
        }
      }
      return n;
    }"""
    try:
        tab = context.new_page()
        tab.goto(server.url)
        tab.wait_for_function("() => window.boxer && window.boxer.runs[0] && window.boxer.runs[0].done", timeout=180_000)
        tab.wait_for_function("async () => (await (await caches.open((await caches.keys())[0])).keys()).length === 3")
        assert tab.evaluate(damage) == 3
        tab.close()
        tab = context.new_page()
        tab.goto(server.url)
        tab.wait_for_function("() => window.boxer && window.boxer.runs[0] && window.boxer.runs[0].done", timeout=180_000)
        run = tab.evaluate("() => window.boxer.runs[0]")
        assert (run["exitCode"], run["stdout"], run["preinitialised"]) == (0, "Hello from cpython 3.12.0 on wasi!\n", True)
        # Each damaged copy was dropped, fetched again (from the server or the HTTP cache) and stored intact.
        tab.wait_for_function(f"async () => Object.keys(await ({STORED})()).length === 3")
        stored = tab.evaluate(STORED)
        image_id = imagefile.read(hello_image).id.split(":")[1]
        for key, digest in stored.items():
            name = key.rsplit("/sha256-", 1)[1]
            assert digest == (hashlib.sha256(hello_image.read_bytes()).hexdigest() if name == image_id else name), key
    finally:
        context.close()
        server.close()


def test_the_list_of_stored_files_is_only_a_hint(browser, hello_image, preinit):
    """Other page code can rewrite the page's list of what it stored (localStorage): a list that
    names nothing makes the page fetch again, one that cannot be read makes it ask the store,
    and either way the run is the image's."""
    server = site.serve(hello_image, "127.0.0.1", 0, autorun=True, preinit=preinit)
    context = browser.new_context()
    done = "() => window.boxer && window.boxer.runs[0] && window.boxer.runs[0].done"
    try:
        for visit, hint in enumerate([None, "[]", "{not a list"]):
            tab = context.new_page()
            if hint is not None:
                tab.goto(server.url + "?run=0")
                tab.evaluate("h => { for (const k of Object.keys(localStorage)) localStorage.setItem(k, h); }", hint)
            before = server.requests.count("/image.wasm")
            tab.goto(server.url)
            tab.wait_for_function(done, timeout=180_000)
            run = tab.evaluate("() => window.boxer.runs[0]")
            assert (run["exitCode"], run["stdout"], run["preinitialised"]) == (0, "Hello from cpython 3.12.0 on wasi!\n", True)
            fetched = server.requests.count("/image.wasm") - before
            assert fetched == (0 if hint == "{not a list" else 1), (visit, hint, server.requests)
            tab.wait_for_function("async () => (await (await caches.open((await caches.keys())[0])).keys()).length === 3")
            tab.close()
    finally:
        context.close()
        server.close()


def test_a_snapshot_that_does_not_match_its_name_is_not_used(browser, boxer, hello_image, tmp_path):
    out = tmp_path / "site"
    assert boxer("web", str(hello_image), "-o", str(out), "--autorun").returncode == 0
    [snapshot] = out.glob("preinit-*.bin")
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a guest's word in the middle of its memory
    snapshot.write_bytes(data)
    with _static_server(out) as url:
        tab = Page(browser, url)
        try:
            run = tab.last_run()
            assert (run["exitCode"], run["stdout"], run["stderr"]) == (0, "Hello from cpython 3.12.0 on wasi!\n", "")
            assert run["preinitialised"] is False  # started from scratch
        finally:
            tab.close()
