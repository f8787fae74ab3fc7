"""Guest networking under the real CLI: `boxer run -p/-P` serves unmodified web servers
(http.server, wsgiref, Flask's app.run()) to real HTTP clients on 127.0.0.1, and a run
without networking options stays exactly as it was (no sockets, the pre-initialised path)."""
from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

FLASK_APP = """\
from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def index():
    return "hello from flask"


@app.route("/echo", methods=["POST"])
def echo():
    return {"got": request.get_json()["n"] * 2}


if __name__ == "__main__":
    app.run()
"""
FLASK_DOCKERFILE = """\
FROM python:3.12-slim
WORKDIR /app
RUN pip install flask
COPY app.py .
EXPOSE 5000
CMD ["python", "app.py"]
"""
WSGI_APP = """\
from wsgiref.simple_server import make_server

def app(environ, start_response):
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi saw " + environ["REQUEST_METHOD"].encode() + b" " + body[::-1]]

make_server("0.0.0.0", 8000, app).serve_forever()
"""


def _env(cache_dir) -> dict[str, str]:
    return {**os.environ, "BOXER_CACHE_DIR": str(cache_dir)}


@contextmanager
def serving(cache_dir, *args: str, interrupted: int = 130):
    """`boxer run ARGS` in the background; yields (process, {guest port: host port}) once the
    host ports are bound (boxer prints the mapping of -P and of -p with host port 0). Ends the
    run with Ctrl-C (SIGINT) and checks its exit code: 130, or what the server itself exits
    with when it catches KeyboardInterrupt, as it would natively (http.server, werkzeug: 0)."""
    proc = subprocess.Popen([sys.executable, "-m", "boxer_py", "run", *args], env=_env(cache_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        ready, _, _ = select.select([proc.stderr], [], [], 300)
        line = proc.stderr.readline().decode() if ready else ""
        found = re.fullmatch(r"boxer: (\d+)/tcp -> 127\.0\.0\.1:(\d+)\n", line)
        assert found, f"no port mapping printed: {line!r}"
        yield proc, {int(found[1]): int(found[2])}, line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        proc.stderr_text = err.decode()  # for a test that checks it after the run
        assert proc.returncode == interrupted, err.decode()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="session")
def flask_image(tmp_path_factory):
    import boxer_py

    ctx = tmp_path_factory.mktemp("flask-ctx")
    (ctx / "Dockerfile").write_text(FLASK_DOCKERFILE)
    (ctx / "app.py").write_text(FLASK_APP)
    out = tmp_path_factory.mktemp("flask") / "flask.wasm"
    boxer_py.build(ctx, out)
    return out


def test_the_flask_example_serves_on_all_addresses(flask_example_image, cache_dir):
    """examples/flask-app as its image's CMD: app.run(host="0.0.0.0") makes a UDP socket to find
    the host's address (werkzeug's log_startup); it is made, its connect fails, Flask goes on."""
    # Ctrl-C is a KeyboardInterrupt in the 3.13 guest too: werkzeug catches it and exits 0.
    with serving(cache_dir, "-P", str(flask_example_image), interrupted=0) as (proc, ports, _):
        base = f"http://127.0.0.1:{ports[5000]}"
        assert urllib.request.urlopen(base + "/", timeout=120).read() == b"hello from flask\n"
        put = urllib.request.Request(base + "/notes/3", data=b'{"text": "hi"}', method="PUT",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(put, timeout=60) as response:
            assert (response.status, response.headers["X-Notes"]) == (201, "1")
        with urllib.request.urlopen(base + "/latest", timeout=60) as response:  # a redirect, followed
            assert (response.url, json.loads(response.read())["text"]) == (base + "/notes/3", "hi")
    assert "Running on all addresses (0.0.0.0)" in proc.stderr_text


def test_python_m_http_server_serves_the_image_files(hello_image, cache_dir):
    with serving(cache_dir, "-p", "127.0.0.1:0:8000", str(hello_image), "python", "-m", "http.server", "8000",
                 interrupted=0) as (_, ports, _):
        base = f"http://127.0.0.1:{ports[8000]}"
        listing = urllib.request.urlopen(base + "/", timeout=120).read().decode()
        assert '<a href="main.py">main.py</a>' in listing
        served = urllib.request.urlopen(base + "/main.py", timeout=60).read().decode()
        assert "GREETING" in served  # the image's own /app/main.py
        conn = http.client.HTTPConnection("127.0.0.1", ports[8000], timeout=60)
        conn.request("GET", "/nope")
        assert conn.getresponse().status == 404


def test_wsgiref_app_answers_posts(hello_image, cache_dir):
    with serving(cache_dir, "-p", "127.0.0.1:0:8000", str(hello_image), "python", "-c", WSGI_APP) as (_, ports, _):
        for word in (b"abc", b"hello world"):
            conn = http.client.HTTPConnection("127.0.0.1", ports[8000], timeout=120)
            conn.request("POST", "/", body=word)
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"wsgi saw POST " + word[::-1])


def test_flask_app_run_serves_concurrent_clients_one_at_a_time(flask_image, cache_dir):
    with serving(cache_dir, "-P", str(flask_image), interrupted=0) as (_, ports, _):
        base = f"http://127.0.0.1:{ports[5000]}"
        assert urllib.request.urlopen(base + "/", timeout=120).read() == b"hello from flask"
        answers: dict[int, object] = {}

        def client(n: int) -> None:
            request = urllib.request.Request(base + "/echo", data=json.dumps({"n": n}).encode(),
                                             headers={"Content-Type": "application/json"})
            answers[n] = json.loads(urllib.request.urlopen(request, timeout=120).read())

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == {n: {"got": 2 * n} for n in range(6)}


def test_a_busy_host_port_fails_the_run_at_once(hello_image, boxer):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = boxer("run", "-p", f"{port}:8000", str(hello_image), "python", "-c", "print('started')")
    assert r.returncode == 125
    assert r.stderr == f"boxer: -p 127.0.0.1:{port}:8000: cannot listen on 127.0.0.1:{port} (Address already in use)\n"
    assert "started" not in r.stdout


@pytest.mark.parametrize("spec", ["abc", "80:99999", "1.2.3:80:80", "80:80:80:80", "80/udp"])
def test_bad_publish_options_are_one_line(hello_image, boxer, spec):
    r = boxer("run", "-p", spec, str(hello_image), "python", "-c", "pass")
    assert r.returncode == 125
    assert r.stderr.startswith(f"boxer: -p {spec}") and r.stderr.count("\n") == 1


def test_binding_an_unpublished_port_is_a_permission_error_naming_p(hello_image, boxer):
    code = ("import socket\ns = socket.socket()\n"
            "try:\n    s.bind(('0.0.0.0', 9999))\nexcept PermissionError as e:\n    print('refused:', e)\n"
            "s2 = socket.socket()\ns2.bind(('', 8000))\ns2.listen()\nprint('bound', s2.getsockname())\n")
    r = boxer("run", "-p", "127.0.0.1:0:8000", "--json", str(hello_image), "python", "-c", code)
    result = json.loads(r.stdout)
    assert result["exit_code"] == 0, result["stderr"]
    assert "refused: [Errno 2] port 9999 is not published: run with -p HOSTPORT:9999" in result["stdout"]
    assert "bound ('0.0.0.0', 8000)" in result["stdout"]
    assert {"direction": "in", "port": 9999, "allowed": False, "reason": "not published"} in \
        result["network"]["connections"]


def test_refusals_are_one_line_each_on_the_hosts_stderr_without_json(hello_image, boxer):
    code = ("import socket\n"
            "for target in [('example.com', 443)] + [('10.0.0.%d' % i, 80) for i in range(30)]:\n"
            "    try:\n        socket.create_connection(target)\n    except OSError:\n        pass\n"
            "try:\n    socket.socket().bind(('', 9999))\nexcept OSError:\n    pass\nprint('guest done')\n")
    r = boxer("run", "--allow-net", "127.0.0.1:1", str(hello_image), "python", "-c", code)
    assert (r.returncode, r.stdout) == (0, "guest done\n"), r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == ("boxer: refused the guest's connection to example.com:443: not in --allow-net "
                        "(add --allow-net example.com:443)")
    assert lines[1] == "boxer: refused the guest's connection to 10.0.0.0:80: not in --allow-net " \
                       "(add --allow-net 10.0.0.0:80)"
    # 20 lines, then one saying the rest (the 10.0.0.x after the 19th, and the bind) are not shown
    assert len(lines) == 21 and lines[20] == "boxer: further refused connections are not shown (--json lists them)"
    quiet = boxer("run", "--json", "-p", "127.0.0.1:0:8000", str(hello_image), "python", "-c",
                  "import socket\ntry:\n    socket.socket().bind(('', 9999))\nexcept OSError as e:\n    print(e)\n")
    assert "refused" not in quiet.stderr and json.loads(quiet.stdout)["exit_code"] == 0
    shown = boxer("run", "-p", "127.0.0.1:0:8000", str(hello_image), "python", "-c",
                  "import socket\ntry:\n    socket.socket().bind(('', 9999))\nexcept OSError as e:\n    pass\n")
    assert "boxer: refused the guest's bind to port 9999: not published (add -p HOSTPORT:9999)\n" in shown.stderr


def test_without_network_options_a_run_has_no_sockets_and_keeps_its_snapshot(hello_image, boxer):
    code = "import socket\ntry:\n    socket.socket()\nexcept OSError as e:\n    print('no socket:', e.errno)\n"
    plain = json.loads(boxer("run", "--json", str(hello_image), "python", "-c", code).stdout)
    assert plain["stdout"] == "no socket: 58\n" and plain["preinitialised"] is True
    assert "network" not in plain
    networked = json.loads(boxer("run", "--json", "-p", "127.0.0.1:0:8000", str(hello_image), "python", "-c",
                                 "import socket; print(socket.socket().fileno() > 2)").stdout)
    assert networked["stdout"] == "True\n" and networked["preinitialised"] is False


@pytest.mark.parametrize("blocked_in", ["accept", "recv", "poll"])
def test_timeout_ends_a_guest_blocked_on_a_socket(hello_image, cache_dir, blocked_in):
    code = {"accept": "s.accept()",
            "recv": "c, _ = s.accept()\nprint('accepted', flush=True)\nc.recv(100)",
            "poll": "import select\np = select.poll()\np.register(s, select.POLLIN)\np.poll()"}[blocked_in]
    proc = subprocess.Popen([sys.executable, "-m", "boxer_py", "run", "--json", "--timeout", "3", "-p",
                             "127.0.0.1:0:8000", str(hello_image), "python", "-c",
                             "import socket\ns = socket.socket()\ns.bind(('', 8000))\ns.listen()\n" + code],
                            env=_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    port = int(re.search(rb"127\.0\.0\.1:(\d+)", proc.stderr.readline())[1])
    if blocked_in == "recv":
        with socket.create_connection(("127.0.0.1", port)):  # connects, never sends
            out, _ = proc.communicate(timeout=120)
    else:
        out, _ = proc.communicate(timeout=120)
    result = json.loads(out)
    assert (proc.returncode, result["exit_code"], result["timed_out"]) == (124, 124, True)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 for the name localhost, its certificate signed by a CA of
    this test's own (openssl), which the host does not trust unless given --allow-net-ca."""
    import ssl
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    d = tmp_path_factory.mktemp("tls")
    (d / "ext").write_text("subjectAltName=DNS:localhost\n")
    (d / "www").mkdir()
    (d / "www" / "page.txt").write_text("secret page over TLS")
    for args in (["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                  "-subj", "/CN=boxer-test-ca"],
                 ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj",
                  "/CN=localhost"],
                 ["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                  "srv.pem", "-days", "2", "-extfile", "ext"]):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=120)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "srv.pem", d / "srv.key")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(d / "www"), **kwargs)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], d / "ca.pem"
    httpd.shutdown()
    httpd.server_close()


HTTPS_GET = """\
import ssl, sys, urllib.request
for context in (None, ssl._create_unverified_context()):
    try:
        print(urllib.request.urlopen(sys.argv[1], context=context, timeout=60).read().decode())
    except Exception as e:
        print(type(e).__name__, e)
"""


def test_urllib_https_to_an_allowed_host_with_tls_verified_on_the_host(hello_image, boxer, tls_server):
    port, ca = tls_server
    url = f"https://localhost:{port}/page.txt"
    r = boxer("run", "--json", "--allow-net", f"localhost:{port}", "--allow-net-ca", str(ca), str(hello_image),
              "python", "-c", HTTPS_GET, url)
    result = json.loads(r.stdout)
    assert result["stdout"] == "secret page over TLS\nsecret page over TLS\n", result["stderr"]
    assert {"direction": "out", "host": "localhost", "port": port, "address": "127.0.0.1", "allowed": True} in \
        result["network"]["connections"]
    # without the CA the host refuses the server, and the guest cannot turn verification off
    r = boxer("run", "--allow-net", f"localhost:{port}", str(hello_image), "python", "-c", HTTPS_GET, url)
    assert r.stdout.count("CERTIFICATE_VERIFY_FAILED") == 2, r.stdout + r.stderr
    assert "secret page" not in r.stdout


def test_allow_net_parse_errors_are_one_line(hello_image, boxer, tmp_path):
    for args, says in ((["--allow-net", "exa mple.com"], "--allow-net exa mple.com: 'exa mple.com' is not a host name"),
                       (["--allow-net", "example.com:99999"], "--allow-net example.com:99999: '99999' is not a port"),
                       (["--allow-net", "a.com", "--allow-net-ca", str(tmp_path / "none.pem")],
                        f"--allow-net-ca {tmp_path / 'none.pem'}: not a file")):
        r = boxer("run", *args, str(hello_image), "python", "-c", "pass")
        assert r.returncode == 125 and r.stderr.startswith("boxer: " + says) and r.stderr.count("\n") == 1, r.stderr


@pytest.fixture(scope="module")
def cpython313_image(tmp_path_factory):
    """The project's own CPython 3.13 for wasm32-wasip1 (no wasi-vfs), as a scratch image."""
    import lzma

    import boxer_py

    runtime = Path(__file__).resolve().parent.parent / "toolchain" / "runtimes" / "cpython-3.13"
    ctx = tmp_path_factory.mktemp("py313")
    for name in ("python3.13.wasm", "python313.zip"):
        (ctx / name).write_bytes(lzma.decompress((runtime / f"{name}.xz").read_bytes()))
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY python3.13.wasm /usr/local/bin/python3.13\n"
                                    "COPY python313.zip /usr/local/lib/python313.zip\nWORKDIR /app\n"
                                    'ENTRYPOINT ["/usr/local/bin/python3.13"]\n')
    out = tmp_path_factory.mktemp("py313-image") / "py313.wasm"
    boxer_py.build(ctx, out)
    return out


def test_the_slots_work_on_a_cpython_without_wasi_vfs(cpython313_image, cache_dir, tls_server, boxer):
    with serving(cache_dir, "-p", "127.0.0.1:0:8000", str(cpython313_image), "-m", "http.server", "8000") as (
            _, ports, _):
        listing = urllib.request.urlopen(f"http://127.0.0.1:{ports[8000]}/", timeout=120).read().decode()
        assert "Directory listing for /" in listing
    port, ca = tls_server
    r = boxer("run", "--allow-net", f"localhost:{port}", "--allow-net-ca", str(ca), str(cpython313_image),
              "-c", HTTPS_GET, f"https://localhost:{port}/page.txt")
    assert r.stdout == "secret page over TLS\nsecret page over TLS\n", r.stderr


# 3.12's stdlib has no ssl; 3.13's has one that the image's own ssl replaces: a networked run
# uses boxer's network modules' copy of that ssl on both.
@pytest.mark.parametrize("python", ["3.12", "3.13"])
def test_requests_https_through_host_tls(build, boxer, tls_server, python):
    image = build(f"FROM python:{python}-slim\nRUN pip install requests\n")
    port, ca = tls_server
    code = ("import requests, sys\nfor verify in (True, False):\n    try:\n"
            "        print(requests.get(sys.argv[1], timeout=60, verify=verify).text)\n"
            "    except requests.exceptions.SSLError as e:\n        print('SSLError', 'CERTIFICATE_VERIFY_FAILED' in str(e))\n")
    url = f"https://localhost:{port}/page.txt"
    r = boxer("run", "--allow-net", f"localhost:{port}", "--allow-net-ca", str(ca), str(image), "python", "-c",
              code, url)
    assert r.stdout == "secret page over TLS\nsecret page over TLS\n", r.stderr
    r = boxer("run", "--allow-net", f"localhost:{port}", str(image), "python", "-c", code, url)
    assert r.stdout == "SSLError True\nSSLError True\n", r.stderr  # verify=False changes nothing: the host verifies
    r = boxer("run", str(image), "python", "-c", code, url)  # no network: one clear error, no TLS attempted
    assert r.returncode == 1 and "this sandbox has no network to resolve names in (--allow-net HOST gives it one)" \
        in r.stderr, r.stderr


def test_build_allow_net_gives_run_its_network_and_only_then(make_context, boxer, tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "14")
            self.end_headers()
            self.wfile.write(b"fetched at RUN")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    ctx = make_context("FROM python:3.12-slim\nRUN python -c \"import urllib.request; open('/got.txt', 'w')"
                       f".write(urllib.request.urlopen('http://127.0.0.1:{port}/').read().decode())\"\n")
    try:
        refused = boxer("build", "--no-cache", "-o", str(tmp_path / "no.wasm"), str(ctx))
        allowed = boxer("build", "--no-cache", "--allow-net", f"127.0.0.1:{port}", "-o", str(tmp_path / "yes.wasm"),
                        str(ctx))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert refused.returncode != 0 and not (tmp_path / "no.wasm").exists()
    assert allowed.returncode == 0, allowed.stderr
    r = boxer("run", str(tmp_path / "yes.wasm"), "python", "-c", "print(open('/got.txt').read())")
    assert r.stdout == "fetched at RUN\n"
