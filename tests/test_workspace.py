"""Writable layers are made ahead and removed behind the runs, and still never shared."""
from __future__ import annotations

import os
import subprocess
import sys

import boxer_py
from boxer_py.runtime.launcher import Launcher


def test_layers_go_and_spares_are_private(hello_image, tmp_path):
    cache = tmp_path / "cache"
    with boxer_py.Session(hello_image, launcher=Launcher(cache)) as box:
        for i in range(4):  # from the second run on, a copy is kept ready for the next
            r = box.run_python(f"import os\nprint(sorted(os.listdir('/tmp')))\nopen('/tmp/mine', 'w').write('{i}')")
            assert (r.exit_code, r.stdout) == (0, b"[]\n"), r.stderr
        box.launcher.settle()
        assert list((cache / "runs").iterdir()) == []
        spares = list((cache / "spares").iterdir())
        assert 1 <= len(spares) <= 2 and all(not (s / "tmp/mine").exists() for s in spares)
    assert list((cache / "spares").iterdir()) == []  # closed: the ready copies are gone too


def test_spares_of_a_dead_process_are_swept(hello_image, tmp_path):
    cache = tmp_path / "cache"
    code = ("import boxer_py, os\n"
            f"box = boxer_py.Session({str(hello_image)!r}, cache_dir={str(cache)!r})\n"
            "for _ in range(3): box.run_python('pass')\n"
            "box.launcher.settle()\n"
            "os._exit(0)\n")  # no exit handlers: the spares stay behind
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    assert list((cache / "spares").iterdir())
    Launcher(cache)
    assert list((cache / "spares").iterdir()) == []
    assert not any(p.name.startswith(f"{os.getpid()}.") for p in (cache / "runs").iterdir())


def test_a_change_hidden_by_a_coarse_clock_is_still_seen(tmp_path):
    """On a filesystem whose change times are coarse (one clock tick), a guest that rewrites
    a file just copied, in place and at the same size, and sets its times back, may leave
    every stat field as sealed. A real filesystem cannot be made to do that on demand, so
    the seal is made to agree with the stat fields after the change; comparing what was
    copied just before the seal with its original must still tell."""
    from boxer_py.image.rootfs import copy_tree
    from boxer_py.runtime.workspace import _only_read, _seal, _state

    base, root = tmp_path / "base", tmp_path / "rootfs"
    base.mkdir()
    (base / "data.txt").write_text("original\n")
    os.symlink("data.txt", base / "link")
    copy_tree(base, root)
    seal = _seal(root)
    assert sorted(seal.recent) == ["data.txt", "link"]  # just copied
    st = os.stat(root / "data.txt")
    with open(root / "data.txt", "r+") as f:
        f.write("ORIGINAL\n")
    os.utime(root / "data.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    seal.state = _state(root)  # what a coarse clock could show: nothing moved
    assert not _only_read(root, seal, base)
    (root / "data.txt").write_text("original\n")
    seal = _seal(root)
    os.remove(root / "link")
    os.symlink("data.txx", root / "link")  # same length, and likely the same inode number
    seal.state = _state(root)
    assert not _only_read(root, seal, base)
    os.remove(root / "link")
    os.symlink("data.txt", root / "link")
    seal = _seal(root)
    assert _only_read(root, seal, base)  # as copied: handed on


def test_a_layer_handed_on_is_sealed_as_a_walk_finds_it(tmp_path):
    """The next run of a layer that was handed on is sealed with the state its check left
    (no second walk): that state must be exactly what a walk finds, access times set back
    included (setting them back gives those entries a new change time)."""
    from boxer_py.image.rootfs import copy_tree
    from boxer_py.runtime.workspace import _only_read, _seal, _state

    base, root = tmp_path / "base", tmp_path / "rootfs"
    (base / "app").mkdir(parents=True)
    (base / "app" / "main.py").write_text("print('hi')\n")
    copy_tree(base, root)
    seal = _seal(root)
    st = os.stat(root / "app" / "main.py")
    assert (root / "app" / "main.py").read_text() == "print('hi')\n"  # a guest's read (relatime: atime moves)
    handed = _only_read(root, seal, base)
    assert handed is not None and handed == _state(root)
    assert os.stat(root / "app" / "main.py").st_atime_ns == st.st_atime_ns
    again = _seal(root, handed)
    (root / "app" / "new").write_text("x")  # the next guest writes: still seen against that seal
    assert _only_read(root, again, base) is None


def test_a_deferred_give_back_is_done_when_asked_and_not_before(tmp_path):
    """A run the run server forked defers the check of its layer and the release of its
    store until its client has the exit code (server.py): until then nothing is kept,
    handed on, removed or let go; then all of it is, as give_back would have done it."""
    from boxer_py.runtime.workspace import Workspaces

    base = tmp_path / "base"
    (base / "app").mkdir(parents=True)
    (base / "app" / "main.py").write_text("print('hi')\n")
    spaces = Workspaces(tmp_path / "runs", tmp_path / "spares")
    let_go: list[str] = []

    class Store:  # a finished run's store: dropped once nothing holds it
        def __del__(self) -> None:
            let_go.append("store")

    spaces.defer()
    layer = spaces.take("image", base)
    spaces.seal(layer)
    spaces.drop_later(Store())
    spaces.give_back(layer)
    assert layer.is_dir() and let_go == [] and spaces.hand_over() == []
    spaces.deferred()
    assert not layer.exists() and let_go == ["store"]
    handed = spaces.hand_over()
    assert [key for key, _ in handed] == [("image", ())]  # it only read: kept for the next run
    spaces.discard(handed)
