"""`make bench`: how much boxer costs next to native Python, side by side in one run.

    python bench/bench.py [-n RUNS] [--cold-runs RUNS] [--only TEXT]

`--only runtimes` measures only the CPython runtimes' CPU workloads (runtime_rows).

Every measurement is timed RUNS times; the table shows the median, the 90th percentile
(nearest rank) and the median's ratio to the first line, native `python3 -c pass`.

"cold" means an empty BOXER_CACHE_DIR for every sample: the run unpacks the image and
compiles CPython from scratch each time. "warm" means one untimed run filled the cache first.

To add measurements (a later issue's feature), write a function that takes the `Bench`
and returns `Measurement`s, and append it to SECTIONS.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "hello-python"
APP = REPO / "examples" / "python-app"


@dataclass(frozen=True)
class Measurement:
    name: str
    sample: Callable[[], float]  # does the work once and returns the seconds it took
    runs: int
    prepare: Callable[[], object] | None = None  # runs once, untimed, before the first sample


@dataclass(frozen=True)
class Result:
    name: str
    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p90(self) -> float:
        ordered = sorted(self.times)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Bench:
    """What every section may use: a scratch directory, the built example and the run counts."""

    workdir: Path
    image: Path
    runs: int
    cold_runs: int


def boxer_command() -> list[str]:
    """The installed `boxer` script beside this Python, as a user runs it."""
    script = Path(sys.executable).parent / "boxer"
    return [str(script)] if script.exists() else [sys.executable, "-m", "boxer_py"]


def installed_env() -> dict[str, str]:
    """This environment as an installed boxer sees it: Python writes (and then reads) its
    bytecode, as pip's install compiled it (a PYTHONDONTWRITEBYTECODE here would make every
    sample compile boxer's client from source, which no user's `boxer` does)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def process(argv: list[str], env: dict[str, str] | None = None,
            before: Callable[[], dict[str, str]] | None = None) -> Callable[[], float]:
    """A whole-process sample: spawn, wait, check the exit code. `before` runs untimed and
    may return extra environment variables for this sample."""

    def sample() -> float:
        extra = before() if before else {}
        start = time.perf_counter()
        r = subprocess.run(argv, env={**installed_env(), **(env or {}), **extra}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if r.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
        return elapsed

    return sample


def in_process(work: Callable[[], object]) -> Callable[[], float]:
    def sample() -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    return sample


def _spin(_: object = None) -> int:
    return sum(i * i for i in range(200_000))


def native(b: Bench) -> list[Measurement]:
    # This interpreter, not whatever `python3` is on PATH (a pyenv shim would add a shell).
    return [Measurement("native python3 -c pass", process([sys.executable, "-c", "pass"]), b.runs)]


def machine(b: Bench) -> list[Measurement]:
    """What two cores give on this machine right now (a VM's cores may be shared): the same
    CPU-bound work in 1 and in 2 native processes, the reference for the 2-thread line."""
    from concurrent.futures import ProcessPoolExecutor

    pools: list[ProcessPoolExecutor] = []

    def start_pool() -> None:
        if not pools:
            pools.append(ProcessPoolExecutor(2))
        list(pools[0].map(_spin, range(4)))

    def on_two() -> None:
        list(pools[0].map(_spin, range(4)))

    return [
        Measurement("native: 4 CPU-bound jobs one after another", in_process(lambda: [_spin() for _ in range(4)]),
                    b.runs),
        Measurement("native: 4 CPU-bound jobs on 2 processes (what 2 cores give here)", in_process(on_two), b.runs,
                    prepare=start_pool),
    ]


def python_runs(b: Bench) -> list[Measurement]:
    import boxer_py

    boxer = boxer_command()
    argv = [*boxer, "run", str(b.image), "python", "-c", "pass"]
    colds = b.workdir / "cold"

    def empty_cache() -> dict[str, str]:
        shutil.rmtree(colds, ignore_errors=True)
        colds.mkdir()
        return {"BOXER_CACHE_DIR": str(colds)}

    (b.workdir / "data").mkdir(exist_ok=True)
    mounted = [*boxer, "run", "-v", f"{b.workdir / 'data'}:/data", str(b.image), "python", "-c", "pass"]
    warm_cache = b.workdir / "warm"
    warm_env = {"BOXER_CACHE_DIR": str(warm_cache)}
    unserved_env = {**warm_env, "BOXER_SERVER": "0"}

    def start_server() -> None:
        """The second run starts the run server; wait until it answers."""
        for _ in range(2):
            process(argv, warm_env)()
        script = "from boxer_py.cli import client; print(client.address()[0])"
        path = subprocess.run([sys.executable, "-c", script], env={**os.environ, **warm_env}, capture_output=True,
                              text=True, check=True).stdout.strip()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_UNIX) as s:
                if s.connect_ex(path) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit("bench: the run server did not start")
    sessions: list[boxer_py.Session] = []

    def open_session() -> None:
        if not sessions:
            sessions.append(boxer_py.Session(b.image, cache_dir=warm_cache))
        session_run()  # the module compiled or loaded, and kept in memory

    def session_run(index: int = 0) -> None:
        result = sessions[index].run(["python", "-c", "pass"])
        if result.exit_code != 0:
            raise SystemExit(f"bench: Session.run failed: {result.stderr.decode()[-500:]}")

    def open_scratch_session() -> None:
        """The reference: the same runs, each starting CPython from scratch (no snapshot)."""
        open_session()
        if len(sessions) == 1:
            sessions.append(boxer_py.Session(b.image, launcher=boxer_py.Launcher(warm_cache, preinit=False)))
        session_run(1)

    def cli_runs(parallel: int) -> Callable[[], float]:
        from concurrent.futures import ThreadPoolExecutor

        def work() -> None:
            with ThreadPoolExecutor(parallel) as pool:
                list(pool.map(lambda _: process(argv, warm_env)(), range(4)))

        return in_process(work)

    def four_runs(threads: int, index: int = 0) -> Callable[[], float]:
        from concurrent.futures import ThreadPoolExecutor

        def work() -> None:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda _: session_run(index), range(4)))

        return in_process(work)

    def open_workers() -> None:
        """The third session: the same image on 2 worker processes, started and warm."""
        open_scratch_session()
        if len(sessions) == 2:
            sessions.append(boxer_py.Session(b.image, cache_dir=warm_cache, workers=2))
            sessions[2].workers.start()
        four_runs(2, 2)()

    return [
        Measurement("Session: 4 runs one after another", four_runs(1), b.runs, prepare=open_session),
        Measurement("Session: 4 runs on 2 threads (2 cores, but one GIL)", four_runs(2), b.runs,
                    prepare=open_session),
        Measurement("Session(workers=2): 4 runs from 2 threads (2 cores: ideally half of 4 runs one after another)",
                    four_runs(2, 2), b.runs, prepare=open_workers),
        Measurement("boxer run IMAGE python -c pass (cold: empty cache each run)",
                    process(argv, {"BOXER_SERVER": "0"}, before=empty_cache), b.cold_runs),
        Measurement("boxer run IMAGE python -c pass (warm: served by the run server)", process(argv, warm_env),
                    b.runs, prepare=start_server),
        Measurement("  the same, BOXER_SERVER=0 (the CLI loads everything itself: the previous version)",
                    process(argv, unserved_env), b.runs, prepare=process(argv, unserved_env)),
        Measurement("  the same with -v DIR:/data, BOXER_SERVER=0 (a mount: started from a snapshot too)",
                    process(mounted, unserved_env), b.runs, prepare=process(mounted, unserved_env)),
        Measurement("4 served `boxer run`s one after another", cli_runs(1), b.runs, prepare=start_server),
        Measurement("4 served `boxer run`s, 2 at a time (each run a process of its own)", cli_runs(2), b.runs,
                    prepare=start_server),
        Measurement('Session(IMAGE).run(["python", "-c", "pass"]) (in-process, warm)', in_process(session_run),
                    b.runs, prepare=open_session),
        Measurement("  the same, CPython started from scratch (no snapshot: the previous version)",
                    in_process(lambda: session_run(1)), b.runs, prepare=open_scratch_session),
    ]


