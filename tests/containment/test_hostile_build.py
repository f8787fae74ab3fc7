"""A hostile build context and Dockerfile against the build host (issue 15 items 1, 2, 12, 14).

Rule under test: no code from the build context, the image or a package index ever runs on the
build host, and no host file or host environment variable reaches the build. Every spelling
that would make the host's pip build a local project, read a host file or expand a host
variable is refused with the file and line; the projects here have a build backend (and a
setup.py) that would write a marker file on the host if anything ran them.
Also: a build cannot be made to take unbounded time or memory (.dockerignore patterns,
doubling ENV), to block (a FIFO in the context) or to crash (a deep WORKDIR).
"""
from __future__ import annotations

import io
import os
import socket
import stat
import tarfile
import threading
from pathlib import Path

import pytest
from hostile_world import SECRET, SECRET_ENV, cli_measured

import boxer_py
from boxer_py.errors import BoxerError
from boxer_py.image.rootfs import unpack
from pyindex import Index, wheel

# --- a project whose build would run code on the host ----------------------------------------------


def evil_files(marker: Path) -> dict[str, str | bytes]:
    """A local project (in-tree PEP 517 backend and setup.py) and its sdist in dist/: building
    either, or even importing its backend, writes `marker` on the build host."""
    payload = f"open({str(marker)!r}, 'a').write('ran on the build host\\n')\n"
    sdist = io.BytesIO()
    with tarfile.open(fileobj=sdist, mode="w:gz") as tar:
        for name, text in {"evil-1.0/setup.py": payload + "from setuptools import setup\nsetup(name='evil')\n",
                           "evil-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return {
        "evil/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
                               '[project]\nname = "evil"\nversion = "1.0"\n',
        "evil/backend.py": payload,
        "evil/setup.py": payload,
        "dist/evil-1.0.tar.gz": sdist.getvalue(),
    }


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "host-marker.txt"


