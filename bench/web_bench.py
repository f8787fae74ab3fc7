"""Browser start-up: time from navigation to the first line of output, in headless Chromium.

`rows()` returns (name, median seconds) for
- the hello example's page as `boxer serve` serves it (fetch + verify image.wasm, unpack,
  compile CPython, resume its pre-initialised snapshot and run `python main.py`),
- the same page without the snapshot (CPython's start-up runs in the tab), and
- the same print in Pyodide (npm `pyodide`, served locally): a minimal console page that
  loads Pyodide and runs the print. Pyodide's own console.html loads jQuery from a CDN,
  which is not reachable here, so this page keeps only what the print needs.

Each repetition opens the page twice in a fresh browser profile on disk: the first visit is
cold (empty caches, nothing compiled), the second is a returning visitor's (what the
browser kept: for boxer the image, runtime and snapshot in the page's Cache Storage). Pyodide gets the same two visits. It is installed with npm on first use into the boxer
cache; without npm its rows are left out. The boxer page's rows are followed by where its
time went (its run record's `timings` and the page's `boxer:` performance marks): each step's
median, from the step before it.
Run alone: `python bench/web_bench.py`.
"""
from __future__ import annotations

import http.server
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PYODIDE_VERSION = "314.0.7"
TIMEOUT_MS = 180_000
PYODIDE_PAGE = """<!doctype html><meta charset="utf-8"><title>pyodide</title><pre id="out"></pre>
<script type="module">
import { loadPyodide } from "./pyodide.mjs";
const out = document.getElementById("out");
window.firstOutputMs = null;
const pyodide = await loadPyodide({ indexURL: "./", stdout: (line) => {
  if (window.firstOutputMs === null) window.firstOutputMs = performance.now();
  out.textContent += line + "\\n";
} });
pyodide.runPython("import sys; print(f'Hello from {sys.implementation.name} {sys.version.split()[0]} on {sys.platform}!')");
</script>
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


class _StaticServer:
    def __init__(self, directory: Path):
        handler = partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# The boxer page's steps to first output (its run record's `timings` and the page's `boxer:`
# performance marks, ms since navigation), in order; a step the visit did not take (`fetched` on a
# returning visit) is left out and the next one counts from the step before it.
STEPS = (("load", "page started (HTML, boxer.js run)"), ("read", "image read from the page's store and verified, in the first run's worker (at once on a first visit: nothing stored)"),
         ("fetched", "image downloaded"), ("verified", "image verified (sha256 of every blob; a downloaded one)"),
         ("imageReady", "image unpacked"), ("compiled", "runtime compiled and checked"),
         ("posted", "run handed to its worker"), ("started", "worker instantiated and restored the snapshot"),
         ("firstOutput", "the guest's first output"))
TIMINGS = ("window.boxer ? {...Object.fromEntries(performance.getEntriesByType('mark').filter((m) => m.name.startsWith('boxer:'))"
           ".map((m) => [m.name.slice(6), m.startTime])), ...window.boxer.runs[0].timings} : null")


def _first_output(page, url: str, expression: str, steps: list[dict] | None = None) -> float:
    """Seconds from navigation start to first output (performance.now() counts from it); the
    boxer page's step times are appended to `steps` when given."""
    page.goto(url)
    handle = page.wait_for_function(f"() => {expression}", timeout=TIMEOUT_MS)
    if steps is not None:
        steps.append(page.evaluate(f"() => {TIMINGS}") or {})
    return float(handle.json_value()) / 1000


def _visits(playwright, url: str, expression: str, steps: list[list[dict]] | None = None) -> tuple[float, float]:
    """(first visit, second visit) in a new profile on disk (a private context's memory cache
    keeps no entry as large as a runtime); with `steps`, each visit's step times are appended
    to steps[0] and steps[1]."""
    with tempfile.TemporaryDirectory(prefix="boxer-web-profile-") as profile:
        context = playwright.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            times = []
            for visit in range(2):
                page = context.new_page()
                times.append(_first_output(page, url, expression, steps[visit] if steps is not None else None))
                page.close()
            return times[0], times[1]
        finally:
            context.close()


