"""`boxer mcp IMAGE`: the real server as a subprocess, driven by the `mcp` client library."""
from __future__ import annotations

import base64
import io
import json
import os
import select
import subprocess
import sys
import tarfile
import time

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from boxer_py.image import imagefile
from boxer_py.image.config import ImageSpec

HOST_SECRET = "mcp-host-secret-42"


def _server_args(image, tmp_path, *extra: str) -> list[str]:
    mount = [] if "--stateful" in extra else ["-v", f"{tmp_path / 'data'}:/data:ro"]
    return ["-m", "boxer_py", "mcp", "--timeout", "8", "--memory", "256m", "--max-output", "64k",
            "--disk", "32m", *mount, "-e", "MODE=agent", *extra, str(image)]


def _server_env(cache_dir) -> dict[str, str]:
    env = {"BOXER_CACHE_DIR": str(cache_dir), "PATH": os.environ.get("PATH", ""), "HOST_ONLY": HOST_SECRET}
    if "PYTHONPATH" in os.environ:  # the code under test, when it is not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@pytest.fixture
def start_server(cache_dir, tmp_path):
    """Start `boxer mcp IMAGE` with limits, a read-only mount and an env var; yield a call helper."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "numbers.txt").write_text("1 2 3 4\n")
    (tmp_path / "secret.txt").write_text(HOST_SECRET)

    def start(image, *extra):
        params = StdioServerParameters(command=sys.executable, args=_server_args(image, tmp_path, *extra),
                                       env=_server_env(cache_dir))

        def session(script):
            async def main():
                async with Client(params, read_timeout_seconds=120) as client:
                    return await script(client)

            return anyio.run(main)

        return session

    return start


@pytest.fixture
def server(start_server, hello_image, tmp_path):
    return start_server(hello_image), tmp_path


def result_of(call) -> dict:
    """The result object; `isError` must say whether the code failed."""
    assert call.structured_content is not None
    assert json.loads(call.content[0].text) == call.structured_content
    doc = call.structured_content
    assert call.is_error == (doc["exit_code"] != 0 or doc["timed_out"]), doc
    return doc


def test_lists_the_two_tools_with_their_parameters(server):
    session, _ = server

    async def script(client):
        return (await client.list_tools()).tools

    tools = {t.name: t for t in session(script)}
    assert set(tools) == {"run_python", "run_command"}
    assert set(tools["run_python"].input_schema["properties"]) == {"code", "stdin", "timeout", "allow_net", "files"}
    assert tools["run_python"].input_schema["required"] == ["code"]
    assert set(tools["run_command"].input_schema["properties"]) == {"argv", "stdin", "timeout", "allow_net", "files"}


def test_runs_code_and_returns_output_files_and_mounts(server):
    session, _ = server
    code = ("import os, sys\nnums = open('/data/numbers.txt').read().split()\n"
            "print(sum(map(int, nums)), os.environ['MODE'], sys.stdin.read())\n"
            "open('/out/answer.txt', 'w').write('ten')")

    async def script(client):
        first = await client.call_tool("run_python", {"code": code, "stdin": "from stdin"})
        second = await client.call_tool("run_command", {"argv": ["python", "-c", "import sys; sys.exit(3)"]})
        missing = await client.call_tool("run_command", {"argv": ["gcc", "x.c"]})
        return first, second, missing

    first, second, missing = map(result_of, session(script))
    assert first["exit_code"] == 0, first["stderr"]
    assert first["stdout"] == "10 agent from stdin\n"
    assert first["files"] == [{"path": "/out/answer.txt", "size": 3, "mime_type": "text/plain"}]
    assert second["exit_code"] == 3
    assert missing["exit_code"] == 127 and "gcc: not found" in missing["stderr"]


def test_timeout_is_reported_and_capped_by_the_server(server):
    session, _ = server

    async def script(client):
        loop = await client.call_tool("run_python", {"code": "while True: pass", "timeout": 1})
        sleep = await client.call_tool("run_python", {"code": "import time; time.sleep(3600)", "timeout": 9999})
        return loop, sleep

    loop, sleep = map(result_of, session(script))
    assert loop["exit_code"] == 124 and loop["timed_out"] is True
    assert "timed out after 1s" in loop["trap"]
    # asked for 9999 s, got the server's 8 s ceiling
    assert sleep["exit_code"] == 124 and sleep["timed_out"] is True
    assert 7500 < sleep["duration_ms"] < 15000


def test_hostile_code_cannot_reach_the_host(server):
    session, tmp_path = server
    probes = [
        f"print(open({str(tmp_path / 'secret.txt')!r}).read())",
        "import os; print(os.environ.get('HOST_ONLY'))",
        "open('/data/new.txt', 'w').write('x')",
        "x = []\nwhile True: x.append(bytearray(1 << 20))",
        "print('y' * 1000000)",
        "f = open('/tmp/fill', 'wb')\nwhile True: f.write(bytes(1 << 20))",
    ]

    async def script(client):
        return [await client.call_tool("run_python", {"code": code}) for code in probes]

    read, env, write, bomb, flood, fill = map(result_of, session(script))
    assert read["exit_code"] == 1 and "FileNotFoundError" in read["stderr"]
    assert env["stdout"] == "None\n"
    assert write["exit_code"] == 1 and "Errno" in write["stderr"]
    assert bomb["out_of_memory"] is True and "MemoryError" in bomb["stderr"]
    assert flood["stdout_truncated"] is True and len(flood["stdout"]) == 64 * 1024
    assert fill["disk_full"] is True and fill["exit_code"] == 134
    assert not (tmp_path / "data" / "new.txt").exists()
    assert all(HOST_SECRET not in json.dumps(r) for r in (read, env, write, bomb, flood, fill))


def test_a_bad_image_is_one_line_and_no_server(boxer, tmp_path):
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"not an image")
    r = boxer("mcp", str(bad), timeout=60)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.startswith("boxer: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_a_call_cannot_lift_the_timeout_with_nan_infinity_or_nonsense(server):
    """`"timeout": "NaN"` used to pass the ceiling (min(nan, 8) is nan) and the run never
    ended. Every value that is not a finite number of seconds above 0 is a one-line error
    result, at once; a normal call on the same connection still runs."""
    session, _ = server
    asked = ["NaN", "nan", "inf", "-inf", "1e400", -1, 0, "-0.5"]

    async def script(client):
        results = []
        with anyio.fail_after(60):  # a call whose timeout was lifted would never come back
            for timeout in asked:
                results.append(await client.call_tool("run_python", {"code": "import time; time.sleep(3600)",
                                                                     "timeout": timeout}))
            results.append(await client.call_tool("run_python", {"code": "print('still here')", "timeout": 30}))
        return results

    *refused, normal = map(result_of, session(script))
    for timeout, r in zip(asked, refused, strict=True):
        assert r["exit_code"] == 125 and r["timed_out"] is False, (timeout, r)
        assert r["stderr"].startswith("boxer: timeout: ") and r["stderr"].count("\n") == 1, (timeout, r)
        assert "Traceback" not in r["stderr"]
    assert normal["exit_code"] == 0 and normal["stdout"] == "still here\n"


@pytest.fixture(scope="module")
def undecodable_out_image(hello_image, tmp_path_factory):
    """The hello image plus a layer holding /out/bad-\\xff.txt (a name that is not UTF-8: a
    guest cannot make one through WASI, an image can)."""
    image = imagefile.read(hello_image)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for name, data in (("out", None), (os.fsdecode(b"out/bad-\xff.txt"), b"from the image")):
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    extra = buf.getvalue()
    tars = [image.layer(d) for d in image.layers] + [extra]
    spec = ImageSpec(image.spec.config, (*image.spec.diff_ids, imagefile.sha256(extra)), (*image.spec.history, "test"))
    data, _ = imagefile.encode(spec, tars, image.annotations or None)
    out = tmp_path_factory.mktemp("undecodable") / "undecodable.wasm"
    imagefile.write(out, data)
    return out


def test_a_name_under_out_that_is_not_utf8_does_not_break_the_server(start_server, undecodable_out_image):
    """Such a name made the server's JSON writer fail, and every later call with it."""
    session = start_server(undecodable_out_image)

    async def script(client):
        with anyio.fail_after(120):
            return [await client.call_tool("run_python", {"code": f"print({n})"}) for n in range(3)]

    results = list(map(result_of, session(script)))
    assert [r["stdout"] for r in results] == ["0\n", "1\n", "2\n"]
    for r in results:
        assert r["files"] == [{"path": "/out/bad-\\xff.txt", "size": 14, "mime_type": "text/plain"}]