def _no_bake_running(cache: Path, timeout: float = 900) -> None:
    """Wait until no process bakes a snapshot into its module (preinit.bake holds this lock)."""
    import fcntl

    deadline, quiet = time.monotonic() + timeout, 0
    while quiet < 4:
        if time.monotonic() > deadline:
            raise SystemExit("bench: a bake did not finish")
        time.sleep(0.5)
        with open(cache / "modules" / "bake.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                quiet += 1
            except BlockingIOError:
                quiet = 0


def startup(b: Bench) -> list[Measurement]:
    """`python -c pass` started from a snapshot baked into its module (preinit.bake, the default
    once a snapshot is used again) against the snapshot's pages restored into each instance
    (BOXER_BAKE=0, the previous version): in-process and served. Runs first, so the warm cache
    the later sections use holds the baked modules (a bake in their midst would skew them)."""
    import boxer_py

    warm, restored = b.workdir / "warm", b.workdir / "warm-restored"
    argv = [*boxer_command(), "run", str(b.image), "python", "-c", "pass"]
    sessions: dict[bool, boxer_py.Session] = {}
    parts: dict[str, list[float]] = {"duration": [], "cpu": []}  # of the baked runs' results, in seconds

    def session(bake: bool) -> Callable[[], None]:
        def run() -> None:
            if bake not in sessions:
                sessions[bake] = boxer_py.Session(b.image, launcher=boxer_py.Launcher(warm, bake=bake))
            result = sessions[bake].run(["python", "-c", "pass"])
            if result.exit_code != 0 or not result.preinitialised:
                raise SystemExit(f"bench: Session.run failed: {result.stderr.decode()[-500:]}")
            if bake:
                parts["duration"].append(result.duration_ms / 1000)
                parts["cpu"].append(result.cpu_ms / 1000)
        return run

    def part(name: str) -> Callable[[], float]:
        """A share of the baked in-process runs measured above (their results' own timings)."""
        return lambda: parts[name].pop(0)

    def bake_session() -> None:
        for _ in range(3):
            session(True)()
        sessions[True].launcher.baker.wait()  # type: ignore[union-attr]
        session(True)()
        if not any(key[0] == "baked" for key, _, _ in sessions[True].launcher.held()[0]):
            raise SystemExit("bench: the snapshot was not baked")
        for kept in parts.values():
            kept.clear()  # only the measured runs'

    def serve(cache: Path, bake: bool) -> Callable[[], None]:
        env = {"BOXER_CACHE_DIR": str(cache), "BOXER_BAKE": "1" if bake else "0"}

        def prepare() -> None:
            if not bake and not cache.exists():  # the compiled runtime, not compiled again
                shutil.copytree(warm / "modules", cache / "modules", copy_function=os.link)
            for _ in range(4):  # the third served run bakes, after its client is done
                process(argv, env)()
            _no_bake_running(cache)
            for _ in range(3):
                process(argv, env)()
        return prepare

    env_baked = {"BOXER_CACHE_DIR": str(warm), "BOXER_BAKE": "1"}
    env_restored = {"BOXER_CACHE_DIR": str(restored), "BOXER_BAKE": "0"}
    in_proc, in_proc_prepare = alternated([in_process(session(True)), in_process(session(False))], b.runs * 3,
                                          lambda: (bake_session(), session(False)()))
    served, served_prepare = alternated([process(argv, env_baked), process(argv, env_restored),
                                         process([sys.executable, "-c", "pass"])], b.runs * 2,
                                        lambda: (serve(warm, True)(), serve(restored, False)()))
    return [
        Measurement("start-up: Session.run python -c pass, snapshot baked into the module (in-process, warm)",
                    in_proc[0], b.runs * 3, prepare=in_proc_prepare),
        Measurement("  start-up: the same, the snapshot's pages restored per run (BOXER_BAKE=0: the previous version)",
                    in_proc[1], b.runs * 3),
        Measurement("  start-up: of the baked run, instantiation and guest (RunResult.duration_ms)", part("duration"),
                    b.runs * 3),
        Measurement("  start-up: of the baked run, the guest's own thread CPU (RunResult.cpu_ms)", part("cpu"), b.runs * 3),
        Measurement("start-up: served boxer run IMAGE python -c pass, snapshot baked", served[0], b.runs * 2,
                    prepare=served_prepare),
        Measurement("  start-up: the same, the snapshot's pages restored per run (BOXER_BAKE=0)", served[1], b.runs * 2),
        Measurement("  start-up: native python3 -c pass, in alternation with the two rows above", served[2], b.runs * 2),
    ]


def alternated(samples: list[Callable[[], float]], runs: int,
               prepare: Callable[[], object]) -> tuple[list[Callable[[], float]], Callable[[], None]]:
    """Rows measured in alternation (on a shared machine, load that comes and goes then weighs
    on all of them alike): the first row's preparation takes every sample of each; each row's
    samples hand them out in order (a row measured alone samples itself)."""
    taken: list[list[float]] = [[] for _ in samples]

    def take() -> None:
        prepare()
        for _ in range(runs):
            for kept, sample in zip(taken, samples, strict=True):
                kept.append(sample())

    def row(kept: list[float], sample: Callable[[], float]) -> Callable[[], float]:
        return lambda: kept.pop(0) if kept else sample()
    return [row(kept, sample) for kept, sample in zip(taken, samples, strict=True)], take


def builds(b: Bench) -> list[Measurement]:
    argv = [*boxer_command(), "build", "-q", "-t", "hello", str(EXAMPLE), "-o", str(b.workdir / "rebuilt.wasm")]
    return [Measurement("boxer build examples/hello-python", process(argv), b.runs)]


def app_builds(b: Bench) -> list[Measurement]:
    """examples/python-app (pip + RUN): a build with no step cache, and the rebuild after a
    change to the app code, which re-runs only the RUN after `COPY . .`."""
    ctx = b.workdir / "python-app"
    shutil.copytree(APP, ctx)
    env = {"BOXER_CACHE_DIR": str(b.workdir / "warm")}  # compiled CPython shared with the warm runs
    out = ["-o", str(b.workdir / "app.wasm")]
    cold = process([*boxer_command(), "build", "-q", "--no-cache", *out, str(ctx)], env)
    cached = process([*boxer_command(), "build", "-q", *out, str(ctx)], env)
    edits = iter(range(1_000_000))

    def change_app() -> dict[str, str]:
        with open(ctx / "main.py", "a") as f:
            f.write(f"# edit {next(edits)}\n")
        return {}

    return [
        Measurement("boxer build examples/python-app (no cache: pip + RUN)", cold, max(1, b.runs // 3)),
        Measurement("boxer build examples/python-app after an app change (cached)",
                    process([*boxer_command(), "build", "-q", *out, str(ctx)], env, before=change_app),
                    max(1, b.runs // 3), prepare=cached),
    ]


SECTIONS: list[Callable[[Bench], list[Measurement]]] = [native, startup, machine, python_runs, builds, app_builds]


WORKLOADS = REPO / "toolchain" / "cpython" / "workloads.py"
RUNTIME_TAGS = ("3.13", "3.11", "3.12")  # 3.12: VMware's build, the previous runtime, as reference
GOALS = {"mixed": 1.5, "bigint": 2.5}  # issue 17: the workload's CPU on boxer's own runtimes, x native


def runtime_rows(b: Bench) -> list[str]:
    """The CPU workloads of toolchain/cpython/workloads.py (mixed, bigint, stdlib-heavy) natively
    and on each python base, as ratios to native CPU time (a shared machine's wall time is mostly
    waiting for a core): the workload's own (a run's CPU minus that of a run of `none`, i.e. the
    interpreter's start-up) and the whole process's (`boxer run`, BOXER_SERVER=0 so the guest
    runs in the measured process: start-up, module load and snapshot included). Medians of
    interleaved rounds."""
    import resource

    import boxer_py

    runs = max(3, b.runs // 3)
    images = {}
    for tag in RUNTIME_TAGS:
        ctx = b.workdir / f"workloads-{tag}"
        ctx.mkdir()
        shutil.copy(WORKLOADS, ctx / "workloads.py")
        (ctx / "Dockerfile").write_text(f"FROM python:{tag}\nCOPY workloads.py /app/workloads.py\n")
        images[tag] = ctx / "image.wasm"
        boxer_py.build(ctx, images[tag], cache_dir=b.workdir / "warm")
    env = {**os.environ, "BOXER_CACHE_DIR": str(b.workdir / "warm"), "BOXER_SERVER": "0"}

    def cpu(argv: list[str]) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed ({r.returncode}): {r.stderr[-500:]}")
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    commands = {"native": [sys.executable, str(WORKLOADS)]}
    for tag in RUNTIME_TAGS:
        commands[tag] = [*boxer_command(), "run", str(images[tag]), "python", "/app/workloads.py"]
    workloads = ("none", "mixed", "bigint", "stdlib")
    times: dict[tuple[str, str], list[float]] = {(c, w): [] for c in commands for w in workloads}
    for argv in commands.values():
        cpu([*argv, "none"])  # untimed: compiles and snapshots
    for _ in range(runs):
        for name, argv in commands.items():
            for w in workloads:
                times[name, w].append(cpu([*argv, w]))
    med = {key: statistics.median(v) for key, v in times.items()}
    lines = [f"{'CPU time, x native (workload / whole process)':<46}  {'native':>17}  "
             + "  ".join(f"{'python:' + tag:>17}" for tag in RUNTIME_TAGS)]
    for w in workloads:
        own = {c: med[c, w] - (med[c, "none"] if w != "none" else 0) for c in commands}
        cells = [f"{own['native']:>6.2f} / {med['native', w]:>5.2f} s"]
        cells += [f"{own[t] / own['native']:>6.2f}x / {med[t, w] / med['native', w]:>5.2f}x" for t in RUNTIME_TAGS]
        lines.append(f"{w if w != 'none' else 'start-up (none)':<46}  " + "  ".join(f"{c:>17}" for c in cells))
    ratio = {(t, w): (med[t, w] - med[t, "none"]) / (med["native", w] - med["native", "none"])
             for t in RUNTIME_TAGS for w in GOALS}
    lines.append("goals (workload, x native): " + "; ".join(
        f"{w} <= {goal}x: " + ", ".join(f"python:{t} {ratio[t, w]:.2f}x {'met' if ratio[t, w] <= goal else 'NOT met'}"
                                         for t in RUNTIME_TAGS[:2])
        for w, goal in GOALS.items()))
    return lines


def sizes(b: Bench) -> str:
    """The example app's image against the base runtime it carries."""
    from boxer_py.dockerfile.bases import load_catalog

    runtime = next(base for base in load_catalog().values() if base.name == "python").runtime_file().stat().st_size
    hello = b.image.stat().st_size
    line = f"sizes: python runtime {runtime / 1e6:.1f} MB; hello image {hello / 1e6:.1f} MB ({hello / runtime:.2f}x)"
    if (b.workdir / "app.wasm").exists():
        app = (b.workdir / "app.wasm").stat().st_size
        line += f"; python-app image (six, attrs) {app / 1e6:.1f} MB ({app / runtime:.2f}x)"
    return line


def reported(b: Bench) -> list[tuple[str, float, str]]:
    """Benchmarks that need a registry or a browser, measured by their own modules: rows of
    (name, median seconds, note). A missing part is reported, not fatal."""
    sys.path.insert(0, str(REPO / "bench"))
    rows: list[tuple[str, float, str]] = []
    try:
        from registry_bench import bench_registry

        rows += bench_registry()
    except Exception as e:  # noqa: BLE001 - a bench section must not stop the others
        rows.append(("registry push/pull", float("nan"), f"skipped: {e}"))
    try:
        from web_bench import rows as web_rows

        web = web_rows()
        # Each boxer row against Pyodide's row of the same visit (when Pyodide is there); its steps alone.
        visit = lambda name: "first" if "first visit" in name else "second"  # noqa: E731
        pyodide = {visit(name): t for name, t in web if "Pyodide" in name}
        for name, t in web:
            ref = None if "Pyodide" in name or "step:" in name else pyodide.get(visit(name))
            rows.append((name, t, f"{t / ref:.2f}x Pyodide" if ref else ""))
    except Exception as e:  # noqa: BLE001
        rows.append(("web: first output", float("nan"), f"skipped: {e}"))
    try:
        from net_bench import rows as net_rows

        rows += net_rows(b.image, b.workdir)
    except Exception as e:  # noqa: BLE001
        rows.append(("net: http.server and Flask", float("nan"), f"skipped: {e}"))
    return rows


def measure(m: Measurement) -> Result:
    if m.prepare is not None:
        m.prepare()
    times = []
    for _ in range(m.runs):
        times.append(m.sample())
    return Result(m.name, times)


def served_ratio(results: list[Result]) -> str:
    """Issue 17's start-up goal as a ratio: the served run against native python3 -c pass
    measured in alternation with it (the same load on both)."""
    by_name = {r.name.strip(): r.median for r in results}
    served = by_name.get("start-up: served boxer run IMAGE python -c pass, snapshot baked")
    native = by_name.get("start-up: native python3 -c pass, in alternation with the two rows above")
    if served is None or native is None:
        return ""
    return f"start-up: served boxer run python -c pass is {served / native:.2f}x native python3 -c pass (goal: 1.5x)"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def table(results: list[Result]) -> str:
    base = results[0].median
    width = max(len(r.name) for r in results)
    lines = [f"{'measurement':<{width}}  {'runs':>4}  {'median':>12}  {'p90':>12}  {'x native':>9}"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {len(r.times):>4}  {_ms(r.median):>12}  {_ms(r.p90):>12}  "
                     f"{r.median / base:>8.1f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=10, help="samples per measurement (default 10)")
    parser.add_argument("--cold-runs", type=int, default=3, help="samples of the cold run, which compiles CPython each time (default 3)")
    parser.add_argument("--only", metavar="TEXT", help="only measurements whose name contains TEXT (native is always kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="boxer-bench-") as tmp:
        workdir = Path(tmp)
        image = workdir / "hello.wasm"
        import boxer_py

        boxer_py.build(EXAMPLE, image, tag="hello")
        bench = Bench(workdir, image, args.runs, args.cold_runs)
        print(f"boxer bench: native is {sys.executable} (Python {platform.python_version()}), wasmtime-py {version('wasmtime')}, "
              f"{os.cpu_count()} CPUs, {platform.machine()}, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
        results = []
        for section in SECTIONS:
            for m in section(bench):
                if results and args.only and args.only not in m.name:
                    continue
                print(f"  {m.name} ...", file=sys.stderr, flush=True)
                results.append(measure(m))
        print(table(results))
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        if served_ratio(results):
            print(served_ratio(results))
        print(sizes(bench))
        if not args.only or args.only == "runtimes":
            print("\n".join(runtime_rows(bench)), flush=True)
        if not args.only:
            for name, median, note in reported(bench):
                print(f"{name}: {_ms(median)}  {note}")


if __name__ == "__main__":
    main()
