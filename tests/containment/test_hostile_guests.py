"""The hostile corpus: each case is a guest program that tries to reach or hurt the host.

Every case runs under real Wasmtime with a writable mount at /data, a read-only one at /ro,
a secret file outside both, a secret in the host environment and real listening sockets.
After each run the test asserts the host is untouched (the whole tree compared entry by entry,
no connection, no leaked descriptor, the secret in no output) and that the result says why.
"""
from __future__ import annotations

import base64
import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hostile_world import SECRET, SECRET_ENV, cli_with_rusage, open_fds

from boxer_py.dockerfile.bases import PASSWD

MiB = 1 << 20


@dataclass(frozen=True)
class Case:
    id: str
    code: str  # Python source, a string.Template: $OUTSIDE $WORLD $PORT $IMAGE $CACHE $HOME_DIR $PASSWD
    exit: int = 1  # the exit code the result must carry
    err: str | None = None  # regex that stderr or the trap message must match
    out: str | None = None  # regex that stdout must match (re.search; anchor with \A...\Z)
    flags: dict = field(default_factory=dict)  # RunResult attributes that must hold, e.g. timed_out
    limits: dict = field(default_factory=dict)  # timeout / memory / max_output / disk
    rw_changes: bool = False  # the guest may leave entries (not follow them) in the writable mount
    files: dict | None = None  # exactly these /out files, when given
    cli: bool = False  # run through the `boxer run --json` process, measuring its peak RSS
    max_rss_mib: int | None = None  # bound on that process's peak RSS
    max_seconds: float | None = None  # bound on the run's duration
    max_result: int | None = None  # bound on the JSON result's size, in bytes


NOT_FOUND = r"FileNotFoundError: \[Errno 44\]"
NOT_PERMITTED = r"PermissionError: \[Errno 63\] Operation not permitted"
ESCAPE = r"PermissionError: \[Errno 63\]|FileNotFoundError: \[Errno 44\]"
READ_ONLY = r"OSError: \[Errno 69\] Read-only file system"
NO_PROCESSES = r"AttributeError: module 'os' has no attribute"

