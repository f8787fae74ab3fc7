"""`boxer mcp IMAGE`: the real server as a subprocess, driven by the `mcp` client library."""
from __future__ import annotations

import json
import os
import sys

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

HOST_SECRET = "mcp-host-secret-42"


@pytest.fixture
def server(hello_image, cache_dir, tmp_path):
    """Start `boxer mcp` with limits, a read-only mount and an env var; yield a call helper."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "numbers.txt").write_text("1 2 3 4\n")
    (tmp_path / "secret.txt").write_text(HOST_SECRET)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "boxer_py", "mcp", "--timeout", "8", "--memory", "256m", "--max-output", "64k",
              "--disk", "32m", "-v", f"{tmp_path / 'data'}:/data:ro", "-e", "MODE=agent", str(hello_image)],
        env={"BOXER_CACHE_DIR": str(cache_dir), "PATH": os.environ.get("PATH", ""), "HOST_ONLY": HOST_SECRET},
    )

    def session(script):
        async def main():
            async with Client(params, read_timeout_seconds=120) as client:
                return await script(client)

        return anyio.run(main)

    return session, tmp_path


def result_of(call) -> dict:
    assert not call.is_error, call.content
    assert call.structured_content is not None
    assert json.loads(call.content[0].text) == call.structured_content
    return call.structured_content


def test_lists_the_two_tools_with_their_parameters(server):
    session, _ = server

    async def script(client):
        return (await client.list_tools()).tools

    tools = {t.name: t for t in session(script)}
    assert set(tools) == {"run_python", "run_command"}
    assert set(tools["run_python"].input_schema["properties"]) == {"code", "stdin", "timeout"}
    assert tools["run_python"].input_schema["required"] == ["code"]
    assert set(tools["run_command"].input_schema["properties"]) == {"argv", "stdin", "timeout"}


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
    assert first["files"] == [{"path": "/out/answer.txt", "size": 3, "encoding": "utf-8", "content": "ten"}]
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