class RawClient:
    """`boxer mcp` driven line by line, to send what no MCP client library would."""

    def __init__(self, image, cache_dir, tmp_path):
        (tmp_path / "data").mkdir(exist_ok=True)
        self.stderr = open(tmp_path / "mcp-stderr.txt", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, *_server_args(image, tmp_path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=_server_env(cache_dir))
        self.buffered = b""

    def send(self, line: bytes) -> None:
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def request(self, id_, method: str, params: dict, raw: bytes | None = None) -> None:
        self.send(raw or json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}).encode())

    def answers(self, until_id, seconds: float = 120) -> list[dict]:
        """Every message up to the answer to `until_id`."""
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            while b"\n" in self.buffered:
                line, _, self.buffered = self.buffered.partition(b"\n")
                got.append(json.loads(line))  # every line the server writes is JSON
                if got[-1].get("id") == until_id:
                    return got
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                assert chunk, f"the server ended: {self.log()}"
                self.buffered += chunk
        raise AssertionError(f"no answer to {until_id!r} in {seconds}s; got {got}; log {self.log()}")

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def close(self) -> int:
        self.proc.stdin.close()
        return self.proc.wait(timeout=60)


def test_malformed_requests_are_answered_and_never_kill_the_server(hello_image, cache_dir, tmp_path):
    client = RawClient(hello_image, cache_dir, tmp_path)
    client.request(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                     "clientInfo": {"name": "raw", "version": "1"}})
    assert "result" in client.answers(0)[-1]
    client.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')

    def call(id_, arguments: dict) -> None:
        client.request(id_, "tools/call", {"name": "run_python", "arguments": arguments})

    # a lone surrogate: not UTF-8, used to get no answer at all
    client.request(1, "", {}, raw=b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": '
                                  b'{"name": "run_python", "arguments": {"code": "print(\'\\ud800\')"}}}')
    lone = client.answers(1)[-1]
    assert lone["error"]["code"] == -32700 and "Invalid JSON" in lone["error"]["message"], lone
    # JSON's NaN as the timeout: refused, not an endless run
    client.request(2, "", {}, raw=b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": '
                                  b'{"name": "run_python", "arguments": {"code": "import time; time.sleep(3600)", '
                                  b'"timeout": NaN}}}')
    nan = client.answers(2, seconds=60)[-1]
    assert nan["result"]["structuredContent"]["exit_code"] == 125, nan
    assert "timeout" in nan["result"]["structuredContent"]["stderr"]
    # not JSON, not UTF-8, nested past any parser's depth, longer than a message may be
    hostile = [b"this is not json", b"\xff\xfe\x00garbage", b"[" * 200_000, b'{"a": "' + b"x" * (17 << 20) + b'"}',
               b'{"jsonrpc": "2.0", "id": {"nested": 1}, "method": 5}']
    for line in hostile:
        client.send(line)
    client.request(3, "no/such/method", {})
    answers = client.answers(3)
    nulls = [a for a in answers if a.get("id") is None]
    assert len(nulls) == len(hostile) and all(a["error"]["message"] for a in nulls), answers
    assert "error" in answers[-1]
    call(4, {"code": "print('after all that')"})
    after = client.answers(4)[-1]
    assert after["result"]["structuredContent"]["stdout"] == "after all that\n", after
    assert client.close() == 0
    assert "Traceback" not in client.log()
    client.stderr.close()


