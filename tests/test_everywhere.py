"""Every example image prints the same wherever it runs (issue 21): `boxer run`; the image pushed
to a registry, pulled by containerd's CRI `PullImage` (what the kubelet calls), its snapshot
mounted and run as runwasi's shims run it (the plain `wasmtime` CLI, only `/` preopened:
tests/runwasi.py); `wasmtime run` on its `boxer export --format standalone` module (no `--dir`);
and the browser page `boxer serve` serves (Chromium). Exit code, stdout and stderr are compared
byte for byte with `boxer run`'s.

Each example image is built once per session and each runner's setup (registry, containerd,
Chromium, a wasmtime compile cache) once per module. The data-science base's CPython imports
`host.call`, which is not WASI preview 1: only boxer runs it, and each other runner refuses it
with the one line asserted here (docs/registry.md, docs/web.md)."""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import boxer_py
import containerdnode
import runwasi
from boxer_py.browser import site
from boxer_py.image import wasmbin

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
PAGE_TIMEOUT_MS = 300_000   # the page compiles CPython (26 MB) on 2 busy cores

pytestmark = pytest.mark.skipif(bool(containerdnode.missing()), reason=containerdnode.missing() or "-")

# The agent image's CMD is a bare `python3`, which runs what stdin holds: code, as an agent sends it.
AGENT_CODE = ("import os, sys, plotly, webbrowser\n"
              "print(os.getcwd(), sys.argv, sys.executable, plotly.__version__, webbrowser.open('https://x'))\n"
              "print(sorted(os.listdir('/')))\n")


@dataclass(frozen=True)
class Example:
    name: str
    stdin: str = ""
    expect: str = ""    # a line boxer run's stdout must hold, so that "the same" is not "the same nothing"


CASES = [Example("hello-python", expect="Hello from cpython 3.12.0 on wasi!"),
         Example("hello-c", expect="This file was read through a relative path, from the WORKDIR."),
         Example("python-app", expect="app ready: Status(state='ready', python='py3') (six 1.17.0, attrs "),
         Example("agent", stdin=AGENT_CODE, expect="/work [''] /usr/local/bin/python3 6.")]


@pytest.fixture(scope="module")
def images(hello_image, hello_c_image, cache_dir, tmp_path_factory):
    """example name -> its image file, built once (hello-python and hello-c are the session's)."""
    built = {"hello-python": hello_image, "hello-c": hello_c_image}

    def image(name: str) -> Path:
        if name not in built:
            out = tmp_path_factory.mktemp(name) / f"{name}.wasm"
            boxer_py.build(EXAMPLES / name, out, cache_dir=cache_dir)
            built[name] = out
        return built[name]

    return image


@pytest.fixture(scope="module")
def wasmtime_options(wasmtime_cache) -> tuple[str, ...]:
    """The session's compile cache for the wasmtime CLI (test_standalone compiles the same modules)."""
    return ("-C", f"cache-config={wasmtime_cache}")


Outcome = tuple[int, str, str]   # exit code, stdout, stderr


def _boxer_run(boxer, image: Path, stdin: str) -> Outcome:
    r = boxer("run", "-i", str(image), input=stdin, timeout=1200)   # the first run compiles the program
    return r.returncode, r.stdout, r.stderr


def _runwasi(boxer, registry, containerd, wasmtime_cli, options, image: Path, stdin: str, tmp: Path) -> Outcome:
    """Push, CRI pull, mount the snapshot, run it as the shims do."""
    ref = f"{registry.host}/everywhere/{image.stem}:1"
    pushed = boxer("push", "--json", str(image), ref)
    assert pushed.returncode == 0 and "warnings" not in json.loads(pushed.stdout), (pushed.stdout, pushed.stderr)
    image_id = containerd.pull(ref)
    config = json.loads(containerd.ctr("content", "get", image_id).stdout)   # what containerd starts from
    (tmp / "elsewhere").mkdir()
    with containerd.mounted(ref, tmp / "rootfs") as root:
        r = runwasi.run(wasmtime_cli, root, config, tmp / "elsewhere", input=stdin.encode(), options=options)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def _standalone(boxer, wasmtime_cli, options, image: Path, stdin: str, tmp: Path) -> Outcome:
    module = tmp / f"{image.stem}-standalone.wasm"
    exported = boxer("export", "--format", "standalone", str(image), str(module))
    assert exported.returncode == 0, exported.stderr
    empty = tmp / "cwd"
    empty.mkdir()
    r = subprocess.run([str(wasmtime_cli), "run", *options, str(module)], input=stdin, capture_output=True,
                       text=True, cwd=empty, timeout=600)
    assert list(empty.iterdir()) == [], "the module's writes stay in its memory"
    return r.returncode, r.stdout, r.stderr


