"""An optional extra's requirement with no pure-Python or WASI wheel (uvicorn[standard] asks for
httptools and uvloop) is left out with a one-line warning naming it, the extra and why; the
same package asked for directly, or needed by a package's own dependencies, still fails the
build naming it (issue 16). Real pip, real Wasmtime, a package index on 127.0.0.1."""
from __future__ import annotations

import pytest

import boxer_py
from boxer_py.errors import BoxerError
from pyindex import Index, wheel

NATIVE = "cp312-cp312-manylinux_2_17_x86_64"


@pytest.fixture(scope="module")
def index():
    served = Index({
        # webserver[standard]: two native-only speedups (httptools and uvloop), a pure one, and an extra of another package
        # (speedups[fast]) that asks for a second native-only package
        "webserver-1.0-py3-none-any.whl": wheel("webserver", "1.0", (
            "h11ish>=1", 'nativeonly>=1; extra == "standard"', 'dotenvish; extra == "standard"',
            'nativethree; extra == "standard"',
            'speedups[fast]; extra == "standard"', 'winonly; sys_platform == "win32" and extra == "standard"'),
            extras=("standard",)),
        "h11ish-1.0-py3-none-any.whl": wheel("h11ish", "1.0"),
        "dotenvish-1.0-py3-none-any.whl": wheel("dotenvish", "1.0"),
        "speedups-1.0-py3-none-any.whl": wheel("speedups", "1.0", ('nativetoo; extra == "fast"',), extras=("fast",)),
        "nativeonly-1.0-cp312-cp312-manylinux_2_17_x86_64.whl": wheel("nativeonly", "1.0", tag=NATIVE),
        "nativetoo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl": wheel("nativetoo", "1.0", tag=NATIVE),
        "nativethree-1.0-cp312-cp312-manylinux_2_17_x86_64.whl": wheel("nativethree", "1.0", tag=NATIVE),
        # a package that needs the native-only one itself
        "needsnative-1.0-py3-none-any.whl": wheel("needsnative", "1.0", ("nativeonly>=1",)),
    })
    yield served
    served.close()


def test_an_extras_native_only_requirements_are_left_out_with_a_warning(make_context, tmp_path, cache_dir, index,
                                                                         boxer):
    ctx = make_context(f'FROM python:3.12\nRUN pip install --index-url {index.url}/simple/ "webserver[standard]"\n')
    log: list[str] = []
    boxer_py.build(ctx, tmp_path / "x.wasm", cache_dir=cache_dir, progress=log.append)
    warnings = sorted(line.split("pip install: warning: ", 1)[1] for line in log if "warning: left out" in line)
    assert warnings == [
        "left out nativeonly, which the optional extra webserver[standard] asks for: nativeonly has no pure-Python "
        "or WASI wheel for Python 3.12 and no source distribution, so it cannot run in WebAssembly; use a "
        "pure-Python alternative",
        "left out nativethree, which the optional extra webserver[standard] asks for: nativethree has no "
        "pure-Python or WASI wheel for Python 3.12 and no source distribution, so it cannot run in WebAssembly; use "
        "a pure-Python alternative",
        "left out nativetoo, which the optional extra speedups[fast] asks for: nativetoo has no pure-Python or WASI "
        "wheel for Python 3.12 and no source distribution, so it cannot run in WebAssembly; use a pure-Python "
        "alternative"], log
    installed = next(line for line in log if "installed into /lib/python3.12/site-packages:" in line)
    assert installed.split(": ", 1)[1].split() == ["dotenvish-1.0", "h11ish-1.0", "speedups-1.0", "webserver-1.0"]
    r = boxer("run", str(tmp_path / "x.wasm"), "python", "-c",
              "import importlib.util as u, webserver, dotenvish, speedups\n"
              "print(webserver.VERSION, [u.find_spec(n) for n in ('nativeonly', 'nativetoo', 'nativethree', 'winonly')])")
    assert (r.returncode, r.stdout) == (0, "1.0 [None, None, None, None]\n"), r.stderr


@pytest.mark.parametrize("wanted", ["nativeonly", "needsnative"])
def test_the_same_package_asked_for_otherwise_still_fails_naming_it(make_context, tmp_path, cache_dir, index,
                                                                    wanted):
    # asked for directly, or by a package's own (non-optional) dependencies, beside the extra
    ctx = make_context(f'FROM python:3.12\nRUN pip install --index-url {index.url}/simple/ "webserver[standard]" '
                       f"{wanted}\n")
    with pytest.raises(BoxerError) as e:
        boxer_py.build(ctx, tmp_path / "x.wasm", cache_dir=cache_dir)
    message = str(e.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.endswith("RUN returned exit code 1: pip install: nativeonly has no pure-Python or WASI wheel "
                            "for Python 3.12 and no source distribution, so it cannot run in WebAssembly; use a "
                            "pure-Python alternative"), message
    assert not (tmp_path / "x.wasm").exists()
