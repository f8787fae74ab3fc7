"""Hostile package metadata against leaving out an optional extra's native-only requirements
(builder/extras.py): extras that name each other in a cycle, and an extra whose requirement is
a direct URL, end in the usual one-line failure naming the native-only package, after a bounded
number of metadata lookups, and the URL is never written into a requirements file of boxer's."""
from __future__ import annotations

import pytest

import boxer_py
from boxer_py.builder import extras
from boxer_py.builder.guestpython import marker_environment
from boxer_py.errors import BoxerError
from pyindex import Index, wheel

NATIVE = "cp312-cp312-manylinux_2_17_x86_64"


@pytest.fixture(scope="module")
def index():
    served = Index({
        "loopa-1.0-py3-none-any.whl": wheel("loopa", "1.0", ('loopb[x]; extra == "x"',), extras=("x",)),
        "loopb-1.0-py3-none-any.whl": wheel("loopb", "1.0", ('loopa[x]; extra == "x"',), extras=("x",)),
        "needsnative-1.0-py3-none-any.whl": wheel("needsnative", "1.0", ("nativeonly>=1",)),
        "nativeonly-1.0-cp312-cp312-manylinux_2_17_x86_64.whl": wheel("nativeonly", "1.0", tag=NATIVE),
    })
    yield served
    served.close()


def test_extras_in_a_cycle_end_in_the_usual_failure_after_bounded_lookups(make_context, tmp_path, cache_dir, index,
                                                                          monkeypatch):
    lookups = []
    real = extras._metadata
    monkeypatch.setattr(extras, "_metadata", lambda line, guest: lookups.append(line) or real(line, guest))
    ctx = make_context(f'FROM python:3.12\nRUN pip install --index-url {index.url}/simple/ "loopa[x]" needsnative\n')
    with pytest.raises(BoxerError) as e:
        boxer_py.build(ctx, tmp_path / "x.wasm", cache_dir=cache_dir)
    assert str(e.value).endswith("pip install: nativeonly has no pure-Python or WASI wheel for Python 3.12 and no "
                                 "source distribution, so it cannot run in WebAssembly; use a pure-Python alternative")
    assert 1 <= len(lookups) <= extras.MAX_DEPTH, lookups
    assert not (tmp_path / "x.wasm").exists()


def test_an_extra_naming_a_direct_url_is_not_expanded(index):
    served = Index({"urlextra-1.0-py3-none-any.whl": wheel("urlextra", "1.0", (
        'nativeonly; extra == "x"', f'payload @ {index.url}/files/payload-1.0-py3-none-any.whl ; extra == "x"'),
        extras=("x",))})
    try:
        guest = extras.Guest(marker_environment("3.12.0"), "3.12",
                             ["--index-url", f"{served.url}/simple/"])
        assert extras.leave_out(["urlextra[x]"], "nativeonly", guest) is None
        assert guest.lookups == 1
    finally:
        served.close()
