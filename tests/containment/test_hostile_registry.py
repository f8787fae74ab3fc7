"""What a registry or an OCI layout on disk hands to `boxer pull` / `boxer import` is hostile:
the client must decide how much it reads (a manifest stops at MAX_MANIFEST, a blob at its
declared size, itself capped), and a layout's files are read only if they are regular files
inside the layout (no symbolic link followed, no FIFO waited on), of the size declared,
and kept only once their digest matched. Each attack ends in a one-line error, promptly,
with bounded memory and nothing written."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import wasmtime

from boxer_py.registry import oci

MiB = 1 << 20
RSS_LIMIT_KIB = 300 * 1024  # a pull or import reads at most a few MiB here; the attacks offered 512 MiB+

EXIT7 = wasmtime.wat2wasm("""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 7))))
""")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def boxer_rss(cache_dir: Path, *args: str, timeout: float = 120) -> tuple[int, str, int]:
    """`boxer ARGS` under a parent that reports its peak RSS (KiB): (exit code, stderr, rss)."""
    wrapper = ("import json, resource, subprocess, sys\n"
               "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
               "json.dump({'rc': p.returncode, 'stderr': p.stderr.decode(errors='replace'),"
               " 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, sys.stdout)\n")
    env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0"}
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "boxer_py", *args],
                          capture_output=True, text=True, env=env, timeout=timeout)
    report = json.loads(proc.stdout)
    return report["rc"], report["stderr"], report["rss"]


def assert_one_line_refusal(rc: int, stderr: str, *words: str) -> None:
    assert rc == 1, stderr
    assert stderr.startswith("boxer: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and "MemoryError" not in stderr
    for word in words:
        assert word in stderr, stderr


# --- an image, as blobs ----------------------------------------------------------------------

@dataclass
class Blobs:
    """A small runnable OCI image (one gzip layer holding a Wasm program), as raw blobs."""

    config: bytes
    layer: bytes
    layer_size: int | None = None  # what the manifest declares (default: the real size)

    @classmethod
    def make(cls) -> Blobs:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("app.wasm")
            info.size, info.mode = len(EXIT7), 0o755
            tar.addfile(info, io.BytesIO(EXIT7))
        tar_bytes = buf.getvalue()
        config = json.dumps({"architecture": "wasm", "os": "wasip1", "config": {"Cmd": ["/app.wasm"]},
                             "rootfs": {"type": "layers", "diff_ids": [sha256(tar_bytes)]},
                             "history": [{"created_by": "test"}]}).encode()
        return cls(config, gzip.compress(tar_bytes, mtime=0))

    def manifest(self) -> bytes:
        size = len(self.layer) if self.layer_size is None else self.layer_size
        return json.dumps({"schemaVersion": 2, "mediaType": oci.MANIFEST,
                           "config": {"mediaType": oci.IMAGE_CONFIG, "digest": sha256(self.config),
                                      "size": len(self.config)},
                           "layers": [{"mediaType": oci.LAYER_GZIP, "digest": sha256(self.layer),
                                       "size": size}]}).encode()

    def write_layout(self, directory: Path) -> dict[str, Path]:
        """An OCI layout by hand; returns the path of each blob by role."""
        blobs = directory / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        manifest = self.manifest()
        paths = {}
        for role, data in (("config", self.config), ("layer", self.layer), ("manifest", manifest)):
            paths[role] = blobs / sha256(data).removeprefix("sha256:")
            paths[role].write_bytes(data)
        index = {"schemaVersion": 2, "manifests": [{"mediaType": oci.MANIFEST, "digest": sha256(manifest),
                                                    "size": len(manifest)}]}
        (directory / "index.json").write_text(json.dumps(index))
        (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        return paths


# --- hostile layouts on disk ------------------------------------------------------------------

@pytest.fixture
def layout(tmp_path):
    return tmp_path / "layout", tmp_path / "out.wasm"


def test_an_untampered_layout_imports_and_runs(cache_dir, layout, boxer):
    directory, out = layout
    Blobs.make().write_layout(directory)
    r = boxer("import", str(directory), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert boxer("run", str(out)).returncode == 7


def test_a_blob_symlinked_to_a_host_file_is_not_followed(cache_dir, layout, tmp_path):
    """The host file even holds exactly the right bytes: still refused, it is not in the layout."""
    directory, out = layout
    blobs = Blobs.make()
    paths = blobs.write_layout(directory)
    host_file = tmp_path / "host-file"
    host_file.write_bytes(blobs.layer)
    paths["layer"].unlink()
    paths["layer"].symlink_to(host_file)
    rc, stderr, _ = boxer_rss(cache_dir, "import", str(directory), "-o", str(out))
    assert_one_line_refusal(rc, stderr, "symbolic link")
    assert not out.exists()


@pytest.mark.parametrize("what", ["blobs", "blobs/sha256", "index.json"])
def test_a_symlinked_directory_or_index_is_not_followed(cache_dir, layout, tmp_path, what):
    directory, out = layout
    Blobs.make().write_layout(directory)
    elsewhere = tmp_path / "elsewhere"
    (directory / what).rename(elsewhere)
    (directory / what).symlink_to(elsewhere)
    rc, stderr, _ = boxer_rss(cache_dir, "import", str(directory), "-o", str(out))
    assert_one_line_refusal(rc, stderr, "symbolic link")
    assert not out.exists()


@pytest.mark.parametrize("role", ["config", "layer", "manifest"])
def test_a_fifo_blob_is_refused_not_waited_on(cache_dir, layout, role):
    """It used to hang `boxer import` for ever (nobody writes to the FIFO)."""
    directory, out = layout
    path = Blobs.make().write_layout(directory)[role]
    path.unlink()
    os.mkfifo(path)
    rc, stderr, _ = boxer_rss(cache_dir, "import", str(directory), "-o", str(out), timeout=60)
    assert_one_line_refusal(rc, stderr, "not a regular file")
    assert not out.exists()


def test_a_declared_size_of_2_to_the_50_is_refused_before_reading(cache_dir, layout):
    """It died with MemoryError (a read of 2**50 + 1 bytes)."""
    directory, out = layout
    blobs = Blobs.make()
    blobs.layer_size = 1 << 50
    blobs.write_layout(directory)
    rc, stderr, rss = boxer_rss(cache_dir, "import", str(directory), "-o", str(out))
    assert_one_line_refusal(rc, stderr, "declares 1125899906842624 bytes")
    assert rss < RSS_LIMIT_KIB
    assert not out.exists()


def test_a_huge_blob_that_fails_its_digest_is_never_held_in_memory(cache_dir, layout):
    """A 1 GiB (sparse) layer whose size matches its descriptor but not its digest: it was read
    whole into memory before the check; now it is hashed as it streams, and refused."""
    directory, out = layout
    blobs = Blobs.make()
    paths = blobs.write_layout(directory)
    # the manifest declares 1 GiB for the layer (the digest stays the real layer's)
    blobs.layer_size = 1 << 30
    manifest = blobs.manifest()
    paths["manifest"].unlink()
    (paths["manifest"].parent / sha256(manifest).removeprefix("sha256:")).write_bytes(manifest)
    index = {"schemaVersion": 2, "manifests": [{"mediaType": oci.MANIFEST, "digest": sha256(manifest),
                                                "size": len(manifest)}]}
    (directory / "index.json").write_text(json.dumps(index))
    with open(paths["layer"], "r+b") as f:
        f.truncate(1 << 30)
    rc, stderr, rss = boxer_rss(cache_dir, "import", str(directory), "-o", str(out))
    assert_one_line_refusal(rc, stderr, "digest")
    assert rss < RSS_LIMIT_KIB, f"peak RSS {rss >> 10} MiB"
    assert not out.exists()


def test_a_blob_larger_than_declared_is_refused_without_reading_it(cache_dir, layout):
    directory, out = layout
    path = Blobs.make().write_layout(directory)["layer"]
    with open(path, "r+b") as f:
        f.truncate(1 << 30)
    rc, stderr, rss = boxer_rss(cache_dir, "import", str(directory), "-o", str(out))
    assert_one_line_refusal(rc, stderr, "1073741824 bytes")
    assert rss < RSS_LIMIT_KIB
    assert not out.exists()


# --- a hostile registry on 127.0.0.1 ------------------------------------------------------------

HOSTILE_TOTAL = 512 * MiB  # what the hostile registry offers to send at most


@dataclass
class Hostile:
    """A registry whose answers are chosen by the test: `routes` maps a path to a function
    (handler) -> None; `sent` counts the bytes each path's bodies got into the socket."""

    routes: dict = field(default_factory=dict)
    sent: dict = field(default_factory=dict)
    asked: list = field(default_factory=list)
    port: int = 0


