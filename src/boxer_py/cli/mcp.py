"""`boxer mcp IMAGE`: a Model Context Protocol server (stdio) whose tools run code in the image.

Agent frameworks start it as a subprocess and call `run_python` or `run_command`; each call is
a fresh sandbox from one warm Session (the compiled module and unpacked image stay loaded).
With `--stateful`, `run_python` shares one live Interpreter for the connection (stdio has
one), and a `reset` tool starts it anew. A result is one text block holding the `--json`
object (also its structured content), then one block per file the call left under /out:
images (by their bytes: PNG, JPEG, GIF, WebP) as image blocks, the rest as embedded
resources. `isError` is set when the code failed (non-zero exit, timeout). stdout and stderr
are cut to a model-sized cap, keeping their head and tail. Cancelling a call stops its guest
at once. The operator's limits are ceilings: a call may ask for a shorter timeout, never a
longer one. Imported only by `boxer mcp`, so `mcp` costs nothing to the other commands.
"""
from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

from boxer_py.api.session import Session
from boxer_py.cli.common import utf8_clean
from boxer_py.errors import BoxerError, RunError
from boxer_py.image.rootfs import resolve
from boxer_py.runtime import inputs
from boxer_py.runtime.interpreter import Interpreter
from boxer_py.runtime.net.policy import Network
from boxer_py.runtime.output import Sink, is_text
from boxer_py.runtime.spec import Limits, Mount, RunResult

MAX_MESSAGE = 16 << 20  # bytes of one JSON-RPC line; a longer one is answered with an error and skipped
MAX_PACKAGES = 60  # named in the tool description at most
IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))
MAX_SCANNED = 10_000  # entries of a PYTHONPATH directory looked at

INSTRUCTIONS = """\
Runs code in a WebAssembly sandbox built from a Dockerfile: no network, no host files except
the mounted directories, no subprocesses or threads. Write files meant for the caller under
/out: images come back as images, other files as embedded resources. The result's text is a
JSON object: exit_code (124 = timed out), stdout, stderr (long output keeps its start and end),
error (the Python exception), timed_out, out_of_memory and the files."""


@dataclass(frozen=True)
class ServerOptions:
    """What every call gets: the operator's limits (ceilings), mounts, env and workdir; whether
    run_python keeps state; what a result and an upload may hold."""

    limits: Limits = Limits(timeout=60.0, max_output=16 << 10, disk=1 << 30)
    mounts: tuple[Mount, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    stateful: bool = False
    max_files: int = 8 << 20  # bytes of /out files returned per call
    max_upload: int = 16 << 20  # bytes of `files` a call may hand in
    allow_net: tuple[str, ...] = ()  # the operator's --allow-net rules: a call may ask for fewer, never more


def _version() -> str:
    try:
        return metadata.version("boxer-py")
    except metadata.PackageNotFoundError:
        return "0"


def _sandbox(session: Session, options: ServerOptions) -> str:
    """What the tool descriptions tell the model about this sandbox, read from the image on the
    host (its PYTHON_VERSION and the *.dist-info names on its PYTHONPATH: names only, bounded),
    so the handshake never waits for a guest."""
    env = {**session.image.spec.config.env_dict(), **options.env}
    root = session.launcher.rootfs(session.image)
    packages: set[str] = set()
    for directory in [d for d in env.get("PYTHONPATH", "").split(":") if d.startswith("/")][:16]:
        try:
            with os.scandir(resolve(root, directory)) as entries:
                for _, entry in zip(range(MAX_SCANNED), entries, strict=False):
                    if entry.name.endswith(".dist-info") and entry.name.count("-") == 1:
                        packages.add(entry.name[:-len(".dist-info")].replace("-", " ").replace("_", "-"))
        except (BoxerError, OSError, ValueError):
            continue
    names = sorted(packages, key=str.lower)
    shown = ", ".join(names[:MAX_PACKAGES]) + (" and more" if len(names) > MAX_PACKAGES else "")
    python = env.get("PYTHON_VERSION", "")
    what = f"Python {python} with {shown or 'the standard library only'}. " if python else ""
    mounts = ", ".join(f"{m.guest}{' (read-only)' if m.read_only else ''}" for m in options.mounts)
    timeout = f" Calls stop after {options.limits.timeout:g} s." if options.limits.timeout else ""
    network = (f"Network: only {', '.join(options.allow_net)} (`allow_net` may name fewer)"
               if options.allow_net else "No network")
    return utf8_clean(f"{what}{network}; no subprocesses. {'Mounted: ' + mounts + '. ' if mounts else ''}"
                      f"Files written under /out are returned (images as images).{timeout}")


def _blocks(result: RunResult, doc: dict[str, Any]) -> list[types.ContentBlock]:
    """The /out files as content blocks; `doc`'s `files` keeps their names, sizes and types."""
    blocks: list[types.ContentBlock] = []
    listed = []
    for path, data in sorted(result.files.items()):
        name = utf8_clean(path)
        mime = next((m for magic, m in IMAGE_TYPES if data.startswith(magic)), None)
        if mime is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            mime = "image/webp"
        uri = "file://" + "/".join(part for part in name.split("/"))
        if mime is not None:
            blocks.append(types.ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime))
        elif is_text(data):
            mime = "text/plain"
            blocks.append(types.EmbeddedResource(type="resource", resource=types.TextResourceContents(
                uri=uri, mime_type=mime, text=data.decode())))
        else:
            mime = "application/octet-stream"
            blocks.append(types.EmbeddedResource(type="resource", resource=types.BlobResourceContents(
                uri=uri, mime_type=mime, blob=base64.b64encode(data).decode())))
        listed.append({"path": name, "size": len(data), "mime_type": mime})
    doc["files"] = listed
    return blocks