@pytest.fixture
def hostile_context(tmp_path, marker):
    """Write a context with the evil project beside a Dockerfile and extra files."""

    def make(dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
        ctx = tmp_path / f"ctx-{len(list(tmp_path.glob('ctx-*')))}"
        for rel, content in {**evil_files(marker), "Dockerfile": dockerfile, **(files or {})}.items():
            p = ctx / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return ctx

    return make


def build_error(ctx: Path, tmp_path: Path, cache_dir: Path, **options) -> str:
    """Build with the library, expecting a refusal; returns its one-line message."""
    out = tmp_path / "refused.wasm"
    with pytest.raises(BoxerError) as e:
        boxer_py.build(ctx, out, cache_dir=cache_dir, **options)
    message = str(e.value)
    assert "\n" not in message and message, message
    assert not out.exists()
    return message


PIP_DOCKERFILE = "FROM python:3.12\nWORKDIR /app\nCOPY . .\nRUN {run}\n"

# Requirements-file lines: each would have the host's pip build ./evil (running its backend or
# setup.py on the host), read packages from a host or context directory, or pass build options.
HOSTILE_LINES = [
    "--editable=./evil", "--editable ./evil", "-e./evil", "-e ./evil", "-e/app/evil", "./evil", "evil/",
    "/app/evil", ".", "file:./evil", "file:///app/evil", "evil @ file:///app/evil", "evil@file:///app/evil",
    "git+file:///app/evil", "evil @ git+file:///app/evil#egg=evil", "https://127.0.0.1:1/evil-1.0.tar.gz",
    "--find-links=./dist\nevil", "--find-links ./dist\nevil", "-f ./dist\nevil", "-f./dist\nevil",
    "-f/app/dist\nevil", "--find-links=file:///app/dist\nevil", "--no-binary=:all:\nevil",
    "--no-binary :all:\nevil", "six --config-settings=editable_mode=compat", "six --global-option=build_ext",
    "six --install-option=--prefix=/x", "-C key=value\nsix", "--index-url=file:///app/dist\nevil",
    "-i file:///app/dist\nevil", "--extra-index-url file:///app/dist\nevil", "--src /tmp\nsix",
    "--use-feature=truststore\nsix", "--cert /etc/ssl/certs/ca-certificates.crt\nsix",
    "--target=/tmp/escape\nsix", "--prefix /tmp/escape\nsix", "--editable=git+file:///app/evil#egg=evil",
    # the context's path on the build host, as a targeted attack would write it
    "--editable={ctx}/evil", "-e{ctx}/evil", "{ctx}/evil", "evil @ file://{ctx}/evil", "--find-links={ctx}/dist\nevil",
    "-f{ctx}/dist\nevil",
]


@pytest.mark.parametrize("line", HOSTILE_LINES)
def test_requirements_file_lines_that_would_run_or_read_on_the_host_are_refused(
        hostile_context, tmp_path, cache_dir, marker, line):
    lines = line.split("\n")
    text = "# pinned\nsix==1.17.0\n" + "\n".join(lines) + "\n"
    ctx = hostile_context(PIP_DOCKERFILE.format(run="pip install -r requirements.txt"))
    (ctx / "requirements.txt").write_text(text.replace("{ctx}", str(ctx)))
    with pytest.raises(BoxerError) as e:
        boxer_py.build(ctx, tmp_path / "refused.wasm", cache_dir=cache_dir)
    assert not marker.exists(), marker.read_text()
    assert "Dockerfile:4: RUN: pip install: /app/requirements.txt:3: " in str(e.value), e.value


HOSTILE_ARGS = [
    "-e ./evil", "--editable=./evil", "--editable ./evil", "-e./evil", "./evil", "/app/evil", ".", "evil/",
    "file:///app/evil", "'evil @ file:///app/evil'", "git+file:///app/evil#egg=evil",
    "--find-links=./dist evil", "-f ./dist evil", "-f./dist evil", "--no-binary=:all: six",
    "--config-settings=x=y six", "--global-option=x six", "--index-url=file:///app/dist evil",
    "--src=/tmp six", "dist/evil-1.0.tar.gz",
]


@pytest.mark.parametrize("args", HOSTILE_ARGS)
def test_pip_arguments_that_would_run_or_read_on_the_host_are_refused(
        hostile_context, tmp_path, cache_dir, marker, args):
    ctx = hostile_context(PIP_DOCKERFILE.format(run=f"pip install {args}"))
    message = build_error(ctx, tmp_path, cache_dir)
    assert "Dockerfile:4: RUN: pip install: " in message, message
    assert not marker.exists()


def test_pip_destinations_and_venvs_through_image_links_stay_in_the_image(tmp_path, cache_dir):
    """--target, --prefix, --user and `python -m venv` name guest paths: a link the image made
    to a host directory is followed inside the rootfs, never on the host."""
    host = tmp_path / "host-dir"
    run = (f"ln -s {host} /app/t && ln -s {host} /app/p && ln -s {host} /root/.local && ln -s {host} /app/v && "
           "pip install --target /app/t six==1.17.0 && pip install --prefix /app/p six==1.17.0 && "
           "pip install --user six==1.17.0 && python -m venv /app/v/venv")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(PIP_DOCKERFILE.format(run=run))
    out = tmp_path / "image.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir)
    assert not host.exists()
    rootfs = tmp_path / "rootfs"
    unpack(boxer_py.read_image(out), rootfs)
    inside = rootfs / str(host).lstrip("/")
    assert (inside / "six.py").is_file()
    assert (inside / "lib/python3.12/site-packages/six.py").is_file()
    assert (inside / "venv/pyvenv.cfg").is_file()


def test_copy_into_the_root_takes_the_contexts_files_and_leaves_the_hosts_alone(tmp_path, cache_dir):
    """`COPY . /` of a context holding etc/hostname: the image gets the context's file, the
    host's /etc is neither read nor touched, and the layer holds only what was copied."""
    ctx = tmp_path / "ctx"
    (ctx / "etc").mkdir(parents=True)
    (ctx / "etc" / "hostname").write_text("from the context\n")
    (ctx / "Dockerfile").write_text("FROM python:3.12\nCOPY . /\n")
    before = os.stat("/etc").st_mtime_ns, os.stat("/etc/hostname").st_mtime_ns
    out = tmp_path / "image.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir)
    assert (os.stat("/etc").st_mtime_ns, os.stat("/etc/hostname").st_mtime_ns) == before
    image = boxer_py.read_image(out)
    with tarfile.open(fileobj=io.BytesIO(image.layer(image.layers[-1]))) as tar:
        names = sorted(m.name for m in tar)
        assert tar.extractfile("etc/hostname").read() == b"from the context\n"  # type: ignore[union-attr]
    assert names == ["Dockerfile", "etc", "etc/hostname"]


def test_constraints_and_nested_files_go_through_the_same_allow_list(hostile_context, tmp_path, cache_dir, marker):
    for run, files, where in [
        ("pip install -c constraints.txt six", {"constraints.txt": "six<2\nevil @ file:///app/evil\n"},
         "/app/constraints.txt:2: "),
        ("pip install --constraint=constraints.txt six", {"constraints.txt": "--editable=./evil\n"},
         "/app/constraints.txt:1: "),
        ("pip install -r requirements.txt", {"requirements.txt": "six\n-c more/c.txt\n", "more/c.txt": "-e ../evil\n"},
         "/app/more/c.txt:1: "),
        ("pip install -r requirements.txt", {"requirements.txt": "-r more/r.txt\n", "more/r.txt": "\n\n-e./evil\n"},
         "/app/more/r.txt:3: "),
    ]:
        ctx = hostile_context(PIP_DOCKERFILE.format(run=run), files)
        message = build_error(ctx, tmp_path, cache_dir)
        assert "Dockerfile:4: RUN: pip install: " + where in message, message
    assert not marker.exists()


def test_requirements_naming_host_files_never_read_them(hostile_context, tmp_path, cache_dir):
    """`-r` always means a file of the image being built: a host path, `..` out of the rootfs or a
    symlink to a host file finds nothing, and no line of the host file shows."""
    host_file = tmp_path / "host-requirements.txt"
    host_file.write_text(f"{SECRET}==1.0\n")
    cases = [
        (f"pip install -r {host_file}", {}, f"requirements file {host_file} not found in the image"),
        (f"pip install -r{host_file}", {}, "not found in the image"),
        (f"pip install --requirement={host_file}", {}, "not found in the image"),
        ("pip install -r ../../../../../../../../" + str(host_file), {}, "not found in the image"),
        ("pip install -c /etc/hostname six", {}, "constraints file /etc/hostname not found in the image"),
        ("pip install -r requirements.txt", {"requirements.txt": f"-r {host_file}\n"},
         f"/app/requirements.txt:1: requirements file {host_file} not found in the image"),
        ("pip install -r requirements.txt", {"requirements.txt": "-r/etc/hostname\n"},
         "/app/requirements.txt:1: requirements file /etc/hostname not found in the image"),
        ("pip install -r links/req.txt", {}, "links/req.txt not found in the image"),
    ]
    for run, files, needle in cases:
        ctx = hostile_context(PIP_DOCKERFILE.format(run=run), files)
        (ctx / "links").mkdir(exist_ok=True)
        if not (ctx / "links/req.txt").is_symlink():
            (ctx / "links/req.txt").symlink_to(host_file)
        message = build_error(ctx, tmp_path, cache_dir)
        assert needle in message and SECRET not in message, message


def test_refusal_is_one_line_with_a_non_zero_exit(boxer, hostile_context, marker, tmp_path):
    ctx = hostile_context(PIP_DOCKERFILE.format(run="pip install -r requirements.txt"),
                          {"requirements.txt": "six\n--editable=./evil\n"})
    r = boxer("build", "-q", "-o", str(tmp_path / "x.wasm"), str(ctx))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    # a local project is built in the sandbox, never on the host: there, the backend's write fails
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"boxer: {ctx}/Dockerfile:4: RUN: pip install: /app/requirements.txt:2: ./evil: building it from source "
        "in the sandbox failed: "), lines
    assert not (tmp_path / "x.wasm").exists() and not marker.exists()