CASES = [
    # --- host files by absolute path ---
    # The image's own accounts (the python base's, as Docker's python image has), never the host's.
    Case("read-etc-passwd", "import pwd; print(open('/etc/passwd').read() == $PASSWD, [p.pw_name for p in pwd.getpwall()])",
         exit=0, out=r"\ATrue \['root', 'daemon', 'bin', 'sys', 'nobody'\]\n\Z"),
    Case("list-etc", "import os; print(sorted(os.listdir('/etc')))", exit=0, out=r"\A\['group', 'passwd', 'services'\]\n\Z"),
    Case("fcntl-ioctl-reaches-nothing", "import fcntl; fcntl.ioctl(1, 0x5413)",
         err=r"OSError: \[Errno 52\] ioctl is not available: WebAssembly \(WASI\) has no such call"),
    Case("read-host-file-abs", "print(open('$OUTSIDE/secret.txt').read())", err=NOT_FOUND),
    Case("list-host-dir-abs", "import os; print(os.listdir('$WORLD'))", err=NOT_FOUND),
    Case("write-host-file-abs", "open('$OUTSIDE/new.txt', 'w').write('pwned')", err=NOT_FOUND),
    Case("home-is-the-guests-own", "import os; print(os.path.expanduser('~'), os.listdir(os.path.expanduser('~')))",
         exit=0, out=r"\A/root \[\]\n\Z"),
    Case("host-home-file", "print(open('$HOME_DIR/.bashrc').read())", err=NOT_FOUND),
    Case("proc-self-environ", "print(open('/proc/self/environ').read())", err=NOT_FOUND),
    Case("proc-self-mem", "open('/proc/self/mem', 'rb').read(16)", err=NOT_FOUND),
    Case("proc-listing", "import os; print(os.listdir('/proc'))", err=NOT_FOUND),
    Case("dev-and-sys", "open('/dev/mem', 'rb')", err=NOT_FOUND),
    Case("read-image-file", "open('$IMAGE', 'rb').read(4)", err=NOT_FOUND),
    Case("read-module-cache", "import os; print(os.listdir('$CACHE'))", err=NOT_FOUND),
    # --- escape through .. ---
    Case("dotdot-from-root", "import os; print(os.listdir('/../../..'))", err=NOT_PERMITTED),
    Case("dotdot-to-host-file", "print(open('/../../../../../../..$OUTSIDE/secret.txt').read())", err=ESCAPE),
    Case("dotdot-from-workdir", "print(open('../../../../../../..$OUTSIDE/secret.txt').read())", err=ESCAPE),
    Case("dotdot-from-mount", "print(open('/data/../outside/secret.txt').read())", err=ESCAPE),
    Case("dotdot-from-mount-listing", "import os; print(os.listdir('/data/../../..'))", err=NOT_PERMITTED),
    Case("chdir-into-mount-then-up", "import os; os.chdir('/data'); print(open('../outside/secret.txt').read())",
         err=ESCAPE),
    # --- symlinks made by the guest ---
    Case("symlink-abs-to-etc-in-mount", "import os; os.symlink('/etc', '/data/etc'); print(os.listdir('/data/etc'))",
         err=NOT_PERMITTED),
    Case("symlink-dotdot-read-through", "import os; os.symlink('../outside', '/data/up')\n"
         "print(open('/data/up/secret.txt').read())", err=NOT_PERMITTED, rw_changes=True),
    Case("symlink-dotdot-write-through", "import os; os.symlink('../outside/secret.txt', '/data/s')\n"
         "open('/data/s', 'w').write('pwned')", err=NOT_PERMITTED, rw_changes=True),
    Case("symlink-dotdot-create-through", "import os; os.symlink('../outside', '/data/up')\n"
         "open('/data/up/new.txt', 'w').write('pwned')", err=NOT_PERMITTED, rw_changes=True),
    Case("symlink-to-dotdot-dotdot", "import os; os.symlink('../..', '/data/root'); print(os.listdir('/data/root'))",
         err=NOT_PERMITTED, rw_changes=True),
    Case("symlink-in-rootfs-to-host", "import os; os.symlink('../../../../../../../..$OUTSIDE', '/tmp/up')\n"
         "print(os.listdir('/tmp/up'))", err=NOT_PERMITTED),
    Case("symlink-out-dir-to-host", "import os; os.rmdir('/out'); os.symlink('../../../../../../../..$OUTSIDE', '/out')",
         exit=0, files={}),
    Case("symlink-out-file-to-host", "import os; os.symlink('../../../../../../../..$OUTSIDE/secret.txt', '/out/s.txt')",
         exit=0, files={}),
    Case("hardlink-ro-file-into-rw-mount-then-write", "import os; os.link('/ro/ro.txt', '/data/x')\n"
         "open('/data/x', 'a').write('pwned')", err=NOT_PERMITTED),
    Case("hardlink-ro-file-into-rootfs-then-write", "import os; os.link('/ro/ro.txt', '/tmp/x')\n"
         "open('/tmp/x', 'a').write('pwned')", err=NOT_PERMITTED),
    # --- the read-only mount ---
    Case("ro-create", "open('/ro/new.txt', 'w').write('x')", err=READ_ONLY),
    Case("ro-append", "open('/ro/ro.txt', 'a').write('x')", err=READ_ONLY),
    Case("ro-delete", "import os; os.remove('/ro/ro.txt')", err=READ_ONLY),
    Case("ro-mkdir", "import os; os.mkdir('/ro/d')", err=READ_ONLY),
    Case("ro-rename", "import os; os.rename('/ro/ro.txt', '/ro/moved.txt')", err=READ_ONLY),
    Case("ro-symlink", "import os; os.symlink('ro.txt', '/ro/link')", err=READ_ONLY),
    Case("ro-create-through-dirfd", "import os; d = os.open('/ro', os.O_RDONLY)\n"
         "os.open('new.txt', os.O_WRONLY | os.O_CREAT, dir_fd=d)", err=READ_ONLY),
    Case("ro-dirfd-number-reused-for-rw", "import os; os.close(os.open('/ro', os.O_RDONLY))\n"
         "d = os.open('/data', os.O_RDONLY); os.symlink('/etc', 'etc', dir_fd=d)", err=NOT_PERMITTED),
    Case("rename-mount-away", "import os; os.rename('/data', '/stolen')", err=r"OSError: \[Errno 10\]"),
    # --- host environment ---
    Case("host-env-secret", f"import os; print(os.environ.get('{SECRET_ENV}'))", exit=0, out=r"\ANone\n\Z"),
    Case("env-is-exactly-the-images", "import os; print(sorted(os.environ))", exit=0,
         out=r"\A\['APP_MODE', 'HOME', 'LANG', 'PATH', 'PYTHONPATH', 'PYTHONUSERBASE', 'PYTHON_VERSION'\]\n\Z"),
    # --- network ---
    Case("socket-create", "import socket; socket.socket()", err=r"OSError: \[Errno 58\] Not supported"),
    Case("socket-connect-host-server", "import socket; socket.socket().connect(('127.0.0.1', $PORT))",
         err=r"OSError: \[Errno 58\] Not supported"),
    Case("urllib-host-server", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=2)",
         err=r"URLError: <urlopen error \[Errno -3\] this sandbox has no network to resolve names in \(--allow-net"),
    Case("udp-to-host-server", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
         ".sendto(b'x', ('127.0.0.1', $PORT))", err=r"OSError: \[Errno 58\] Not supported"),
    Case("dns-lookup", "import socket; print(socket.getaddrinfo('localhost', 80))",
         err=r"socket.gaierror: \[Errno -3\] this sandbox has no network to resolve names in \(--allow-net"),
    # --- processes, native code, threads ---
    Case("os-system", "import os; os.system('cat /etc/passwd')", err=NO_PROCESSES + " 'system'"),
    Case("subprocess-run", "import subprocess; subprocess.run(['cat', '/etc/passwd'])",
         err=r"OSError: \[Errno 58\] wasi does not support processes"),
    Case("os-fork", "import os; os.fork()", err=NO_PROCESSES + " 'fork'"),
    Case("os-execv", "import os; os.execv('/bin/sh', ['sh'])", err=NO_PROCESSES + " 'execv'"),
    Case("os-posix-spawn", "import os; os.posix_spawn('/bin/sh', ['sh'], {})", err=NO_PROCESSES + " 'posix_spawn'"),
    Case("os-kill", "import os; os.kill(1, 9)", err=NO_PROCESSES + " 'kill'"),
    Case("multiprocessing", "import multiprocessing; multiprocessing.Process(target=print).start()",
         err=r"OSError: \[Errno 52\] multiprocessing cannot start a process: a WebAssembly guest has no processes"),
    Case("ctypes", "import ctypes; ctypes.CDLL(None).system(b'id')", err=r"ModuleNotFoundError: No module named 'ctypes'"),
    Case("thread-start", "import threading; threading.Thread(target=print).start()",
         err=r"RuntimeError: can't start new thread"),
    Case("thread-bomb", "import threading\nfor _ in range(10000): threading.Thread(target=lambda: None).start()",
         err=r"RuntimeError: can't start new thread"),
    # --- time ---
    Case("infinite-loop", "while True: pass", exit=124, flags={"timed_out": True}, err=r"timed out after 1s",
         limits={"timeout": 1}, max_seconds=5),
    Case("sleep-forever", "import time; time.sleep(10 ** 6); print('woke')", exit=124, flags={"timed_out": True},
         out=r"\A\Z", limits={"timeout": 1}, max_seconds=5),
    Case("select-timeout-forever", "import select; select.select([], [], [], 10 ** 6)", exit=124,
         flags={"timed_out": True}, limits={"timeout": 1}, max_seconds=5),
    Case("select-on-thousands-of-descriptors", "import select\nfs = [open('/app/main.py') for _ in range(1000)]\n"
         "print(len(select.select(fs, [], [], 10 ** 6)[0]))", exit=0, out=r"\A1000\n\Z",
         limits={"timeout": 5}, max_seconds=5),
    Case("sleep-in-a-loop", "import time\nwhile True: time.sleep(0.01)", exit=124, flags={"timed_out": True},
         limits={"timeout": 1}, max_seconds=5),
    Case("sleep-forever-cli", "import time; time.sleep(10 ** 6)", exit=124, flags={"timed_out": True},
         limits={"timeout": 1}, cli=True, max_seconds=5),
    # --- memory and stack ---
    Case("memory-bomb", "x = []\nwhile True: x.append(bytearray(1 << 20))", flags={"out_of_memory": True},
         err="MemoryError", limits={"memory": "64m"}),
    Case("memory-bomb-cli", "x = []\nwhile True: x.append(bytearray(1 << 20))", flags={"out_of_memory": True},
         err="MemoryError", limits={"memory": "64m"}, cli=True, max_rss_mib=400),
    Case("memory-one-huge-alloc", "x = bytearray(1 << 34)", err="MemoryError|OverflowError"),
    Case("recursion-bomb", "def f(n): return f(n + 1)\nf(0)", err="RecursionError"),
    Case("recursion-bomb-native-stack", "import sys; sys.setrecursionlimit(10 ** 7)\n"
         "class A:\n    def __repr__(self): return repr(self)\nrepr(A())", exit=134,
         err=r"memory fault|call stack exhausted|stack overflow"),
    Case("parser-bomb", "eval('-' * 1000000 + '1')", err="MemoryError|RecursionError"),
    # --- output floods ---
    Case("stdout-flood", "import sys\nfor _ in range(200000): sys.stdout.write('y' * 1000)", exit=0,
         out=r"\Ay{1024}\Z", flags={"stdout_truncated": True}, limits={"max_output": "1k"}, cli=True, max_rss_mib=400),
    Case("stderr-flood", "import sys\nfor _ in range(200000): sys.stderr.write('e' * 1000)", exit=0,
         err=r"\Ae{1024}\Z", flags={"stderr_truncated": True}, limits={"max_output": "1k"}, cli=True, max_rss_mib=400),
    Case("print-forever", "while True: print('z' * 1000)", exit=124,
         flags={"timed_out": True, "stdout_truncated": True}, limits={"timeout": 1, "max_output": "64k"}),
    Case("one-giant-write", "import sys; sys.stdout.write('g' * (16 << 20))", exit=0, out=r"\Ag{1000}\Z",
         flags={"stdout_truncated": True}, limits={"max_output": "1000", "memory": "128m"}, cli=True,
         max_rss_mib=400),
    # --- files: disk, descriptors, /out ---
    Case("giant-file-without-a-quota",  # no --disk: it succeeds, and the layer is thrown away after
         "f = open('/tmp/big', 'wb')\nfor _ in range(64): f.write(bytes(4 << 20))\nf.close()\n"
         "import os; print(os.path.getsize('/tmp/big'))", exit=0, out=r"\A268435456\n\Z"),
    Case("giant-file-over-the-disk-quota", "f = open('/tmp/big', 'wb')\nwhile True: f.write(bytes(1 << 20))",
         exit=134, err=r"wrote more than the 67108864-byte disk limit", flags={"disk_full": True, "timed_out": False},
         limits={"disk": "64m"}),
    Case("giant-file-over-the-disk-quota-cli", "f = open('/tmp/big', 'wb')\nwhile True: f.write(bytes(1 << 20))",
         exit=134, err=r"disk limit", flags={"disk_full": True}, limits={"disk": "64m"}, cli=True, max_rss_mib=400),
    Case("many-small-files-over-the-disk-quota", "for i in range(10 ** 6): open('/tmp/f%d' % i, 'w').write('x')",
         exit=134, err=r"disk limit", flags={"disk_full": True}, limits={"disk": "1m"}),
    # The quota may fire at any tick after the file is made, so the guest says it is about to
    # write before it does, then keeps running: the quota alone can end it.
    Case("sparse-terabyte-file-over-the-disk-quota",
         "import sys; print('writing'); sys.stdout.flush()\n"
         "f = open('/tmp/sparse', 'wb'); f.seek(1 << 40); f.write(b'x'); f.close()\nwhile True: pass",
         exit=134, out=r"\Awriting\n\Z", err=r"disk limit", flags={"disk_full": True, "timed_out": False},
         limits={"disk": "64m"}),
    # past PATH_MAX (directories opened one inside the other): a walk by path string cannot
    # count what is there, an fd-relative one can
    Case("disk-quota-past-path-max", "import os\nfd = os.open('/tmp', os.O_RDONLY)\n"
         "for _ in range(40):\n    os.mkdir('d' * 200, dir_fd=fd)\n"
         "    fd, old = os.open('d' * 200, os.O_RDONLY, dir_fd=fd), fd\n    os.close(old)\n"
         "big = os.open('big', os.O_WRONLY | os.O_CREAT, dir_fd=fd)\n"
         "for _ in range(64): os.write(big, bytes(1 << 20))\nprint('wrote 64 MiB')",
         exit=134, out=r"\A(wrote 64 MiB\n)?\Z", err=r"disk limit", flags={"disk_full": True}, limits={"disk": "8m"}),
    # the host walks what the guest left (/out, the writable layer) without recursion or paths
    Case("nested-directories-in-tmp-and-out", "import os\nfor top in ('/tmp', '/out'):\n"
         "    fd = os.open(top, os.O_RDONLY)\n    for _ in range(1200):\n"
         "        os.mkdir('d', dir_fd=fd)\n        fd, old = os.open('d', os.O_RDONLY, dir_fd=fd), fd\n"
         "        os.close(old)\n    os.close(os.open('f', os.O_WRONLY | os.O_CREAT, dir_fd=fd))\nprint('deep')",
         exit=0, out=r"\Adeep\n\Z", files={"/out/" + "d/" * 1200 + "f": b""}),
    Case("out-many-empty-files-over-the-output-cap", "for i in range(30000): open('/out/f%06d' % i, 'w').close()",
         exit=0, flags={"files_truncated": True}, limits={"max_output": "1k", "timeout": 180}, max_result=8192),
    Case("one-write-over-the-disk-quota-into-out", "open('/out/big', 'wb').write(bytes(100 << 20))",
         exit=134, err=r"disk limit", files={}, flags={"disk_full": True, "files_truncated": True},
         limits={"disk": "64m", "memory": "512m"}),
    Case("writes-within-the-disk-quota", "open('/out/r.bin', 'wb').write(bytes(8 << 20)); print('ok')",
         exit=0, out=r"\Aok\n\Z", files={"/out/r.bin": bytes(8 << 20)}, flags={"disk_full": False},
         limits={"disk": "64m"}),
    Case("sparse-terabyte-file-without-a-quota",
         "f = open('/tmp/sparse', 'wb'); f.seek(1 << 40); f.write(b'x'); f.close()\n"
         "import os; print(os.path.getsize('/tmp/sparse'))", exit=0, out=r"\A1099511627777\n\Z"),
    Case("out-sparse-terabyte", "f = open('/out/sparse', 'wb'); f.seek(1 << 40); f.write(b'x'); f.close()",
         exit=0, files={}, flags={"files_truncated": True}),
    Case("out-over-the-output-cap", "open('/out/a.txt', 'w').write('a' * 100)\nopen('/out/b.bin', 'wb').write(bytes(8 << 20))",
         exit=0, files={"/out/a.txt": b"a" * 100}, flags={"files_truncated": True}, limits={"max_output": "1m"}),
    Case("fd-exhaustion", "fs = []\ntry:\n    while len(fs) < 4000: fs.append(open('/tmp/f%d' % len(fs), 'w'))\n"
         "except OSError as e: print('stopped:', e)\nprint(len(fs))", exit=0, out=r"\A(stopped: .*\n)?\d+\n\Z"),
    Case("fd-exhaustion-on-mount", "fs = [open('/ro/ro.txt') for _ in range(3000)]; print(len(fs))", exit=0,
         out=r"\A3000\n\Z"),
    # --- huge inputs from the caller ---
    Case("huge-argv", "# " + "A" * (4 * MiB) + "\nprint('ran')", exit=0, out=r"\Aran\n\Z"),
    Case("guest-grows-its-env", "import os\nfor i in range(64): os.environ['K%d' % i] = 'v' * (1 << 20)\n"
         "print(len(os.environ))", exit=0, out=r"\A71\n\Z"),
]


