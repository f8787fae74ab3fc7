"""The RUN shell against hostile Dockerfiles and hostile rootfs files (issue 15, "Build denial of
service"): it interprets RUN lines on the build host, so every loop, nesting, expansion, buffer,
file read and regular expression must stay bounded in time and memory.

Each attack runs in a fresh child process (a hang guard: a generous timeout, never a speed
assert) under a parent that reports that child's peak RSS (getrusage RUSAGE_CHILDREN); each
ends in a one-line error naming the limit (or, for regular expressions, a correct answer) with
a peak RSS far below what the attack would take unbounded. Some time budgets are lowered in
the child (limits.MAX_*), so the test shows the mechanism without a minute-long run; the
builds use the real limits.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HANG_GUARD = 600          # seconds: only ever hit by a regression that hangs
RSS_BOUND_MIB = 600       # every attack here would take gigabytes (or forever) unbounded

_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
    "json.dump({'rc': p.returncode, 'stdout': p.stdout.decode(errors='replace'),"
    " 'stderr': p.stderr.decode(errors='replace'),"
    " 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, sys.stdout)\n"
)

_SHELL_CHILD = """
import json, sys
from pathlib import Path
from boxer_py.errors import ShellError
from boxer_py.shell import limits
from boxer_py.shell.interpreter import Completed, run_script
args = json.loads(open(sys.argv[1]).read())
for name, value in args["limits"].items():
    setattr(limits, name, value)
results = []
for script in args["scripts"]:
    try:
        r = run_script(script, root=Path(args["root"]), env={"PATH": "/usr/bin:/bin", "HOME": "/root"}, cwd="/",
                       external=lambda inv: Completed(127, b"", b"not here\\n"))
        log = r.log.decode("utf-8", "replace")
        results.append({"exit": r.exit_code, "log": log[-3000:], "size": len(r.log),
                        "cut": "bytes of this RUN's output not kept]" in log})
    except ShellError as e:
        results.append({"error": str(e)})
print(json.dumps(results))
"""

_BUILD_CHILD = """
import json, sys
import boxer_py
from boxer_py.errors import BoxerError
try:
    boxer_py.build(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3])
    print(json.dumps({"ok": True}))
except BoxerError as e:
    print(json.dumps({"error": str(e)}))
