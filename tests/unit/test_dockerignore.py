""".dockerignore as Docker reads it (Go's filepath.Match plus `**`, the last match wins), in memory."""
from __future__ import annotations

import pytest

from boxer_py.builder.context import Context


def context(tmp_path, ignore: str) -> Context:
    (tmp_path / ".dockerignore").write_text(ignore)
    return Context(tmp_path, "Dockerfile")


@pytest.mark.parametrize("ignore, path, ignored", [
    ("*.pyc", "a.pyc", True),
    ("*.pyc", "pkg/a.pyc", False),          # `*` does not cross directories
    ("**/*.pyc", "pkg/sub/a.pyc", True),
    ("**/*.pyc", "a.pyc", True),            # `**/` also matches no directory
    ("build", "build/lib/x.py", True),      # a directory excludes what is under it
    ("/build", "build", True),              # a leading slash is the context root
    ("docs/*.md", "docs/a.md", True),
    ("docs/*.md", "docs/sub/a.md", False),
    ("data/?.csv", "data/1.csv", True),
    ("data/?.csv", "data/10.csv", False),
    ("[ab].txt", "b.txt", True),
    ("[^ab].txt", "c.txt", True),            # Go negates a class with ^, not !
    ("[!ab].txt", "c.txt", False),
    ("*\n!keep.log", "keep.log", False),    # an exception after a rule re-includes
    ("!keep.log\n*", "keep.log", True),     # the last matching line wins
    ("# comment\n\n*.tmp", "x.tmp", True),
    ("./x/../secret", "secret", True),      # patterns are cleaned like paths
])
def test_patterns(tmp_path, ignore, path, ignored):
    assert context(tmp_path, ignore).ignored(path) is ignored


def test_no_dockerignore_ignores_nothing(tmp_path):
    assert not Context(tmp_path, "Dockerfile").ignored("anything/at/all")