def stream(handler, total: int = HOSTILE_TOTAL, status: int = 200, headers: dict | None = None,
           length: int | None = None) -> None:
    """Send `total` bytes of body (stopping when the client goes), close-delimited unless
    `length` is declared."""
    handler.send_response(status)
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.send_header("Connection", "close")
    handler.end_headers()
    chunk = b" " * MiB
    count = 0
    try:
        while count < total:
            handler.wfile.write(chunk)
            count += len(chunk)
            handler.server.hostile.sent[handler.path] = count
    except OSError:
        pass


@pytest.fixture
def hostile():
    state = Hostile()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            state.asked.append(self.path)
            route = state.routes.get(self.path)
            if self.path == "/v2/":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            elif route is not None:
                route(self)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.hostile = state
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def pull(cache_dir, hostile, tmp_path, ref: str = "evil/app:latest"):
    out = tmp_path / "pulled.wasm"
    rc, stderr, rss = boxer_rss(cache_dir, "pull", "-q", f"127.0.0.1:{hostile.port}/{ref}", "-o", str(out))
    assert not out.exists()
    return rc, stderr, rss


MANIFEST_PATH = "/v2/evil/app/manifests/latest"


def test_an_endless_manifest_is_read_only_up_to_its_cap(cache_dir, hostile, tmp_path):
    """It was buffered whole before the 4 MiB check (1.5 GiB from a hostile registry)."""
    hostile.routes[MANIFEST_PATH] = lambda h: stream(h, headers={"Content-Type": oci.MANIFEST})
    rc, stderr, rss = pull(cache_dir, hostile, tmp_path)
    assert_one_line_refusal(rc, stderr, "implausibly large")
    assert hostile.sent[MANIFEST_PATH] < 64 * MiB, hostile.sent  # the client stopped reading early
    assert rss < RSS_LIMIT_KIB, f"peak RSS {rss >> 10} MiB"


