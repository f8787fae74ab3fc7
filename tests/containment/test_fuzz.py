"""Fuzzing, bounded in time and seeded: random, truncated, mutated and oversized inputs for the
Dockerfile parser, the image reader, the OCI layout reader (import) and the MCP server.

Asserted for every input: no traceback (only BoxerError subclasses, or a JSON-RPC error from
the MCP server, which stays up), no hang (a time limit per input), bounded memory (an
address-space limit on the fuzzing process, a peak-RSS check on the MCP server).

Reproduce a failure with the seed it prints: BOXER_FUZZ_SEED=<seed> pytest tests/containment/test_fuzz.py.
Locally each run draws a new seed; with CI set the seed is fixed, so CI's verdict never depends on luck.
BOXER_FUZZ_SECONDS sets the time per target (default 5). The in-process targets run in a
child process (`python test_fuzz.py TARGET SEED SECONDS`), so a hang or a memory blow-up is
caught from outside.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

SECONDS = float(os.environ.get("BOXER_FUZZ_SECONDS") or 5)
PER_INPUT = 10.0  # seconds any one input may take
MEMORY = 2 << 30  # address space of the fuzzing process (the parsers need a few MiB)


def _seed() -> int:
    """A random seed to explore; in CI a fixed one, so that a run's result never depends on luck."""
    if os.environ.get("BOXER_FUZZ_SEED"):
        return int(os.environ["BOXER_FUZZ_SEED"])
    return 20261130 if os.environ.get("CI") else random.SystemRandom().randrange(1 << 32)


# --- mutations --------------------------------------------------------------------------------

TOKENS = [b"\\", b"\\\n", b"\n", b"\r\n", b"\"", b"'", b"$", b"${", b"}", b"${A:-", b"$A$A$A", b"[", b"]",
          b"<<EOF\n", b"<<-'X'\n", b"EOF\n", b"#", b"# escape=`\n", b"# syntax=x\n", b"--", b"--from=",
          b"--chown=", b"--chmod=", b"=", b" ", b"\t", b"\x00", b"\xff", b"\xed\xa0\x80", "é".encode(),
          "\u2028".encode(), b"..", b"/", b"*", b"**/", b"{" * 50, b"[" * 50, b"1e999", b"-1", b"NaN"]


def mutate(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    data = bytearray(data)
    for _ in range(rounds or rng.randint(1, 8)):
        choice = rng.random()
        pos = rng.randint(0, len(data))
        if choice < 0.25 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif choice < 0.45:
            data[pos:pos] = rng.choice(TOKENS)
        elif choice < 0.55:
            del data[pos:pos + rng.randint(1, 64)]
        elif choice < 0.65:
            data = data[:pos]  # truncated
        elif choice < 0.72 and data:
            start = rng.randrange(len(data))
            chunk = data[start:start + rng.randint(1, 200)]
            data[pos:pos] = chunk * rng.randint(1, 2000)  # oversized by repetition
        elif choice < 0.8:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif choice < 0.9 and data:
            start = rng.randrange(len(data))
            data[start:start + 1] = b""
        else:
            data += rng.choice(TOKENS) * rng.randint(1, 5000)
    return bytes(data)


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2 ** 31, 2 ** 50, 2 ** 64, -2 ** 63, 10 ** 30])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, 1e-308, float("nan"), float("inf")])
    if kind in (4, 5, 6):
        return rng.choice(["", "x" * rng.randint(1, 5000), "sha256:" + "0" * 64, "../../etc/passwd", "\udcff",
                           "a\x00b", "wasip1", "wasm", "application/vnd.oci.image.manifest.v1+json"])
    if kind in (7, 8):
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["mediaType", "digest", "size", "layers", "config", "manifests", "annotations",
                        "schemaVersion", "rootfs", "diff_ids", "os", "architecture", "x"]):
            random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def mutate_json(rng: random.Random, doc):
    """The document with one value somewhere replaced by a random one."""
    if isinstance(doc, dict) and doc and rng.random() < 0.7:
        key = rng.choice(list(doc))
        return {**doc, key: mutate_json(rng, doc[key])}
    if isinstance(doc, list) and doc and rng.random() < 0.7:
        i = rng.randrange(len(doc))
        return [*doc[:i], mutate_json(rng, doc[i]), *doc[i + 1:]]
    return random_json(rng)


def dumps(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=True, allow_nan=True).encode()