def _page(browser, image: Path, stdin: str) -> Outcome:
    """The image's command run in the page with the form's stdin, as a user presses Run."""
    server = site.serve(image, "127.0.0.1", 0)
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        page.wait_for_selector("#run:not([disabled])", timeout=PAGE_TIMEOUT_MS)
        page.fill("#command", "")
        page.fill("#stdin", stdin)
        page.click("#run")
        page.wait_for_function("() => window.boxer.runs.length === 1 && window.boxer.runs[0].done",
                               timeout=PAGE_TIMEOUT_MS)
        run = page.evaluate("() => window.boxer.runs[0]")
        assert errors == [] and not run.get("trap"), (errors, run.get("trap"))
        return run["exitCode"], run["stdout"], run["stderr"]
    finally:
        context.close()
        server.close()


@pytest.mark.parametrize("example", CASES, ids=lambda e: e.name)
def test_every_runner_prints_what_boxer_run_prints(example, images, boxer, registry, containerd, wasmtime_cli,
                                                   wasmtime_options, browser, tmp_path):
    image = images(example.name)
    reference = _boxer_run(boxer, image, example.stdin)
    assert reference[0] == 0 and example.expect in reference[1], reference
    outcomes = {
        "runwasi": _runwasi(boxer, registry, containerd, wasmtime_cli, wasmtime_options, image, example.stdin,
                            tmp_path),
        "standalone": _standalone(boxer, wasmtime_cli, wasmtime_options, image, example.stdin, tmp_path),
        "page": _page(browser, image, example.stdin),
    }
    assert outcomes == dict.fromkeys(outcomes, reference)


# The smallest module importing what the data-science base's CPython imports beyond WASI.
HOST_CALL = (b"\0asm\x01\0\0\0\x01\x04\x01\x60\x00\x00\x02\x0d\x01\x04host\x04call\x00\x00"
             b"\x03\x02\x01\x00\x07\x0a\x01\x06_start\x00\x01\x0a\x04\x01\x02\x00\x0b")


@pytest.mark.datasci
def test_the_data_science_example_runs_under_boxer_only_and_every_other_runner_says_why(
        images, boxer, registry, containerd, wasmtime_cli, tmp_path):
    """Its CPython imports host.call. The push warns; containerd pulls and unpacks it; the
    wasmtime CLI refuses the import when it instantiates the module, after compiling all of it
    (100 MB: minutes here), so the refusal is shown on a module with that one import and the
    snapshot's program is checked to have it. Export and the page refuse it in one line."""
    image = images("data-science")
    reference = _boxer_run(boxer, image, "")
    assert reference[0] == 0 and "total revenue: 287.50\n" in reference[1], reference
    program = "/usr/local/bin/python3.15"   # what CMD's `python` names (a link in the base)
    ref = f"{registry.host}/everywhere/data-science:1"
    pushed = boxer("push", str(image), ref)
    assert pushed.returncode == 0, pushed.stderr
    warnings = [line for line in pushed.stderr.splitlines() if line.startswith("WARNING: ")]
    assert warnings == [f"WARNING: {program} imports host.call, which is not WASI preview 1: runwasi and other "
                        "WASI runtimes cannot start it"], pushed.stderr
    config = json.loads(containerd.ctr("content", "get", containerd.pull(ref)).stdout)["config"]
    with containerd.mounted(ref, tmp_path / "rootfs") as root:
        wasm = (root / config["Entrypoint"][0].lstrip("/")).read_bytes()
    imports = wasmbin.import_entries(dict(wasmbin.sections(wasm))[wasmbin.IMPORT])
    assert ("host", "call") in {(module, name) for module, name, _ in imports}
    (tmp_path / "host-call.wasm").write_bytes(HOST_CALL)
    r = subprocess.run([str(wasmtime_cli), "run", str(tmp_path / "host-call.wasm")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and r.stdout == "", r
    assert "unknown import: `host::call` has not been defined" in r.stderr, r.stderr
    exported = boxer("export", "--format", "standalone", str(image), str(tmp_path / "ds.wasm"))
    assert (exported.returncode, exported.stdout) == (1, "")
    assert exported.stderr == (f"boxer: {program}: imports host.call, which is not WASI preview 1: no WASI runtime "
                               "could run its standalone module\n")
    web = boxer("web", str(image), "-o", str(tmp_path / "site"))
    assert (web.returncode, web.stdout) == (1, "")
    assert web.stderr == (f"boxer: {image}: {program} imports host.call, which is not WASI preview 1: the browser "
                          "launcher provides nothing else, so the page could not run it\n")
    assert not (tmp_path / "ds.wasm").exists() and not (tmp_path / "site").exists()


def test_the_ci_and_kubernetes_examples_use_an_example_tested_here():
    """examples/ci and examples/kubernetes build no image of their own: they ship hello-python."""
    script = (EXAMPLES / "ci" / "build-test-push.sh").read_text()
    assert "CONTEXT=${CONTEXT:-examples/hello-python}" in script
    assert "name: hello-python" in (EXAMPLES / "kubernetes" / "job.yaml").read_text()
    # flask-app is a server: test_net.py serves it under boxer run -p, test_web_net.py in the page.
    assert {e.name for e in CASES} | {"data-science", "ci", "kubernetes", "flask-app"} == {p.name for p in EXAMPLES.iterdir()}
