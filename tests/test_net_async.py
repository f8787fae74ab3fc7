"""asyncio servers under `boxer run -p`: an unmodified `asyncio.start_server` echo server and
uvicorn + Starlette pip-installed by `boxer build` from a Dockerfile (pure Python: uvicorn
without its native extras, started as `python -m uvicorn`) answer real clients on 127.0.0.1,
keep-alive included, and end with Ctrl-C or --timeout."""
from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys

from test_net import _env, serving

ECHO_SERVER = """\
import asyncio

async def echo(reader, writer):
    while line := await reader.readline():
        writer.write(b"echo " + line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()

async def main():
    server = await asyncio.start_server(echo, "0.0.0.0", 8000)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""
STARLETTE_APP = """\
import os
import sys

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def index(request):
    return PlainTextResponse("hello from starlette")


async def echo(request):
    body = await request.json()
    return JSONResponse({"got": body["n"] * 2, "pid": os.getpid()})


async def modules(request):
    return JSONResponse(sorted(m for m in ("ssl", "multiprocessing") if m in sys.modules))


app = Starlette(routes=[Route("/", index), Route("/echo", echo, methods=["POST"]), Route("/modules", modules)])
"""
UVICORN_DOCKERFILE = """\
FROM python:3.12-slim
WORKDIR /app
RUN pip install uvicorn starlette
COPY app.py .
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"]
"""


def _lines(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data.splitlines()


def test_asyncio_start_server_echoes_to_concurrent_clients(hello_image, cache_dir):
    with serving(cache_dir, "-p", "127.0.0.1:0:8000", str(hello_image), "python", "-c", ECHO_SERVER) as (_, ports, _):
        first = socket.create_connection(("127.0.0.1", ports[8000]), timeout=120)
        second = socket.create_connection(("127.0.0.1", ports[8000]), timeout=120)
        with first, second:
            first.sendall(b"one\n")
            second.sendall(b"two\nthree\n")
            assert _lines(second, 2) == [b"echo two", b"echo three"]
            assert _lines(first, 1) == [b"echo one"]
            first.sendall(b"x" * 60_000 + b"\n")  # many TCP segments, under asyncio's 64 KiB line limit
            [long] = _lines(first, 1)
            assert long == b"echo " + b"x" * 60_000
            first.shutdown(socket.SHUT_WR)
            assert first.recv(10) == b""  # the server closes its side when the client is done


def test_uvicorn_starlette_serves_keep_alive_clients(uvicorn_image, cache_dir):
    with serving(cache_dir, "-p", "127.0.0.1:0:8000", str(uvicorn_image), interrupted=0) as (proc, ports, _):
        conn = http.client.HTTPConnection("127.0.0.1", ports[8000], timeout=120)
        conn.request("GET", "/")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello from starlette")
        assert response.getheader("server") == "uvicorn"
        sock = conn.sock
        for n in range(5):  # keep-alive: every request on the one connection
            conn.request("POST", "/echo", json.dumps({"n": n}), {"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["got"] == 2 * n
            assert conn.sock is sock
        conn.request("GET", "/modules")  # imported as they are, no stubs in the image
        assert json.loads(conn.getresponse().read()) == ["multiprocessing", "ssl"]
        other = http.client.HTTPConnection("127.0.0.1", ports[8000], timeout=120)
        other.request("GET", "/")
        assert other.getresponse().read() == b"hello from starlette"
        other.close()
        conn.close()


def test_timeout_ends_uvicorn_holding_an_idle_keep_alive_connection(uvicorn_image, cache_dir):
    proc = subprocess.Popen([sys.executable, "-m", "boxer_py", "run", "--timeout", "60", "-p", "127.0.0.1:0:8000",
                             str(uvicorn_image)], env=_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        found = re.fullmatch(rb"boxer: 8000/tcp -> 127\.0\.0\.1:(\d+)\n", proc.stderr.readline())
        assert found
        conn = http.client.HTTPConnection("127.0.0.1", int(found[1]), timeout=120)
        conn.request("GET", "/")  # answered once uvicorn is up, well within the 60 s
        assert conn.getresponse().read() == b"hello from starlette"
        _, err = proc.communicate(timeout=300)  # the connection stays open and idle meanwhile
        conn.close()
        assert proc.returncode == 124, err.decode()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
