"""The browser page's network, in real Chromium against real servers on 127.0.0.1: a guest's
urllib and http.client reach the hosts of `boxer serve/web --allow-net` through the browser's
fetch (JSPI suspends the guest while it waits), anything else is refused with the same
PermissionError as `boxer run --allow-net`, and the allow-list is in the page's CSP; a guest
server on a `--publish` port answers the page's fetches of port/PORT/ (its Service Worker).
"""
from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import pytest

import boxer_py
from boxer_py.browser import site
from chromium import chromium
from webnet import NetPage, Recorder, build_python_image, make_cert, page_network

REFUSED = ("import urllib.request\n"
           "try:\n"
           "    urllib.request.urlopen('http://127.0.0.1:{port}/refused', timeout=5)\n"
           "except OSError as e:\n"
           "    print(type(e).__name__, e)\n")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return build_python_image(tmp_path_factory.mktemp("webnet"))


@pytest.fixture(scope="module")
def requests_image(tmp_path_factory):
    ctx = tmp_path_factory.mktemp("requests-ctx")
    (ctx / "Dockerfile").write_text("FROM python:3.12-slim\nRUN pip install requests\n")
    out = ctx.parent / "requests.wasm"
    boxer_py.build(ctx, out, tag="webnet-requests")
    return out


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Two self-signed certificates for 127.0.0.1: Chromium is told to trust the first only."""
    base = tmp_path_factory.mktemp("certs")
    return {"trusted": (base / "trusted", make_cert(base / "trusted")), "untrusted": (base / "untrusted", make_cert(base / "untrusted"))}


@pytest.fixture(scope="module")
def browser(certs):
    with chromium(f"--ignore-certificate-errors-spki-list={certs['trusted'][1]}") as b:
        yield b


@pytest.fixture
def recorder():
    servers = []

    def make(cors: bool = True, tls: Path | None = None) -> Recorder:
        servers.append(Recorder(cors, tls))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def net_page(browser, image):
    pages = []

    def make(*rules: str, publish: tuple[int, ...] = (), on=None) -> NetPage:
        pages.append(NetPage(browser, on or image, *rules, publish=publish))
        return pages[-1]

    yield make
    for p in pages:
        p.close()


def test_urllib_and_http_client_reach_an_allowed_host(recorder, net_page):
    server = recorder()
    page = net_page(f"127.0.0.1:{server.port}")
    code = f"""
import json, urllib.request, http.client
base = 'http://127.0.0.1:{server.port}'
print(json.loads(urllib.request.urlopen(base + '/get?q=1').read()))
req = urllib.request.Request(base + '/post', data=b'name=boxer', headers={{'X-Test': 'yes'}}, method='POST')
with urllib.request.urlopen(req) as r:
    print(r.status, json.loads(r.read()))
conn = http.client.HTTPConnection('127.0.0.1', {server.port}, timeout=30)
for path in ('/keep/1', '/keep/2'):
    conn.request('PUT', path, body=b'x' * 100000)
    r = conn.getresponse()
    print(r.status, len(json.loads(r.read())['body']))
