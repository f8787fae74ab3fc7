"""A hostile guest (and hostile page code) against the browser page's outbound network, in real
Chromium, every server on 127.0.0.1: a host not in --allow-net gets no request by any
spelling; a name that resolves to a loopback address is refused by the browser before anything
is sent; oversized and malformed control and HTTP requests end cleanly; the socket slots run
out and come back; the CSP keeps page and worker code to the list; a guest server may listen
only on the page's published ports, and what it answers that is not an HTTP response is a 502.
"""
from __future__ import annotations

import pytest

from chromium import chromium
from webnet import NetPage, Recorder, build_python_image

pytestmark = pytest.mark.browser
REBIND_NAME = "rebind.test"  # Chromium resolves it to 127.0.0.1 (--host-resolver-rules), as a rebinding DNS would


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return build_python_image(tmp_path_factory.mktemp("webnet-hostile"))


@pytest.fixture(scope="module")
def browser():
    with chromium(f"--host-resolver-rules=MAP {REBIND_NAME} 127.0.0.1") as b:
        yield b


@pytest.fixture
def servers():
    made: list[Recorder] = []

    def make() -> Recorder:
        made.append(Recorder())
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.fixture
def net_page(browser, image):
    pages = []

    def make(*rules: str, publish: tuple[int, ...] = ()) -> NetPage:
        pages.append(NetPage(browser, image, *rules, publish=publish))
        return pages[-1]

    yield make
    for p in pages:
        p.close()


def test_a_host_not_allowed_gets_no_request_by_any_spelling(servers, net_page):
    allowed, canary = servers(), servers()
    page = net_page(f"127.0.0.1:{allowed.port}")
    code = f"""
import socket
for host in ('127.0.0.1', 'localhost', 'LOCALHOST.', '127.1', '2130706433', '0x7f.0.0.1', '::ffff:127.0.0.1',
             '127.0.0.1:{allowed.port}', '{REBIND_NAME}'):
    s = socket.socket()
    try:
        s.connect((host, {canary.port}))
        print(host, 'connected')
    except OSError as e:
        print(host, type(e).__name__)
    s.close()
# On the allowed connection: requests that name the canary some other way.
for request in (b'GET http://127.0.0.1:{canary.port}/absolute HTTP/1.1\\r\\nHost: 127.0.0.1:{canary.port}\\r\\n\\r\\n',
                b'CONNECT 127.0.0.1:{canary.port} HTTP/1.1\\r\\n\\r\\n',
                b'GET /spoofed-host HTTP/1.1\\r\\nHost: 127.0.0.1:{canary.port}\\r\\n\\r\\n'):
    s = socket.create_connection(('127.0.0.1', {allowed.port}))
    s.sendall(request)
    try:
        print(s.recv(12))
    except OSError as e:
        print(type(e).__name__)
    s.close()
"""
    result = page.python(code)
    assert result["exitCode"] == 0, result
    lines = result["stdout"].splitlines()
    assert all(not line.endswith("connected") for line in lines), lines
    assert lines[:2] == ["127.0.0.1 PermissionError", "localhost PermissionError"]
    assert lines[-3:] == ["ConnectionResetError", "ConnectionResetError", "b'HTTP/1.1 200'"]
    assert canary.seen == []
    assert [p for _, p, _ in allowed.seen] == ["/spoofed-host"]  # sent to the allowed host, its own Host


def test_a_name_that_resolves_to_loopback_is_refused_before_any_request(servers, net_page):
    server = servers()
    page = net_page(f"{REBIND_NAME}:{server.port}", f"localhost:{server.port}")
    code = f"""
import urllib.request, urllib.error
for host in ('{REBIND_NAME}', 'localhost'):
    try:
        print(host, urllib.request.urlopen(f'http://{{host}}:{server.port}/' + host, timeout=30).status)
    except urllib.error.HTTPError as e:
        print(host, e.code)
"""
    result = page.python(code)
    assert result["exitCode"] == 0, result
    # A name rule may lead only to a public address (as boxer run refuses it, unless the rule
    # names the IP or localhost); `localhost` is loopback by its rule.
    assert result["stdout"].splitlines() == [f"{REBIND_NAME} 502", "localhost 200"]
    assert [p for _, p, _ in server.seen] == ["/localhost"]


