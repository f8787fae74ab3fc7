"""Run CPython's own tests in a `FROM python:X.Y` image, under boxer's launcher (opt-in:
`make boxer-tests VERSION=3.13`).

    python boxer_tests.py VERSION [--tests-from LIBDIR] [--work DIR] [--tests test_a,test_b] [--json OUT]

The vendored stdlib zip leaves out `test/`. Without --tests-from, the orig tarball of the
version's Debian source package is fetched with `apt-get source --download-only` (through
an apt configuration of its own under the work directory: no root, no deb-src lines in the
system's sources), checked against build.py's sha256, and only its Lib/test is extracted.
The work directory is $BUILD_ROOT/boxer-tests (/work/build by default), or under the user's
cache when that cannot be created. 3.12 (VMware's runtime) has no Debian source: --tests-from
names a CPython 3.12's library directory (pyenv's lib/python3.12, say), whose test/ alone is
copied. The image is built with boxer itself (the base as `boxer build` lays it out, the wasm
stack its label asks for), the test package mounted read-only at /tests.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from build import VERSIONS, fetch_orig  # noqa: E402
from verify import TESTS  # noqa: E402

# Runtimes boxer has a `python:X.Y` base for: ours (build.py) and VMware's 3.12.0.
RUNTIMES = sorted([*VERSIONS, "3.12"])
# Beyond verify.py's list: the modules of what boxer's stand-ins and our wasi/ overrides give
# the guest (pwd, grp, fcntl, chmod and chown through shutil, tarfile, pathlib and os).
STAND_IN_TESTS = ["test_pwd", "test_grp", "test_fcntl", "test_shutil", "test_tarfile", "test_pathlib", "test_os"]
# Test modules an older CPython names otherwise (3.12 renamed test_unicode to test_str).
FORMER_NAMES = {"test_str": "test_unicode"}


def default_work() -> Path:
    """$BUILD_ROOT/boxer-tests; without BUILD_ROOT, /work/build/boxer-tests when it can be
    created, else boxer-tests under the user's cache ($XDG_CACHE_HOME or ~/.cache)."""
    if os.environ.get("BUILD_ROOT"):
        return Path(os.environ["BUILD_ROOT"]) / "boxer-tests"
    work = Path("/work/build/boxer-tests")
    try:
        work.mkdir(parents=True, exist_ok=True)
        if os.access(work, os.W_OK | os.X_OK):
            return work
    except OSError:
        pass
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "boxer-py" / "boxer-tests"


def fetch_tests(version: str, work: Path) -> Path:
    """Lib/ of the version's Debian orig tarball, holding only test/ (fetched once into work)."""
    v = VERSIONS[version]
    lib = work / f"tests-{version}" / "Lib"
    if (lib / "test" / "__init__.py").is_file():
        return lib
    tarball = fetch_orig(v, work, work / "apt")
    with tempfile.TemporaryDirectory(dir=work) as tmp, tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if re.match(r"[^/]+/Lib/test/", m.name) and (m.isfile() or m.isdir())]
        tar.extractall(tmp, members=members, filter="data")
        top = next(Path(tmp).iterdir())
        lib.parent.mkdir(parents=True, exist_ok=True)
        (top / "Lib").rename(lib)
    return lib


