#!/usr/bin/env python3
"""Build and run a corpus of real-world Dockerfiles with boxer; print one line per case.

The corpus itself (unmodified Dockerfiles and their trimmed contexts, from public repositories)
is not in this repository: compat/manifest.toml lists each case by repository, commit and path.
A corpus directory holds one folder per case, named as in the manifest:

    <corpus>/<name>/SOURCE.json      repository, commit, dockerfile (path in the repository),
                                     context (its directory there), dockerfile_in_case
    <corpus>/<name>/context/         the build context, with the Dockerfile byte for byte

The corpus is found at --corpus, else $BOXER_CORPUS, else ../shared/compat (beside this
checkout) if it exists, else /work/corpus. Each case is built into a temporary directory
(never into its context), then checked with the manifest's command under `boxer run`.
Cases run one at a time. Stdlib only.

    python3 compat/run.py                  # every case
    python3 compat/run.py --fast           # the cases marked fast = true
    python3 compat/run.py NAME...          # only these
    python3 compat/run.py --json out.json  # also write the results as JSON
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CATEGORIES = ("base-tag", "pip-native-only", "pip-other", "needs-listen-socket", "needs-outbound-network",
              "native-tool-in-run", "dockerfile-syntax", "stdlib-missing", "other")


@dataclass
class Case:
    name: str
    repository: str
    commit: str
    dockerfile: str
    context: str
    kind: str
    check: list[str]                 # argv after the image; with entrypoint, argv[0] replaces ENTRYPOINT
    entrypoint: bool = True          # True: check[0] is given as --entrypoint; False: args to ENTRYPOINT/CMD
    expect_exit: int = 0
    expect_output: str = ""          # a substring of stdout+stderr that a passing check shows
    timeout: int = 60                # seconds of the guest's CPU time the check may use (see check_budget)
    build_timeout: int = 900
    fast: bool = False
    expected: str = ""               # the category expected while it cannot work yet
    why: str = ""                    # why it is expected to fail (or what it needs)


@dataclass
class Result:
    name: str
    kind: str
    base: str = ""                   # the FROM images, in order
    built: bool = False
    ran: bool = False
    category: str = ""
    error: str = ""
    expected: str = ""
    build_seconds: float = 0.0
    run_seconds: float = 0.0
    run_cpu_seconds: float = 0.0     # the guest's own CPU time in the check (boxer run --json's cpu_ms)
    note: str = ""
    probe: dict | None = None        # --probe: the same case with its python FROM lines read as python:3.12
    build_log_tail: list[str] = field(default_factory=list)
    run_log_tail: list[str] = field(default_factory=list)


# --- classification ---------------------------------------------------------------------------
# Each rule: (category, regex on the error text). The first that matches wins, so the order
# matters: a specific cause before a generic one. Rules read the tool's actual messages and the
# guest's own tracebacks; nothing is assumed from the case's metadata.

STDLIB = set(getattr(sys, "stdlib_module_names", ()))

BUILD_RULES: list[tuple[str, str]] = [
    ("base-tag", r"unsupported base image|base image .* (not found|unknown)|no WebAssembly (base|runtime) for"),
    ("dockerfile-syntax", r"unknown instruction|only ARG may come before|no FROM instruction"
                          r"|here-document|unterminated|not supported by boxer's shell|is not supported in RUN"
                          r"|--mount=type=(bind|secret)|mount.* refused|unsupported flag|unknown flag"
                          r"|ARG .*(invalid|malformed)|invalid (ARG|ENV|LABEL)|HEALTHCHECK|SHELL|ONBUILD|MAINTAINER"
                          r"|syntax error|parse error|cannot parse|: expected [A-Z]+ <"),
    ("native-tool-in-run", r"cannot run in a WebAssembly build|is not a WebAssembly program|not found in the image"
                           r"|command not found|: not found$"),
    ("needs-outbound-network", r"the build has no network|Could not resolve host|Network is unreachable"),
    ("pip-native-only", r"has no pure-Python or WASI wheel|only native wheels|native dependenc"),
    ("stdlib-missing", r"No module named '?(venv|ensurepip|concurrent\.futures\.thread)'?"),
    ("pip-other", r"pip install|ResolutionImpossible|No matching distribution|requirements file|pip [a-z]+: only"
                  r"|building a package from source|pipenv|poetry"),
]

RUN_RULES: list[tuple[str, str]] = [
    ("needs-listen-socket", r"cannot (bind|listen)|\bbind\(|Address already in use|OSError: \[Errno (58|52|76)\]"
                            r"|socket\.(bind|listen)|Operation not supported.*socket|serve_forever|listen\(\)"),
    ("needs-outbound-network", r"SSL module is not available|TLS is not available|has no network|getaddrinfo"
                               r"|Name or service not known"
                               r"|Network is unreachable|Temporary failure in name resolution|ConnectionError"
                               r"|NewConnectionError|Max retries exceeded|urlopen error|connect\(\)"),
    ("native-tool-in-run", r"is not a WebAssembly program|not a valid WebAssembly program|needs a shell"
                           r"|: not found\b|not a WASI command"),
]

MODULE_RE = re.compile(r"No module named '([^']+)'")


def failing_step(text: str) -> str:
    """The log of the step that failed: the lines after the last step header (`#N [stage] ...`)."""
    lines = text.splitlines()
    start = max((i for i, ln in enumerate(lines) if re.match(r"#\d+ \[", ln)), default=-1)
    return "\n".join(lines[start + 1:])


def classify_build(text: str) -> str:
    """The category of a failed build: from boxer's error line first, then the failing step's log."""
    error = first_error_line(text)
    for where in (error, failing_step(text)):
        for category, rule in BUILD_RULES:
            if re.search(rule, where, re.M):
                return category
        m = MODULE_RE.search(where)
        if m:
            return "stdlib-missing" if m.group(1).split(".")[0] in STDLIB else "pip-other"
    return "other"


def classify_run(text: str) -> str:
    # the last one: an ImportError handled on the way ("No module named 'cffi'", then ctypes) is not the cause
    missing = MODULE_RE.findall(text)
    if missing:
        # a stdlib module the runtime lacks, or an installed package the guest cannot find
        return "stdlib-missing" if missing[-1].split(".")[0] in STDLIB else "pip-other"
    for category, rule in RUN_RULES:
        if re.search(rule, text, re.M):
            return category
    return "other"


def first_error_line(text: str) -> str:
    """The line that says what went wrong: boxer's own message, else the last exception line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("boxer:"):
            return ln
    for ln in lines:
        if ln.startswith("error:") or ln.startswith("ERROR"):
            return ln
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception|Refused)\b", ln) or "Error:" in ln:
            return ln
    return lines[-1] if lines else ""


