"""`boxer mcp IMAGE`: a Model Context Protocol server (stdio) whose tools run code in the image.

Agent frameworks start it as a subprocess and call `run_python` or `run_command`; each call is
a fresh sandbox from one warm Session (the compiled module and unpacked image stay loaded),
and returns the `--json` result. The operator's limits are ceilings: a call may ask for a
shorter timeout, never a longer one. Imported only by `boxer mcp`, so `mcp` costs nothing to
the other commands.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

from boxer_py.api.session import Session
from boxer_py.cli.common import utf8_clean
from boxer_py.errors import BoxerError, RunError
from boxer_py.runtime.net.policy import Network
from boxer_py.runtime.spec import Limits, Mount, RunResult

MAX_MESSAGE = 16 << 20  # bytes of one JSON-RPC line; a longer one is answered with an error and skipped

INSTRUCTIONS = """\
Runs code in a WebAssembly sandbox built from a Dockerfile: no network, no host files except
the mounted directories, no subprocesses or threads. Every call starts from the image's
pristine files; nothing persists between calls. Write files meant for the caller under /out:
they come back in the result's `files`. The result has exit_code (124 = timed out),
stdout, stderr, truncation flags, timed_out and out_of_memory."""


@dataclass(frozen=True)
class ServerOptions:
    """What every call gets: the operator's limits (ceilings), mounts, env and workdir."""

    limits: Limits = Limits(timeout=60.0, max_output=1 << 20, disk=1 << 30)
    mounts: tuple[Mount, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    allow_net: tuple[str, ...] = ()  # the operator's --allow-net rules: a call may ask for fewer, never more


def create_server(session: Session, options: ServerOptions) -> MCPServer:
    server = MCPServer("boxer", instructions=INSTRUCTIONS)

    def run(argv: list[str], stdin: str | None, timeout: float | None, allow_net: list[str] | None) -> dict[str, Any]:
        try:
            # the call's limits through the one parser (NaN, inf, 0, negative: refused), never
            # looser than the operator's
            limits = Limits.parse(timeout=timeout).within(options.limits)
            result = session.run(argv, stdin=stdin or b"", env=options.env, mounts=options.mounts,
                                 workdir=options.workdir, timeout=limits.timeout, memory=limits.memory,
                                 max_output=limits.max_output, disk=limits.disk,
                                 allow_net=_narrowed(allow_net, options.allow_net))
        except RunError as e:  # not found, not a WebAssembly program, bad mount, bad limit: a result
            result = RunResult(e.exit_code, stderr=f"boxer: {e}\n".encode(errors="backslashreplace"))
        except (BoxerError, ValueError, OSError) as e:  # argv with a NUL, say: a result, never a dead server
            result = RunResult(125, stderr=f"boxer: {type(e).__name__}: {e}\n".encode(errors="backslashreplace"))
        return utf8_clean(result.to_json())  # guest-made names may not be UTF-8: the result must be

    @server.tool(description="Run Python source code (as `python -c CODE`) in a fresh sandbox and return "
                             "its exit code, stdout, stderr and the files it wrote under /out. "
                             "`timeout` is in seconds (capped by the server's limit). `allow_net`: hosts "
                             "(HOST[:PORT]) the code may connect to, among the server's (default: all of those).")
    def run_python(code: str, stdin: str | None = None, timeout: float | None = None,
                   allow_net: list[str] | None = None) -> dict[str, Any]:
        return run(["python", "-c", code], stdin, timeout, allow_net)

    @server.tool(description="Run a command (an argv list, e.g. [\"python\", \"main.py\"]) in a fresh sandbox "
                             "and return its exit code, stdout, stderr and the files it wrote under /out. "
                             "There is no shell. `timeout` is in seconds (capped by the server's limit). "
                             "`allow_net`: hosts it may connect to, among the server's (default: all of those).")
    def run_command(argv: list[str], stdin: str | None = None, timeout: float | None = None,
                    allow_net: list[str] | None = None) -> dict[str, Any]:
        if not argv:
            return RunResult(125, stderr=b"boxer: argv is empty\n").to_json()
        return run(argv, stdin, timeout, allow_net)

    return server


def _narrowed(asked: list[str] | None, ceiling: tuple[str, ...]) -> tuple[str, ...]:
    """A call's allow-list: the operator's when it asks for none; else its own rules, each of
    which must be covered by an operator rule (a call narrows, never widens)."""
    if asked is None:
        return ceiling
    if not isinstance(asked, list) or len(asked) > 64 or not all(isinstance(a, str) for a in asked):
        raise RunError("allow_net: expected a list of at most 64 HOST[:PORT] strings")
    wanted = Network.parse(allow=tuple(asked))
    kept = wanted.within(Network.parse(allow=ceiling))
    if kept.allow != wanted.allow:
        extra = ", ".join(str(a) for a in wanted.allow if a not in kept.allow)
        raise RunError(f"allow_net: {extra} is not in the server's --allow-net")
    return tuple(str(a) for a in kept.allow)


def serve(image: str, options: ServerOptions, cache_dir: str | None = None) -> None:
    """Open the image (checking it) and serve MCP on stdin/stdout until the client hangs up."""
    session = Session(image, cache_dir)
    server = create_server(session, options)
    # The wire is a private copy of fds 0 and 1; the fds themselves point at /dev/null and
    # stderr while serving, so nothing else in this process can read or tear a message.
    wire = _Wire(os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)

    async def main() -> None:
        async with stdio_server(stdin=wire, stdout=wire) as (read, write):  # type: ignore[arg-type]
            await server._lowlevel_server.run(read, write, server._lowlevel_server.create_initialization_options())

    anyio.run(main)


class _Wire:
    """The stdio transport's two ends, hardened: lines are read with a size cap, and a line
    that is not a valid JSON-RPC message (not JSON, too deep, a lone surrogate escape, not
    UTF-8 once decoded) never reaches the MCP stack; it is answered here with a JSON-RPC
    error naming its id (or null), and the server goes on. Writes are whole lines under a
    lock, so an answer from here never tears one from the server."""

    def __init__(self, fd_in: int, fd_out: int):
        self.fd_in, self.fd_out = fd_in, fd_out
        self.lock = anyio.Lock()

    async def write(self, text: str) -> None:
        data = text.encode("utf-8", "backslashreplace")
        async with self.lock:
            await anyio.to_thread.run_sync(self._write_all, data)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd_out, view):]

    async def flush(self) -> None:
        pass

    async def __aiter__(self):
        pending = bytearray()
        skipping = False  # inside a line past MAX_MESSAGE: dropped up to its newline
        while True:
            chunk = await anyio.to_thread.run_sync(os.read, self.fd_in, 1 << 16)
            if not chunk:
                return
            pending += chunk
            while True:
                end = pending.find(b"\n")
                if end < 0:
                    if len(pending) > MAX_MESSAGE:
                        if not skipping:
                            await self._error(None, -32600, f"message longer than {MAX_MESSAGE} bytes")
                        skipping = True
                        pending.clear()
                    break
                line = bytes(pending[:end])
                del pending[:end + 1]
                if skipping:
                    skipping = False
                    continue
                if len(line) > MAX_MESSAGE:
                    await self._error(None, -32600, f"message longer than {MAX_MESSAGE} bytes")
                    continue
                text = line.decode("utf-8", "replace")
                if text.strip() and await self._valid(text):
                    yield text

    async def _valid(self, text: str) -> bool:
        try:
            types.jsonrpc_message_adapter.validate_json(text, by_name=False)
            return True
        except Exception as e:  # pydantic's ValidationError, or anything the validator may raise
            errors: list[dict[str, object]] = getattr(e, "errors", lambda: [])()
            first = errors[0] if errors else {}
            reason = str(first.get("msg") or type(e).__name__)
            code = -32700 if first.get("type") == "json_invalid" else -32600
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            doc = None
        request_id = doc.get("id") if isinstance(doc, dict) else None
        if isinstance(doc, dict) and "method" in doc and "id" not in doc:
            return False  # a notification: nothing to answer
        if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
            request_id = None
        await self._error(request_id, code, f"invalid request: {reason}")
        return False

    async def _error(self, request_id: int | str | None, code: int, message: str) -> None:
        answer = {"jsonrpc": "2.0", "id": utf8_clean(request_id), "error": {"code": code, "message": utf8_clean(message)}}
        await self.write(json.dumps(answer) + "\n")