def copy_tests(source: Path, version: str, work: Path) -> Path:
    """A directory holding only source's test/ package (a whole stdlib on PYTHONPATH would
    shadow the runtime's own)."""
    if not (source / "test" / "__init__.py").is_file():
        raise SystemExit(f"{source}: no test/__init__.py (give a CPython Lib/ or lib/pythonX.Y directory)")
    lib = work / f"tests-{version}-copy" / "Lib"
    shutil.rmtree(lib.parent, ignore_errors=True)
    lib.mkdir(parents=True)
    shutil.copytree(source / "test", lib / "test", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return lib


def parse(text: str) -> dict:
    """unittest's counts and the ids (Class.test) of failed tests in a `-m test -v` output."""
    ran = sum(int(n) for n in re.findall(r"^Ran (\d+) tests?", text, re.M))
    # unittest's own verdict lines ("OK (skipped=4)", "FAILED (errors=1, skipped=4)"), not
    # regrtest's totals, which repeat the counts
    verdicts = " ".join(re.findall(r"^(?:OK|FAILED) \(([^)]*)\)$", text, re.M))

    def count(kind: str) -> int:
        return sum(int(n) for n in re.findall(rf"\b{kind}=(\d+)", verdicts))
    failed = set()
    for _, name, where in re.findall(r"^(FAIL|ERROR): (\S+) \(([^)]+)\)", text, re.M):
        # 3.11 prints "test_x (module.Class)", 3.12+ "test_x (module.Class.test_x)"
        ident = where if where.endswith("." + name) else f"{where}.{name}"
        failed.add(ident.split(".", 2)[-1] if ident.startswith("test.") else ident)
    found = re.search(r"^Result: (\w+)", text, re.M) or re.search(r"[Rr]esult: (\w+)", text)
    result = found.group(1) if found else None
    skipped = re.search(r"^test_\w+ skipped -- (.*)$", text, re.M)  # the whole module (3.11's missing _sqlite3)
    if skipped and not ran:
        result = f"SKIPPED ({skipped.group(1)})"
    return {"result": result, "run": ran, "failures": count("failures"), "errors": count("errors"),
            "skipped": count("skipped"), "failed": sorted(failed)}


def run_tests(version: str, lib: Path, tests: list[str], cache: Path, timeout: float = 1800) -> dict[str, dict]:
    import boxer_py

    with tempfile.TemporaryDirectory(prefix="boxer-tests-") as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(f"FROM python:{version}\nENV PYTHONPATH=/tests TMPDIR=/tmp "
                                        "PYTHONDONTWRITEBYTECODE=1\nWORKDIR /tmp\n")
        image = ctx / "tests.wasm"
        boxer_py.build(ctx, image, cache_dir=cache)
        results = {}
        with boxer_py.Session(image, cache_dir=cache) as box:
            for name in tests:
                if not any((lib / "test" / n).exists() for n in (name, name + ".py")) and name in FORMER_NAMES:
                    name = FORMER_NAMES[name]
                start = time.time()
                r = box.run(["python", "-m", "test", "-v", name], mounts=[f"{lib}:/tests:ro"], timeout=timeout,
                            max_output="64m")
                text = (r.stdout + r.stderr).decode(errors="replace")
                res = parse(text)
                res.update(exit=r.exit_code, seconds=round(time.time() - start, 1))
                if res["result"] is None:
                    res["result"] = "TIMEOUT" if r.timed_out else (r.trap or f"exit {r.exit_code}")
                if res["result"] != "SUCCESS":
                    res["tail"] = text[-3000:]
                results[name] = res
                print(f"  {name}: {res['result']} run={res['run']} failures={res['failures']} "
                      f"errors={res['errors']} skipped={res['skipped']} ({res['seconds']} s)"
                      + (f" failed: {' '.join(res['failed'])}" if res["failed"] else ""), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("version", choices=RUNTIMES)
    ap.add_argument("--tests-from", type=Path, help="a CPython Lib/ (or lib/pythonX.Y) whose test/ is run (skips the fetch)")
    ap.add_argument("--work", type=Path, help="where the tests and the image cache go (default: "
                    "$BUILD_ROOT/boxer-tests, else /work/build/boxer-tests or the user's cache)")
    ap.add_argument("--tests", default=",".join(TESTS + STAND_IN_TESTS))
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    work = args.work or default_work()
    if args.tests_from:
        lib = copy_tests(args.tests_from, args.version, work)
    elif args.version in VERSIONS:
        lib = fetch_tests(args.version, work)
    else:
        raise SystemExit(f"python:{args.version} has no Debian source to take its tests from: pass --tests-from "
                         f"(a CPython {args.version} lib/python{args.version}, e.g. pyenv's)")
    results = run_tests(args.version, lib, args.tests.split(","), work / "cache")
    passed = [n for n, r in results.items() if r["result"] == "SUCCESS"]
    ok = sum(r["run"] - r["failures"] - r["errors"] - r["skipped"] for r in results.values())
    not_run = [n for n, r in results.items() if r["result"].startswith("SKIPPED")]
    print(f"python:{args.version}: {len(passed)} of {len(results)} test modules pass"
          + (f" ({', '.join(not_run)} skipped as a whole)" if not_run else "") + "; "
          f"{sum(r['run'] for r in results.values())} tests run, {ok} passed, "
          f"{sum(r['failures'] + r['errors'] for r in results.values())} failures+errors, "
          f"{sum(r['skipped'] for r in results.values())} skipped")
    if args.json:
        args.json.write_text(json.dumps({"version": args.version, "tests_from": str(args.tests_from or lib),
                                         "results": results}, indent=1) + "\n")
    if len(passed) != len(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
