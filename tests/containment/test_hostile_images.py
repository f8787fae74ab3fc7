"""Hostile images, and hostile guests the per-case corpus cannot express: what the host does
with an image's config and layers (unpack, export, run copies), and host calls a guest can
block in. Each test is an attack the host must hold against: a one-line error, a bounded
host, never a traceback nor a hang."""
from __future__ import annotations

import io
import json
import os
import resource
import stat
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import wasmtime

import boxer_py
from boxer_py.image import hostfs, imagefile
from boxer_py.image.imagefile import BLOB_PREFIX, MANIFEST_SECTION, WASM_HEADER, _section, sha256
from boxer_py.image.rootfs import unpack
from boxer_py.registry.export import export_rootfs
from boxer_py.runtime.launcher import Launcher
from boxer_py.runtime.spec import Limits, Mount, RunSpec

MiB = 1 << 20
UNSAFE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | 0o022


def image_file(path: Path, config: dict, layers: list[bytes], diff_ids: list[str] | None = None) -> Path:
    """An image file with exactly this config document (not one ImageSpec would write)."""
    doc = {"architecture": "wasm", "os": "wasip1", "config": config,
           "rootfs": {"type": "layers", "diff_ids": diff_ids if diff_ids is not None else [sha256(x) for x in layers]}}
    raw = json.dumps(doc).encode()
    manifest = {"schemaVersion": 2, "mediaType": imagefile.MANIFEST_MEDIA_TYPE,
                "config": {"mediaType": imagefile.CONFIG_MEDIA_TYPE, "digest": sha256(raw), "size": len(raw)},
                "layers": [{"mediaType": imagefile.LAYER_MEDIA_TYPE, "digest": sha256(x), "size": len(x)}
                           for x in layers]}
    parts = [WASM_HEADER, _section(MANIFEST_SECTION, json.dumps(manifest).encode())]
    for blob in dict.fromkeys([raw, *layers]):
        parts.append(_section(BLOB_PREFIX + sha256(blob), blob))
    path.write_bytes(b"".join(parts))
    return path