import multiprocessing  # the guest-side stand-in (a subpackage of the modules), as under boxer run
print(multiprocessing.__file__)
"""
    result = page.python(code)
    assert result["exitCode"] == 0, result
    lines = result["stdout"].splitlines()
    assert lines[0] == str({"method": "GET", "path": "/get?q=1", "body": "", "x-test": None})
    assert lines[1] == "200 " + str({"method": "POST", "path": "/post", "body": "name=boxer", "x-test": "yes"})
    assert lines[2:] == ["200 100000", "200 100000", "/.boxer/net/multiprocessing/__init__.py"]
    methods = [(m, p) for m, p, _ in server.seen if m != "OPTIONS"]
    assert methods == [("GET", "/get?q=1"), ("POST", "/post"), ("PUT", "/keep/1"), ("PUT", "/keep/2")]


def test_a_host_not_allowed_is_refused_as_boxer_run_refuses_it(boxer, image, recorder, net_page):
    allowed, other = recorder(), recorder()
    page = net_page(f"127.0.0.1:{allowed.port}")
    code = REFUSED.format(port=other.port)
    in_page = page.python(code)
    assert in_page["exitCode"] == 0, in_page
    expected = f"URLError <urlopen error [Errno 2] 127.0.0.1:{other.port} is not in --allow-net>"
    assert in_page["stdout"].strip() == expected
    native = boxer("run", "--allow-net", f"127.0.0.1:{allowed.port}", str(image), "python", "-c", code)
    assert native.stdout.strip() == expected, native.stderr
    assert other.seen == []


def test_a_page_without_allow_net_has_no_network(recorder, net_page):
    server = recorder()
    page = net_page()
    result = page.python(REFUSED.format(port=server.port).replace("except OSError", "except Exception"))
    assert result["exitCode"] == 0, result  # the guest's call failed (today's page: no socket functions at all)
    assert result["stdout"].strip(), result
    assert server.seen == []


def test_what_fetch_cannot_carry_ends_in_one_clear_line(recorder, net_page):
    """A server without CORS for the page, a redirect and a protocol that is not HTTP."""
    no_cors, server = recorder(cors=False), recorder()
    page = net_page(f"127.0.0.1:{no_cors.port}", f"127.0.0.1:{server.port}")
    code = f"""
import socket, urllib.request, urllib.error
for url in ('http://127.0.0.1:{no_cors.port}/no-cors', 'http://127.0.0.1:{server.port}/redirect'):
    try:
        urllib.request.urlopen(url, timeout=30)
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode().strip())
s = socket.create_connection(('127.0.0.1', {server.port}))
s.sendall(b'EHLO boxer\\r\\n')
try:
    s.recv(100)
except OSError as e:
    print(type(e).__name__)
"""
    result = page.python(code)
    assert result["exitCode"] == 0, result
    lines = result["stdout"].splitlines()
    assert lines[0].startswith(f"502 boxer: the browser's fetch of http://127.0.0.1:{no_cors.port}/no-cors failed")
    assert "allow this page's origin (CORS)" in lines[0]
    assert lines[1] == (f"502 boxer: http://127.0.0.1:{server.port}/redirect answered with a redirect, which a page "
                        "may not read: ask for the final URL")
    assert lines[2] == "ConnectionResetError"
    assert f"boxer: 127.0.0.1:{server.port}: only HTTP/1.1 requests" in result["stderr"]
    assert [p for _, p, _ in server.seen] == ["/redirect"]  # the redirect was not followed


def test_the_allow_list_is_in_the_pages_csp_and_net_json(tmp_path, image):
    network = page_network("127.0.0.1:8080", "api.example.com:*")
    out = site.write_site(image, tmp_path / "site", network=network)
    html = (out / "index.html").read_text()
    csp = htmllib.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src"))
    assert connect == ("connect-src 'self' http://127.0.0.1:8080 https://127.0.0.1:8080 "
                       "http://api.example.com:* https://api.example.com:*")
    assert 'data-allow-net="127.0.0.1:8080 api.example.com:*"' in html
    modules = json.loads((out / "net.json").read_text())["modules"]
    assert {"_boxer_net.py", "socket.py", "ssl.py", "socketserver.py", "multiprocessing/__init__.py"} <= set(modules)
    plain = site.write_site(image, tmp_path / "plain")
    assert not (plain / "net.json").exists()
    assert "connect-src 'self';" in htmllib.unescape((plain / "index.html").read_text())


def test_boxer_web_allow_net_checks_its_rules(boxer, image, tmp_path):
    done = boxer("web", str(image), "-o", str(tmp_path / "ok"), "--allow-net", "Example.COM:443")
    assert done.returncode == 0, done.stderr
    assert 'data-allow-net="example.com:443"' in (tmp_path / "ok" / "index.html").read_text()
    bad = boxer("web", str(image), "-o", str(tmp_path / "bad"), "--allow-net", "exa mple:80")
    assert bad.returncode == 125
    assert bad.stderr.strip().splitlines()[-1].startswith("boxer: --allow-net exa mple:80:")
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_https_goes_through_fetch_and_the_browser_checks_the_certificate(recorder, net_page, certs):
    """The guest's ssl asks for TLS as under boxer run; the browser does it and verifies the
    certificate, which the guest cannot turn off."""
    good, bad = recorder(tls=certs["trusted"][0]), recorder(tls=certs["untrusted"][0])
    page = net_page(f"127.0.0.1:{good.port}", f"127.0.0.1:{bad.port}")
    code = f"""
