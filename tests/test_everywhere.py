"""Every example image prints the same wherever it runs (issue 21): `boxer run`; the image pushed
to a registry, pulled by containerd's CRI `PullImage` (what the kubelet calls), its snapshot
mounted and run as runwasi's shims run it (the plain `wasmtime` CLI, only `/` preopened:
tests/runwasi.py); `wasmtime run` on its `boxer export --format standalone` module (no `--dir`);
and the browser page `boxer serve` serves (Chromium). Exit code, stdout and stderr are compared
byte for byte with `boxer run`'s.

Each example image is built once per session and each runner's setup (registry, containerd,
Chromium, a wasmtime compile cache) once per module. Which example runs where:

- hello-python, hello-c, python-app, agent (code on stdin) and flask-app (a one-shot command
  using Flask's test client: no runner but boxer run has sockets; it is served under `boxer
  run -p` in test_net.py and in the page in test_web_net.py): all four runners;
- data-science: all four runners too, with its own tests below: its CMD, which reads
  matplotlib's data through a `boxer.alias:` directory inside the stdlib zip's path and saves a
  chart under /out (shown inline in the page), and `python -c` commands. Its CPython is a
  reactor importing host.call: the pushed program, the standalone module and the page's runtime
  are each a command that answers host.call inside itself (issue 19);
- ci and kubernetes: no image of their own, they ship hello-python (asserted below)."""
from __future__ import annotations

import base64
import json
import shlex
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import boxer_py
import containerdnode
import runwasi
from boxer_py.browser import site
from boxer_py.image import wasmbin
from chromium import StaticSite, press_run

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
PAGE_TIMEOUT_MS = 300_000   # the page compiles CPython (13 MB) on 2 busy cores

pytestmark = pytest.mark.skipif(bool(containerdnode.missing()), reason=containerdnode.missing() or "-")

# The agent image's CMD is a bare `python3`, which runs what stdin holds: code, as an agent sends it.
AGENT_CODE = ("import os, sys, plotly, webbrowser\n"
              "print(os.getcwd(), sys.argv, sys.executable, plotly.__version__, webbrowser.open('https://x'))\n"
              "print(sorted(os.listdir('/')))\n")


# flask-app is a server, and runwasi-style runs and the standalone module have no sockets: the
# runners run a one-shot command instead, which imports the app from WORKDIR and sends it
# requests through Flask's own test client (routing, JSON, headers, a redirect: the served path).
FLASK_CODE = ("import app; c = app.app.test_client(); print(c.get('/').data.decode(), end=''); "
              "r = c.put('/notes/1', json={'text': 'hi'}); print(r.status_code, r.headers['X-Notes'], r.get_json()); "
              "print(c.get('/notes/1?upper=1').get_json(), c.get('/latest').headers['Location'], c.get('/x').status)")


@dataclass(frozen=True)
class Example:
    name: str
    stdin: str = ""
    expect: str = ""    # a line boxer run's stdout must hold, so that "the same" is not "the same nothing"
    args: tuple[str, ...] = ()   # a command given to each runner in place of CMD, as `docker run IMAGE ARGS`


CASES = [Example("hello-python", expect="Hello from cpython 3.12.0 on wasi!"),
         Example("hello-c", expect="This file was read through a relative path, from the WORKDIR."),
         Example("python-app", expect="app ready: Status(state='ready', python='py3') (six 1.17.0, attrs "),
         Example("agent", stdin=AGENT_CODE, expect="/work [''] /usr/local/bin/python3 6."),
         Example("flask-app", args=("python", "-c", FLASK_CODE),
                 expect="201 1 {'number': 1, 'text': 'hi'}\n{'number': 1, 'text': 'hi', 'upper': True} /notes/1 404")]


@pytest.fixture(scope="module")
def images(hello_image, hello_c_image, flask_example_image, cache_dir, tmp_path_factory):
    """example name -> its image file, built once (hello-python, hello-c and flask-app are the session's)."""
    built = {"hello-python": hello_image, "hello-c": hello_c_image, "flask-app": flask_example_image}

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


def _boxer_run(boxer, image: Path, stdin: str, args: tuple[str, ...] = ()) -> Outcome:
    r = boxer("run", "-i", str(image), *args, input=stdin, timeout=1200)   # the first run compiles the program
    return r.returncode, r.stdout, r.stderr