# --- the corpus -------------------------------------------------------------------------------

def find_corpus(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("BOXER_CORPUS"):
        return Path(os.environ["BOXER_CORPUS"])
    shared = REPO.parent / "shared" / "compat"
    if shared.is_dir():
        return shared
    return Path("/work/corpus")


def load_manifest(path: Path) -> list[Case]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    names = set(Case.__dataclass_fields__)
    cases = []
    for entry in data.get("case", []):
        unknown = set(entry) - names
        if unknown:
            raise SystemExit(f"{path}: case {entry.get('name')!r}: unknown keys {sorted(unknown)}")
        cases.append(Case(**entry))
    return cases


def boxer_command(arg: str | None) -> list[str]:
    if arg:
        return shlex.split(arg)
    if os.environ.get("BOXER"):
        return shlex.split(os.environ["BOXER"])
    return [str(REPO / ".venv" / "bin" / "boxer")]


def run(argv: list[str], timeout: float, cwd: str) -> tuple[int | None, str, float]:
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=timeout, cwd=cwd)
        return proc.returncode, proc.stdout.decode(errors="replace"), time.monotonic() - start
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        return None, out, time.monotonic() - start


def tail(text: str, n: int = 25) -> list[str]:
    return text.splitlines()[-n:]


PYTHON_FROM = re.compile(r"^(\s*FROM\s+)(--platform=\S+\s+)?(?:(?:docker\.io/)?(?:library/)?python"
                         r"|gcr\.io/distroless/python3[^\s:@]*)(?::[^\s@]+)?(?:@sha256:[0-9a-fA-F]+)?(?=\s|$)",
                         re.I | re.M)


def probe_dockerfile(text: str) -> str:
    """The Dockerfile with every `FROM [--platform=..] python[:tag][@digest]` (and distroless python3) read as
    python:3.12.

    A diagnostic only (--probe): it shows what blocks a case once its base tag is accepted. The
    copy lives in the case's temporary directory; the corpus is never changed."""
    return PYTHON_FROM.sub(lambda m: m.group(1) + "python:3.12", text)


