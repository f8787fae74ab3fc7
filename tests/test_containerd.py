"""What a Kubernetes node does with a pushed image, as far as it can be done here: Debian's
containerd (started by this module, with its own config, root, state and socket under a temp
dir) pulls the image through the CRI `PullImage` call the kubelet makes and unpacks it; the
snapshot is mounted and run the way runwasi's shims run it (tests/runwasi.py: the plain
wasmtime CLI, only `/` preopened); the output must be `boxer run`'s, byte for byte."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import runwasi
from localregistry import REGISTRY_BINARY, LocalRegistry

CONTAINERD = shutil.which("containerd") or "/usr/bin/containerd"
CTR = shutil.which("ctr") or "/usr/bin/ctr"
NAMESPACE = "k8s.io"   # where the CRI plugin keeps the kubelet's images

# Outside CI a machine without the Debian packages skips; in CI (`make test` installs them) a
# missing binary fails the run instead of hiding it.
pytestmark = pytest.mark.skipif(not all(os.access(b, os.X_OK) for b in (CONTAINERD, CTR, REGISTRY_BINARY))
                                and not os.environ.get("CI"),
                                reason="needs Debian's containerd and docker-registry: run `make system`")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field: all that CRI's PullImageRequest needs."""
    return bytes([number << 3 | 2]) + _varint(len(data)) + data


class Containerd:
    """containerd on a socket of its own; `pull` is the kubelet's CRI call, `ctr` the rest."""

    def __init__(self, root: Path, registry_host: str):
        self.root, self.socket = root, root / "containerd.sock"
        certs = root / "certs.d" / registry_host
        certs.mkdir(parents=True)
        # The CRI plugin reaches a plain-http registry only through hosts.toml, as a node would.
        (certs / "hosts.toml").write_text(f'server = "http://{registry_host}"\n'
                                          f'[host."http://{registry_host}"]\n  capabilities = ["pull", "resolve"]\n')
        (root / "config.toml").write_text("\n".join([
            "version = 2",
            f'root = "{root / "root"}"',
            f'state = "{root / "state"}"',
            'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", '
            '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", '
            '"io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]',
            f'[grpc]\n  address = "{self.socket}"',
            f'[ttrpc]\n  address = "{self.socket}.ttrpc"',
            '[debug]\n  address = ""',
            '[metrics]\n  address = ""',
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{root / "opt"}"',
            f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{root / "certs.d"}"',
        ]) + "\n")
        self.log = root / "containerd.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        """"" once containerd serves its socket; otherwise why it cannot run here."""
        if os.geteuid() != 0:
            return "containerd needs root (its snapshotters mount) and this test runs as a normal user"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([CONTAINERD, "--config", str(self.root / "config.toml")],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                lines = [line for line in self.log.read_text(errors="replace").splitlines() if "level=fatal" in line]
                return f"containerd exited with {self.process.returncode}: {(lines or ['(no fatal line)'])[-1][:300]}"
            if self.socket.exists() and self.ctr("version", check=False).returncode == 0:
                return ""
            time.sleep(0.1)
        return "containerd did not serve its socket within 60 s"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([CTR, "--address", str(self.socket), "--namespace", NAMESPACE, *args],
                           capture_output=True, text=True, timeout=300)
        assert not check or r.returncode == 0, f"ctr {' '.join(args)}: {r.stderr}"
        return r

    def pull(self, ref: str) -> str:
        """CRI `ImageService.PullImage` over gRPC, as the kubelet sends it: the image id."""
        import grpc

        with grpc.insecure_channel(f"unix://{self.socket}") as channel:
            call = channel.unary_unary("/runtime.v1.ImageService/PullImage")
            answer = call(_field(1, _field(1, ref.encode())), timeout=300)   # PullImageRequest{image{image}}
        assert answer[:1] == b"\x0a", answer   # PullImageResponse{image_ref}
        return answer[2:].decode()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def containerd(registry, tmp_path_factory):
    node = Containerd(tmp_path_factory.mktemp("containerd"), registry.host)
    try:
        why = node.start()
        if why:
            pytest.skip(f"containerd cannot start here: {why}")
        yield node
    finally:
        node.stop()


@pytest.mark.parametrize("example", ["hello_image", "hello_c_image"])
def test_an_image_pulled_by_containerd_cri_runs_like_boxer_run(boxer, registry, containerd, wasmtime_cli,
                                                               tmp_path, request, example):
    image = request.getfixturevalue(example)
    expected = boxer("run", str(image))
    assert expected.returncode == 0, expected.stderr
    ref = f"{registry.host}/k8s/{example.replace('_', '-')}:1"
    pushed = boxer("push", "--json", str(image), ref)
    assert pushed.returncode == 0, pushed.stderr
    assert "warnings" not in json.loads(pushed.stdout)

    image_id = containerd.pull(ref)
    assert image_id.startswith("sha256:")
    listed = containerd.ctr("images", "ls").stdout
    assert ref in listed and "wasip1/wasm" in listed, listed
    # What containerd builds the container's process from: the image config it stored.
    config = json.loads(containerd.ctr("content", "get", image_id).stdout)
    root = tmp_path / "rootfs"
    root.mkdir()
    containerd.ctr("images", "mount", ref, str(root))
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        r = runwasi.run(wasmtime_cli, root, config, elsewhere)
    finally:
        containerd.ctr("images", "unmount", str(root))
    assert (r.returncode, r.stdout.decode(), r.stderr.decode()) == (0, expected.stdout, expected.stderr)


def _version() -> tuple[int, ...]:
    out = subprocess.run([CONTAINERD, "--version"], capture_output=True, text=True, timeout=30).stdout
    word = next(w for w in out.split() if w.lstrip("v")[:1].isdigit())   # "1.6.20~ds1" or "v1.7.7"
    return tuple(int(n) for n in word.lstrip("v").split("~")[0].split("+")[0].split("-")[0].split(".")[:3])


def test_the_wasm_artifact_and_containerd_versions_are_as_documented(boxer, registry, containerd, hello_image):
    """docs/registry.md: containerd before 1.6.25 (1.7 before 1.7.7) cannot unpack `--format wasm`."""
    import grpc

    ref = f"{registry.host}/k8s/artifact:1"
    assert boxer("push", "-q", "--format", "wasm", str(hello_image), ref).returncode == 0
    version = _version()
    if version < (1, 6, 25) or (1, 7) <= version < (1, 7, 7):
        with pytest.raises(grpc.RpcError) as failed:
            containerd.pull(ref)
        assert "mismatched image rootfs and manifest layers" in (failed.value.details() or "")
    else:
        assert containerd.pull(ref).startswith("sha256:"), f"containerd {version} unpacks Wasm artifacts"