def _ids(cases):
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    return ids


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_hostile_guest(case: Case, world, listener, hostile_box, hostile_image, cache_dir):
    code = string.Template(case.code).safe_substitute(
        OUTSIDE=world.outside, WORLD=world.root, PORT=listener.port, IMAGE=hostile_image, CACHE=cache_dir,
        HOME_DIR=Path.home(), PASSWD=repr(PASSWD))
    before = world.snapshot()
    fds = open_fds()
    hits = len(listener.hits)
    limits = {"timeout": 30, **case.limits}
    if case.cli:
        args = ["run", "--json", *(f"-v{m}" for m in world.mounts)]
        args += ["--timeout", str(limits["timeout"])]
        if "memory" in limits:
            args += ["--memory", str(limits["memory"])]
        if "max_output" in limits:
            args += ["--max-output", str(limits["max_output"])]
        if "disk" in limits:
            args += ["--disk", str(limits["disk"])]
        rc, result, rss_kib = cli_with_rusage(cache_dir, [*args, str(hostile_image), "python", "-c", code])
        assert rc == result["exit_code"]
        files = {f["path"]: base64.b64decode(f["content"]) if f["encoding"] == "base64" else f["content"].encode()
                 for f in result["files"]}
        if case.max_rss_mib is not None:
            assert rss_kib < case.max_rss_mib * 1024, f"boxer's peak RSS {rss_kib // 1024} MiB"
    else:
        r = hostile_box.run_python(code, mounts=world.mounts, **limits)
        result, files = r.to_json(), r.files
    hostile_box.launcher.settle()  # the writable layer is removed in the background, after the result
    stdout, stderr = result["stdout"], result["stderr"]
    why = f"exit {result['exit_code']}, trap {result['trap']!r}, stdout {stdout[-300:]!r}, stderr {stderr[-600:]!r}"

    # the result says why
    assert result["exit_code"] == case.exit, why
    if case.err is not None:
        assert re.search(case.err, stderr) or re.search(case.err, result["trap"] or ""), why
    if case.out is not None:
        assert re.search(case.out, stdout), why
    for flag, value in case.flags.items():
        assert result[flag] == value, f"{flag}: {why}"
    if case.files is not None:
        assert files == case.files
    if case.max_seconds is not None:
        assert result["duration_ms"] < case.max_seconds * 1000
    if case.max_result is not None:
        assert len(json.dumps(result)) < case.max_result, len(json.dumps(result))

    # the host is untouched
    after = world.snapshot()
    if case.rw_changes:
        # entries the guest made in the writable mount may stay (as links, never followed)
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        assert all(k.startswith("rw/") for k in changed), changed
        assert all(before.get(k) is None and after[k].startswith("link:") for k in changed), changed
    else:
        assert after == before
    assert (world.outside / "secret.txt").read_text() == SECRET + "\n"
    assert SECRET not in stdout and SECRET not in stderr
    assert all(SECRET.encode() not in data for data in files.values())
    assert listener.hits[hits:] == []
    assert open_fds() <= fds + 2  # the guest's descriptors are closed with its store
    assert list((cache_dir / "runs").iterdir()) == []  # the writable layer is gone