"""


def _measured(argv: list[str], env: dict | None = None) -> tuple[object, float]:
    """Run argv in a child of a fresh parent; (its JSON output, its peak RSS in MiB)."""
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True,
                          timeout=HANG_GUARD, env={**os.environ, **(env or {})})
    report = json.loads(proc.stdout)
    assert report["rc"] == 0 and "Traceback" not in report["stderr"], report["stderr"][-3000:]
    return json.loads(report["stdout"].strip().splitlines()[-1]), report["rss"] / 1024


def shell(root: Path, *scripts: str, **lowered: int) -> tuple[list[dict], float]:
    """Run each script through the real shell on `root`, in one child; limits.NAME=value lowered."""
    args = root.parent / "shell-args.json"
    args.write_text(json.dumps({"root": str(root), "scripts": list(scripts), "limits": lowered}))
    results, rss = _measured([sys.executable, "-c", _SHELL_CHILD, str(args)])
    assert isinstance(results, list)
    return results, rss


def refused(result: dict, needle: str) -> str:
    """The result is a one-line ShellError that names the limit."""
    assert "error" in result, result
    message = result["error"]
    assert "\n" not in message and needle in message, message
    return message


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    for d in ("etc", "root", "tmp", "usr/bin", "bin"):
        (r / d).mkdir(parents=True)
    (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return r


# -- time: every loop, call and nesting counts ---------------------------------------------------------
def test_for_loops_count_toward_the_script_budget(root):
    """Only while/until counted: `for` nested over seq output ran 10^10 iterations."""
    results, rss = shell(root, "for i in $(seq 100000); do for j in $(seq 100000); do :; done; done",
                         "for i in $(seq 1500); do for j in $(seq 1500); do :; done; done; echo never",
                         "for i in 1 2 3; do echo $i; done",
                         MAX_SCRIPT_ITERATIONS=2000)
    refused(results[0], "loops ran more than 2000 iterations in one RUN")
    refused(results[1], "loops ran more than 2000 iterations in one RUN")
    assert results[2]["log"] == "1\n2\n3\n"
    assert rss < RSS_BOUND_MIB


def test_recursion_breadth_and_nesting_are_bounded(root):
    """Depth is capped at 64, and a function that calls itself twice (2^21 calls within that
    depth) runs into the per-RUN command budget; eval, source and $(...) nest only so deep."""
    (root / "self.sh").write_text(". /self.sh\n")
    results, rss = shell(root,
                         "f() { [ $1 -lt 20 ] && { f $(($1+1)); f $(($1+1)); }; }; f 0",
                         "f() { f; }; f",
                         "e='eval \"$e\"'; eval \"$e\"",
                         ". /self.sh",
                         "export s='echo $(sh -c \"$s\")'; sh -c \"$s\"",
                         MAX_COMMANDS=5000)
    refused(results[0], "more than 5000 commands ran in one RUN")
    for r in results[1:]:
        refused(r, "nested more than 64 deep")
    assert rss < RSS_BOUND_MIB


# -- memory: expansion results are refused before they are built ------------------------------------
ONE_MIB = "A=$(printf '%1048000s' x)"   # a value just under limits.MAX_VALUE


@pytest.mark.parametrize("script,needle", [
    ("A=x; while :; do A=$A$A; done", "a word expands to more than 1 MiB"),
    (ONE_MIB + "; B=$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A",
     "a word expands to more than 1 MiB"),
    (ONE_MIB + "; cat <<EOF\n" + "$A" * 64 + "\nEOF", "a word expands to more than 1 MiB"),
    (ONE_MIB + "; for i in $(seq 40); do eval \"v$i=\\$A\"; done", "variables add up to more than 16 MiB"),
    ("for i in $(seq 1 1000000); do :; done", "the output of $(...) is larger than 1 MiB"),
    ("for i in $(seq 120000); do :; done", "has more than 100000 words"),
    ("set -- $(seq 120000)", "a command line has more than 100000 words"),
    (ONE_MIB + "; echo" + " \"$A\"" * 40000, "a command line is longer than 4 MiB"),
    (ONE_MIB + "; B=\"$A\" C=\"$A\" D=\"$A\" E=\"$A\" F=\"$A\" true", "a command line is longer than 4 MiB"),
    (ONE_MIB + "; for x in" + " \"$A\"" * 40000 + "; do :; done", "the list of a for loop is longer than 4 MiB"),
    (ONE_MIB + "; echo \"$A\" | xargs -I{} echo {}{}{}{}{}", "a command line is longer than 4 MiB"),
    ("printf '%1000000s' $(seq 100)", "printf's output is larger than 16 MiB"),
    (ONE_MIB + "; echo \"$A\" > /big; sed 's/./&&&&&&&&&&&&&&&&&&&&&&&&&&/g' /big",
     "sed's output is larger than 16 MiB"),
    (ONE_MIB + "; i=0; while [ $i -lt 40 ]; do echo \"$A\"; i=$((i+1)); done | wc -c",
     "the output written into a pipe is larger than 16 MiB"),
    ("echo $((" + "1+" * 3000 + "1))", "an arithmetic expression $((...)) is longer than 4096 characters"),
    ("shift " + "9" * 5000, "a number in the script has too many digits"),
    ("eval \"$(printf '%300000s' x)\"", "a script (RUN line, eval, source, sh -c or $(...)) is longer than 256 KiB"),
    ("A=$(printf '%200000s' x); for i in 1 2 3 4 5 6; do eval \"$A $i\"; done",
     "more than 1 MiB of script text parsed in one RUN"),
])
def test_expansions_and_buffers_are_refused_before_they_are_built(root, script, needle):
    results, rss = shell(root, script)
    refused(results[0], needle)
    assert rss < RSS_BOUND_MIB


def test_glob_results_are_counted_while_they_are_listed(root):
    """Ten links to `.` make /g/*/*/*/*/*/* a million paths (and * /* ... on, without end)."""
    (root / "g").mkdir()
    for k in range(10):
        (root / "g" / f"l{k}").symlink_to(".")
    results, rss = shell(root, "echo /g/*/*/*/*/*/*/*/*", "echo /g/l[0-1]/l0/* | wc -w")
    refused(results[0], "a glob pattern's list of paths has more than 100000 words")
    assert results[1]["log"] == "20\n"
    assert rss < RSS_BOUND_MIB


def test_brace_ranges_and_huge_arithmetic_are_not_materialised(root):
    """dash has no brace expansion: {1..99999999} is one word. $((2**2**30)) is 64-bit."""
    results, rss = shell(root, "echo {1..99999999} $((2**2**30)) $((7**99999999999))", "echo $(seq 1 100000000)")
    seven = pow(7, 99999999999, 1 << 64)
    assert results[0]["log"] == f"{{1..99999999}} 0 {seven - (1 << 64) if seven >> 63 else seven}\n"
    assert "more than 1000000 numbers" in results[1]["log"]
    assert rss < RSS_BOUND_MIB


# -- files of the rootfs: sized before they are read, never a blocking open ----------------------------
READERS = ["cat /f", "sed -n 1p /f", "sed -i s/a/b/ /f", "grep x /f", "head -1 /f", "tail -1 /f", "sort /f",
           "uniq /f", "wc -l /f", "cut -c1 /f", "tr a b < /f", "read x < /f", ". /f", "sh /f", "tar -tf /f",
           "tar -xf /f -C /tmp", "cat < /f | wc -c"]


def test_a_sparse_terabyte_or_a_fifo_in_the_rootfs_is_refused_unread(root):
    """A file of the image can claim a terabyte (sparse) or be a FIFO: a whole-file read would
    take the host's memory, a FIFO would block the build forever."""
    sparse = root / "f"
    with open(sparse, "wb") as f:
        f.truncate(1 << 40)
    results, rss = shell(root, *READERS)
    for script, r in zip(READERS, results, strict=True):
        if script.startswith("tar"):   # an archive is streamed: a terabyte of zeros is an empty archive
            assert "error" not in r, (script, r)
            continue
        message = refused(r, "the file is larger than")
        assert "(1099511627776 bytes)" in message, (script, message)
    assert rss < RSS_BOUND_MIB
    results, rss = shell(root, "cp /f /copy", "install -m 644 /f /copy")
    for r in results:
        refused(r, "f: a sparse file (1099511627776 bytes, 0 of them stored); RUN does not copy it")
    assert not (root / "copy").exists() and rss < RSS_BOUND_MIB
    sparse.unlink()
    os.mkfifo(sparse)
    results, rss = shell(root, *READERS)
    assert len(results) == len(READERS)
    for r in results:
        refused(r, "not a regular file (a FIFO, socket or device is not read in RUN)")
    assert rss < RSS_BOUND_MIB


def test_the_build_log_keeps_its_head_and_tail(root):
    results, rss = shell(root, ONE_MIB + "; i=0; while [ $i -lt 200 ]; do echo \"$A\"; i=$((i+1)); done; echo last")
    r = results[0]
    assert r["exit"] == 0 and r["log"].endswith("x\nlast\n")
    assert r["size"] < 2 * 1024 * 1024 + 200 and r["cut"]
    assert rss < RSS_BOUND_MIB


# -- regular expressions and patterns: an answer or a refusal, never a runaway backtrack ---------------
def test_catastrophic_regular_expressions_finish_with_the_right_answer(root):
    (root / "a").write_text("a" * 20000 + "\n")
    (root / "ab").write_text("a" * 20000 + "b\n")
    (root / "d").mkdir()
    (root / "d" / ("a" * 250)).write_text("")
    results, rss = shell(
        root,
        "grep -cE '(a+)+$' /a",                       # exponential in `re`: matches
        "grep -cE '(a+)+c$' /a",                      # and does not
        "grep -cE '(a|aa)*b' /a",
        "grep -c 'a.*a.*a.*a.*a.*c' /ab",             # polynomial (n^6) in `re`
        "sed -E 's/(a|aa)*$/X/' /a",
        "sed 's/\\(a*\\)*b/[&]/' /ab | wc -c",
        "A=$(cat /a); case \"$A\" in *a*a*a*a*a*a*a*a*a*a*b) echo m;; *a) echo n;; esac",
        "A=$(cat /a); echo ${A%%*a*a*a*a*a*a*b} | wc -c; echo ${A#*a*a*a*a*a*a*a} | wc -c",
        "echo /d/*a*a*a*a*a*a*a*a*a*a*a*a*b",
        "find /d -name '*a*a*a*a*a*a*a*a*a*a*a*a*b'",
        "grep -c '\\(a*\\)*\\1b' /a",                 # a back-reference that would need backtracking
        "grep -c \"$(printf '%5000s' x)\" /a",
    )
    assert [r.get("log") for r in results[:10]] == [
        "1\n", "0\n", "0\n", "0\n", "X\n", "20004\n", "n\n", "20001\n19994\n", "/d/*a*a*a*a*a*a*a*a*a*a*a*a*b\n", ""]
    refused(results[10], "uses a back-reference in a way that could backtrack")
    refused(results[11], "a regular expression is longer than 4096 characters")
    assert rss < RSS_BOUND_MIB


def test_matching_steps_share_one_budget(root):
    """Each line costs the VM time linear in its length; all matching of one RUN is counted."""
    (root / "a").write_text("a" * 20000 + "\n")
    results, rss = shell(root, "i=0; while [ $i -lt 100 ]; do grep -cE '(a+)+c' /a; i=$((i+1)); done",
                         MAX_MATCH_STEPS=200_000)
    refused(results[0], "pattern matching took more than 200000 steps in one RUN")
    assert rss < RSS_BOUND_MIB


# -- through a real build ------------------------------------------------------------------------------
def build(tmp_path: Path, cache_dir: Path, dockerfile: str) -> tuple[dict, float, Path]:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    out = tmp_path / "x.wasm"
    result, rss = _measured([sys.executable, "-c", _BUILD_CHILD, str(ctx), str(out), str(cache_dir)])
    assert isinstance(result, dict)
    return result, rss, out


@pytest.mark.parametrize("run,needle", [
    ("for i in $(seq 120000); do echo $i; done", "has more than 100000 words"),
    ("A=x; while true; do A=$A$A; done", "a word expands to more than 1 MiB"),
    ("A=$(printf '%1000000s' x); for i in $(seq 30); do echo \"$A\"; done | tr x y > /out",
     "the output written into a pipe is larger than 16 MiB"),
    ("A=$(printf '%1000000s' x); for i in $(seq 30); do echo \"$A\" >> /big; done; grep -c y /big",
     "big: the file is larger than 16 MiB"),
    ("printf '%05000d\\n' 0 > /z; grep -cE '(0+)+$' /z; sed 's/\\(0*\\)*\\1x/y/' /z",
     "uses a back-reference in a way that could backtrack"),
    ("f() { f; }; f", "nested more than 64 deep"),
])
def test_a_hostile_run_line_fails_the_build_with_one_line(tmp_path, cache_dir, run, needle):
    result, rss, out = build(tmp_path, cache_dir, f"FROM scratch\nRUN mkdir -p /tmp\nRUN {run}\n")
    message = result.get("error", "")
    assert "\n" not in message and "Dockerfile:3: RUN: " in message and needle in message, result
    assert rss < RSS_BOUND_MIB
    assert not out.exists()


def test_a_flood_of_build_output_is_kept_as_head_and_tail(tmp_path, cache_dir):
    """64 MiB printed by one RUN: the build keeps about 2 MiB of it, and the failure still names
    the last line."""
    result, rss, out = build(tmp_path, cache_dir, "FROM scratch\nRUN A=$(printf '%1000000s' x); "
                             "for i in $(seq 64); do echo \"$A\"; done; echo the-last-line; false\n")
    message = result.get("error", "")
    assert "\n" not in message and "Dockerfile:2: RUN returned exit code 1: the-last-line" in message, result
    assert rss < RSS_BOUND_MIB