# --- a package index on 127.0.0.1 ------------------------------------------------------------------


@pytest.fixture
def index(tmp_path):
    sdist = evil_files(tmp_path / "index-marker.txt")["dist/evil-1.0.tar.gz"]
    served = Index({
        "tinypkg-1.0-py3-none-any.whl": wheel("tinypkg", "1.0", ('depa ; python_version >= "3.12"',
                                                                   'depwin ; sys_platform == "win32"',
                                                                   'deplinux ; sys_platform == "linux"')),
        "depa-1.0-py3-none-any.whl": wheel("depa", "1.0"),
        "depwin-1.0-py3-none-any.whl": wheel("depwin", "1.0"),
        "deplinux-1.0-py3-none-any.whl": wheel("deplinux", "1.0"),
        "needsevil-1.0-py3-none-any.whl": wheel("needsevil", "1.0", ("evil",)),
        "evil-1.0.tar.gz": sdist,
    })
    yield served
    served.close()


@pytest.fixture
def canary():
    """An index that nothing may ask: the host's pip configuration points at it."""
    served = Index({"tinypkg-9.9-py3-none-any.whl": wheel("tinypkg", "9.9")})
    yield served
    served.close()


def site_packages(image: Path, tmp_path: Path) -> list[str]:
    root = tmp_path / "rootfs"
    unpack(boxer_py.read_image(image), root)
    return sorted(p.name for p in (root / "lib/python3.12/site-packages").iterdir())