def _runwasi(boxer, registry, containerd, wasmtime_cli, options, image: Path, stdin: str, tmp: Path,
             args: tuple[str, ...] = ()) -> Outcome:
    """Push, CRI pull, mount the snapshot, run it as the shims do; `args` (`python ...`) as a
    Kubernetes Pod's `args:` give them, replacing the pushed Cmd after the program's path."""
    ref = f"{registry.host}/everywhere/{image.stem}:1"
    pushed = boxer("push", "--json", str(image), ref)
    assert pushed.returncode == 0 and "warnings" not in json.loads(pushed.stdout), (pushed.stdout, pushed.stderr)
    image_id = containerd.pull(ref)
    config = json.loads(containerd.ctr("content", "get", image_id).stdout)   # what containerd starts from
    if args:
        assert config["config"]["Entrypoint"][0].rsplit("/", 1)[-1] == args[0], config["config"]
        config["config"]["Cmd"] = list(args[1:])
    (tmp / "elsewhere").mkdir()
    with containerd.mounted(ref, tmp / "rootfs") as root:
        r = runwasi.run(wasmtime_cli, root, config, tmp / "elsewhere", input=stdin.encode(), options=options)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def _standalone(boxer, wasmtime_cli, options, image: Path, stdin: str, tmp: Path,
                args: tuple[str, ...] = ()) -> Outcome:
    module = tmp / f"{image.stem}-standalone.wasm"
    exported = boxer("export", "--format", "standalone", str(image), str(module))
    assert exported.returncode == 0, exported.stderr
    empty = tmp / "cwd"
    empty.mkdir()
    r = subprocess.run([str(wasmtime_cli), "run", *options, str(module), *args], input=stdin, capture_output=True,
                       text=True, cwd=empty, timeout=600)
    assert list(empty.iterdir()) == [], "the module's writes stay in its memory"
    return r.returncode, r.stdout, r.stderr


def _press_run(browser, url: str, stdin: str, args: tuple[str, ...]) -> tuple[dict, list[str]]:
    """Open `url` in a fresh Chromium context, type `args` and `stdin` into the form and press Run,
    as a user does: the page's run record and the names of the resources it fetched."""
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        run = press_run(page, shlex.join(args), stdin, PAGE_TIMEOUT_MS)
        assert errors == [] and not run.get("trap"), (errors, run.get("trap"))
        return run, page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")
    finally:
        context.close()


def _page(browser, image: Path, stdin: str, args: tuple[str, ...] = ()) -> Outcome:
    """The image's command (or `args`, typed into the command field) run in the page with the
    form's stdin, as a user presses Run."""
    server = site.serve(image, "127.0.0.1", 0)
    try:
        run, _ = _press_run(browser, server.url, stdin, args)
        return run["exitCode"], run["stdout"], run["stderr"]
    finally:
        server.close()


@pytest.mark.parametrize("example", CASES, ids=lambda e: e.name)
def test_every_runner_prints_what_boxer_run_prints(example, images, boxer, registry, containerd, wasmtime_cli,
                                                   wasmtime_options, browser, tmp_path):
    image = images(example.name)
    reference = _boxer_run(boxer, image, example.stdin, example.args)
    assert reference[0] == 0 and example.expect in reference[1], reference
    outcomes = {
        "runwasi": _runwasi(boxer, registry, containerd, wasmtime_cli, wasmtime_options, image, example.stdin,
                            tmp_path, example.args),
        "standalone": _standalone(boxer, wasmtime_cli, wasmtime_options, image, example.stdin, tmp_path, example.args),
        "page": _page(browser, image, example.stdin, example.args),
    }
    assert outcomes == dict.fromkeys(outcomes, reference)


def _standalone_page(boxer, browser, image: Path, stdin: str, args: tuple[str, ...], tmp: Path) -> Outcome:
    """`boxer web --standalone` (the one module, no image file), served by a plain static host,
    run in Chromium with the form's command and stdin as a user presses Run."""
    site_dir = tmp / "standalone-site"
    r = boxer("web", "--standalone", str(image), "-o", str(site_dir), timeout=600)
    assert (r.returncode, r.stdout) == (0, f"{site_dir}\n"), r.stderr
    assert sorted(p.name for p in site_dir.iterdir()) == ["index.html", "standalone.js", "standalone.wasm"]
    with StaticSite(site_dir) as static:
        run, fetched = _press_run(browser, static.url, stdin, args)
    assert not any(name.endswith("image.wasm") for name in fetched), fetched
    return run["exitCode"], run["stdout"], run["stderr"]


@pytest.mark.parametrize("example", [c for c in CASES if c.name in ("hello-python", "hello-c", "agent")],
                         ids=lambda e: e.name)