def _breakdown(label: str, visits: list[dict]) -> list[tuple[str, float]]:
    """Median seconds each step of the boxer page took (from the step before it, the first from
    navigation), over `visits`."""
    out = []
    for i, (key, what) in enumerate(STEPS):
        spans = []
        for v in visits:
            if v.get(key) is None:
                continue
            before = [v[k] for k, _ in STEPS[:i] if v.get(k) is not None]
            spans.append((v[key] - (before[-1] if before else 0)) / 1000)
        if spans:
            out.append((f"web: hello, {label}, step: {what} (boxer page, Chromium)", statistics.median(spans)))
    return out


def _pyodide_dir(cache: Path) -> Path | None:
    """The npm pyodide package, installed once into the cache; None without npm."""
    target = cache / f"pyodide-{PYODIDE_VERSION}"
    package = target / "node_modules" / "pyodide"
    if (package / "pyodide.asm.wasm").is_file():
        return package
    if not shutil.which("npm"):
        return None
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(target),
                             f"pyodide@{PYODIDE_VERSION}"], capture_output=True, text=True, timeout=600)
    return package if result.returncode == 0 and (package / "pyodide.asm.wasm").is_file() else None


def rows(repeats: int = 3) -> list[tuple[str, float]]:
    from playwright.sync_api import sync_playwright

    import boxer_py
    from boxer_py.api.session import default_cache_dir
    from boxer_py.browser import site
    from boxer_py.cli.browser import page_preinit

    out: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="boxer-web-bench-") as tmp:
        image = Path(tmp) / "hello.wasm"
        boxer_py.build(REPO / "examples" / "hello-python", image, tag="hello")
        # The page runs CMD as it opens; `boxer serve` gives it the snapshot, the second one has none.
        servers = [site.serve(image, "127.0.0.1", 0, autorun=True, preinit=page_preinit(image)),
                   site.serve(image, "127.0.0.1", 0, autorun=True)]
        pyodide = _pyodide_dir(default_cache_dir() / "bench")
        static = None
        if pyodide is not None:
            page_dir = Path(tmp) / "pyodide"
            page_dir.mkdir()
            for f in pyodide.iterdir():
                (page_dir / f.name).symlink_to(f)
            (page_dir / "index.html").write_text(PYODIDE_PAGE)
            static = _StaticServer(page_dir)
        try:
            with sync_playwright() as p:
                # Interleaved, so a busy machine slows both alike.
                boxer_times, plain_times, pyodide_times = [], [], []
                steps: list[list[dict]] = [[], []]  # the boxer page's step times, first and second visits
                first = "window.boxer && window.boxer.runs[0] && window.boxer.runs[0].firstOutputMs"
                for _ in range(repeats):
                    boxer_times.append(_visits(p, servers[0].url, first, steps))
                    plain_times.append(_visits(p, servers[1].url, first))
                    if static is not None:
                        pyodide_times.append(_visits(p, static.url, "window.firstOutputMs"))
                for visit, label in ((0, "first visit"), (1, "second visit, cached")):
                    out.append((f"web: hello, navigation to first output, {label} (boxer page without the snapshot, Chromium)",
                                statistics.median(t[visit] for t in plain_times)))
                    out.append((f"web: hello, navigation to first output, {label} (boxer page, Chromium)",
                                statistics.median(t[visit] for t in boxer_times)))
                    if pyodide_times:
                        out.append((f"web: same print in Pyodide {PYODIDE_VERSION}, {label} (Chromium)",
                                    statistics.median(t[visit] for t in pyodide_times)))
                    out += _breakdown(label, steps[visit])
        finally:
            for server in servers:
                server.close()
            if static is not None:
                static.close()
    return out


if __name__ == "__main__":
    for name, seconds in rows(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(f"{name:70s} {seconds:8.3f} s")