def test_host_secret_is_never_expanded_and_host_pip_config_is_never_used(
        hostile_context, tmp_path, cache_dir, index, canary, monkeypatch):
    """`${VAR}` in a requirements file expands from the image's environment (as pip in the
    container would), never the build host's; the host's PIP_* variables and pip.conf are not
    read. A real index on 127.0.0.1 logs what the host's pip asked for."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = tmp_path / "host-pip.conf"
    config.write_text(f"[global]\nindex-url = {canary.url}/conf/simple/\nfind-links = {tmp_path}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{canary.url}/env/simple/")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setenv("PIP_NO_BINARY", ":all:")
    home = tmp_path / "home"
    (home / ".config/pip").mkdir(parents=True)
    (home / ".config/pip/pip.conf").write_text(f"[global]\nextra-index-url = {canary.url}/home/simple/\n")
    monkeypatch.setenv("HOME", str(home))
    requirements = (f"--index-url {index.url}/${{{SECRET_ENV}}}/simple/\n"
                    f"--extra-index-url {index.url}/${{GUEST_TOKEN}}/simple/\n"
                    "tinypkg==1.0\n")
    ctx = hostile_context("FROM python:3.12\nENV GUEST_TOKEN=guest-token-42\nWORKDIR /app\nCOPY . .\n"
                          "RUN pip install -r requirements.txt\n", {"requirements.txt": requirements})
    out = tmp_path / "ok.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir)
    assert index.requests, "the host's pip never asked the Dockerfile's index"
    assert not any(SECRET in r for r in index.requests + canary.requests)
    assert any(f"${{{SECRET_ENV}}}" in r or "%7B" in r for r in index.requests), index.requests
    assert any("/guest-token-42/simple/" in r for r in index.requests), index.requests
    assert canary.requests == []
    assert "tinypkg.py" in site_packages(out, tmp_path)


def test_markers_are_evaluated_for_the_guest_python_on_wasi(hostile_context, tmp_path, cache_dir, index):
    """The build host runs Python 3.11 on Linux; the guest is CPython 3.12 on WASI/wasm32: a line
    for >= 3.12 installs, one for Linux does not, and so for the dependencies of a package."""
    requirements = ('tinypkg ; python_version >= "3.12"\n'
                    'deplinux ; sys_platform == "linux"\n'
                    'depwin ; platform_machine == "x86_64"\n')
    ctx = hostile_context(PIP_DOCKERFILE.format(run=f"pip install --index-url {index.url}/simple/ "
                                                    "-r requirements.txt"), {"requirements.txt": requirements})
    out = tmp_path / "ok.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir)
    installed = site_packages(out, tmp_path)
    assert "tinypkg.py" in installed and "depa.py" in installed
    assert "deplinux.py" not in installed and "depwin.py" not in installed
    assert not any("/deplinux/" in r or "/depwin/" in r for r in index.requests), index.requests


def test_a_requirements_file_that_installs_nothing_is_an_error(hostile_context, tmp_path, cache_dir, index):
    for files, needle in [
        ({"requirements.txt": 'tinypkg ; python_version < "3.0"\ndepa ; sys_platform == "linux"\n'},
         "nothing to install: no requirement applies to the image's Python 3.12 on WASI"),
        ({"requirements.txt": "# nothing here\n\n"}, "/app/requirements.txt: the requirements file names no package"),
    ]:
        ctx = hostile_context(PIP_DOCKERFILE.format(run=f"pip install -i {index.url}/simple/ -r requirements.txt"),
                              files)
        assert needle in build_error(ctx, tmp_path, cache_dir)
    assert index.requests == []


def test_an_index_that_offers_only_source_never_runs_it_on_the_host(hostile_context, tmp_path, cache_dir, index,
                                                                    marker):
    """An index serving an sdist (directly, or as a dependency of a wheel): the host's pip takes
    wheels only, so the sdist's setup.py never runs; the build fails naming the package."""
    index_marker = tmp_path / "index-marker.txt"
    for run in (f"pip install --index-url={index.url}/simple/ evil",
                f"pip install --index-url={index.url}/simple/ needsevil"):
        ctx = hostile_context(PIP_DOCKERFILE.format(run=run))
        message = build_error(ctx, tmp_path, cache_dir)
        assert "Dockerfile:4: RUN returned exit code 1: pip install: evil has no pure-Python or WASI wheel" in message
    assert any("/simple/evil/" in r for r in index.requests)
    assert not index_marker.exists() and not marker.exists()