import json, ssl, urllib.request, urllib.error
with urllib.request.urlopen('https://127.0.0.1:{good.port}/secure?a=1') as r:
    print(r.status, json.loads(r.read())['path'])
try:
    urllib.request.urlopen('https://127.0.0.1:{bad.port}/untrusted', context=ssl._create_unverified_context())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode().strip())
"""
    result = page.python(code)
    assert result["exitCode"] == 0, result
    lines = result["stdout"].splitlines()
    assert lines[0] == "200 /secure?a=1"
    assert lines[1].startswith(f"502 boxer: the browser's fetch of https://127.0.0.1:{bad.port}/untrusted failed")
    assert [p for m, p, _ in good.seen] == ["/secure?a=1"]
    assert bad.seen == []  # the handshake failed: no request reached it


SERVER = r"""
import http.server, json, os
os.makedirs('/app/site', exist_ok=True)
open('/app/site/hello.txt', 'w').write('served from the tab\n')
os.chdir('/app/site')
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        out = json.dumps({'path': self.path, 'body': body.decode(), 'type': self.headers['Content-Type']}).encode()
        self.send_response(201)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)
server = http.server.ThreadingHTTPServer(('', 8000), Handler)
print('listening on', server.server_address[1], flush=True)
server.serve_forever()
"""


def test_a_guest_http_server_on_a_published_port_answers_the_pages_fetch(net_page):
    page = net_page(publish=(8000,))
    assert page.fetch("port/8000/hello.txt")["status"] == 503  # nothing runs yet
    page.start(SERVER)
    page.wait_output("listening on 8000")
    got = page.fetch("port/8000/hello.txt")
    assert (got["status"], got["text"]) == (200, "served from the tab\n")
    assert got["type"].startswith("text/plain")
    posted = page.fetch("port/8000/form?a=1", "POST", "x=1&y=2")
    assert posted["status"] == 201
    assert json.loads(posted["text"]) == {"path": "/form?a=1", "body": "x=1&y=2", "type": "text/plain;charset=UTF-8"}
    assert page.fetch("port/8000/missing")["status"] == 404
    stderr = page.page.evaluate("() => window.boxer.runs.at(-1).stderr")
    assert '"GET /hello.txt HTTP/1.1" 200' in stderr and '"POST /form?a=1 HTTP/1.1" 201' in stderr
    page.page.evaluate("() => window.boxer.app.stop()")


def test_python_m_http_server_serves_in_the_tab(net_page):
    page = net_page(publish=(8000,))
    page.start("import runpy, sys; sys.argv = ['http.server', '8000']; runpy.run_module('http.server', run_name='__main__')")
    page.wait_output("Serving HTTP on")
    got = page.fetch("port/8000/")
    assert got["status"] == 200 and "Directory listing for /" in got["text"]
    page.page.evaluate("() => window.boxer.app.stop()")


def test_requests_works_unchanged_over_http_and_https(recorder, net_page, requests_image, certs):
    plain, secure, untrusted = recorder(), recorder(tls=certs["trusted"][0]), recorder(tls=certs["untrusted"][0])
    page = net_page(f"127.0.0.1:{plain.port}", f"127.0.0.1:{secure.port}", f"127.0.0.1:{untrusted.port}",
                    on=requests_image)
    code = f"""
import requests
print(requests.get('http://127.0.0.1:{plain.port}/r', params={{'q': 'a b'}}, timeout=60).json()['path'])
print(requests.post('https://127.0.0.1:{secure.port}/j', json={{'k': 1}}, timeout=60).json()['body'])
print(requests.get('https://127.0.0.1:{untrusted.port}/u', verify=False, timeout=60).status_code)
try:
    requests.get('http://example.invalid/x', timeout=10)
