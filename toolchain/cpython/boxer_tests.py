"""Run CPython's own tests in a `FROM python:X.Y` image, under boxer's launcher (opt-in:
`make boxer-tests VERSION=3.13`).

    python boxer_tests.py VERSION [--tests-from LIBDIR] [--work DIR] [--tests test_a,test_b]

The vendored stdlib zip leaves out `test/`. Without --tests-from, the orig tarball of the
version's Debian source package is fetched with `apt-get source --download-only` (needs
`make deps`' deb-src lines), checked against build.py's sha256, and only its Lib/test is
extracted. The image is built with boxer itself (the base as `boxer build` lays it out, the
wasm stack its label asks for), the test package mounted read-only at /tests.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from build import VERSIONS, sha256  # noqa: E402
from verify import TESTS  # noqa: E402


def fetch_tests(version: str, work: Path) -> Path:
    """Lib/ of the version's Debian orig tarball, holding only test/ (fetched once into work)."""
    v = VERSIONS[version]
    lib = work / f"tests-{version}" / "Lib"
    if (lib / "test" / "__init__.py").is_file():
        return lib
    work.mkdir(parents=True, exist_ok=True)
    tarball = work / v["file"]
    if not tarball.is_file():
        subprocess.run(["apt-get", "source", "--download-only", f"{v['package']}/{v['suite']}"], cwd=work,
                       check=True, timeout=1800)
    if sha256(tarball) != v["sha256"]:
        raise SystemExit(f"{tarball}: sha256 {sha256(tarball)}, not the pinned {v['sha256']}")
    with tempfile.TemporaryDirectory(dir=work) as tmp, tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if re.match(r"[^/]+/Lib/test/", m.name) and (m.isfile() or m.isdir())]
        tar.extractall(tmp, members=members, filter="data")
        top = next(Path(tmp).iterdir())
        lib.parent.mkdir(parents=True, exist_ok=True)
        (top / "Lib").rename(lib)
    return lib


def run_tests(version: str, lib: Path, tests: list[str], cache: Path) -> dict[str, dict]:
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
                start = time.time()
                r = box.run(["python", "-m", "test", "-v", name], mounts=[f"{lib}:/tests:ro"], timeout=1800,
                            max_output="64m")
                text = (r.stdout + r.stderr).decode(errors="replace")
                ran = sum(int(n) for n in re.findall(r"^Ran (\d+) tests?", text, re.M))
                count = lambda kind, text=text: sum(int(n) for n in re.findall(rf"\b{kind}=(\d+)", text))  # noqa: E731
                result = re.search(r"[Rr]esult: (\w+)", text)
                results[name] = {"exit": r.exit_code, "result": result.group(1) if result else r.trap, "run": ran,
                                 "failures": count("failures"), "errors": count("errors"),
                                 "skipped": count("skipped"), "seconds": round(time.time() - start, 1)}
                print(f"  {name}: {results[name]}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("version", choices=sorted(VERSIONS))
    ap.add_argument("--tests-from", type=Path, help="a source tree's Lib/ (skips the fetch)")
    ap.add_argument("--work", type=Path, default=Path("/work/build/boxer-tests"))
    ap.add_argument("--tests", default=",".join(TESTS))
    args = ap.parse_args()
    lib = args.tests_from or fetch_tests(args.version, args.work)
    results = run_tests(args.version, lib, args.tests.split(","), args.work / "cache")
    passed = [n for n, r in results.items() if r["result"] == "SUCCESS"]
    print(f"python:{args.version}: {len(passed)} of {len(results)} test modules pass; "
          f"{sum(r['run'] for r in results.values())} tests run, "
          f"{sum(r['failures'] + r['errors'] for r in results.values())} failures+errors, "
          f"{sum(r['skipped'] for r in results.values())} skipped")


if __name__ == "__main__":
    main()
