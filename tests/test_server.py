"""The run server (client.py, server.py): a repeated `boxer run` is served by a warm process
that forks per run. A served run must be indistinguishable from one the CLI runs itself,
stop when its client goes, and the server must talk only to its own user's clients."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import boxer_py
from boxer_py.cli import client


class Served:
    """`boxer` with a cache dir and socket dir of its own, and a server started for them."""

    def __init__(self, tmp_path: Path, cache: Path, image: Path):
        self.image = image
        self.cache = cache
        self.runtime = tmp_path / "runtime"
        self.runtime.mkdir(mode=0o700)
        self.env = {**os.environ, "BOXER_CACHE_DIR": str(cache), "XDG_RUNTIME_DIR": str(self.runtime),
                    "BOXER_SERVER_IDLE": "60"}
        self.socket_dir = self.runtime / "boxer"

    def __call__(self, *args: str, served: bool = True, **kwargs) -> subprocess.CompletedProcess:
        env = {**self.env, **kwargs.pop("env", {}), **({} if served else {"BOXER_SERVER": "0"})}
        return subprocess.run([sys.executable, "-m", "boxer_py", *args], capture_output=True, text=True, env=env,
                              timeout=120, **kwargs)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "boxer_py", *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def start(self) -> None:
        """Two runs start the server (the first one alone does not); wait until it listens."""
        for _ in range(2):
            assert self("run", str(self.image), "python", "-c", "pass").returncode == 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server_pid() and self.sockets():
                return
            time.sleep(0.1)
        raise AssertionError(f"no server started: {self.log()!r}")

    def sockets(self) -> list[Path]:
        return list(self.socket_dir.glob("*.sock")) if self.socket_dir.is_dir() else []

    def log(self) -> str:
        logs = list(self.socket_dir.glob("*.log")) if self.socket_dir.is_dir() else []
        return logs[0].read_text() if logs else ""

    def served_runs(self) -> list[int]:
        return [int(line.split()[2]) for line in self.log().splitlines() if line.split()[1:2] == ["run"]
                and len(line.split()) == 3]

    def server_pid(self) -> int | None:
        for line in self.log().splitlines():
            if line.split()[1:2] == ["server"]:
                return int(line.split()[2])
        return None

    def stop(self) -> None:
        pid = self.server_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache dir for this module (CPython compiled once); each test has its own server."""
    return tmp_path_factory.mktemp("served-cache")


@pytest.fixture
def served(tmp_path, cache, hello_image):
    s = Served(tmp_path, cache, hello_image)
    yield s
    s.stop()


def test_a_single_run_leaves_no_server_behind(served):
    assert served("run", str(served.image), "python", "-c", "pass").returncode == 0
    time.sleep(1)
    assert served.sockets() == [] and served.server_pid() is None


