"""`make bench` rows for guest networking: the same http.server and Flask app served natively
and under `boxer run -p`, each hit by one sequential client in the same run: requests per
second and the server's CPU time per request (its process's utime+stime from /proc)."""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUESTS = 200
FLASK_APP = """\
from flask import Flask
app = Flask(__name__)

@app.route("/")
def index():
    return "hello from flask"

app.run(port=int(__import__("sys").argv[1]))
"""
FLASK_DOCKERFILE = "FROM python:3.12-slim\nWORKDIR /app\nRUN pip install flask\nCOPY app.py .\nEXPOSE 5000\n"


def _cpu(pid: int) -> float:
    """Seconds of CPU the process and its waited-for children used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(argv: list[str], port: int, env: dict[str, str], path: str) -> tuple[float, float]:
    """Start a server, wait for its first answer (imports and compiles: untimed), then time
    REQUESTS sequential GETs; (seconds per request, CPU seconds per request)."""
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
        cpu, start = _cpu(proc.pid), time.perf_counter()
        for _ in range(REQUESTS):
            _get(port, path)
        return (time.perf_counter() - start) / REQUESTS, (_cpu(proc.pid) - cpu) / REQUESTS
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


def rows(image: Path, workdir: Path) -> list[tuple[str, float, str]]:
    import boxer_py

    env = {**os.environ, "BOXER_SERVER": "0"}
    boxer = [sys.executable, "-m", "boxer_py", "run"]
    ctx = workdir / "flask-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(FLASK_DOCKERFILE)
    (ctx / "app.py").write_text(FLASK_APP)
    flask = workdir / "flask.wasm"
    boxer_py.build(ctx, flask)
    exported = Path(tempfile.mkdtemp(dir=workdir))
    subprocess.run([*boxer[:-1], "export", str(flask), str(exported / "out")], check=True, env=env,
                   capture_output=True, timeout=600)
    site = exported / "out" / "rootfs" / "lib" / "python3.12" / "site-packages"  # flask is pure Python
    cases = []
    port = _free_port()
    cases.append(("http.server", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                  "--directory", str(REPO / "examples" / "hello-python")], port, env, "/main.py"))
    port = _free_port()
    cases.append(("http.server", [*boxer, "-p", f"{port}:8000", str(image), "python", "-m", "http.server", "8000"],
                  port, env, "/main.py"))
    port = _free_port()
    cases.append(("Flask", [sys.executable, "-c", FLASK_APP, str(port)], port,
                  {**env, "PYTHONPATH": str(site)}, "/"))
    port = _free_port()
    cases.append(("Flask", [*boxer, "-p", f"{port}:5000", str(flask), "python", "app.py", "5000"], port, env, "/"))
    out: list[tuple[str, float, str]] = []
    native: dict[str, tuple[float, float]] = {}
    for name, argv, port, case_env, path in cases:
        per, cpu = _serve(argv, port, case_env, path)
        boxed = argv[:len(boxer)] == boxer
        label = f"net: {name} {'boxer run -p' if boxed else 'native'}"
        note = f"{1 / per:,.0f} req/s, CPU {cpu * 1000:.2f} ms/request"
        if boxed:
            n_per, n_cpu = native[name]
            note += f" ({cpu / n_cpu:.1f}x native CPU, {per / n_per:.1f}x native time)"
        else:
            native[name] = (per, cpu)
        out.append((label, per, note))
    shutil.rmtree(exported, ignore_errors=True)
    return out