def _cut(result: RunResult, cap: int | None) -> RunResult:
    """stdout and stderr cut to `cap` bytes each, head and tail kept (as a Sink keeps them)."""
    if cap is None:
        return result
    out, err = Sink(cap, None), Sink(cap, None)
    out(result.stdout)
    err(result.stderr)
    return replace(result, stdout=out.finish(), stderr=err.finish(),
                   stdout_truncated=result.stdout_truncated or out.truncated,
                   stderr_truncated=result.stderr_truncated or err.truncated,
                   stdout_dropped=result.stdout_dropped + out.dropped, stderr_dropped=result.stderr_dropped + err.dropped)


def _answer(result: RunResult, cap: int | None) -> types.CallToolResult:
    result = _cut(result, cap)
    doc = result.to_json()
    blocks = _blocks(result, doc)
    doc = utf8_clean(doc)  # guest-made names may not be UTF-8: the result must be
    failed = result.exit_code != 0 or result.timed_out
    return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(doc)), *blocks],
                                structured_content=doc, is_error=failed)


def _refused(e: Exception) -> RunResult:
    if isinstance(e, RunError):  # not found, not a WebAssembly program, bad mount, bad limit: a result
        return RunResult(e.exit_code, stderr=f"boxer: {e}\n".encode(errors="backslashreplace"))
    # argv with a NUL, say: a result, never a dead server
    return RunResult(125, stderr=f"boxer: {type(e).__name__}: {e}\n".encode(errors="backslashreplace"))


