"""CPython's own test modules in the guest, per python base (issue 17): a fast part of
`make -C toolchain/cpython boxer-tests`, run the same way (toolchain/cpython/boxer_tests.py
builds a `FROM python:X.Y` image and runs `python -m test -v MODULE` under boxer's launcher,
the test package mounted read-only). Each module must pass at least as many tests as it did
when recorded (toolchain/cpython/README.md has the whole run), and fail only the known ones,
each a limit of WASI or of the sandbox, never a defect left unexplained.

The test package comes from the version's Debian orig tarball (`apt-get source` through an
apt configuration of the tests' own: no root, no deb-src lines in the system's sources; checked
by sha256), fetched once into $BUILD_ROOT/boxer-tests (/work/build, else the user's cache: see
boxer_tests.default_work). A mirror that cannot be reached fails the test, with apt's reason.
3.12 (VMware's runtime) has no Debian source: its tests are those of a CPython 3.12 on this
machine (on PATH or pyenv's), when there is one."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import toolchainscripts

# Tests passed (run - failures - errors - skipped) when recorded, per base and module: modules
# that run in seconds, and those of boxer's pwd and grp stand-ins. 3.12's are other ones: its
# stdlib has no multiprocessing (test_re imports it) and its test_struct has a 3.12.1 test.
FLOORS = {
    # test_sqlite3 passes whole since the runtime's SQLite locks within the process (wasi/sqlite3_wasi.c)
    "3.13": {"test_re": 160, "test_json": 166, "test_struct": 37, "test_pwd": 3, "test_grp": 4, "test_sqlite3": 473},
    # 3.11's test_shutil passes whole since its runtime leaves out statvfs (disk_usage failed)
    "3.11": {"test_re": 153, "test_json": 152, "test_struct": 33, "test_pwd": 3, "test_grp": 4, "test_shutil": 97},
    "3.12": {"test_json": 154, "test_zlib": 70, "test_pwd": 3, "test_grp": 4},
    # 3.9's test package predates CPython's WASI port: what later versions skip fails here (KNOWN_BY_VERSION).
    # Its sqlite3 tests live in Lib/sqlite3/test, which the runtime's zip leaves out: not run.
    # test_dict: reversed(d.items()) and reversed(d.values()) trapped before patches/3.9/16
    "3.9": {"test_re": 124, "test_json": 147, "test_struct": 31, "test_pwd": 3, "test_grp": 4, "test_dict": 103},
}
# The tests that fail, and the words of the error that says why.
KNOWN = {
    # multiprocessing imports (boxer's stand-ins: libraries import its ThreadPool), so the test
    # is not skipped, but a guest has no processes: Process.start() raises our one clear error.
    "test_re": {"ReTests.test_regression_gh94675": "multiprocessing cannot start a process"},
}
# 3.9's tests run what 3.11's skip on WASI (requires_subprocess, musl) or need its test modules.
_NO_PROCESSES = "wasi does not support processes"
KNOWN_BY_VERSION = {"3.9": {
    # wasi-libc's locales are musl's: setlocale accepts en_US.iso88591, but there is no single-byte
    # case table (3.11 skips both tests on musl, bpo-46390)
    "test_re": {"ReTests.test_locale_caching": r"re.match(b'\xc5', b'\xe5', re.L|re.I)",
                "ReTests.test_locale_compiled": r"p.match(b'\xe5\xe5')"},
    # json.tool's tests start a python process
    "test_json": {f"test_tool.TestTool.{t}": _NO_PROCESSES for t in (
        "test_broken_pipe_error", "test_compact", "test_ensure_ascii_default", "test_help_flag", "test_indent",
        "test_infile_outfile", "test_infile_stdout", "test_jsonlines", "test_no_ensure_ascii_flag",
        "test_no_indent", "test_non_ascii_infile", "test_sort_keys_flag", "test_stdin_stdout", "test_tab")},
    # _testinternalcapi is not built in (setup.py builds nothing on WASI); a check starts a process
    "test_struct": {"StructTest.test__sizeof__": "No module named '_testinternalcapi'",
                    "StructTest.test_struct_cleans_up_at_runtime_shutdown": _NO_PROCESSES},
    # _testcapi is not built in either
    "test_dict": {"DictTest.test_splittable_setattr_after_pop": "No module named '_testcapi'",
                  "CAPITest.test_getitem_knownhash": "No module named '_testcapi'"},
}}


def _test_package(bt, version: str) -> Path:
    if version in bt.VERSIONS:
        return bt.fetch_tests(version, bt.default_work())
    # a CPython of that version on this machine: on PATH, or one pyenv installed
    python = shutil.which(f"python{version}")
    answer = python and subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                                       capture_output=True, text=True, timeout=60)
    found = [Path(answer.stdout.strip())] if answer and answer.returncode == 0 else []
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found += sorted(pyenv.glob(f"{version}.*/lib/python{version}"))
    for stdlib in found:
        if (stdlib / "test" / "test_json").is_dir():
            return bt.copy_tests(stdlib, version, bt.default_work())
    pytest.skip(f"no CPython {version} with its test package on this machine (Debian has no {version} source)")


@pytest.mark.parametrize("version", sorted(FLOORS))
def test_cpythons_own_tests_pass_in_the_guest_but_for_known_limits(version, cache_dir):
    bt = toolchainscripts.load("boxer_tests")
    lib = _test_package(bt, version)
    results = bt.run_tests(version, lib, sorted(FLOORS[version]), cache_dir, timeout=900)
    for module, floor in FLOORS[version].items():
        r = results[module]
        known = {**KNOWN.get(module, {}), **KNOWN_BY_VERSION.get(version, {}).get(module, {})}
        assert r["run"] and set(r["failed"]) <= set(known), (module, r)
        assert r["result"] == ("FAILURE" if r["failed"] else "SUCCESS"), (module, r)
        assert r["run"] - r["failures"] - r["errors"] - r["skipped"] >= floor, (module, r)
        for test in r["failed"]:
            assert known[test] in r["tail"], (module, test, r["tail"])