def tar_of(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, data: bytes | None = None, mode: int = 0o644, kind: bytes = tarfile.REGTYPE,
           link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    if data is not None:
        info.size = len(data)
    return info, data


WASM = bytes(wasmtime.wat2wasm('(module (func (export "_start")))'))
PROGRAM = tar_of([member("prog.wasm", WASM, 0o755)])


def sparse_tar(apparent: int = 1 << 30) -> bytes:
    """A GNU sparse member: 512 bytes of data at the end of `apparent` bytes of hole."""
    header = bytearray(512)

    def put(offset: int, width: int, value: bytes) -> None:
        header[offset:offset + len(value)] = value

    def octal(n: int, width: int) -> bytes:
        return (b"%0*o" % (width - 1, n)) + b"\0"

    put(0, 100, b"hole.bin")
    put(100, 8, octal(0o644, 8))
    put(108, 8, octal(0, 8))
    put(116, 8, octal(0, 8))
    put(124, 12, octal(512, 12))  # stored data
    put(136, 12, octal(0, 12))
    put(156, 1, b"S")
    put(257, 8, b"ustar  \0")
    put(386, 12, octal(apparent - 512, 12))  # sparse map: one chunk at the end
    put(398, 12, octal(512, 12))
    put(483, 12, octal(apparent, 12))  # real size
    header[148:156] = b" " * 8
    put(148, 8, b"%06o\0 " % sum(header))
    return bytes(header) + b"x" * 512 + bytes(1024)


def test_the_sparse_member_is_what_it_claims():
    with tarfile.open(fileobj=io.BytesIO(sparse_tar()), mode="r:") as t:
        (m,) = t.getmembers()
        assert m.issparse() and m.size == 1 << 30 and len(sparse_tar()) < 10_000


# --- crafted configs and layers: one line, on run and on export ---

CRAFTED = {
    "env-without-equals": ({"Env": ["JUSTANAME"], "Entrypoint": ["/prog.wasm"]}, [PROGRAM], r"corrupt config"),
    "workdir-not-a-string": ({"WorkingDir": {"a": 1}, "Entrypoint": ["/prog.wasm"]}, [PROGRAM], r"corrupt config"),
    "workdir-3000-deep": ({"WorkingDir": "/d" * 3000, "Entrypoint": ["/prog.wasm"]}, [PROGRAM], r"corrupt config"),
    "cmd-not-strings": ({"Cmd": [1, 2]}, [PROGRAM], r"corrupt config"),
    "layer-not-a-tar": ({"Entrypoint": ["/prog.wasm"]}, [b"this is not a tar archive" * 40], r"tar"),
    "layer-truncated": ({"Entrypoint": ["/prog.wasm"]}, [PROGRAM[:700]], r"tar|truncated"),
    "layer-sparse-gigabyte": ({"Entrypoint": ["/prog.wasm"]}, [sparse_tar()], r"sparse"),
    # a tree deeper than recursive host tools (shutil.rmtree, pytest's clean-up) can remove
    "layer-1500-deep": ({"Entrypoint": ["/prog.wasm"]}, [tar_of([member("d/" * 1500 + "f", b"x")])], r"deeper than"),
    "layer-gzip-bomb": ({"Entrypoint": ["/prog.wasm"]},
                        [__import__("gzip").compress(tar_of([member("zeros", bytes(64 * MiB))]))], r"tar"),
}


@pytest.mark.parametrize("how", ["run", "export"])
@pytest.mark.parametrize("case", list(CRAFTED), ids=list(CRAFTED))
def test_a_crafted_image_gives_one_line(case, how, tmp_path, boxer):
    config, layers, said = CRAFTED[case]
    image = image_file(tmp_path / "crafted.wasm", config, layers)
    args = ["run", str(image)] if how == "run" else ["export", str(image), str(tmp_path / "out")]
    p = boxer(*args, timeout=120)
    assert p.returncode != 0, p
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and __import__("re").search(said, lines[0]), p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --- item 7: sparse members and hard-link bombs are bounded on every unpack ---

def test_a_sparse_member_is_refused_by_every_unpack(tmp_path):
    from boxer_py.errors import BoxerError
    from boxer_py.registry.oci import check_layer

    layer = sparse_tar()
    image = boxer_py.read_image(image_file(tmp_path / "s.wasm", {}, [layer]))
    for attempt in (lambda: unpack(image, tmp_path / "u"), lambda: export_rootfs(image, tmp_path / "e"),
                    lambda: check_layer(layer, "pulled"), lambda: Launcher(tmp_path / "cache").rootfs(image)):
        (tmp_path / "u").mkdir(exist_ok=True)
        with pytest.raises(BoxerError, match="sparse"):
            attempt()
    assert hostfs.tree_usage(tmp_path, 0) < 4 * MiB  # nothing written dense


def test_hard_links_cannot_multiply_a_layer(tmp_path):
    from boxer_py.errors import BoxerError
    from boxer_py.registry.oci import check_layer

    layer = tar_of([member("big", bytes(8 * MiB))] + [member(f"l{i}", kind=tarfile.LNKTYPE, link="big")
                                                     for i in range(200)])  # 1.6 GiB from 8 MiB
    image = boxer_py.read_image(image_file(tmp_path / "h.wasm", {}, [layer]))
    (tmp_path / "u").mkdir()
    with pytest.raises(BoxerError, match="expands past"):
        unpack(image, tmp_path / "u")
    with pytest.raises(BoxerError, match="expands past"):
        check_layer(layer, "pulled")
    assert hostfs.tree_usage(tmp_path / "u", 0) < 300 * MiB


# --- item 15: no setuid, setgid, sticky, group or other write bit on a host file ---

def test_modes_are_made_safe_on_every_host_file(tmp_path):
    layer = tar_of([member("suid", b"x", 0o6777), member("world", b"y", 0o666),
                    member("tmp", mode=0o1777, kind=tarfile.DIRTYPE), member("tmp/f", b"z", 0o4755),
                    member("locked", mode=0o000, kind=tarfile.DIRTYPE), member("locked/f", b"w", 0o000),
                    member("prog.wasm", WASM, 0o755)])
    path = image_file(tmp_path / "m.wasm", {"Entrypoint": ["/prog.wasm"]}, [layer])
    image = boxer_py.read_image(path)
    launcher = Launcher(tmp_path / "cache")
    base = launcher.rootfs(image)
    export_rootfs(image, tmp_path / "exported")
    hostfs.copy_tree(base, tmp_path / "copy")  # what each run gets
    for root in (base, tmp_path / "exported" / "rootfs", tmp_path / "copy"):
        modes: dict[str, int] = {}

        def record(w, name, st, modes=modes):
            modes[w.path(name)] = stat.S_IMODE(st.st_mode)
            return True

        hostfs.walk(root, record)
        assert set(modes) == {"suid", "world", "tmp", "tmp/f", "locked", "locked/f", "prog.wasm"}, root
        assert all(mode & UNSAFE_BITS == 0 for mode in modes.values()), (root, modes)
        assert modes["prog.wasm"] == 0o755 and modes["suid"] == 0o755
    assert launcher.run(image).exit_code == 0
    with tarfile.open(fileobj=io.BytesIO(image.layer(image.layers[0]))) as t:  # the image keeps what it said
        assert t.getmember("suid").mode == 0o6777


# --- item 3: trees deeper than PATH_MAX and the recursion limit never break the host ---

def deep_tree(top: Path, depth: int, name: str = "d") -> None:
    top.mkdir(parents=True)
    fd = os.open(top, os.O_RDONLY)
    try:
        for i in range(depth):
            os.mkdir(name, dir_fd=fd)
            if i % 500 == 0:
                os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
            fd, old = os.open(name, os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
        os.fchmod(fd, 0o500)  # and a directory its owner may not write
    finally:
        os.close(fd)


def test_a_dead_runs_deep_layer_is_swept_and_start_up_never_fails(tmp_path, hello_image):
    cache = tmp_path / "cache"
    dead = cache / "runs" / "999999999.dead"  # no such pid
    deep_tree(dead / "rootfs", 3000, "dd")  # 9000 bytes deep: past PATH_MAX, past the recursion limit
    try:
        started = time.monotonic()
        box = boxer_py.Session(hello_image, launcher=Launcher(cache))  # Launcher.__init__ sweeps
        print(f"swept a 3000-deep layer in {time.monotonic() - started:.1f}s")
        assert not dead.exists()
        assert box.run_python("print(1)").stdout == b"1\n"
    finally:
        hostfs.remove_tree(dead)  # pytest's own clean-up of tmp dirs recurses: never leave it one


def test_the_one_small_file_reader_refuses_what_is_not_a_small_regular_file(tmp_path):
    """hostfs.read_file, which every small-file read of a context, image or layer goes through:
    a FIFO is refused without waiting for a writer, a sparse file that claims a terabyte before a
    byte is read, a link at the last component unless the user named it on the host."""
    os.mkfifo(tmp_path / "fifo")
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(1 << 40)
    (tmp_path / "small").write_bytes(b"ok")
    (tmp_path / "link").symlink_to(tmp_path / "small")
    cases = {"fifo": (True, False, "is not a regular file"), "sparse": (True, False, "is larger than 100 bytes"),
             "link": (False, False, "is a link"), "missing": (False, True, "does not exist"),
             ".": (True, False, "is not a regular file")}
    for name, (opened, missing, why) in cases.items():
        with pytest.raises(hostfs.Unreadable) as e:
            hostfs.read_file(tmp_path / name, 100)
        assert (str(e.value), e.value.opened, e.value.missing) == (why, opened, missing), name
    assert hostfs.read_file(tmp_path / "link", 100, follow=True) == b"ok"
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert hostfs.read_file("small", 2, dir_fd=fd) == b"ok"
        with pytest.raises(hostfs.Unreadable, match="larger than 1 bytes"):
            hostfs.read_file("small", 1, dir_fd=fd)
    finally:
        os.close(fd)


WALKS = """
import os, resource, sys
from pathlib import Path
from boxer_py.image import hostfs
top = Path(sys.argv[1])
limit = 128  # a copy walks two trees, each with at most FD_WINDOW (48) open
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
before = sorted(os.listdir("/proc/self/fd"))
print(hostfs.tree_usage(top / "deep", 512))
hostfs.copy_tree(top / "deep", top / "copy")
print(hostfs.tree_usage(top / "copy", 512))
print(sorted(os.listdir("/proc/self/fd")) == before)
print(hostfs.remove_tree(top / "deep") and hostfs.remove_tree(top / "copy"))
"""


def test_the_walks_hold_at_any_depth_with_few_descriptors(tmp_path):
    """3000 levels walked, copied and removed within a descriptor limit far below the depth, and
    none left open.
    In a process of its own: in pytest's, a stray object of an earlier test may close a
    descriptor mid-walk, and the count would say nothing of the walks."""
    deep_tree(tmp_path / "deep", 3000, "dd")
    try:
        out = subprocess.run([sys.executable, "-c", WALKS, str(tmp_path)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(boxer_py.__file__).parents[1])},
                             timeout=300)
        assert out.returncode == 0, out.stderr
        size = str(3000 * 512 + 6 * 512)
        assert out.stdout.split() == [size, size, "True", "True"]
        assert os.listdir(tmp_path) == []
    finally:
        hostfs.remove_tree(tmp_path / "deep")
        hostfs.remove_tree(tmp_path / "copy")


# --- item 8: --memory holds every memory and table together ---

MANY_MEMORIES = ("(module " + " ".join(f"(memory $m{i} 1)" for i in range(64)) + ' (func (export "_start") '
                 + " ".join(f"(drop (memory.grow $m{i} (i32.const 1000)))" for i in range(64)) + "))")
# returns normally only if the grow was refused
BIG_TABLE = ('(module (table $t 1 funcref) (func (export "_start") '
             "(if (i32.ne (table.grow $t (ref.null func) (i32.const 100000000)) (i32.const -1)) (then unreachable))))")


def test_memory_limit_holds_many_memories_and_big_tables(tmp_path):
    launcher = Launcher(tmp_path / "cache")
    for name, wat in (("memories", MANY_MEMORIES), ("table", BIG_TABLE)):
        layer = tar_of([member("prog.wasm", bytes(wasmtime.wat2wasm(wat)), 0o755)])
        image = boxer_py.read_image(image_file(tmp_path / f"{name}.wasm", {"Entrypoint": ["/prog.wasm"]}, [layer]))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = launcher.run(image, RunSpec(limits=Limits(memory=64 * MiB, timeout=60)))
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(name, r.exit_code, r.trap, f"peak RSS grew {grown // 1024} MiB")
        if name == "memories":
            assert (r.exit_code, r.out_of_memory) == (134, True) and "count" in r.trap, r
        else:
            assert r.exit_code == 0, r  # table.grow refused: -1
        assert grown < 200 * 1024


# --- item 9: a blocking open never outlives the timeout ---

@pytest.mark.parametrize("mode", ["r", "w"])
def test_a_fifo_in_a_mount_does_not_outlive_the_timeout(mode, tmp_path, hostile_box):
    data = tmp_path / "data"
    data.mkdir()
    os.mkfifo(data / "pipe")
    box = []

    def run():
        box.append(hostile_box.run_python(f"open('/data/pipe', {mode!r}); print('opened')", timeout=2,
                                          mounts=[Mount(data, "/data")]))

    started = time.monotonic()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "the run is still blocked opening the FIFO"
    r = box[0]
    assert r.timed_out and r.exit_code == 124, r
    assert time.monotonic() - started < 10
    hostile_box.launcher.settle()


def test_stdin_from_a_fifo_is_refused_not_blocking(tmp_path, hostile_image, boxer):
    os.mkfifo(tmp_path / "pipe")
    # blocked, it would never end (the watchdog is armed once the guest starts): the call's own
    # timeout would fail the test
    p = boxer("run", "--timeout", "2", "--stdin", str(tmp_path / "pipe"), str(hostile_image), "python", "-c",
              "print(1)", timeout=120, env={"BOXER_SERVER": "0"})
    assert p.returncode == 125 and "FIFO" in p.stderr and "Traceback" not in p.stderr, p
    # a pipe of this very process is still a fine stdin (`--stdin <(cmd)`)
    code = ("import os, subprocess, sys\nr, w = os.pipe()\nos.write(w, b'piped'); os.close(w)\n"
            f"sys.exit(subprocess.run([sys.executable, '-m', 'boxer_py', 'run', '--timeout', '20', '--stdin', "
            f"f'/dev/fd/{{r}}', {str(hostile_image)!r}, 'python', '-c', 'import sys; print(sys.stdin.read())'], "
            "pass_fds=[r]).returncode)")
    q = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "BOXER_CACHE_DIR": str(tmp_path / "cache"), "BOXER_SERVER": "0"})
    assert (q.returncode, q.stdout) == (0, "piped\n"), q