def test_boxer_web_standalone_runs_the_one_module_in_the_page_as_boxer_run_runs_the_image(
        example, images, boxer, browser, tmp_path):
    """Issue 21 item 4: `boxer web --standalone IMAGE -o DIR` writes a page that runs the
    image's standalone module (no image file, no rootfs to fetch or unpack); its exit code,
    stdout and stderr are boxer run's, byte for byte (agent: code on stdin, so stdin reaches it)."""
    image = images(example.name)
    reference = _boxer_run(boxer, image, example.stdin, example.args)
    assert reference[0] == 0 and example.expect in reference[1], reference
    assert _standalone_page(boxer, browser, image, example.stdin, example.args, tmp_path) == reference


# What a command given after the module (or as a Pod's `args:`) must see as under boxer run: its
# argv, working directory and sys.path (PYTHONPATH's site-packages included, where pip installs).
PATH_CODE = "import os, sys; print(sys.argv, os.getcwd()); print(*sys.path, sep='\\n')"


@pytest.mark.parametrize("name, extra", [("hello-python", ""), ("python-app", "; import six; print(six.__file__)")])
def test_a_command_given_at_run_time_runs_as_boxer_run_runs_it(name, extra, images, boxer, registry, containerd,
                                                             wasmtime_cli, wasmtime_options, tmp_path):
    """Issue 21: `wasmtime run OUT.wasm python -c ...` and a Pod's `args: [-c, ...]` on the pushed
    image print what `boxer run IMAGE python -c ...` prints (python-app: its pip-installed six)."""
    image, args = images(name), ("python", "-c", PATH_CODE + extra)
    reference = _boxer_run(boxer, image, "", args)
    assert reference[0] == 0 and "['-c'] /app\n" in reference[1], reference
    assert _standalone(boxer, wasmtime_cli, wasmtime_options, image, "", tmp_path, args) == reference
    assert _runwasi(boxer, registry, containerd, wasmtime_cli, wasmtime_options, image, "", tmp_path, args) == reference


# What a data-science user runs besides CMD: the compiled-in numpy and pandas, from `python -c`.
DATASCI_CODE = ("import sys, numpy, pandas; print(sys.argv, numpy.arange(6).reshape(2, 3).sum(axis=0), "
                "pandas.DataFrame({'a': [1.5, 2.5]}).a.mean())")
DATASCI_RUNS = [((), "total revenue: 287.50\n"), (("python", "-c", DATASCI_CODE), "['-c'] [3 5 7] 2.0\n"),
                (("python", "-c", PATH_CODE), "['-c'] /app\n")]


@pytest.fixture(scope="module")
def datasci_reference(images, boxer) -> dict[tuple[str, ...], Outcome]:
    """boxer run's outcome of each of DATASCI_RUNS, the reference every other runner is held to."""
    image, out = images("data-science"), {}
    for args, expect in DATASCI_RUNS:
        out[args] = _boxer_run(boxer, image, "", args)
        assert out[args][0] == 0 and expect in out[args][1], out[args]
    return out


@pytest.fixture(scope="module")
def datasci_module(images, boxer, tmp_path_factory) -> Path:
    """The data-science example's standalone module, exported once for this module's tests
    (about 260 MB: the wasmtime CLI compiles it once, minutes here, then its cache has it)."""
    image, module = images("data-science"), tmp_path_factory.mktemp("ds") / "ds-standalone.wasm"
    exported = boxer("export", "--format", "standalone", str(image), str(module), timeout=1200)
    assert (exported.returncode, exported.stdout, exported.stderr) == (0, f"{module}\n", ""), exported.stderr
    return module