def test_oversized_and_malformed_requests_end_cleanly(servers, net_page):
    server = servers()
    page = net_page(f"127.0.0.1:{server.port}")
    code = f"""
import json, os, socket, _boxer_net
def ask(raw):
    os.write(_boxer_net.FD, raw)
    return json.loads(os.read(_boxer_net.FD, 65536))
print(ask(b'{{"op": "socket", "family": "inet", "type": "stream", "pad": "' + b'x' * 5000 + b'"}}')['errno'])
print(ask(b'{{not json')['errno'], ask(b'\\xff\\xfe')['errno'], ask(b'[1]')['errno'], ask(b'{{"op": "nope"}}')['errno'])
print(ask(json.dumps({{"op": "connect", "fd": 10**30, "host": "127.0.0.1", "port": {server.port}}}).encode())['errno'])
s = socket.create_connection(('127.0.0.1', {server.port}))
s.sendall(b'GET /' + b'a' * 70000)  # a request head that never ends
try:
    s.recv(10)
except OSError as e:
    print(type(e).__name__)
s.close()
held = []
try:
    while True:
        held.append(socket.socket())
except OSError as e:
    print(len(held), e.errno)
for sock in held:
    sock.close()
import urllib.request
print(urllib.request.urlopen('http://127.0.0.1:{server.port}/after').status)
"""
    result = page.python(code)
    assert result["exitCode"] == 0, result
    assert result["stdout"].splitlines() == ["1", "28 28 28 28", "8", "ConnectionResetError", "63 33", "200"]
    assert "a request head over 65536 bytes" in result["stderr"]
    assert [p for _, p, _ in server.seen] == ["/after"]


def test_the_csp_keeps_page_and_worker_code_to_the_list(servers, net_page):
    allowed, canary = servers(), servers()
    page = net_page(f"127.0.0.1:{allowed.port}")
    probe = """async (url) => { try { const r = await fetch(url); return r.status; } catch (e) { return e.name; } }"""
    assert page.page.evaluate(probe, f"http://127.0.0.1:{canary.port}/from-page") == "TypeError"
    assert page.page.evaluate(probe, f"http://127.0.0.1:{allowed.port}/from-page") == 200
    # The run's worker obeys the header `boxer serve` sends with worker.js. The page starts it ahead,
    # as it opens: once the run has it, it is the page's one worker.
    page.page.evaluate("() => { window.boxer.app.run('-c \"import time; time.sleep(60)\"', new Uint8Array(0), 0, "
                       "'python'); }")
    page.page.wait_for_function("() => window.boxer.app.workers.size === 1", timeout=60_000)
    assert len(page.page.workers) == 1
    worker = page.page.workers[0]
    assert worker.evaluate(probe, f"http://127.0.0.1:{canary.port}/from-worker") == "TypeError"
    assert worker.evaluate(probe, f"http://127.0.0.1:{allowed.port}/from-worker") == 200
    page.page.evaluate("() => window.boxer.app.stop()")
    assert canary.seen == []
    assert [p for m, p, _ in allowed.seen] == ["/from-page", "/from-worker"]


BAD_SERVER = r"""
import socket
s = socket.socket()
s.bind(('', 8000))
s.listen()
try:
    socket.socket().bind(('', 9000))
except OSError as e:
    print('bind 9000:', type(e).__name__, e, flush=True)
print('ready', flush=True)
while True:
    c, _ = s.accept()
    request = b''
    while b'\r\n\r\n' not in request:
        request += c.recv(65536)
    path = request.split()[1]
    if path == b'/garbage':
        c.sendall(b'NOT HTTP AT ALL\r\n\r\n')
    elif path == b'/big-head':
        c.sendall(b'HTTP/1.1 200 OK\r\nX: ' + b'a' * 70000 + b'\r\n\r\n')
    elif path == b'/ok':
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    c.close()  # /silent: no answer at all
"""


