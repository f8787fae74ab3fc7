"""Files handed in without mounts (`files=`, `--file`, Interpreter.write_file/read_file/
list_files) and interpreter snapshots, against hostile paths, hostile images and hostile
guests: nothing is written or read outside the run's own layer, no symlink is followed, and
a tampered snapshot is refused before a byte of it reaches guest memory."""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

import boxer_py
from boxer_py.runtime import inputs


@pytest.fixture(scope="module")
def box(hostile_image, cache_dir):
    with boxer_py.Session(hostile_image, cache_dir) as session:
        yield session


@pytest.mark.parametrize("path", ["relative.txt", "/a/../../etc/x", "/..", "/", "/a/\0b", "/" + "a" * 2000, ""])
def test_bad_guest_paths_are_refused(box, path):
    with pytest.raises(boxer_py.RunError, match="files: "):
        box.run_python("pass", files={path: b"x"})


def test_files_are_size_capped(box):
    with pytest.raises(boxer_py.RunError, match="bytes in all"):
        box.run_python("pass", files={"/a": b"x" * 600, "/b": b"y" * 600}, disk="1k")
    with pytest.raises(boxer_py.RunError, match="at most"):
        inputs.check({f"/f{i}": b"" for i in range(inputs.MAX_FILES + 1)})


def test_a_symlink_in_the_image_is_not_followed(build, cache_dir, tmp_path):
    target = tmp_path / "host-dir"
    target.mkdir()
    image = build(f"FROM python:3.12\nRUN ln -s {target} /escape && ln -s {target}/f.txt /file-link\n")
    with boxer_py.Session(image, cache_dir) as box:
        for path in ("/escape/planted.txt", "/file-link"):
            with pytest.raises(boxer_py.RunError, match="symbolic link|not a regular|not a directory"):
                box.run_python("pass", files={path: b"planted"})
    assert list(target.iterdir()) == []


def test_nothing_lands_under_a_mount(box, world):
    with pytest.raises(boxer_py.RunError, match="not the run's writable layer"):
        box.run_python("pass", files={"/rw/planted.txt": b"x"}, mounts=[f"{world.rw}:/rw"])
    assert not (world.rw / "planted.txt").exists()


def test_interpreter_host_side_never_follows_the_guests_links(box, world):
    up = "../" * 40  # relative links are what a guest can make (Wasmtime refuses absolute ones)
    code = (f"import os\nos.symlink({up + str(world.outside / 'secret.txt').lstrip('/')!r}, '/out/leak')\n"
            f"os.symlink({up.rstrip('/')!r}, '/tmp/root')\nos.symlink({up + str(world.outside).lstrip('/')!r}, '/tmp/hostdir')")
    with box.interpreter() as it:
        r = it.run(code)
        assert r.exit_code == 0, r.stderr
        for path in ("/out/leak", "/tmp/root/etc/passwd", "/tmp/hostdir/secret.txt", "/tmp/root"):
            with pytest.raises(boxer_py.RunError):
                it.read_file(path)
        for path in ("/tmp/hostdir/planted.txt", "/out/leak", "/tmp/root/planted.txt"):
            with pytest.raises(boxer_py.RunError, match="symbolic link|not a regular|not a directory"):
                it.write_file(path, b"x")
        assert "/out/leak" not in it.list_files()
        with pytest.raises(boxer_py.RunError):
            it.list_files("/tmp/hostdir")
        assert it.run("import os; os.mkdir('/out/big'); f = open('/out/big/sparse', 'wb'); f.truncate(1 << 40)").exit_code == 0
        with pytest.raises(boxer_py.RunError, match="larger than"):
            it.read_file("/out/big/sparse", limit=1 << 20)
    assert sorted(p.name for p in world.outside.iterdir()) == ["secret.txt"]
    assert not Path("/planted.txt").exists()


def _resealed(data: bytes, edit) -> bytes:
    """`data` (a snapshot) with its state's header edited and the checksum made right again,
    as an attacker who knows the format would."""
    from boxer_py.runtime.interpreter import MAGIC

    body = data[:-32]
    size = struct.unpack_from("<I", body, len(MAGIC))[0]
    start = len(MAGIC) + 4 + size
    state = body[start:]
    head_size = struct.unpack_from("<I", state)[0]
    import json

    head = json.loads(state[4:4 + head_size])
    edit(head)
    new_head = json.dumps(head).encode()
    body = body[:start] + struct.pack("<I", len(new_head)) + new_head + state[4 + head_size:]
    return body + hashlib.sha256(body).digest()


def test_tampered_snapshots_are_refused(box):
    with box.interpreter() as it:
        it.run("x = 1")
        good = it.snapshot()

    def outside(head):  # a page past the end of guest memory: would write into the host's
        address, length = head["pages"][-1]
        head["pages"][-1] = [head["memory_size"] + (1 << 30) - length, length]

    def inbox(head):  # the host writes requests at the inbox: it must stay the kernel's
        head["inbox"] = 1 << 40

    cases = {
        "flipped byte": good[:100] + bytes([good[100] ^ 1]) + good[101:],
        "truncated": good[:len(good) // 2],
        "not one": b"not a snapshot at all" * 10,
        "page outside memory": _resealed(good, outside),
        "inbox moved": _resealed(good, inbox),
        "huge memory": _resealed(good, lambda head: head.update(memory_size=1 << 40)),
    }
    for name, data in cases.items():
        with pytest.raises(boxer_py.RunError, match="from_snapshot"):
            box.interpreter(from_snapshot=data)
            pytest.fail(name)
    with box.interpreter(from_snapshot=good) as it:  # the good one still works
        assert it.run("x").stdout == b"1\n"


def test_snapshot_of_another_image_is_refused(box, hello_image, cache_dir):
    with boxer_py.Session(hello_image, cache_dir) as other, other.interpreter() as it:
        foreign = it.snapshot()
    with pytest.raises(boxer_py.RunError, match="from_snapshot"):
        box.interpreter(from_snapshot=foreign)
