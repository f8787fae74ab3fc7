"""Debian's containerd as a Kubernetes node runs it, for tests: started with its own config,
root, state and socket under a temp dir; `pull` is the CRI `PullImage` call the kubelet makes.
Not fixtures, so tests/test_containerd.py and tests/test_everywhere.py share it."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from localregistry import REGISTRY_BINARY

CONTAINERD = shutil.which("containerd") or "/usr/bin/containerd"
CTR = shutil.which("ctr") or "/usr/bin/ctr"
NAMESPACE = "k8s.io"   # where the CRI plugin keeps the kubelet's images


def missing() -> str:
    """Why this machine cannot run these tests ("" if it can). In CI (`make test` installs the
    Debian packages) a missing binary fails the run instead of hiding it."""
    if all(os.access(b, os.X_OK) for b in (CONTAINERD, CTR, REGISTRY_BINARY)) or os.environ.get("CI"):
        return ""
    return "needs Debian's containerd and docker-registry: run `make system`"


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

    @contextmanager
    def mounted(self, ref: str, target: Path, writable: bool = False) -> Iterator[Path]:
        """The pulled image's snapshot mounted at `target` (a new directory), as a shim sees it;
        `writable`: a snapshot of its own that the guest may write to, removed afterwards (a
        container's rootfs is writable: a program that saves a file needs it)."""
        target.mkdir()
        self.ctr("images", "mount", *(["--rw"] if writable else []), ref, str(target))
        try:
            yield target
        finally:
            self.ctr("images", "unmount", *(["--rm"] if writable else []), str(target))

    def pull(self, ref: str) -> str:
        """CRI `ImageService.PullImage` over gRPC, as the kubelet sends it: the image id."""
        import grpc

        with grpc.insecure_channel(f"unix://{self.socket}") as channel:
            call = channel.unary_unary("/runtime.v1.ImageService/PullImage")
            answer = call(_field(1, _field(1, ref.encode())), timeout=300)   # PullImageRequest{image{image}}
        assert answer[:1] == b"\x0a", answer   # PullImageResponse{image_ref}
        return answer[2:].decode()


def version() -> tuple[int, ...]:
    out = subprocess.run([CONTAINERD, "--version"], capture_output=True, text=True, timeout=30).stdout
    word = next(w for w in out.split() if w.lstrip("v")[:1].isdigit())   # "1.6.20~ds1" or "v1.7.7"
    return tuple(int(n) for n in word.lstrip("v").split("~")[0].split("+")[0].split("-")[0].split(".")[:3])
