"""The host a hostile guest must not touch: a directory tree with a secret outside every mount,
a writable and a read-only mount, a secret in the host environment, and real listening
sockets that must never see a connection."""
from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hostile_world import DATA, SECRET, SECRET_ENV

import boxer_py

DOCKERFILE = """\
FROM python:3.12
ENV APP_MODE=sandbox
WORKDIR /app
COPY main.py data.txt ./
CMD ["python", "main.py"]
"""
MAIN = "print(open('data.txt').read().strip())\n"


@pytest.fixture(scope="session")
def hostile_image(tmp_path_factory) -> Path:
    """The python base image, built from a Dockerfile, with files of its own to tamper with."""
    ctx = tmp_path_factory.mktemp("hostile-ctx")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "main.py").write_text(MAIN)
    (ctx / "data.txt").write_text(DATA)
    out = tmp_path_factory.mktemp("hostile") / "hostile.wasm"
    boxer_py.build(ctx, out, tag="hostile")
    return out


@pytest.fixture(scope="session")
def hostile_box(hostile_image, launcher) -> boxer_py.Session:
    box = boxer_py.Session(hostile_image, launcher=launcher)
    assert box.run_python("pass", timeout=1).exit_code == 0  # warm: the module is loaded once, then kept
    return box


@dataclass
class Listener:
    """A TCP and a UDP socket on 127.0.0.1 (same port) that count whatever reaches them."""

    port: int
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def listener():
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    state = Listener(port)
    stop = threading.Event()

    def accept():
        tcp.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, peer = tcp.accept()
            except OSError:
                continue
            state.hits.append(f"tcp {peer}")
            conn.close()

    def receive():
        udp.settimeout(0.2)
        while not stop.is_set():
            try:
                _, peer = udp.recvfrom(65536)
            except OSError:
                continue
            state.hits.append(f"udp {peer}")

    threads = [threading.Thread(target=f, daemon=True) for f in (accept, receive)]
    for t in threads:
        t.start()
    yield state
    stop.set()
    for t in threads:
        t.join()
    tcp.close()
    udp.close()


@dataclass
class World:
    root: Path

    @property
    def outside(self) -> Path:
        return self.root / "outside"

    @property
    def rw(self) -> Path:
        return self.root / "rw"

    @property
    def ro(self) -> Path:
        return self.root / "ro"

    @property
    def mounts(self) -> list[str]:
        return [f"{self.rw}:/data", f"{self.ro}:/ro:ro"]

    def snapshot(self, under: Path | None = None) -> dict[str, str]:
        """Every entry under the world (or one part of it): type plus content hash or link target."""
        top = under or self.root
        entries = {}
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                rel = p.relative_to(self.root).as_posix()
                if p.is_symlink():
                    entries[rel] = "link:" + os.readlink(p)
                elif p.is_dir():
                    entries[rel] = "dir"
                else:
                    entries[rel] = "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
        return entries


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    w = World(tmp_path / "world")
    w.outside.mkdir(parents=True)
    (w.outside / "secret.txt").write_text(SECRET + "\n")
    w.rw.mkdir()
    (w.rw / "inside.txt").write_text("inside the writable mount\n")
    w.ro.mkdir()
    (w.ro / "ro.txt").write_text("inside the read-only mount\n")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return w