def test_a_wheel_file_of_the_image_installs_without_an_index(hostile_context, tmp_path, cache_dir):
    """What the refusals point to: COPY a .whl in and install that file (on the command line or
    in a requirements file, relative to the RUN's directory, as pip does)."""
    files = {"wheels/depa-1.0-py3-none-any.whl": wheel("depa", "1.0"),
             "wheels/deplinux-1.0-py3-none-any.whl": wheel("deplinux", "1.0"),
             "requirements.txt": "wheels/deplinux-1.0-py3-none-any.whl\n"}
    ctx = hostile_context("FROM python:3.12\nWORKDIR /app\nCOPY . .\n"
                          "RUN pip install --no-index ./wheels/depa-1.0-py3-none-any.whl\n"
                          "RUN pip install --no-index -r requirements.txt\n", files)
    boxer_py.build(ctx, tmp_path / "ok.wasm", cache_dir=cache_dir)
    installed = site_packages(tmp_path / "ok.wasm", tmp_path)
    assert "depa.py" in installed and "deplinux.py" in installed


def test_the_host_pip_runs_in_a_clean_directory(hostile_context, tmp_path, cache_dir, index, monkeypatch):
    """A pip.py, sitecustomize.py or pip.conf in the directory boxer is started from is not
    imported or read by the host's pip."""
    start = tmp_path / "start"
    start.mkdir()
    planted = tmp_path / "planted-ran.txt"
    for name in ("pip.py", "sitecustomize.py", "usercustomize.py"):
        (start / name).write_text(f"open({str(planted)!r}, 'w').write('ran')\n")
    (start / "pip.conf").write_text("[global]\nindex-url = http://127.0.0.1:1/\n")
    monkeypatch.chdir(start)
    monkeypatch.setenv("PYTHONPATH", str(start))
    ctx = hostile_context(PIP_DOCKERFILE.format(run=f"pip install -i {index.url}/simple/ depa"))
    boxer_py.build(ctx, tmp_path / "ok.wasm", cache_dir=cache_dir)
    assert not planted.exists()


