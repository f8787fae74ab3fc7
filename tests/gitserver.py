"""A real git server on 127.0.0.1 for the tests: Debian's `git daemon`, one per connection
(`--inetd`) behind a socket on a free port, serving every repository under one directory; it
counts the connections it served."""
from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": os.defpath}


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, input=input, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().strip()


def make_repo(path: Path, files: dict[str, str | bytes], modes: dict[str, str] | None = None) -> str:
    """A repository at `path` (branch main) whose one commit holds `files`; `modes` gives a
    file another mode (`120000`: its content is a symlink's target, `100755`). Its commit."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return commit(path, files, modes)


def commit(path: Path, files: dict[str, str | bytes], modes: dict[str, str] | None = None) -> str:
    """Add `files` (through the index, so any mode or name git accepts) and commit them."""
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        blob = git(path, "hash-object", "-w", "--stdin", input=data)
        git(path, "update-index", "--add", "--cacheinfo", f"{(modes or {}).get(name, '100644')},{blob},{name}")
    git(path, "commit", "-q", "-m", "change")
    return git(path, "rev-parse", "HEAD")


class GitServer:
    """`git://127.0.0.1:PORT/NAME` serves `base/NAME`."""

    def __init__(self, base: Path):
        self.base, self.connections = base, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"git://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(None)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                subprocess.run(["git", "daemon", "--inetd", "--export-all", f"--base-path={self.base}",
                                str(self.base)],
                               stdin=conn.fileno(), stdout=conn.fileno(), stderr=subprocess.DEVNULL,
                               env=GIT_ENV, timeout=300)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()

    def __enter__(self) -> GitServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
