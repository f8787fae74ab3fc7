"""`make bench` rows for guest networking, native and boxed measured in the same run:
- the same http.server and Flask app served natively and under `boxer run -p` on each python
  base (RUNTIMES: the 3.13 built here and the VMware 3.12), each hit by one sequential client:
  requests per second, the median request's time and the server's CPU time per request (its
  process's utime+stime from /proc), the median of ROUNDS rounds;
- connect+fetch latency to an allowed host (a local server on 127.0.0.1, allowed by IP):
  the median of FETCHES urllib fetches timed inside the same code run natively and under
  `boxer run --allow-net`."""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUESTS = 200
ROUNDS = 3
FETCHES = 50
FETCH_CODE = """\
import statistics, sys, time, urllib.request
url, times = sys.argv[1], []
for _ in range(int(sys.argv[2]) + 5):
    start = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        response.read()
    times.append(time.perf_counter() - start)
print(statistics.median(times[5:]))
"""
FLASK_APP = """\
from flask import Flask
app = Flask(__name__)

@app.route("/")
def index():
    return "hello from flask"

app.run(port=int(__import__("sys").argv[1]))
"""
FLASK_DOCKERFILE = "FROM python:{version}-slim\nWORKDIR /app\nRUN pip install flask\nCOPY app.py .\nEXPOSE 5000\n"
SERVED_DOCKERFILE = "FROM python:{version}-slim\nWORKDIR /app\nCOPY main.py .\n"
RUNTIMES = ("3.13", "3.12")


def _cpu(pid: int) -> float:
    """Seconds of CPU the process and its waited-for children used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(argv: list[str], port: int, env: dict[str, str], path: str) -> tuple[float, float, float]:
    """Start a server, wait for its first answer (imports and compiles: untimed), then time
    REQUESTS sequential GETs; (seconds per request, median request, CPU seconds per request)."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                _get(port, path)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]}: the server did not answer") from None
                time.sleep(0.2)
        cpu, start, each = _cpu(proc.pid), time.perf_counter(), []
        for _ in range(REQUESTS):
            one = time.perf_counter()
            _get(port, path)
            each.append(time.perf_counter() - one)
        return ((time.perf_counter() - start) / REQUESTS, statistics.median(each),
                (_cpu(proc.pid) - cpu) / REQUESTS)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _get(port: int, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status}")


def _images(workdir: Path, version: str) -> tuple[Path, Path]:
    """(http.server image, Flask image) on python:VERSION."""
    import boxer_py

    out = []
    for name, dockerfile, app, file in (("served", SERVED_DOCKERFILE, (REPO / "examples/hello-python/main.py").read_text(),
                                         "main.py"), ("flask", FLASK_DOCKERFILE, FLASK_APP, "app.py")):
        ctx = workdir / f"{name}-{version}-ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(dockerfile.format(version=version))
        (ctx / file).write_text(app)
        out.append(workdir / f"{name}-{version}.wasm")
        boxer_py.build(ctx, out[-1])
    return out[0], out[1]


def rows(image: Path, workdir: Path) -> list[tuple[str, float, str]]:
    env = {**os.environ, "BOXER_SERVER": "0"}
    boxer = [sys.executable, "-m", "boxer_py", "run"]
    images = {version: _images(workdir, version) for version in RUNTIMES}
    exported = Path(tempfile.mkdtemp(dir=workdir))
    subprocess.run([*boxer[:-1], "export", str(images["3.12"][1]), str(exported / "out")], check=True, env=env,
                   capture_output=True, timeout=600)
    site = exported / "out" / "rootfs" / "lib" / "python3.12" / "site-packages"  # flask is pure Python
    cases = []
    port = _free_port()
    cases.append(("http.server", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                  "--directory", str(REPO / "examples" / "hello-python")], port, env, "/main.py"))
    for version, (served, _) in images.items():
        port = _free_port()
        cases.append((f"http.server {version}", [*boxer, "-p", f"{port}:8000", str(served), "python", "-m",
                                                 "http.server", "8000"], port, env, "/main.py"))
    port = _free_port()
    cases.append(("Flask", [sys.executable, "-c", FLASK_APP, str(port)], port,
                  {**env, "PYTHONPATH": str(site)}, "/"))
    for version, (_, flask) in images.items():
        port = _free_port()
        cases.append((f"Flask {version}", [*boxer, "-p", f"{port}:5000", str(flask), "python", "app.py", "5000"],
                      port, env, "/"))
    measured: list[list[tuple[float, float, float]]] = [[] for _ in cases]
    for _ in range(ROUNDS):  # rounds interleave the cases, so a busy moment hits all of them
        for i, (_name, argv, port, case_env, path) in enumerate(cases):
            measured[i].append(_serve(argv, port, case_env, path))
    out: list[tuple[str, float, str]] = []
    native: dict[str, tuple[float, float]] = {}
    for (name, argv, *_), samples in zip(cases, measured, strict=True):
        per, median, cpu = (statistics.median(s[k] for s in samples) for k in range(3))
        boxed = argv[:len(boxer)] == boxer
        label = f"net: {name} {'boxer run -p' if boxed else 'native'}"
        note = f"{1 / per:,.0f} req/s, CPU {cpu * 1000:.2f} ms/request"
        if boxed:
            n_median, n_cpu = native[name.split()[0]]
            note += f" ({cpu / n_cpu:.1f}x native CPU, {median / n_median:.1f}x native time)"
        else:
            native[name] = (median, cpu)
        out.append((label, median, note))
    shutil.rmtree(exported, ignore_errors=True)
    return out + _fetch_rows(image, env)


def _fetch_rows(image: Path, env: dict[str, str]) -> list[tuple[str, float, str]]:
    """Connect+fetch latency to 127.0.0.1, allowed by IP, natively and under --allow-net."""
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"fetched"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/"
    try:
        native = _median_fetch([sys.executable, "-c", FETCH_CODE, url, str(FETCHES)], env)
        boxed = _median_fetch([sys.executable, "-m", "boxer_py", "run", "--allow-net", f"127.0.0.1:{port}",
                               str(image), "python", "-c", FETCH_CODE, url, str(FETCHES)], env)
    finally:
        server.shutdown()
        server.server_close()
    return [("net: connect+fetch 127.0.0.1 native", native, f"median of {FETCHES} urllib fetches"),
            ("net: connect+fetch 127.0.0.1 boxer run --allow-net", boxed,
             f"{boxed / native:.1f}x native (median of {FETCHES})")]


def _median_fetch(argv: list[str], env: dict[str, str]) -> float:
    """The median of ROUNDS runs' median fetch (seconds), as the fetching code prints it."""
    medians = []
    for _ in range(ROUNDS):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=True)
        medians.append(float(done.stdout.strip()))
    return statistics.median(medians)
