"""`boxer mcp IMAGE`: a Model Context Protocol server (stdio) whose tools run code in the image.

Agent frameworks start it as a subprocess and call `run_python` or `run_command`; each call is
a fresh sandbox from one warm Session (the compiled module and unpacked image stay loaded),
and returns the `--json` result. The operator's limits are ceilings: a call may ask for a
shorter timeout, never a longer one. Imported only by `boxer mcp`, so `mcp` costs nothing to
the other commands.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from mcp.server.mcpserver import MCPServer

from boxer_py.api.session import Session
from boxer_py.errors import RunError
from boxer_py.runtime.spec import Limits, Mount, RunResult

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


def _timeout(asked: float | None, ceiling: float | None) -> float | None:
    if asked is None or asked <= 0:
        return ceiling
    return asked if ceiling is None else min(asked, ceiling)


def create_server(session: Session, options: ServerOptions) -> MCPServer:
    server = MCPServer("boxer", instructions=INSTRUCTIONS)

    def run(argv: list[str], stdin: str | None, timeout: float | None) -> dict[str, Any]:
        limits = replace(options.limits, timeout=_timeout(timeout, options.limits.timeout))
        try:
            result = session.run(argv, stdin=stdin or b"", env=options.env, mounts=options.mounts,
                                 workdir=options.workdir, timeout=limits.timeout, memory=limits.memory,
                                 max_output=limits.max_output, disk=limits.disk)
        except RunError as e:  # not found, not a WebAssembly program, bad mount: a result, like the CLI's
            result = RunResult(e.exit_code, stderr=f"boxer: {e}\n".encode())
        return result.to_json()

    @server.tool(description="Run Python source code (as `python -c CODE`) in a fresh sandbox and return "
                             "its exit code, stdout, stderr and the files it wrote under /out. "
                             "`timeout` is in seconds (capped by the server's limit).")
    def run_python(code: str, stdin: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        return run(["python", "-c", code], stdin, timeout)

    @server.tool(description="Run a command (an argv list, e.g. [\"python\", \"main.py\"]) in a fresh sandbox "
                             "and return its exit code, stdout, stderr and the files it wrote under /out. "
                             "There is no shell. `timeout` is in seconds (capped by the server's limit).")
    def run_command(argv: list[str], stdin: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        if not argv:
            return RunResult(125, stderr=b"boxer: argv is empty\n").to_json()
        return run(argv, stdin, timeout)

    return server


def serve(image: str, options: ServerOptions, cache_dir: str | None = None) -> None:
    """Open the image (checking it) and serve MCP on stdin/stdout until the client hangs up."""
    session = Session(image, cache_dir)
    create_server(session, options).run("stdio")