except requests.exceptions.ConnectionError as e:
    print('not in --allow-net' in str(e))
"""
    result = page.python(code)
    assert result["exitCode"] == 0, result
    assert result["stdout"].splitlines() == ["/r?q=a+b", '{"k": 1}', "502", "True"]
    assert [p for m, p, _ in secure.seen if m == "POST"] == ["/j"]
    assert untrusted.seen == []


def test_stop_ends_a_guest_blocked_in_accept(net_page):
    """A guest suspended in accept (JSPI) leaves the worker idle; Stop ends it, and the next run works."""
    page = net_page(publish=(8000,))
    page.start("import socket\ns = socket.socket()\ns.bind(('', 8000))\ns.listen()\nprint('accepting', flush=True)\n"
               "s.accept()\nprint('accepted')")
    page.wait_output("accepting")
    page.page.evaluate("() => window.boxer.app.stop()")
    blocked = page.page.evaluate("() => { const r = window.boxer.runs.at(-1); return [r.done, r.exitCode, r.stdout]; }")
    assert blocked == [True, 137, "accepting\n"]
    again = page.python("print('the next run starts')", timeout=60)
    assert (again["exitCode"], again["stdout"]) == (0, "the next run starts\n")


def _fetch_all(page: NetPage, *requests: tuple[str, str, str | None, dict[str, str]]) -> list[dict]:
    """The page's fetches, all started at once: [{status, url, redirected, headers, text}]."""
    return page.page.evaluate(
        """async (requests) => Promise.all(requests.map(async ([path, method, body, headers]) => {
             const r = await fetch(path, {method, body: body ?? undefined, headers});
             return {status: r.status, url: r.url, redirected: r.redirected,
                     headers: Object.fromEntries(r.headers), text: await r.text()}; }))""",
        [list(r) for r in requests])


def test_the_flask_example_serves_in_the_tab(browser, flask_example_image):
    """examples/flask-app, unmodified (`app.run(host="0.0.0.0")`, its image's CMD): the page's
    fetches through the Service Worker reach Flask's routes, with their status, headers and body;
    a redirect to one of the app's own paths stays under port/5000/."""
    page = NetPage(browser, flask_example_image, publish=(5000,))
    try:
        page.page.evaluate("() => { window.boxer.app.run('', new Uint8Array(0), 0, ''); }")
        page.wait_output("Running on")
        index, = _fetch_all(page, ("port/5000/", "GET", None, {}))
        assert (index["status"], index["text"]) == (200, "hello from flask\n")
        assert index["headers"]["content-type"] == "text/html; charset=utf-8"
        assert index["headers"]["server"].startswith("Werkzeug/")
        put, = _fetch_all(page, ("port/5000/notes/7", "PUT", '{"text": "from the tab"}', {"Content-Type": "application/json"}))
        assert (put["status"], json.loads(put["text"])) == (201, {"number": 7, "text": "from the tab"})
        assert (put["headers"]["x-notes"], put["headers"]["content-type"]) == ("1", "application/json")
        got, missing, latest = _fetch_all(page, ("port/5000/notes/7?upper=1", "GET", None, {}),
                                          ("port/5000/notes/8", "GET", None, {}), ("port/5000/latest", "GET", None, {}))
        assert (got["status"], json.loads(got["text"])) == (200, {"number": 7, "text": "from the tab", "upper": True})
        assert (missing["status"], json.loads(missing["text"])) == (404, {"error": "no note 8"})
        assert latest["redirected"] and latest["url"] == page.server.url + "port/5000/notes/7"
        assert (latest["status"], json.loads(latest["text"])["text"]) == (200, "from the tab")
        run = page.page.evaluate("() => window.boxer.runs.at(-1)")
        assert not run["done"] and "Running on all addresses (0.0.0.0)" in run["stderr"]
        logged = re.sub(r"\x1b\[[0-9;]*m", "", run["stderr"])  # werkzeug colours its log lines
        for line in ('"GET / HTTP/1.1" 200', '"PUT /notes/7 HTTP/1.1" 201', '"GET /latest HTTP/1.1" 302',
                     '"GET /notes/8 HTTP/1.1" 404', '"GET /notes/7 HTTP/1.1" 200'):
            assert line in logged
        page.page.evaluate("() => window.boxer.app.stop()")
    finally:
        page.close()