def run_case(case: Case, corpus: Path, boxer: list[str], no_cache: bool, probe: bool = False) -> Result:
    res = build_and_check(case, corpus, boxer, no_cache)
    if probe and res.category == "base-tag" and not res.built:
        res.probe = asdict(build_and_check(case, corpus, boxer, no_cache, probe=True))
        for key in ("name", "kind", "expected", "note", "probe"):
            res.probe.pop(key, None)
    return res


def build_and_check(case: Case, corpus: Path, boxer: list[str], no_cache: bool, probe: bool = False) -> Result:
    res = Result(case.name, case.kind, expected=case.expected)
    where = corpus / case.name
    ctx = where / "context"
    source_file = where / "SOURCE.json"
    if not ctx.is_dir() or not source_file.is_file():
        res.category, res.error = "other", f"missing from the corpus: {where}"
        res.note = "absent"
        return res
    source = json.loads(source_file.read_text())
    if source.get("commit") != case.commit or source.get("repository") != case.repository:
        res.note = f"corpus has {source.get('repository')}@{str(source.get('commit'))[:12]}, manifest differs"
    dockerfile = ctx / source.get("dockerfile_in_case", os.path.relpath(case.dockerfile, case.context))
    if not probe:
        froms = re.findall(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", dockerfile.read_text(errors="replace"), re.I | re.M)
        res.base = re.sub(r"@sha256:([0-9a-fA-F]{12})[0-9a-fA-F]+", r"@sha256:\1...", ", ".join(froms))
    with tempfile.TemporaryDirectory(prefix=f"boxer-compat-{case.name}-") as tmp:
        image = Path(tmp) / "image.wasm"
        if probe:
            probed = Path(tmp) / "Dockerfile.probe"
            probed.write_text(probe_dockerfile(dockerfile.read_text(errors="surrogateescape")),
                              errors="surrogateescape")
            dockerfile = probed
        argv = [*boxer, "build", "-f", str(dockerfile), "-o", str(image)]
        if no_cache:
            argv.append("--no-cache")
        argv.append(str(ctx))
        code, out, res.build_seconds = run(argv, case.build_timeout, tmp)
        res.build_log_tail = tail(out)
        if code is None:
            res.category, res.error = "other", f"build timed out after {case.build_timeout}s"
            return res
        if code != 0 or not image.is_file():
            res.category = classify_build(out)
            res.error = (first_error_line(out) or f"build exited {code}").replace(f"{ctx}/", "").replace(f"{tmp}/", "")
            return res
        res.built = True
        code, out, res.run_seconds, res.run_cpu_seconds = check(case, image, boxer, tmp)
        res.run_log_tail = tail(out)
        budget = f"{case.timeout}s of CPU"
        if code is None or code == 124:
            res.category = classify_run(out)
            if res.category == "other":
                res.error = (f"check timed out after {res.run_seconds:.0f}s wall, {res.run_cpu_seconds:.1f}s CPU "
                             f"(budget {budget}, wall limit {wall_limit(case)}s)")
            else:
                res.error = first_error_line(out)
            return res
        if code == case.expect_exit and (not case.expect_output or case.expect_output in out):
            if res.run_cpu_seconds > case.timeout:
                res.category = "other"
                res.error = f"check used {res.run_cpu_seconds:.1f}s of CPU, over its budget of {budget}"
                return res
            res.ran = True
            return res
        res.category = classify_run(out)
        res.error = first_error_line(out) or f"check exited {code}"
        if code == case.expect_exit:
            res.error = f"output lacks {case.expect_output!r}: " + res.error
        return res


# A check's budget is the guest's own CPU time (`timeout` seconds: boxer run --json's cpu_ms, the
# thread that ran the guest), not wall time: on a loaded 2-core machine a check that takes 20 s
# of CPU alone took over 60 s of wall time in a batch. A guest that hangs without using CPU (a
# sleep, a blocked read) is still ended: boxer's --timeout is a wall limit of WALL_FACTOR x the
# budget, and a check that passes on more CPU than its budget fails. (k8s-alert-oom's `import main`,
# the first run of its image with a cold cache at load 18: 8.7 s of CPU, 255 s of wall time.)
WALL_FACTOR = 10


def wall_limit(case: Case) -> int:
    return case.timeout * WALL_FACTOR


def check(case: Case, image: Path, boxer: list[str], tmp: str) -> tuple[int | None, str, float, float]:
    """Run the case's check: (exit code or None when even the wall limit passed, stdout+stderr,
    wall seconds, the guest's CPU seconds)."""
    argv = [*boxer, "run", "--json", "--timeout", str(wall_limit(case))]
    words = list(case.check)
    if case.entrypoint and words:
        argv += ["--entrypoint", words.pop(0)]
    argv += [str(image), *words]
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=wall_limit(case) + 300,
                              cwd=tmp)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace"), time.monotonic() - start, 0.0
    seconds = time.monotonic() - start
    stderr = proc.stderr.decode(errors="replace")
    try:
        doc = json.loads(proc.stdout)
    except ValueError:  # boxer could not start the run: its one line is on stderr
        return proc.returncode, proc.stdout.decode(errors="replace") + stderr, seconds, 0.0
    text = "".join(doc.get(k) or "" for k in ("stdout", "stderr") if doc.get(f"{k}_encoding") == "utf-8")
    if isinstance(doc.get("error"), str):  # boxer's own (a guest's exception is in its stderr)
        text += f"\nboxer: {doc['error']}"
    code = 124 if doc.get("timed_out") else doc.get("exit_code", proc.returncode)
    return code, stderr + text, seconds, (doc.get("cpu_ms") or 0.0) / 1000