async def _guarded(work: Callable[[threading.Event], RunResult]) -> RunResult:
    """`work(cancel)` on a thread; when the client cancels the call, set `cancel` (the guest
    stops at its next tick) and let the cancellation go on."""
    cancel = threading.Event()
    try:
        return await anyio.to_thread.run_sync(work, cancel, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        cancel.set()
        raise


def _uploads(files: list[dict[str, str]] | None, limit: int) -> tuple[tuple[str, bytes], ...]:
    items = []
    for item in files or []:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not isinstance(item.get("content"), str):
            raise RunError("files: each item needs a path and a content")
        content = item["content"]
        try:
            data = base64.b64decode(content, validate=True) if item.get("encoding") == "base64" else content.encode()
        except ValueError:
            raise RunError(f"files: {item['path']}: content is not base64") from None
        items.append((item["path"], data))
    return inputs.check(items, limit)


class _Lazy:
    """The stateful interpreter, started by the first call that needs it (its first start
    boots a snapshot: the handshake must not wait for that)."""

    def __init__(self, session: Session, options: ServerOptions):
        self.session, self.options = session, options
        self.lock = threading.Lock()
        self.interpreter: Interpreter | None = None

    def get(self) -> Interpreter:
        with self.lock:
            if self.interpreter is None:
                o = self.options
                self.interpreter = self.session.interpreter(env=o.env, workdir=o.workdir, memory=o.limits.memory,
                                                            disk=o.limits.disk)
            return self.interpreter

    def reset(self) -> None:
        self.get().reset()

    def close(self) -> None:
        if self.interpreter is not None:
            self.interpreter.close()


def create_server(session: Session, options: ServerOptions, interpreter: _Lazy | None = None,
                  sandbox: str = "") -> MCPServer:
    server = MCPServer("boxer", version=_version(), instructions=INSTRUCTIONS)
    cap = options.limits.max_output
    run_limits = replace(options.limits, max_output=options.max_files)  # files kept; streams cut after

    def run(argv: list[str], stdin: str | None, timeout: float | None, files: list[dict[str, str]] | None,
            allow_net: list[str] | None, cancel: threading.Event, stateful: bool = False) -> RunResult:
        try:
            # the call's limits through the one parser (NaN, inf, 0, negative: refused), never
            # looser than the operator's
            limits = Limits.parse(timeout=timeout).within(run_limits)
            uploads = dict(_uploads(files, min(options.max_upload, limits.disk or options.max_upload)))
            if stateful and interpreter is not None:
                if allow_net:
                    raise RunError("allow_net: the stateful interpreter has no network")
                if stdin:
                    raise RunError("stdin: the stateful interpreter reads no stdin; hand data in with `files`")
                return interpreter.get().run(argv[2], timeout=limits.timeout, max_output=limits.max_output,
                                       disk=limits.disk, files=uploads, cancel=cancel)
            return session.run(argv, stdin=stdin or b"", env=options.env, mounts=options.mounts,
                               workdir=options.workdir, timeout=limits.timeout, memory=limits.memory,
                               max_output=limits.max_output, disk=limits.disk, files=uploads, cancel=cancel,
                               allow_net=_narrowed(allow_net, options.allow_net))
        except (BoxerError, ValueError, OSError) as e:
            return _refused(e)

    state = ("Variables, imports and files persist between run_python calls (reset starts anew)."
             if interpreter is not None else "Every call starts from the image's pristine files; nothing persists.")
    net_doc = ("`allow_net`: hosts (HOST[:PORT]) the code may connect to, among the server's (default: all of "
               "those). " if options.allow_net else "")
    files_doc = net_doc + ("`files`: inputs to put in the sandbox first, [{\"path\": \"/inputs/a.csv\", \"content\": \"...\", "
                 "\"encoding\": \"utf-8\" or \"base64\"}]. ")
    annotations = types.ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                        idempotent_hint=interpreter is None, open_world_hint=False)

    @server.tool(title="Run Python", annotations=annotations,
                 description=f"Run Python source code in the sandbox and return its exit code, stdout, stderr and the "
                             f"files it wrote under /out. {sandbox} {state} A bare last expression is shown"
                             f"{' as in the REPL' if interpreter is not None else ' only if printed'}. "
                             f"`timeout` is in seconds (capped by the server's limit). {files_doc}")
    async def run_python(code: str, stdin: str | None = None, timeout: float | None = None,
                         files: list[dict[str, str]] | None = None,
                         allow_net: list[str] | None = None) -> types.CallToolResult:
        result = await _guarded(lambda cancel: run(["python", "-c", code], stdin, timeout, files, allow_net, cancel,
                                                   True))
        return _answer(result, cap)

    @server.tool(title="Run a command", annotations=replace_annotations(annotations, idempotent_hint=True),
                 description="Run a command (an argv list, e.g. [\"python\", \"main.py\"]) in a fresh sandbox "
                             "and return its exit code, stdout, stderr and the files it wrote under /out. "
                             f"There is no shell. {sandbox} `timeout` is in seconds (capped by the server's limit). "
                             f"{files_doc}")
    async def run_command(argv: list[str], stdin: str | None = None, timeout: float | None = None,
                          files: list[dict[str, str]] | None = None,
                          allow_net: list[str] | None = None) -> types.CallToolResult:
        if not argv:
            return _answer(RunResult(125, stderr=b"boxer: argv is empty\n"), cap)
        result = await _guarded(lambda cancel: run(argv, stdin if stdin is not None else "", timeout, files, allow_net,
                                                   cancel))
        return _answer(result, cap)

    if interpreter is not None:
        @server.tool(title="Reset the interpreter", description="Start run_python's interpreter anew: every variable, "
                     "import and file of earlier calls is gone.",
                     annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                                       idempotent_hint=True, open_world_hint=False))
        async def reset() -> str:
            await anyio.to_thread.run_sync(interpreter.reset)
            return "The interpreter was started anew."

    return server


def replace_annotations(annotations: types.ToolAnnotations, **changes: Any) -> types.ToolAnnotations:
    return annotations.model_copy(update=changes)


def serve(image: str, options: ServerOptions, cache_dir: str | None = None) -> None:
    """Open the image (checking it) and serve MCP on stdin/stdout until the client hangs up."""
    session = Session(image, cache_dir)
    interpreter = None
    if options.stateful:
        if options.mounts:
            raise RunError("--stateful and -v: the interpreter has no mounts; hand files in with the tools' `files`")
        interpreter = _Lazy(session, options)
    server = create_server(session, options, interpreter, _sandbox(session, options))
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

    try:
        anyio.run(main)
    finally:
        if interpreter is not None:
            interpreter.close()


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
