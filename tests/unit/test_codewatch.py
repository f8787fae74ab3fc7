"""The run server's watch over its own code (cli/codewatch.py): any change to a source file of
its package, and nothing else, makes it stale; without inotify the stamp says the same."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from boxer_py.cli import codewatch
from boxer_py.cli.codewatch import CodeWatch


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "sub" / "__pycache__").mkdir(parents=True)
    (root / "a.py").write_text("A = 1\n")
    (root / "sub" / "b.py").write_text("B = 1\n")
    (root / "README").write_text("notes\n")
    (tmp_path / "outside.toml").write_text("x = 1\n")
    (root / "sub" / "linked.toml").symlink_to(tmp_path / "outside.toml")
    return root


@pytest.fixture(params=["inotify", "stamp"])
def watch(request, package: Path, monkeypatch):
    if request.param == "stamp":  # what a server falls back to without inotify
        monkeypatch.setattr(CodeWatch, "_watch", lambda self, package: (_ for _ in ()).throw(OSError(24, "limit")))
    w = CodeWatch(str(package))
    assert (w.fd is None) == (request.param == "stamp")
    yield w
    w.close()


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a coarse clock cannot hide it


def test_nothing_changed(watch):
    assert not watch.changed()
    assert not watch.changed()


def test_what_is_not_code_is_no_change(watch, package: Path):
    (package / "README").write_text("more notes\n")
    (package / "sub" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"\0" * 16)
    (package / "__pycache__").mkdir()  # Python's own bytecode cache, made on import
    (package / "a.py").read_text()
    (package / ".a.py.swp").write_text("")
    assert not watch.changed()


@pytest.mark.parametrize("change", ["edit", "new", "remove", "rename over", "new folder", "linked file"])
def test_a_change_of_code_is_seen_and_stays_seen(watch, package: Path, tmp_path: Path, change: str):
    if change == "edit":
        _bump(package / "sub" / "b.py", "B = 2\n")
    elif change == "new":
        (package / "sub" / "c.py").write_text("C = 1\n")
    elif change == "remove":
        (package / "a.py").unlink()
    elif change == "rename over":
        (package / "sub" / "new").write_text("B = 3\n")
        os.replace(package / "sub" / "new", package / "sub" / "b.py")
    elif change == "new folder":
        (package / "extra").mkdir()
        (package / "extra" / "d.py").write_text("")
    else:
        _bump(tmp_path / "outside.toml", "x = 2\n")
    assert watch.changed()
    assert watch.changed()


def test_inotify_events_are_parsed_with_their_names():
    event = codewatch.EVENT.pack(3, codewatch.IN_MODIFY, 0, 16) + b"server.py".ljust(16, b"\0")
    bare = codewatch.EVENT.pack(4, codewatch.IN_ATTRIB, 0, 0)
    assert codewatch._events(event + bare) == [(3, codewatch.IN_MODIFY, b"server.py"), (4, codewatch.IN_ATTRIB, b"")]