@pytest.mark.datasci
def test_the_data_science_example_runs_standalone_and_runwasi_style_as_under_boxer_run(
        images, datasci_module, datasci_reference, boxer, registry, containerd, wasmtime_cli, wasmtime_options,
        tmp_path):
    """Its CPython is a reactor (`run`, no `_start`) that imports host.call. Both its standalone
    module and the program its pushed OCI image ships (host.call defined inside as boxer run
    answers it, -1; a `_start` that calls `run`; boxer's prelude before the command) print what
    boxer run prints, byte for byte: under the plain wasmtime CLI with no `--dir`, and as runwasi
    runs the image pulled through containerd's CRI (only `/` preopened, argv = Entrypoint + Cmd,
    a Pod's `args:` replacing Cmd): its CMD, `python -c` of numpy and pandas, and sys.path. The
    CMD imports matplotlib, whose data the base shows inside the stdlib zip's path through a
    `boxer.alias:` label (a preopen under boxer run): the standalone module holds it as a link,
    the pushed program resolves it itself (a rootfs cannot hold a directory inside a file), and
    the push warns of nothing."""
    image = images("data-science")
    ref = f"{registry.host}/everywhere/data-science:1"
    pushed = boxer("push", str(image), ref, timeout=1200)
    assert pushed.returncode == 0 and "WARNING" not in pushed.stderr, pushed.stderr
    config = json.loads(containerd.ctr("content", "get", containerd.pull(ref)).stdout)
    (tmp_path / "elsewhere").mkdir()
    with containerd.mounted(ref, tmp_path / "rootfs", writable=True) as root:   # the CMD saves /out/chart.png
        program = (root / config["config"]["Entrypoint"][0].lstrip("/")).read_bytes()
        imports = wasmbin.import_entries(dict(wasmbin.sections(program))[wasmbin.IMPORT])
        assert {module for module, _, _ in imports} == {"wasi_snapshot_preview1"}
        for n, (args, _) in enumerate(DATASCI_RUNS):
            reference = datasci_reference[args]
            empty = tmp_path / f"cwd{n}"
            empty.mkdir()
            r = subprocess.run([str(wasmtime_cli), "run", *wasmtime_options, str(datasci_module), *args],
                               capture_output=True, text=True, cwd=empty, timeout=1800)   # the first compiles
            assert (r.returncode, r.stdout, r.stderr) == reference
            assert list(empty.iterdir()) == [], "the module's writes stay in its memory"
            run = json.loads(json.dumps(config))
            if args:   # as a Pod's `args:`: after the Entrypoint (the program and boxer's prelude)
                run["config"]["Cmd"] = list(args[1:])
            r = runwasi.run(wasmtime_cli, root, run, tmp_path / "elsewhere", options=wasmtime_options, timeout=1800)
            assert (r.returncode, r.stdout.decode(), r.stderr.decode()) == reference


@pytest.mark.datasci
def test_the_data_science_example_runs_in_the_page_as_under_boxer_run(images, datasci_reference, boxer, browser):
    """Issue 19: `boxer serve` of the data-science image gives a page that runs it. Its runtime is
    the image's reactor CPython made a command that answers host.call inside itself and resolves
    the `boxer.alias:` directory (matplotlib's data) itself, started with boxer's prelude. One page
    load, the form's command typed for each run, as a user does: the CMD, `python -c` of numpy and
    pandas, and sys.path print what boxer run prints, byte for byte; the CMD's chart, saved under
    /out, is the PNG boxer run saves and is shown inline as an <img> of its size."""
    image = images("data-science")
    charted = boxer("run", "--json", str(image), timeout=1200)
    files = json.loads(charted.stdout)["files"]
    assert [f["path"] for f in files] == ["/out/chart.png"], charted.stderr
    chart = base64.b64decode(files[0]["content"])
    assert chart.startswith(b"\x89PNG\r\n\x1a\n") and chart[12:16] == b"IHDR"
    server = site.serve(image, "127.0.0.1", 0)
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        for args, _ in DATASCI_RUNS:
            run = press_run(page, shlex.join(args), "", PAGE_TIMEOUT_MS)
            assert (run["exitCode"], run["stdout"], run["stderr"]) == datasci_reference[args], run.get("trap")
            assert run["runtime"] == "layer" and errors == []   # the site's runtime, known from the checked layer
            if args:
                continue
            assert [(f["path"], bytes(f["data"])) for f in run["files"]] == [("/out/chart.png", chart)]
            page.wait_for_function("() => [...document.querySelectorAll('#preview img')].every(i => i.complete)")
            shown = page.eval_on_selector_all("#preview img", "imgs => imgs.map(i => [i.alt, i.naturalWidth, i.naturalHeight])")
            assert shown == [["/out/chart.png", *struct.unpack(">II", chart[16:24])]]
    finally:
        context.close()
        server.close()


def test_the_ci_and_kubernetes_examples_use_an_example_tested_here():
    """examples/ci and examples/kubernetes build no image of their own: they ship hello-python."""
    script = (EXAMPLES / "ci" / "build-test-push.sh").read_text()
    assert "CONTEXT=${CONTEXT:-examples/hello-python}" in script
    assert "name: hello-python" in (EXAMPLES / "kubernetes" / "job.yaml").read_text()
    # flask-app is also served: under boxer run -p by test_net.py, in the page by test_web_net.py.
    assert {e.name for e in CASES} | {"data-science", "ci", "kubernetes"} == {p.name for p in EXAMPLES.iterdir()}