# --- seeds: valid inputs to start from --------------------------------------------------------

DOCKERFILES = [
    b"FROM python:3.12\nWORKDIR /app\nCOPY . .\nRUN pip install -r requirements.txt\nCMD [\"python\", \"main.py\"]\n",
    b"# syntax=docker/dockerfile:1\nARG V=3.12\nFROM python:${V} AS base\nENV A=1 B=\"two words\" \\\n    C=$A\n"
    b"LABEL a=b \"c d\"=e\nUSER 1000:1000\nEXPOSE 80/tcp\nENTRYPOINT [\"python\"]\n",
    b"FROM scratch\nCOPY --chown=1:1 --chmod=755 hello.wasm /hello.wasm\nADD a.tar /\nCMD [\"/hello.wasm\"]\n",
    b"FROM python:3.12 AS build\nRUN <<EOF\necho hi > /x\nEOF\nFROM build\nCOPY --from=build /x /y\n"
    b"SHELL [\"/bin/sh\", \"-c\"]\nRUN echo $HOME && \\\n  ls -la # comment\nHEALTHCHECK NONE\nSTOPSIGNAL TERM\n",
    b"# escape=`\nFROM python:3.12\nRUN echo a `\n  b\nVOLUME /data\nONBUILD RUN x\nMAINTAINER me\n",
]

_WASM = (b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x05\x03\x01\0\x01\x07\x13\x02\x06memory\x02\0"
         b"\x06_start\0\0\x0a\x04\x01\x02\0\x0b")