ASYNCIO_SERVER = r"""
import asyncio
released = asyncio.Event()

async def handle(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    path = head.split(b" ")[1].decode()
    if path == "/wait":
        await released.wait()  # answered only after /release came in: requests overlap
    elif path == "/release":
        released.set()
    body = f"asyncio answered {path}\n".encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Server: asyncio\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    writer.close()
    await writer.wait_closed()

async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", 8000)
    print("listening on", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def test_an_asyncio_server_serves_overlapping_requests_in_the_tab(net_page):
    """asyncio's event loop starts in the page (its self-pipe is a socketpair in the worker) and
    serves requests that overlap: /wait is answered only once /release has come in."""
    page = net_page(publish=(8000,))
    page.start(ASYNCIO_SERVER)
    page.wait_output("listening on 8000")
    waited, released = page.page.evaluate(
        """async () => {
             const wait = fetch("port/8000/wait").then(async (r) => [r.status, r.headers.get("x-server"), await r.text()]);
             await new Promise((resolve) => setTimeout(resolve, 500));
             const release = await fetch("port/8000/release").then(async (r) => [r.status, await r.text()]);
             return [await wait, release]; }""")
    assert waited == [200, "asyncio", "asyncio answered /wait\n"]
    assert released == [200, "asyncio answered /release\n"]
    page.page.evaluate("() => window.boxer.app.stop()")
    assert page.page.evaluate("() => window.boxer.runs.at(-1).exitCode") == 137


def test_uvicorn_and_starlette_serve_in_the_tab(browser, uvicorn_image):
    """The uvicorn image's own CMD (`python -m uvicorn app:app`) in the page: asyncio's loop with
    uvicorn's h11 protocol answers the page's fetches, a JSON POST included."""
    page = NetPage(browser, uvicorn_image, publish=(8000,))
    try:
        page.page.evaluate("() => { window.boxer.app.run('', new Uint8Array(0), 0, ''); }")
        page.wait_output("Uvicorn running on")
        index, echo, missing = _fetch_all(page, ("port/8000/", "GET", None, {}),
                                          ("port/8000/echo", "POST", '{"n": 21}', {"Content-Type": "application/json"}),
                                          ("port/8000/nope", "GET", None, {}))
        assert (index["status"], index["text"], index["headers"]["server"]) == (200, "hello from starlette", "uvicorn")
        assert (echo["status"], json.loads(echo["text"])["got"], echo["headers"]["content-type"]) == (200, 42, "application/json")
        assert (missing["status"], missing["text"]) == (404, "Not Found")
        page.page.evaluate("() => window.boxer.app.stop()")
    finally:
        page.close()


def test_a_console_script_cmd_serves_in_the_tab(browser, uvicorn_script_image):
    """`CMD ["uvicorn", "app:app", ...]`, pip's console script whose `#!` line names the image's
    python, runs in the page as `boxer run` runs it: that python with the script, not a refusal
    as "not a WebAssembly program"."""
    page = NetPage(browser, uvicorn_script_image, publish=(8000,))
    try:
        page.page.evaluate("() => { window.boxer.app.run('', new Uint8Array(0), 0, ''); }")
        page.wait_output("Uvicorn running on")
        (index,) = _fetch_all(page, ("port/8000/", "GET", None, {}))
        assert (index["status"], index["text"], index["headers"]["server"]) == (200, "hello from starlette", "uvicorn")
        shown = page.page.inner_text(".xterm-rows").replace("\n", "").replace("\xa0", " ")
        assert re.search(r"\$ /usr/local/bin/python[0-9.]* /\S*bin/uvicorn app:app", shown)  # what it ran
        page.page.evaluate("() => window.boxer.app.stop()")
    finally:
        page.close()