def test_served_runs_match_runs_of_the_cli_itself(served, tmp_path):
    served.start()
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "in.txt").write_text("from the host\n")
    (work / "img.wasm").write_bytes(served.image.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    cases = [
        (["run", "img.wasm", "python", "-c", "print('hi')"], {}),
        (["run", "-i", "img.wasm", "python", "-c", "import sys; print(sys.stdin.read().upper())"], {"input": "abc"}),
        (["run", "-e", "FROM_CLIENT", "-e", "SET=1", "img.wasm", "python", "-c",
          "import os; print(os.environ.get('FROM_CLIENT'), os.environ['SET'], os.environ.get('ONLY_HOST'))"],
         {"env": {"FROM_CLIENT": "client value", "ONLY_HOST": "not passed"}}),
        (["run", "-v", "data:/data:ro", "img.wasm", "python", "-c", "print(open('/data/in.txt').read())"], {}),
        (["run", "-w", "/tmp", "img.wasm", "python", "-c", "import os, sys; print(os.getcwd());"
          "sys.stderr.write('err\\n'); sys.exit(3)"], {}),
        (["run", "--json", "img.wasm", "python", "-c", "open('/out/a.txt', 'w').write('x'); print('json')"], {}),
        (["run", "--timeout", "1", "img.wasm", "python", "-c", "while True: pass"], {}),
        (["run", "--max-output", "10", "img.wasm", "python", "-c", "print('y' * 100)"], {}),
        (["run", "img.wasm", "python", "-c", "raise SystemExit('bye')"], {}),
        (["run"], {}),
        (["run", "missing.wasm"], {}),
        (["run", "--no-such-option", "img.wasm"], {}),
    ]
    before = len(served.served_runs())
    for args, kwargs in cases:  # the second served one of a plain `run IMAGE COMMAND` is made ready ahead
        mine = served(*args, served=False, cwd=work, **kwargs)
        theirs = [served(*args, cwd=work, **kwargs)]
        assert _wait_for(lambda: len(re.findall(r" run \d+ exit ", served.log())) == len(served.served_runs()))
        time.sleep(0.5)  # the next run made ready meanwhile
        theirs.append(served(*args, cwd=work, **kwargs))
        results = []
        for r in (mine, *theirs):
            stdout = r.stdout
            if "--json" in args:
                # what is measured (time, CPU, the guest's peak memory) differs run to run
                stdout = {k: v for k, v in json.loads(stdout).items()
                          if k not in ("duration_ms", "cpu_ms", "peak_memory")}
            results.append((r.returncode, stdout, r.stderr))
        assert results[0] == results[1] == results[2], (args, served.log())
    assert len(served.served_runs()) - before == 2 * len(cases), served.log()
    assert served.log().count(" was ready ahead") >= 2, served.log()  # print('hi') and SystemExit('bye')
    assert "preloaded 2 compiled modules and snapshots" in served.log()  # so all but the first ran warm


def test_runs_side_by_side(served):
    served.start()
    before = len(served.served_runs())
    clients = [served.popen("run", str(served.image), "python", "-c", f"print({n} * {n})") for n in range(6)]
    assert [p.communicate(timeout=120)[0] for p in clients] == [f"{n * n}\n" for n in range(6)]
    assert all(p.returncode == 0 for p in clients)
    assert len(served.served_runs()) - before == 6


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_each_run_is_a_spare_forked_ahead_that_serves_it_alone(served):
    """The process of a run is forked before its request comes (a spare, waiting); it serves
    that one run and ends with it, and the next run is the next spare. A spare forked before
    the server took back what a run side by side left (its untouched layer) is let go without
    running anything, and one forked after takes the next run."""
    served.start()
    server = served.server_pid()
    assert _wait_for(lambda: len(_children(server)) == 1), served.log()  # the spare, waiting
    seen = []
    for n in range(3):
        spare = _children(server)[0]
        r = served("run", str(served.image), "python", "-c", f"print({n})")
        assert (r.returncode, r.stdout) == (0, f"{n}\n"), r.stderr
        assert served.served_runs()[-1] == spare  # the spare was this run
        assert _wait_for(lambda spare=spare: not _alive(spare))
        assert _wait_for(lambda spare=spare: len(_children(server)) == 1 and _children(server)[0] != spare)
        seen.append(spare)
    assert len(set(seen)) == 3
    first = served.popen("run", str(served.image), "python", "-c", "import time; time.sleep(1)")
    assert _wait_for(lambda: len(served.served_runs()) == 4)
    second = served.popen("run", str(served.image), "python", "-c", "import time; time.sleep(4)")  # forked at its request
    assert first.wait(timeout=120) == 0

    def spares() -> list[int]:
        return [pid for pid in _children(server) if pid not in served.served_runs()]
    assert _wait_for(lambda: len(spares()) == 1)
    stale = spares()[0]  # forked when the first ended: the second's layer and results are not in it
    assert second.wait(timeout=120) == 0
    assert _wait_for(lambda: not _alive(stale) and len(spares()) == 1)  # let go, another forked
    assert stale not in served.served_runs()
    r = served("run", str(served.image), "python", "-c", "print('next')")
    assert (r.returncode, r.stdout) == (0, "next\n") and served.served_runs()[-1] != stale


def test_a_served_run_that_only_read_hands_its_layer_to_the_next_one(served):
    """A served run is a forked process that ends: the writable layer its guest only read goes
    back to the server (named after it), for the next run to take instead of a copy. A layer
    a guest wrote to is not handed on: the run after it sees a fresh copy."""
    served.start()
    server = served.server_pid()
    spares = served.cache / "spares"

    def layers() -> list[str]:
        """The layers kept for the next run: the server's, or already taken by the process that
        makes the next run ready ahead (under runs/, named after it)."""
        kept = {p.name.partition(".")[2] for p in spares.glob(f"{server}.*")}
        ahead = {str(pid) for pid in _children(server)}
        kept |= {p.name.partition(".")[2] for p in (served.cache / "runs").glob("*.*")
                 if p.name.partition(".")[0] in ahead}
        return sorted(kept)

    def run(code: str) -> tuple[str, list[str]]:
        r = served("run", str(served.image), "python", "-c", code)
        assert r.returncode == 0, r.stderr
        assert _wait_for(lambda: len(re.findall(r" run \d+ exit ", served.log())) == len(served.served_runs()))
        time.sleep(0.5)  # the next run made ready meanwhile, its layer taken
        return r.stdout, layers()

    out, kept = run("print(open('/app/main.py').read() != '')")
    assert out == "True\n" and len(kept) == 1
    assert run("pass")[1] == kept  # the same layer, handed on
    assert not set(run("open('/tmp/left', 'w').write('x')")[1]) & set(kept)  # written to: removed, not handed on
    seen, fresh = run("import os; print(os.path.exists('/tmp/left'))")
    assert seen == "False\n" and len(fresh) == 1 and fresh != kept


def test_large_environments(served):
    """300 kB of environment is handed over (in more than one send); over 1 MiB the server
    refuses it and the client runs the command itself. The result is the same."""
    served.start()
    for count, handed_over in ((3, 1), (12, 0)):
        before = len(served.served_runs())
        env = {f"BIG{i}": "abcdefghijkl"[i] * 100_000 for i in range(count)}
        r = served("run", "-e", "BIG1", str(served.image), "python", "-c",
                   "import os; v = os.environ['BIG1']; print(len(v), set(v))", env=env)
        assert (r.returncode, r.stdout) == (0, "100000 {'b'}\n"), r.stderr
        assert len(served.served_runs()) - before == handed_over


def test_files_written_through_a_mount_get_the_clients_umask(served, tmp_path):
    served.start()
    data = tmp_path / "data"
    data.mkdir()
    modes = {}
    for how in (True, False):
        r = served("run", "-v", f"{data}:/data", str(served.image), "python", "-c",
                   f"open('/data/{how}.txt', 'w').write('x')", served=how, env={}, preexec_fn=lambda: os.umask(0o027))
        assert r.returncode == 0, r.stderr
        modes[how] = (data / f"{how}.txt").stat().st_mode & 0o777
    assert modes[True] == modes[False] == 0o640


def _wait_for(predicate, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _served_run(served: Served, then: str = "time.sleep(60)") -> tuple[subprocess.Popen, int]:
    """A client whose served run has printed `up` and then does `then`; and the run's pid."""
    served.start()
    before = len(served.served_runs())
    p = served.popen("run", str(served.image), "python", "-c", f"import time; print('up', flush=True); {then}")
    assert p.stdout.readline() == "up\n"
    assert _wait_for(lambda: len(served.served_runs()) > before), served.log()
    return p, served.served_runs()[-1]


def test_a_signal_to_the_client_reaches_the_run(served):
    for _ in range(2):  # the second run was made ready ahead
        p, run = _served_run(served)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 128 + signal.SIGTERM
        assert _wait_for(lambda run=run: not _alive(run))


def test_ctrl_c_reaches_a_busy_served_guest_as_keyboard_interrupt(served):
    for _ in range(2):
        p, run = _served_run(served, "exec('while True: pass')")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 130 and err.rstrip().endswith("KeyboardInterrupt"), err
        assert _wait_for(lambda run=run: not _alive(run))


def test_a_run_made_ready_ahead_serves_only_the_very_same_request(served, tmp_path):
    """The process forked for the next run makes the last plain request's run ready up to its
    guest's first instruction, then waits for its request. The same request takes it over and
    runs as any other; the same words for an image file replaced meanwhile, or from another
    directory, run what they name now."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "Dockerfile").write_text("FROM python:3.12-slim\nENV GREETING=Other\nWORKDIR /srv\n")
    boxer_py.build(other, other / "other.wasm")
    here, there = tmp_path / "here", tmp_path / "there"
    for where in (here, there):
        where.mkdir()
        shutil.copy(served.image, where / "image.wasm")
    served.start()
    code = "import os; print(os.environ['GREETING'], os.getcwd())"

    def run(where: Path) -> tuple[int, str, str]:
        r = served("run", "image.wasm", "python", "-c", code, cwd=where)
        assert _wait_for(lambda: len(re.findall(r" run \d+ exit ", served.log())) == len(served.served_runs()))
        time.sleep(1)  # the next one made ready meanwhile
        return r.returncode, r.stdout, r.stderr

    ahead = served.log().count(" was ready ahead")
    assert [run(here) for _ in range(3)] == [(0, "Hello /app\n", "")] * 3
    assert served.log().count(" was ready ahead") - ahead == 2
    os.replace(shutil.copy(other / "other.wasm", here / "new.wasm"), here / "image.wasm")
    code = "import os; print(os.environ['GREETING'], os.getcwd(), 'again')"  # nor for another command
    assert run(here) == (0, "Other /srv again\n", "")
    shutil.copy(other / "other.wasm", there / "image.wasm")
    assert run(there) == (0, "Other /srv again\n", "")
    assert served.log().count(" was ready ahead") - ahead == 2


def test_a_run_made_ready_ahead_serves_another_command_only_as_a_run_from_scratch_would(served, tmp_path):
    """A request whose command differs from the one made ready ahead in its arguments alone (the
    same image, program, directory, umask and environment) takes over that run's writable layer
    and what was found for it, but its guest is made anew for its own arguments: it sees them
    alone, and nothing of the request the run was made ready for (nor of the run before, which
    wrote a file). A request from another environment (the client's, which boxer reads and the
    guest never sees) runs from its start. Each result is the one the CLI gives when it runs the
    command itself."""
    served.start()
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(served.image, work / "img.wasm")
    first = ["python", "-c", "import sys; open('/tmp/from-first', 'w').write(str(sys.argv)); print('first')",
             "FIRST-ARGUMENT"]
    probe = ["python", "-c", "import os, sys; print(sys.argv, sys.orig_argv, os.environ.get('SECRET'), os.getcwd(), "
             "os.path.exists('/tmp/from-first'), sorted(k for k in globals() if not k.startswith('__')))", "mine"]

    def run(command: list[str], secret: str, how: bool = True) -> tuple[int, str, str]:
        r = served("run", "img.wasm", *command, cwd=work, served=how, env={"SECRET": secret})
        if how:
            assert _wait_for(lambda: len(re.findall(r" run \d+ exit ", served.log())) == len(served.served_runs()))
            time.sleep(1)  # the next one made ready meanwhile, for this request
        return r.returncode, r.stdout, r.stderr

    assert run(first, "a") == (0, "first\n", "")
    before = served.log().count(" was ready ahead for another command")
    mine = run(probe, "a")  # made ready for `first`, with SECRET=a: this request's command instead
    assert served.log().count(" was ready ahead for another command") == before + 1, served.log()
    assert mine == run(probe, "a", how=False)
    assert mine[1].startswith("['-c', 'mine'] ") and mine[1].endswith(" None /app False ['os', 'sys']\n"), mine
    assert "FIRST-ARGUMENT" not in mine[1] and "print('first')" not in mine[1]
    theirs = run(probe, "b")  # the client's environment differs (which boxer reads, not the guest): from its start
    assert served.log().count(" was ready ahead for another command") == before + 1, served.log()
    assert theirs == run(probe, "b", how=False) == mine


def test_a_served_tty_run_follows_a_resize(served):
    """-t through the server: the client relays SIGWINCH, and the run (the server's child, on
    the client's terminal) rewrites its guest's size and runs its SIGWINCH handler."""
    import pexpect

    served.start()
    before = len(served.served_runs())
    code = ("import os, shutil, signal\ngot = []\n"
            "signal.signal(signal.SIGWINCH, lambda *_: got.append(tuple(shutil.get_terminal_size())))\n"
            "print('ready', flush=True)\nwhile (120, 40) not in got:\n    pass\n"
            "print('resized', got[-1], tuple(os.get_terminal_size()))\n")
    child = pexpect.spawn(sys.executable, ["-m", "boxer_py", "run", "-t", str(served.image), "python", "-c", code],
                          env={**served.env, "TERM": "xterm"}, encoding="utf-8", timeout=120, dimensions=(24, 80))
    child.expect_exact("ready")
    child.setwinsize(40, 120)
    child.expect_exact("resized (120, 40) (120, 40)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and len(served.served_runs()) == before + 1


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_ctrl_z_stops_the_run_and_fg_continues_it(served):
    p, run = _served_run(served, "time.sleep(1); print('done')")
    p.send_signal(signal.SIGTSTP)
    assert _wait_for(lambda: _state(run) == "T" and _state(p.pid) == "T")
    p.send_signal(signal.SIGCONT)
    out, _ = p.communicate(timeout=60)
    assert (p.returncode, out) == (0, "done\n")


def test_a_killed_client_stops_its_run_and_leaves_no_files(served):
    p, run = _served_run(served)
    runs = served.cache / "runs"
    assert [x for x in runs.iterdir() if x.name.startswith(f"{run}.")]
    p.kill()
    p.wait()
    assert _wait_for(lambda: f"run {run} exit {128 + signal.SIGKILL}" in served.log()), served.log()
    assert not _alive(run)
    assert _wait_for(lambda: not [x for x in runs.iterdir() if x.name.startswith(f"{run}.")])
    r = served("run", str(served.image), "python", "-c", "print('still serving')")
    assert (r.returncode, r.stdout) == (0, "still serving\n")


def test_a_code_change_on_disk_makes_the_next_run_use_a_fresh_server(served, tmp_path):
    """The server watches its own package (codewatch.py) instead of each client statting it:
    once a source file changes, the next client is refused and runs the command itself (with
    the code now on disk), the server leaves, and a later run starts a server of the new code."""
    original = Path(client.__file__).resolve().parents[1]
    copy = tmp_path / "src" / "boxer_py"
    shutil.copytree(original, copy, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for folder, dirs, files in os.walk(copy):
        for name in dirs + files:
            link = Path(folder) / name
            if link.is_symlink():  # relative links into the repository's toolchain/
                target = (original / link.relative_to(copy)).resolve()
                link.unlink()
                link.symlink_to(target)
    served.env["PYTHONPATH"] = str(copy.parent)
    served.start()
    old = served.server_pid()
    r = served("run", str(served.image), "python", "-c", "print('served')")
    assert (r.returncode, r.stdout) == (0, "served\n") and len(served.served_runs()) >= 1
    before = len(served.served_runs())
    errors = copy / "errors.py"
    errors.write_text(errors.read_text() + "\n# an edit\n")
    r = served("run", str(served.image), "python", "-c", "print('after the edit')")
    assert (r.returncode, r.stdout) == (0, "after the edit\n"), r.stderr
    assert "refused: the server's code changed on disk" in served.log()
    assert len(served.served_runs()) == before  # it ran in the client
    assert _wait_for(lambda: old is not None and not _alive(old))
    served.start()
    assert served.server_pid() != old
    r = served("run", str(served.image), "python", "-c", "print('new server')")
    assert (r.returncode, r.stdout) == (0, "new server\n") and served.served_runs()


def test_the_server_refuses_a_request_for_other_code(served):
    """A client whose code differs (another version, an edit) must not be served by this one:
    it gets no run and falls back to running the command itself."""
    served.start()
    sock_path = served.sockets()[0]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(sock_path))
        socket.send_fds(s, [client.encode("other code", "/", 0o022, ["run", str(served.image), "python", "-c", "pass"], {})],
                        [0, 1, 2])
        s.settimeout(10)
        assert s.recv(100) == b""
    assert "refused: a client of other code" in served.log()


def test_no_server_through_a_socket_dir_others_can_enter(served):
    served.start()
    before = len(served.served_runs())
    served.socket_dir.chmod(0o755)
    r = served("run", str(served.image), "python", "-c", "print('ran anyway')")
    assert (r.returncode, r.stdout) == (0, "ran anyway\n")
    assert len(served.served_runs()) == before


def test_a_planted_socket_that_is_not_a_server_changes_nothing(served, tmp_path):
    """Something else listening at the socket path: the client gets no `pid` and runs the
    command itself."""
    path = _socket_path(served)
    Path(path).parent.mkdir(mode=0o700, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as impostor:
        impostor.bind(path)
        impostor.listen(8)
        p = served.popen("run", str(served.image), "python", "-c", "print('mine')")
        conn, _ = impostor.accept()
        conn.sendall(b"garbage\n")
        conn.close()
        out, err = p.communicate(timeout=120)
    assert (p.returncode, out) == (0, "mine\n"), err


def test_a_run_that_falls_back_to_the_client_answers_signals_itself(served):
    """After a failed hand-over the client runs the command itself, with its own signal
    handling back: a SIGTERM ends it (it is not waiting for a server's run any more)."""
    path = _socket_path(served)
    Path(path).parent.mkdir(mode=0o700, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as impostor:
        impostor.bind(path)
        impostor.listen(8)
        p = served.popen("run", str(served.image), "python", "-c", "import time; print('up', flush=True); "
                         "time.sleep(60)")
        conn, _ = impostor.accept()
        conn.close()
        assert p.stdout.readline() == "up\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 128 + signal.SIGTERM  # the guest stopped, boxer exits as docker run


def _socket_path(served: Served) -> str:
    """Where the client looks for its server (computed in a process with the test's env)."""
    script = "from boxer_py.cli import client; print(client.address()[0])"
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=served.env, check=True)
    return r.stdout.strip()


def test_an_idle_server_leaves(served):
    served.env["BOXER_SERVER_IDLE"] = "1"
    served.start()
    pid = served.server_pid()
    assert _wait_for(lambda: not _alive(pid), 30)
    assert served.sockets() == []
    assert "server leaves" in served.log()


class Dribbler:
    """A same-user client that sends a run request one byte at a time (the fds with the first
    byte), as slowly as it likes; `sending` stays true while it is still connected and sending."""

    def __init__(self, path: Path, every: float = 0.25):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.message = client.encode("dribbled", "/", 0o022, ["run", "x.wasm"], {b"PAD": b"x" * 4000})
        self.every = every
        self.sending = True
        self.sent = 0
        self.null = os.open(os.devnull, os.O_RDWR)
        self.thread = threading.Thread(target=self._dribble, daemon=True)
        self.thread.start()

    def _dribble(self) -> None:
        try:
            socket.send_fds(self.sock, [self.message[:1]], [self.null] * 3)
            self.sent = 1
            while self.sent < len(self.message):
                time.sleep(self.every)
                self.sock.send(self.message[self.sent:self.sent + 1])
                self.sent += 1
        except OSError:
            pass
        finally:
            self.sending = False

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=10)
        os.close(self.null)


def test_a_dribbling_client_holds_no_other_run(served):
    """The accept loop read each request inline: a client sending its request a byte at a time
    held every other `boxer run` for as long as it liked (20-24 s in the review). Requests
    are read off the accept loop now; the dribbler here may take its time (a 600 s request
    deadline), yet a served run completes while it is still connected and sending."""
    served.env["BOXER_SERVER_REQUEST_DEADLINE"] = "600"
    served.start()
    before = len(served.served_runs())
    dribbler = Dribbler(served.sockets()[0])
    try:
        time.sleep(1)
        assert dribbler.sending and dribbler.sent > 1
        r = served("run", str(served.image), "python", "-c", "print('not held')")
        assert (r.returncode, r.stdout) == (0, "not held\n"), r.stderr
        assert dribbler.sending, "the run waited for the dribbler to finish"
        assert len(served.served_runs()) == before + 1  # the server ran it, not the client itself
    finally:
        dribbler.close()


def test_a_stalled_or_oversized_request_is_dropped(served):
    """A request must be whole within the deadline (5 s by default) and at most MAX_REQUEST."""
    served.start()
    path = served.sockets()[0]
    null = os.open(os.devnull, os.O_RDWR)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stalled, \
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as oversized:
            stalled.connect(str(path))
            socket.send_fds(stalled, [b"\0\0"], [null] * 3)
            oversized.connect(str(path))
            socket.send_fds(oversized, [(64 << 20).to_bytes(4, "big") + b"boxer-run/1"], [null] * 3)
            oversized.settimeout(10)
            assert oversized.recv(100) == b""  # refused at once
            stalled.settimeout(60)
            started = time.monotonic()
            assert stalled.recv(100) == b""
            assert time.monotonic() - started < 30
    finally:
        os.close(null)
    assert "refused: no whole request within 5s" in served.log()
    assert "refused: not a run request" in served.log()
    r = served("run", str(served.image), "python", "-c", "print('still serving')")
    assert (r.returncode, r.stdout) == (0, "still serving\n")


def test_a_served_run_bakes_its_snapshot_once_its_client_is_done(served, tmp_path):
    """With baking on (preinit.bake), a served run of a snapshot the server has run before bakes
    it after its client has its result, without holding the client's output open (`run` here
    reads stdout to its end); the server then preloads the baked module, and the runs that start
    from it print and exit as a run of the CLI itself that restores the snapshot."""
    served.env["BOXER_BAKE"] = "1"
    served.start()
    command = ["run", str(served.image), "python", "-c", "import sys; print('hi', sys.argv[1:]); sys.exit(4)", "x"]
    for _ in range(2):
        r = served(*command)
        assert (r.returncode, r.stdout, r.stderr) == (4, "hi ['x']\n", ""), served.log()
    deadline = time.monotonic() + 900
    while len(re.findall(r" run \d+ exit ", served.log())) < len(served.served_runs()):  # the bake's run ends
        assert time.monotonic() < deadline, served.log()
        time.sleep(0.5)
    assert served.log().splitlines()[-1].endswith(" preloaded 1 compiled modules and snapshots"), served.log()
    assert list((served.cache / "modules").glob("*+bake*.cwasm"))
    mine = served(*command, served=False, env={"BOXER_BAKE": "0"})
    for _ in range(2):
        r = served(*command)
        assert (r.returncode, r.stdout, r.stderr) == (mine.returncode, mine.stdout, mine.stderr) == (4, "hi ['x']\n", "")


def test_an_image_the_server_keeps_is_read_again_once_tampered(served, tmp_path):
    """The server keeps the image files its runs read (preloaded as their compiled modules
    are): one changed in place (same inode and size) after served runs is read again by the
    next run, which refuses it."""
    image = tmp_path / "image.wasm"
    shutil.copy(served.image, image)
    served.start()
    for _ in range(2):
        assert served("run", str(image), "python", "-c", "pass").returncode == 0
    assert _wait_for(lambda: "preloaded" in served.log())
    data = bytearray(image.read_bytes())
    spot = data.find(b"environ.get('GREETING'")  # in the image's main.py, inside its layer
    assert spot > 0
    data[spot] ^= 0x20
    with open(image, "r+b") as f:
        f.write(bytes(data))
    r = served("run", str(image))
    assert r.returncode == 1 and "digest" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(served.served_runs()) >= 3  # the refused run was served too