def test_a_manifest_declaring_a_huge_length_is_not_read(cache_dir, hostile, tmp_path):
    hostile.routes[MANIFEST_PATH] = lambda h: stream(h, length=HOSTILE_TOTAL, headers={"Content-Type": oci.MANIFEST})
    rc, stderr, rss = pull(cache_dir, hostile, tmp_path)
    assert_one_line_refusal(rc, stderr, "implausibly large")
    assert hostile.sent.get(MANIFEST_PATH, 0) < 64 * MiB
    assert rss < RSS_LIMIT_KIB


def test_a_redirect_or_an_error_with_a_huge_body_is_not_read(cache_dir, hostile, tmp_path):
    hostile.routes[MANIFEST_PATH] = lambda h: stream(h, status=302, headers={"Location": "/v2/evil/app/manifests/x"})
    hostile.routes["/v2/evil/app/manifests/x"] = lambda h: stream(h, status=404)
    rc, stderr, rss = pull(cache_dir, hostile, tmp_path)
    assert_one_line_refusal(rc, stderr, "not found")
    assert all(n < 64 * MiB for n in hostile.sent.values()), hostile.sent
    assert rss < RSS_LIMIT_KIB


def _serve_image(hostile: Hostile, blobs: Blobs) -> None:
    manifest = blobs.manifest()

    def answer(data: bytes, media_type: str):
        def route(h):
            h.send_response(200)
            h.send_header("Content-Type", media_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        return route

    hostile.routes[MANIFEST_PATH] = answer(manifest, oci.MANIFEST)
    hostile.routes[f"/v2/evil/app/blobs/{sha256(blobs.config)}"] = answer(blobs.config, "application/octet-stream")
    hostile.routes[f"/v2/evil/app/blobs/{sha256(blobs.layer)}"] = answer(blobs.layer, "application/octet-stream")


def test_the_hostile_registry_serves_a_good_image(cache_dir, hostile, tmp_path, boxer):
    """The control: the same registry, honest, is pulled from."""
    _serve_image(hostile, Blobs.make())
    out = tmp_path / "good.wasm"
    r = boxer("pull", "-q", f"127.0.0.1:{hostile.port}/evil/app:latest", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert boxer("run", str(out)).returncode == 7


def test_a_layer_declaring_2_to_the_50_bytes_is_refused_before_it_is_asked_for(cache_dir, hostile, tmp_path):
    blobs = Blobs.make()
    blobs.layer_size = 1 << 50
    _serve_image(hostile, blobs)
    rc, stderr, rss = pull(cache_dir, hostile, tmp_path)
    assert_one_line_refusal(rc, stderr, "declares 1125899906842624 bytes")
    assert f"/v2/evil/app/blobs/{sha256(blobs.layer)}" not in hostile.asked
    assert rss < RSS_LIMIT_KIB


def test_a_blob_longer_than_declared_is_read_only_up_to_its_size(cache_dir, hostile, tmp_path):
    blobs = Blobs.make()
    _serve_image(hostile, blobs)
    path = f"/v2/evil/app/blobs/{sha256(blobs.layer)}"
    hostile.routes[path] = lambda h: stream(h)  # close-delimited, 512 MiB
    rc, stderr, rss = pull(cache_dir, hostile, tmp_path)
    assert_one_line_refusal(rc, stderr, "digest")
    assert hostile.sent[path] < 64 * MiB, hostile.sent
    assert rss < RSS_LIMIT_KIB


@pytest.mark.parametrize("index", [
    b'{"schemaVersion": 2, "manifests": 5}',
    b'{"schemaVersion": 2, "manifests": [{"annotations": 7, "mediaType": "x", "digest": 1, "size": "2"}]}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:' + b"0" * 64 + b'", "size": 1e999}]}',
    b'{"schemaVersion": 2, "manifests": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
], ids=["not-a-list", "wrong-types", "infinite-size", "nested-too-deep"])
def test_an_index_of_an_unexpected_shape_is_one_line(cache_dir, layout, index):
    """Found by the fuzz test (test_fuzz.py): these gave TypeError, OverflowError or
    RecursionError tracebacks."""
    directory, out = layout
    Blobs.make().write_layout(directory)
    (directory / "index.json").write_bytes(index)
    rc, stderr, _ = boxer_rss(cache_dir, "import", str(directory), "-o", str(out))
    assert rc == 1 and stderr.startswith("boxer: ") and stderr.count("\n") == 1, stderr
    assert not out.exists()
