"""Programs.fixed: what a run looks up in an image's unpacked rootfs is found once, and a
long-lived launcher (the run server) keeps a bounded number of such answers."""
from __future__ import annotations

from boxer_py.runtime import programs
from boxer_py.runtime.programs import Programs
from boxer_py.runtime.wasi.clock import Deadlines


def test_an_answer_is_found_once_and_the_kept_answers_are_bounded(tmp_path):
    p = Programs(tmp_path, Deadlines())
    calls = []

    def find(value):
        calls.append(value)
        return value

    assert p.fixed(("q", "a"), lambda: find(None)) is None  # a None answer is kept too
    assert p.fixed(("q", "a"), lambda: find("again")) is None
    assert calls == [None]
    for n in range(programs.FIXED * 3):
        assert p.fixed(("q", n), lambda n=n: find(n)) == n
    assert len(p._fixed) <= programs.FIXED
    assert p.fixed(("q", programs.FIXED * 3 - 1), lambda: find("not asked")) == programs.FIXED * 3 - 1
    assert "not asked" not in calls