def test_the_operators_allow_list_can_be_narrowed_by_a_call_never_widened(hello_image, cache_dir):
    """`boxer mcp --allow-net`: calls reach the operator's hosts; a call may ask for fewer, and
    one that asks for a host the operator did not allow gets a one-line error, not a socket."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    params = StdioServerParameters(command=sys.executable, env=_server_env(cache_dir),
                                   args=["-m", "boxer_py", "mcp", "--timeout", "60", "--allow-net",
                                         f"127.0.0.1:{port}", str(hello_image)])
    fetch = f"import urllib.request\nprint(urllib.request.urlopen('http://127.0.0.1:{port}/').read().decode())"

    async def main():
        async with Client(params, read_timeout_seconds=120) as client:
            return [result_of(await client.call_tool("run_python", {"code": fetch, **extra}))
                    for extra in ({}, {"allow_net": [f"127.0.0.1:{port}"]}, {"allow_net": []},
                                  {"allow_net": ["127.0.0.1:*"]}, {"allow_net": ["example.com"]})]
    try:
        plain, narrowed, none, wider, other = anyio.run(main)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert plain["stdout"] == narrowed["stdout"] == "ok\n"
    assert none["exit_code"] == 1 and none["stdout"] == ""  # an empty list: no network at all, as without options
    assert wider["exit_code"] == 125 and wider["stderr"] == \
        "boxer: allow_net: 127.0.0.1:* is not in the server's --allow-net\n"
    assert other["exit_code"] == 125 and "example.com:* is not in the server's --allow-net" in other["stderr"]


# A 1x1 PNG, as a plotting library would leave it under /out.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cf"
                    "c0f01f0005000201f5a1b8ee0000000049454e44ae426082")


def test_out_files_come_back_as_image_and_resource_blocks(server):
    session, _ = server
    code = (f"open('/out/plot.png', 'wb').write(bytes.fromhex({PNG.hex()!r}))\n"
            "open('/out/table.csv', 'w').write('a,b\\n1,2\\n')\nopen('/out/raw.bin', 'wb').write(bytes(range(5)))")

    async def script(client):
        return await client.call_tool("run_python", {"code": code})

    call = session(script)
    doc = result_of(call)
    assert doc["files"] == [{"path": "/out/plot.png", "size": len(PNG), "mime_type": "image/png"},
                            {"path": "/out/raw.bin", "size": 5, "mime_type": "application/octet-stream"},
                            {"path": "/out/table.csv", "size": 8, "mime_type": "text/plain"}]
    image, raw, table = call.content[1:]
    assert image.type == "image" and image.mime_type == "image/png" and base64.b64decode(image.data) == PNG
    assert table.type == "resource" and table.resource.text == "a,b\n1,2\n" and str(table.resource.uri) == "file:///out/table.csv"
    assert raw.type == "resource" and base64.b64decode(raw.resource.blob) == bytes(range(5))


def test_is_error_server_info_description_and_annotations(server):
    session, _ = server

    async def script(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        failed = await client.call_tool("run_python", {"code": "1 / 0"})
        timed = await client.call_tool("run_python", {"code": "while True: pass", "timeout": 1})
        ok = await client.call_tool("run_python", {"code": "print('fine')"})
        return client.server_info, tools, failed, timed, ok

    info, tools, failed, timed, ok = session(script)
    assert info.name == "boxer" and info.version and info.version != "0"
    assert failed.is_error and timed.is_error and not ok.is_error
    assert result_of(failed)["error"]["type"] == "ZeroDivisionError"
    description = tools["run_python"].description
    assert "Python 3.12" in description and "No network" in description and "/out" in description
    assert "nothing persists" in description and "Calls stop after 8 s" in description
    annotations = tools["run_python"].annotations
    assert annotations.open_world_hint is False and annotations.destructive_hint is False
    assert tools["run_python"].title == "Run Python"


def test_default_output_cap_is_small_and_keeps_the_tail(hello_image, cache_dir, tmp_path):
    params = StdioServerParameters(command=sys.executable, args=["-m", "boxer_py", "mcp", str(hello_image)],
                                   env=_server_env(cache_dir))

    async def main():
        async with Client(params, read_timeout_seconds=120) as client:
            return await client.call_tool("run_python", {"code": "print('x' * 1000000)\nprint('the end')"})

    doc = result_of(anyio.run(main))
    assert doc["stdout_truncated"] and len(doc["stdout"]) <= 16 * 1024
    assert doc["stdout"].endswith("x\nthe end\n") and doc["stdout_dropped"] == 1000009 - len(doc["stdout"])


def test_files_argument_puts_inputs_in_and_is_capped(start_server, hello_image):
    session = start_server(hello_image, "--max-upload", "1k")
    code = "print(open('/inputs/a.csv').read() + open('/inputs/b.bin', 'rb').read().hex())"

    async def script(client):
        ok = await client.call_tool("run_python", {"code": code, "files": [
            {"path": "/inputs/a.csv", "content": "x,y"}, {"path": "/inputs/b.bin", "content": "AAEC", "encoding": "base64"}]})
        escape = await client.call_tool("run_python", {"code": "pass", "files": [{"path": "/../x", "content": "x"}]})
        big = await client.call_tool("run_python", {"code": "pass", "files": [{"path": "/big", "content": "x" * 2000}]})
        return ok, escape, big

    ok, escape, big = map(result_of, session(script))
    assert ok["stdout"] == "x,y000102\n"
    assert escape["exit_code"] == 125 and "'..'" in escape["stderr"]
    assert big["exit_code"] == 125 and "over 1024 bytes in all" in big["stderr"]


def test_stateful_keeps_one_interpreter_and_resets(start_server, hello_image):
    session = start_server(hello_image, "--stateful")

    async def script(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        description = next(t.description for t in (await client.list_tools()).tools if t.name == "run_python")
        await client.call_tool("run_python", {"code": "import math\nn = 41"})
        shown = await client.call_tool("run_python", {"code": "n + 1"})
        fresh = await client.call_tool("run_command", {"argv": ["python", "-c", "print('n' in dir())"]})
        await client.call_tool("reset", {})
        gone = await client.call_tool("run_python", {"code": "'n' in dir()"})
        return tools, description, shown, fresh, gone

    tools, description, shown, fresh, gone = session(script)
    assert tools == {"run_python", "run_command", "reset"}
    assert "persist" in description
    assert result_of(shown)["stdout"] == "42\n"
    assert result_of(fresh)["stdout"] == "False\n"  # run_command stays a fresh sandbox
    assert result_of(gone)["stdout"] == "False\n"


def test_cancelling_a_call_stops_the_guest(start_server, hello_image):
    """A cancelled call's guest must stop at once, so the next call on the same (stateful: one
    at a time) interpreter answers long before the server's ceiling, here 300 s: far enough
    from a restart's few seconds that a loaded machine cannot blur the two."""
    session = start_server(hello_image, "--stateful", "--timeout", "300")

    async def script(client):
        await client.call_tool("run_python", {"code": "kept = 1"})
        with anyio.move_on_after(1):
            await client.call_tool("run_python", {"code": "while True: kept += 1"})
        started = time.monotonic()
        after = await client.call_tool("run_python", {"code": "'kept' in dir()"})
        return after, time.monotonic() - started

    after, waited = session(script)
    assert result_of(after)["stdout"] == "False\n"  # the loop was stopped, so the interpreter restarted
    assert waited < 150