def test_a_guest_server_listens_only_on_published_ports_and_bad_answers_are_502(net_page):
    page = net_page(publish=(8000,))
    page.start(BAD_SERVER)
    page.wait_output("ready")
    stdout = page.page.evaluate("() => window.boxer.runs.at(-1).stdout")
    assert ("bind 9000: PermissionError [Errno 2] port 9000 is not published: build the page with --publish 9000 "
            "to let the guest listen on it") in stdout
    assert page.fetch("port/9000/")["status"] == 503
    answers = {path: page.fetch("port/8000" + path) for path in ("/garbage", "/big-head", "/silent", "/ok")}
    assert answers["/garbage"]["status"] == 502 and "a malformed HTTP status line" in answers["/garbage"]["text"]
    assert answers["/big-head"]["status"] == 502 and "a response head over 65536 bytes" in answers["/big-head"]["text"]
    assert answers["/silent"]["status"] == 502
    assert "closed the connection without a response" in answers["/silent"]["text"]
    assert (answers["/ok"]["status"], answers["/ok"]["text"]) == (200, "ok")
    assert page.fetch("image.wasm")["status"] == 200  # the page's own files are not the guest's
    page.page.evaluate("() => window.boxer.app.stop()")


HTML_SERVER = r"""
import http.server
page = b'<!doctype html><title>guest</title><h1 id=h>from the guest</h1><script>document.title = "ran:" + origin;</script>'
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Type', 'text/html')
        self.send_header('Content-Length', str(len(page)))
        self.end_headers()
        self.wfile.write(page)
server = http.server.HTTPServer(('', 8000), Handler)
print('ready', flush=True)
server.serve_forever()
"""


def test_a_guest_page_opened_in_a_tab_runs_no_script_and_is_not_the_pages_origin(net_page):
    page = net_page(publish=(8000,))
    page.start(HTML_SERVER)
    page.wait_output("ready")
    tab = page.context.new_page()
    tab.goto(page.server.url + "port/8000/index.html")
    assert tab.inner_text("#h") == "from the guest"  # it renders
    assert tab.title() == "guest"  # its script did not run
    assert tab.evaluate("() => origin") == "null"  # an opaque origin: not the page's
    tab.close()
    page.page.evaluate("() => window.boxer.app.stop()")


def test_socketpairs_and_udp_sockets_stay_inside_the_worker(servers, net_page):
    """socketpair() holds two slots that reach only each other: pairs run the slots out with
    EMFILE and closed ones come back; a closed end is EOF to the other and EPIPE to write to.
    A UDP socket can be made but neither connects nor sends: the canary sees nothing."""
    canary = servers()
    page = net_page(f"127.0.0.1:{canary.port}")
    code = f"""
import errno, socket
pairs = []
try:
    while True:
        pairs.append(socket.socketpair())
except OSError as e:
    print(len(pairs), e.errno == errno.EMFILE)
a, b = pairs.pop()
a.sendall(b'ping')
print(b.recv(10))
a.close()
print(b.recv(10))
try:
    b.send(b'x')
except OSError as e:
    print('send', e.errno == errno.EPIPE)
b.close()
for x, y in pairs:
    x.close(); y.close()
print(len([socket.socketpair() for _ in range(31)]))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for call in (lambda: u.connect(('127.0.0.1', {canary.port})), lambda: u.sendto(b'x', ('127.0.0.1', {canary.port}))):
    try:
        call()
    except OSError as e:
        print('udp', e.errno == errno.ENETUNREACH, e.strerror)
"""
    result = page.python(code)
    assert result["exitCode"] == 0, result
    assert result["stdout"].splitlines() == [
        "31 True", "b'ping'", "b''", "send True", "31",
        "udp True no UDP in the sandbox: only TCP is available", "udp True no UDP in the sandbox: only TCP is available"]
    assert canary.seen == []