def rescore(saved: dict, case: Case, corpus: Path) -> Result:
    """A saved result with its category and error line derived again from its saved logs."""
    fields = set(Result.__dataclass_fields__)
    r = Result(**{k: v for k, v in saved.items() if k in fields})
    r.expected = case.expected
    if not r.base:
        ctx = corpus / case.name / "context"
        source = ctx.parent / "SOURCE.json"
        if source.is_file():
            df = ctx / json.loads(source.read_text()).get("dockerfile_in_case", "Dockerfile")
            if df.is_file():
                froms = re.findall(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", df.read_text(errors="replace"), re.I | re.M)
                r.base = re.sub(r"@sha256:([0-9a-fA-F]{12})[0-9a-fA-F]+", r"@sha256:\1...", ", ".join(froms))

    def again(d: dict) -> None:
        if d.get("ran"):
            return
        if d.get("built"):
            text = "\n".join(d.get("run_log_tail") or [])
            if not d.get("error", "").startswith(("check timed out", "output lacks")):
                d["category"] = classify_run(text)
                d["error"] = first_error_line(text) or d.get("error", "")
        elif not d.get("error", "").startswith(("build timed out", "missing from the corpus")):
            text = "\n".join(d.get("build_log_tail") or [])
            d["category"] = classify_build(text)
            d["error"] = re.sub(r"(/tmp/boxer-compat-[^/ ]+/|\S*/context/)", "", first_error_line(text) or d["error"])

    shadow = asdict(r)
    again(shadow)
    r.category, r.error = shadow["category"], shadow["error"]
    if r.probe is not None:
        again(r.probe)
    return r


def markdown(results: list[Result], cases: list[Case], built: int, ran: int, m: int,
             counts: dict[str, int]) -> str:
    by_name = {c.name: c for c in cases}
    cell = lambda t: t.replace("|", "\\|").replace("\n", " ")
    rows = ["| case | kind | base | built | ran | category | first error line | expected | probe as python:3.12 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = by_name[r.name]
        probe = ""
        if r.probe is not None:
            pr = r.probe
            probe = ("built, ran" if pr["ran"] else
                     f"{'built' if pr['built'] else 'not built'}: {pr['category']}: `{cell(pr['error'][:160])}`")
        src = f"[{c.repository}](https://github.com/{c.repository}/blob/{c.commit}/{c.dockerfile})"
        rows.append(f"| {r.name} ({src}) | {r.kind} | `{cell(r.base)}` | {'yes' if r.built else 'no'} | {'yes' if r.ran else 'no'} "
                    f"| {'' if r.ran else r.category} | {'' if r.ran else '`' + cell(r.error[:160]) + '`'} "
                    f"| {c.expected} | {probe} |")
    summary = f"built {built}/{m}, ran {ran}/{m}"
    if counts:
        summary += "; failures: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    return "\n".join(rows) + "\n\n" + summary + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="only these cases")
    p.add_argument("--corpus", help="the corpus directory (default: $BOXER_CORPUS, ../shared/compat, /work/corpus)")
    p.add_argument("--manifest", default=str(HERE / "manifest.toml"))
    p.add_argument("--boxer", help="the boxer command (default: $BOXER, else .venv/bin/boxer)")
    p.add_argument("--fast", action="store_true", help="only the cases marked fast = true")
    p.add_argument("--no-cache", action="store_true", help="build with --no-cache")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE (- for stdout)")
    p.add_argument("--probe", action="store_true",
                   help="when a case stops at its base tag, build it again with its python FROM lines read as "
                        "python:3.12 (in a temporary copy) and report what blocks it next; not counted as built")
    p.add_argument("--markdown", metavar="FILE", help="write the results table as Markdown to FILE")
    p.add_argument("--rescore", metavar="FILE",
                   help="build nothing: read a --json FILE of an earlier run and categorise its logs again with "
                        "the current rules")
    p.add_argument("-v", "--verbose", action="store_true", help="print the log tail of each failure")
    args = p.parse_args(argv)

    cases = load_manifest(Path(args.manifest))
    if args.names:
        unknown = set(args.names) - {c.name for c in cases}
        if unknown:
            p.error(f"no such case: {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c.name in args.names]
    if args.fast:
        cases = [c for c in cases if c.fast]
    corpus = find_corpus(args.corpus)
    boxer = boxer_command(args.boxer)
    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"corpus {corpus}, {len(cases)} cases, boxer: {' '.join(boxer)}", file=out, flush=True)

    width = max((len(c.name) for c in cases), default=10)
    results = []
    saved = {}
    if args.rescore:
        saved = {d["name"]: d for d in json.loads(Path(args.rescore).read_text())["results"]}
    for case in cases:
        if args.rescore:
            if case.name not in saved:
                continue
            r = rescore(saved[case.name], case, corpus)
        else:
            r = run_case(case, corpus, boxer, args.no_cache, args.probe)
        results.append(r)
        mark = lambda b: "yes" if b else "no"
        line = f"{r.name:<{width}}  built {mark(r.built):<3}  ran {mark(r.ran):<3}"
        if not r.ran:
            line += f"  {r.category:<22}  {r.error[:200]}"
        if r.note:
            line += f"  [{r.note}]"
        print(line, file=out, flush=True)
        if r.probe is not None:
            pr = r.probe
            pline = f"{'':<{width}}  probe as python:3.12: built {mark(pr['built'])}, ran {mark(pr['ran'])}"
            if not pr["ran"]:
                pline += f"  {pr['category']}  {pr['error'][:200]}"
            print(pline, file=out, flush=True)
        if args.verbose and not r.ran:
            for ln in (r.run_log_tail if r.built else r.build_log_tail):
                print(f"    | {ln}", file=out)

    present = [r for r in results if r.note != "absent"]
    m = len(present)
    built = sum(r.built for r in present)
    ran = sum(r.ran for r in present)
    counts: dict[str, int] = {}
    for r in present:
        if not r.ran:
            counts[r.category] = counts.get(r.category, 0) + 1
    if counts:
        print("failures: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])),
              file=out)
    if args.probe:
        nxt: dict[str, int] = {}
        for r in present:
            if r.probe is not None and not r.probe["ran"]:
                nxt[r.probe["category"]] = nxt.get(r.probe["category"], 0) + 1
        pb = sum(1 for r in present if r.built or (r.probe or {}).get("built"))
        pr_ = sum(1 for r in present if r.ran or (r.probe or {}).get("ran"))
        print(f"probe (base tags read as python:3.12): built {pb}/{m}, ran {pr_}/{m}"
              + ("; next blockers: " + ", ".join(f"{k} {v}" for k, v in sorted(nxt.items(), key=lambda kv: -kv[1]))
                 if nxt else ""), file=out)
    absent = len(results) - m
    print(f"built {built}/{m}, ran {ran}/{m}" + (f" ({absent} absent from the corpus)" if absent else ""),
          file=out, flush=True)
    if args.markdown:
        Path(args.markdown).write_text(markdown(results, cases, built, ran, m, counts))
    if args.json:
        doc = {"corpus": str(corpus), "boxer": boxer, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "built": built, "ran": ran, "total": m, "results": [asdict(r) for r in results]}
        text = json.dumps(doc, indent=1) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).write_text(text)
    if not m:
        print(f"no case of the manifest is in the corpus at {corpus} (see compat/README.md)", file=out)
        return 1
    unexpected = [r.name for r in present if not r.ran and r.category != r.expected]
    if unexpected:
        print(f"{len(unexpected)} not as expected (neither ran nor failed in their expected category): "
              + " ".join(unexpected), file=out)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