# --- a build that cannot be made to hang, blow up or crash ---------------------------------------------


HANG_GUARD = 120  # seconds: a build that has not ended by then never will (not a speed check: that is make bench)


def one_line_failure(r) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("boxer: "), r.stderr[-2000:]
    return lines[0]


def test_dockerignore_patterns_match_in_linear_time(cache_dir, make_context, tmp_path):
    """12 and 40 `**/` in a row (407 s per path with a backtracking regex) and a segment of many
    `*`: the build of a context with deep paths ends, and matches as Docker would. Matching is
    an NFA over the path, so its work is (pattern x path) characters; with a backtracking regex
    the 40 `**/` never end and the hang guard fails the test."""
    deep = "/".join(["a"] * 60)
    ignore = "**/" * 12 + "x\n" + "**/" * 40 + "y.txt\n" + "*a" * 30 + "b\n" + "**/" * 20 + "*[0-9].log\n"
    ctx = make_context("FROM scratch\nCOPY . /ctx/\n", {
        ".dockerignore": ignore, f"{deep}/x/kept-under-x": "gone", f"{deep}/y.txt": "gone",
        f"{deep}/z.txt": "kept", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac": "kept",
        f"{deep}/run1.log": "gone", f"{deep}/run.log": "kept"})
    r = cli_measured(cache_dir, ["build", "-q", "-o", str(tmp_path / "i.wasm"), str(ctx)], timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    root = tmp_path / "root"
    unpack(boxer_py.read_image(tmp_path / "i.wasm"), root)
    kept = sorted(str(p.relative_to(root / "ctx")) for p in (root / "ctx").rglob("*") if p.is_file())
    assert kept == [".dockerignore", "Dockerfile", f"{deep}/run.log", f"{deep}/z.txt",
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac"]


@pytest.mark.parametrize("dockerfile,line,needle", [
    ("FROM scratch\nENV A=0123456789abcdef\n" + "ENV A=$A$A\n" * 26, 18,
     "a variable expands to more than 1048576 characters (does a value refer to itself, as in ENV A=$A$A?)"),
    ("FROM scratch\nARG A=0123456789abcdef\n" + "ARG A=${A}${A}\n" * 26 + "RUN true\n", 18,
     "a variable expands to more than 1048576 characters"),
    ("FROM scratch\nENV A=" + "x" * 4096 + "\nENV B=" + "$A" * 2000 + "\n", 3,
     "a variable expands to more than 1048576 characters"),
    ("FROM scratch\nENV A=" + "x" * 4096 + "\nENV A=$A$A$A$A$A$A$A$A\nENV A=$A$A$A$A$A$A$A$A\n"
     + "".join("LABEL " + " ".join(f"l{n}_{k}=$A" for k in range(10)) + "\n" for n in range(20)), 17,
     "variable expansions add up to more than 33554432 characters"),
    ("FROM scratch\nENV A=" + "x" * 4096 + "\nENV A=$A$A$A$A$A$A$A$A\nENV A=$A$A$A$A$A$A$A$A\n"
     + "".join(f"ENV E{n}=$A\n" for n in range(20)), 19, "the environment (ENV and ARG) is larger than 4194304"),
])
def test_variable_expansion_is_bounded_with_the_line(cache_dir, make_context, tmp_path, dockerfile, line, needle):
    """`ENV A=$A$A` 26 times took 13.7 GB: each expansion, all of them together and the
    environment are bounded, the error names the line and the limit, and the build's own peak
    RSS stays far below what the expansion would take (its address space is capped at 4 GiB, so
    a missing bound fails here instead of taking the machine's memory)."""
    ctx = make_context(dockerfile)
    r = cli_measured(cache_dir, ["build", "-q", "-o", str(tmp_path / "x.wasm"), str(ctx)], timeout=HANG_GUARD,
                     address_space=4 << 30)
    message = one_line_failure(r)
    assert f"Dockerfile:{line}: {needle}" in message, message
    assert r.rss_kib < 1500 << 10, f"peak RSS {r.rss_kib >> 10} MiB"
    assert not (tmp_path / "x.wasm").exists()


class FifoWatch:
    """A writer waiting to open the FIFO, as a process feeding it would: whoever opens it for
    reading releases the writer, which writes WRITTEN and closes. `opened()` then opens it for
    reading itself, and reads WRITTEN only if nobody opened it before."""

    WRITTEN = b"for the first reader\n"

    def __init__(self, path: Path):
        self.path = path
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.write(fd, self.WRITTEN)
        except OSError:  # the first reader left before this write
            pass
        finally:
            os.close(fd)

    def opened(self) -> bool:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # releases the writer if nobody did
        try:
            self.thread.join()
            return os.read(fd, 4096) != self.WRITTEN
        finally:
            os.close(fd)


def _special_files(ctx: Path) -> tuple[dict[str, Path], socket.socket]:
    """A FIFO, a listening Unix socket and (as root) /dev/zero's device, inside the context; and
    the socket."""
    made = {"FIFO": ctx / "data" / "pipe"}
    made["FIFO"].parent.mkdir(exist_ok=True)
    os.mkfifo(made["FIFO"])
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ctx / "sock"))
    sock.listen(1)
    made["socket"] = ctx / "sock"
    try:
        os.mknod(ctx / "zero", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
        made["device"] = ctx / "zero"
    except PermissionError:
        pass
    return made, sock


@pytest.mark.parametrize("instruction", ["COPY . /ctx/", "ADD . /ctx/", "COPY data /data/", "ADD data/pipe /x",
                                         "COPY data/pipe /x", "COPY sock /x", "COPY zero /x", "ADD zero /x",
                                         "COPY dat? /x/", "COPY link-to-pipe /x"])
def test_a_fifo_socket_or_device_in_the_context_is_refused_unopened(cache_dir, make_context, tmp_path, instruction):
    """Refused by its kind, with the line: the FIFO is never opened (a writer waiting on it is
    never released), the socket never connected to; reading either, or the device (/dev/zero),
    would block or never end, and the hang guard fails the test."""
    ctx = make_context(f"FROM scratch\n{instruction}\n", {"ok.txt": "ok"})
    made, sock = _special_files(ctx)
    if "zero" in instruction and "device" not in made:
        pytest.skip("mknod needs root")
    (ctx / "link-to-pipe").symlink_to("data/pipe")
    fifo = FifoWatch(made["FIFO"])
    with sock:
        r = cli_measured(cache_dir, ["build", "-q", "-o", str(tmp_path / "x.wasm"), str(ctx)], timeout=HANG_GUARD,
                         address_space=4 << 30)
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.accept()  # nothing connected to it
    assert not fifo.opened(), "the build opened the FIFO"
    message = one_line_failure(r)
    assert "Dockerfile:2: " in message and ("is a FIFO" in message or "is a socket" in message
                                            or "is a device" in message), message
    assert not (tmp_path / "x.wasm").exists()


def test_a_deep_workdir_is_a_one_line_error(boxer, make_context, tmp_path):
    """A 3000-deep WORKDIR crashed the build; so could 3000 relative WORKDIR lines or a deep
    COPY destination."""
    for n, (dockerfile, line) in enumerate([("FROM python:3.12\nWORKDIR /" + "a/" * 3000 + "\n", 2),
                             ("FROM scratch\n" + "WORKDIR d\n" * 3000, 130),
                             ("FROM scratch\nCOPY ok.txt /" + "d/" * 3000 + "\n", 2)]):
        ctx = make_context(dockerfile, {"ok.txt": "ok"}, name=f"deep{n}")
        message = one_line_failure(boxer("build", "-q", "-o", str(tmp_path / "x.wasm"), str(ctx), timeout=120))
        assert f"Dockerfile:{line}: " in message and "the path is too long" in message, message
        assert not (tmp_path / "x.wasm").exists()