# --- item 6: a streaming run keeps what it echoes bounded ---

def test_streaming_does_not_keep_what_it_echoes(tmp_path, hostile_image, cache_dir):
    """200 MiB through a streaming `boxer run` (no --json, no --max-output): the process's
    peak RSS stays that of a run that prints nothing, give or take. (No run server: the
    measured process is the one that runs the guest.)"""
    def peak(code: str) -> int:
        wrapper = ("import resource, subprocess, sys\n"
                   "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
                   "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, len(p.stderr))\n")
        p = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "boxer_py", "run", "--timeout", "300",
                            str(hostile_image), "python", "-c", code], capture_output=True, text=True, timeout=400,
                           env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0"})
        rc, rss, _ = map(int, p.stdout.split())
        assert rc == 0, p
        return rss

    quiet = peak("pass")
    loud = peak("import sys\nb = b'y' * (1 << 20)\nfor _ in range(200): sys.stdout.buffer.write(b)")
    print(f"peak RSS: quiet run {quiet // 1024} MiB, 200 MiB of output {loud // 1024} MiB")
    assert loud - quiet < 64 * 1024, (quiet, loud)


# --- item 14: a name under /out that is not UTF-8 breaks no result ---

def test_a_non_utf8_name_under_out_breaks_no_result(tmp_path, hostile_image, launcher):
    base = boxer_py.read_image(hostile_image)
    extra = tar_of([member("out", mode=0o755, kind=tarfile.DIRTYPE)])
    bad = tarfile.TarInfo("out/x")
    layer = bytearray(tar_of([(bad, None)]))
    # a ustar name the tar module would not write: patch the bytes, then the checksum
    layer[5] = 0xFF
    layer[148:156] = b" " * 8
    layer[148:156] = b"%06o\0 " % sum(layer[:512])
    layers = [base.layer(d) for d in base.layers] + [extra, bytes(layer)]
    config = json.loads(base.blob(json.loads(base.manifest)["config"]["digest"]))["config"]
    image = boxer_py.read_image(image_file(tmp_path / "bad-name.wasm", config, layers))
    box = boxer_py.Session(image, launcher=launcher)
    for _ in range(2):  # and the run after it
        r = box.run_python("print(1)", timeout=30)
        assert r.exit_code == 0, r.stderr
        result = r.to_json()
        json.dumps(result, ensure_ascii=False).encode()  # as a server writes it: no lone surrogate
        assert [f["path"] for f in result["files"]] == ["/out/x\\xff"]


def test_a_single_file_mount_lands_inside_the_run_whatever_links_the_image_has(tmp_path, build, boxer):
    """A file mount is copied into the run's layer at its guest path: links the image put on
    that path (absolute, or climbing with ..) resolve inside the layer, never to the host."""
    outside = tmp_path / "host-target"
    outside.write_text("host file")
    image = build(f"FROM python:3.12\nRUN mkdir -p /app && ln -s {outside} /app/cfg && ln -s ../../../../.. /app/up\n")
    mine = tmp_path / "mine.yaml"
    mine.write_text("mounted")
    before = sorted(p.name for p in tmp_path.iterdir())
    for guest, read in (("/app/cfg", "/app/cfg"), ("/app/up/mine.yaml", "/mine.yaml"),
                        (f"/app/up{tmp_path}/host-target", f"{tmp_path}/host-target")):
        r = boxer("run", "-v", f"{mine}:{guest}:ro", str(image), "python", "-c", f"print(open({read!r}).read())")
        assert (r.returncode, r.stdout) == (0, "mounted\n"), (guest, r.stderr)
    assert outside.read_text() == "host file" and mine.read_text() == "mounted"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (Path("/") / "mine.yaml").exists()