def small_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("app.wasm", _WASM), ("etc/hostname", b"box\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("bin")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    return buf.getvalue()


def small_image() -> bytes:
    from boxer_py.image import imagefile
    from boxer_py.image.config import ImageConfig, ImageSpec

    tar = small_tar()
    spec = ImageSpec(ImageConfig(cmd=("/app.wasm",)), (imagefile.sha256(tar),), ("test",))
    return imagefile.encode(spec, [tar], {"org.opencontainers.image.ref.name": "fuzz:latest"})[0]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- targets (run in the child process) -------------------------------------------------------

def fuzz_dockerfile(rng: random.Random, _work: Path):
    from boxer_py.dockerfile.parser import parse

    base = rng.choice(DOCKERFILES)
    if rng.random() < 0.1:
        base = b"".join(rng.choice(DOCKERFILES) for _ in range(rng.randint(2, 50)))
    data = mutate(rng, base)
    text = data.decode("utf-8", "replace")
    return data, lambda: parse(text, "Dockerfile")


def fuzz_image(rng: random.Random, work: Path):
    from boxer_py.image import imagefile

    data = mutate(rng, small_image(), rng.randint(1, 4))
    if rng.random() < 0.2:  # a section size (LEB128 right after a 0 byte) made huge
        at = [i for i in range(8, min(len(data), 400)) if data[i] == 0]
        if at:
            i = rng.choice(at) + 1
            data = data[:i] + bytes([0xff] * rng.randint(1, 10)) + b"\x0f" + data[i + 1:]
    path = work / "image.wasm"
    path.write_bytes(data)

    def run():
        image = imagefile.read(path)
        for d in image.layers:
            image.layer(d)
        imagefile.decode(data, "fuzz", verify=rng.random() < 0.5)
    return data, run


class LayoutCase:
    """A valid OCI layout (config, one gzip layer, manifest, index), then one kind of damage."""

    def __init__(self, rng: random.Random):
        tar = small_tar()
        self.layer = gzip.compress(tar, mtime=0)
        self.config = {"architecture": "wasm", "os": "wasip1", "config": {"Cmd": ["/app.wasm"]},
                       "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
                       "history": [{"created_by": "fuzz"}]}
        self.rng = rng

    def write(self, directory: Path) -> bytes:
        rng = self.rng
        config = dumps(self.config if rng.random() < 0.6 else mutate_json(rng, self.config))
        layer = self.layer if rng.random() < 0.8 else mutate(rng, self.layer, 2)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                               "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "digest": sha256(self.layer), "size": len(self.layer)}]}
        if rng.random() < 0.5:
            manifest = mutate_json(rng, manifest)
        manifest_raw = dumps(manifest)
        if rng.random() < 0.2:
            manifest_raw = mutate(rng, manifest_raw, 2)
        index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                    "digest": sha256(manifest_raw), "size": len(manifest_raw)}]}
        if rng.random() < 0.3:
            index = mutate_json(rng, index)
        index_raw = dumps(index)
        if rng.random() < 0.1:
            index_raw = mutate(rng, index_raw, 2)
        blobs = directory / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        files = {}
        for data in (config, layer, manifest_raw):
            files[sha256(data)] = blobs / sha256(data).removeprefix("sha256:")
            files[sha256(data)].write_bytes(data)
        (directory / "index.json").write_bytes(index_raw)
        (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        victim = rng.choice([*files.values(), directory / "index.json", directory / "oci-layout", blobs])
        damage = rng.random()
        if damage < 0.08:
            victim.unlink() if victim.is_file() else shutil.rmtree(victim)
        elif damage < 0.14 and victim.is_file():
            victim.unlink()
            os.mkfifo(victim)
        elif damage < 0.2:
            os.rename(victim, directory.parent / "moved")
            victim.symlink_to(directory.parent / "moved")
        elif damage < 0.26 and victim.is_file():
            with open(victim, "r+b") as f:
                f.truncate(rng.choice([0, 1, 1 << 30]))  # sparse when grown
        elif damage < 0.3 and victim.is_file():
            victim.unlink()
            victim.mkdir()
        return index_raw + b"\n" + manifest_raw


def fuzz_layout(rng: random.Random, work: Path):
    from boxer_py.registry.transfer import import_layout

    case = work / f"case{rng.randrange(1 << 30)}"
    case.mkdir()
    directory = case / "layout"
    directory.mkdir()
    data = LayoutCase(rng).write(directory)
    out = case / "out.wasm"

    def run():
        try:
            import_layout(directory, out)
        finally:
            shutil.rmtree(case, ignore_errors=True)
    return data, run


TARGETS = {"dockerfile": fuzz_dockerfile, "image": fuzz_image, "layout": fuzz_layout}


class _Timeout(BaseException):
    pass


def child(target: str, seed: int, seconds: float) -> int:
    """Run one target for `seconds`; print one JSON line: the count, or the first failure."""
    from boxer_py.errors import BoxerError

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    def expire(*_):
        raise _Timeout()

    signal.signal(signal.SIGALRM, expire)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="boxer-fuzz-"))
    count, deadline = 0, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            data, run = TARGETS[target](rng, work)
            count += 1
            signal.setitimer(signal.ITIMER_REAL, PER_INPUT)
            try:
                run()
            except BoxerError as e:
                message = str(e)
                if "\n" in message.strip():
                    return _report(target, seed, count, data, f"a multi-line error: {message[:2000]!r}")
            except _Timeout:
                return _report(target, seed, count, data, f"input {count} took over {PER_INPUT:g}s")
            except BaseException:
                return _report(target, seed, count, data, traceback.format_exc()[-4000:])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"ok": count}))
    return 0


def _report(target: str, seed: int, count: int, data: bytes, why: str) -> int:
    print(json.dumps({"target": target, "seed": seed, "input": count, "why": why,
                      "data": base64.b64encode(data[:20000]).decode()}))
    return 1


def _run_child(target: str) -> None:
    seed = _seed()
    where = f"{target} fuzzing, seed {seed} (rerun: BOXER_FUZZ_SEED={seed})"
    try:
        proc = subprocess.run([sys.executable, __file__, target, str(seed), str(SECONDS)], capture_output=True,
                              text=True, timeout=SECONDS + 3 * PER_INPUT + 30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{where}: hung (an input outran its alarm)") from None
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"{where}: {proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
    assert json.loads(lines[-1])["ok"] > 0, where
    print(f"{where}: {json.loads(lines[-1])['ok']} inputs")


def test_fuzz_dockerfile_parser():
    _run_child("dockerfile")


def test_fuzz_image_reader():
    _run_child("image")


def test_fuzz_oci_layout_reader():
    _run_child("layout")


# --- the MCP server ----------------------------------------------------------------------------

def mcp_lines(rng: random.Random, next_id) -> list[bytes]:
    """A few lines: requests with random arguments, mutated and broken ones."""
    tools = ["run_python", "run_command", "nope", ""]
    arguments = {"code": rng.choice(["print(1)", "import sys; sys.exit(3)", "x" * 5000, "", "\x00"]),
                 "argv": rng.choice([["python", "-c", "print(2)"], [], ["\x00"], ["a" * 10000], "python"]),
                 "stdin": rng.choice([None, "", "abc", "é" * 1000]),
                 "timeout": rng.choice([None, 1, 2.5, "NaN", "inf", -1, 0, 1e308, "5", [], {}])}
    arguments = {k: v for k, v in arguments.items() if rng.random() < 0.7}
    if rng.random() < 0.3:
        arguments = mutate_json(rng, arguments)
    params = {"name": rng.choice(tools), "arguments": arguments}
    method = rng.choice(["tools/call"] * 6 + ["tools/list", "ping", "resources/list", "x/y", ""])
    doc = {"jsonrpc": "2.0", "id": next_id(), "method": method, "params": params}
    if rng.random() < 0.2:
        doc = mutate_json(rng, doc)
    line = dumps(doc)
    if rng.random() < 0.3:
        line = mutate(rng, line, rng.randint(1, 3)).replace(b"\n", b" ")
    return [line]


def test_fuzz_mcp_server(hello_image, cache_dir, tmp_path):
    from boxer_py.cli.common import utf8_clean

    seed = _seed()
    where = f"MCP fuzzing, seed {seed} (rerun: BOXER_FUZZ_SEED={seed})"
    rng = random.Random(seed)
    stderr = open(tmp_path / "stderr", "w+b")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "boxer_py", "mcp", "--timeout", "5", "--memory", "128m",
                             "--max-output", "16k", str(hello_image)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr,
                            env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir)})
    buffered, answers = b"", []

    def read_until(request_id, seconds: float) -> dict:
        nonlocal buffered
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            while b"\n" in buffered:
                line, _, buffered = buffered.partition(b"\n")
                answer = json.loads(line)  # every line the server writes is JSON
                answers.append(answer)
                # an id with a lone surrogate cannot be written as UTF-8: it comes back escaped
                if answer.get("id") in (request_id, utf8_clean(request_id)):
                    return answer
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 1 << 20)
                assert chunk, f"{where}: the server ended; {_log(stderr)}"
                buffered += chunk
        raise AssertionError(f"{where}: no answer to {request_id!r} within {seconds:g}s; {_log(stderr)}")

    def send(line: bytes) -> None:
        proc.stdin.write(line + b"\n")
        proc.stdin.flush()

    ids = iter(range(10, 1 << 30))
    try:
        send(dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}}))
        read_until(1, 120)
        send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        deadline = time.monotonic() + 2 * SECONDS  # each call runs a sandbox: fewer inputs per second
        sent = 0
        while time.monotonic() < deadline or sent < 20:  # at least 20 inputs, even on a slow machine
            for line in mcp_lines(rng, lambda: next(ids)):
                send(line)
                sent += 1
                # each input is answered in time: a request by its own answer, anything else
                # (a notification, a line that is not JSON-RPC) by the answer to a ping after it
                try:
                    doc = json.loads(line)
                except (ValueError, RecursionError):  # deep nesting: the server must say so too
                    doc = None
                expected = doc.get("id") if isinstance(doc, dict) and "method" in doc else None
                if not isinstance(expected, (int, str)) or isinstance(expected, bool):
                    expected = next(ids)
                    send(dumps({"jsonrpc": "2.0", "id": expected, "method": "ping"}))
                read_until(expected, 180)  # generous: a 2-core CI machine under load
        final = next(ids)
        send(dumps({"jsonrpc": "2.0", "id": final, "method": "tools/call",
                    "params": {"name": "run_python", "arguments": {"code": "print('alive')"}}}))
        answer = read_until(final, 120)
        assert answer["result"]["structuredContent"]["stdout"] == "alive\n", f"{where}: {answer}"
        with open(f"/proc/{proc.pid}/status") as f:
            peak_kib = int(f.read().split("VmHWM:")[1].split()[0])
        assert peak_kib < (1536 << 10), f"{where}: the server's peak RSS is {peak_kib >> 10} MiB"
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = _log(stderr)
    stderr.close()
    assert "Traceback" not in log, f"{where}: {log}"
    assert proc.returncode == 0, f"{where}: exit {proc.returncode}; {log}"
    print(f"{where}: {sent} lines, {len(answers)} answers")


def _log(stderr) -> str:
    stderr.seek(0)
    return stderr.read().decode(errors="replace")[-4000:]


if __name__ == "__main__":
    sys.exit(child(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
