"""RUN, pip, the step cache, multi-stage builds and the local image store (issue 4), with
real pip for the guest and real Wasmtime for build-time programs."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

import boxer_py
from test_build import cached_steps

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_py(boxer, image, code):
    return boxer("run", str(image), "python", "-c", code)


@pytest.fixture
def fresh_cache(tmp_path, cache_dir):
    """A cache of its own, so cache hits and misses are this test's alone (compiled modules are
    shared through a hard-linked copy of the session cache's modules)."""
    fresh = tmp_path / "cache"
    if (cache_dir / "modules").is_dir():
        shutil.copytree(cache_dir / "modules", fresh / "modules", copy_function=os.link)
    return fresh


def build_cli(boxer, ctx, *args, cache=None):
    env = {"BOXER_CACHE_DIR": str(cache)} if cache else None
    return boxer("build", *args, str(ctx), env=env)


# --- the example of the issue --------------------------------------------------------------

def test_python_app_example_builds_unmodified_and_runs(boxer, tmp_path):
    out = tmp_path / "app.wasm"
    r = boxer("build", "-t", "python-app", "-o", str(out), str(EXAMPLES / "python-app"))
    assert r.returncode == 0, r.stderr
    assert "RUN pip install --no-cache-dir -r requirements.txt" in r.stderr
    assert "installed into /lib/python3.12/site-packages: attrs-" in r.stderr
    run = boxer("run", str(out))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("app ready: Status(state='ready', python='py3') (six 1.17.0, attrs ")
    # compileall ran in the guest at build time: CPython 3.12 bytecode is in the image
    listing = run_py(boxer, out, "import os; print(os.listdir('/app/__pycache__'))")
    assert "main.cpython-312.pyc" in listing.stdout
    # and the tag is in the local store
    assert boxer("run", "python-app", "python", "-c", "import six; print(six.__version__)").stdout == "1.17.0\n"


# --- RUN -----------------------------------------------------------------------------------

def test_run_python_changes_the_image_and_prints_to_the_build_log(build, boxer, make_context, tmp_path):
    ctx = make_context("FROM python:3.12\nARG GREETING=hi\nWORKDIR /app\n"
                       "RUN python -c \"import os; print('making', os.getcwd(), os.environ['GREETING']); "
                       "open('made.txt', 'w').write(os.environ['GREETING'])\"\n", {}, name="c1")
    r = boxer("build", "--build-arg", "GREETING=hello", "-o", str(tmp_path / "i.wasm"), str(ctx))
    assert r.returncode == 0, r.stderr
    assert "making /app hello" in r.stderr
    assert run_py(boxer, tmp_path / "i.wasm", "print(open('/app/made.txt').read())").stdout == "hello\n"


def test_run_exec_form(build, boxer):
    image = build('FROM python:3.12\nRUN ["python", "-c", "open(\'/exec.txt\', \'w\').write(\'x\')"]\n')
    assert run_py(boxer, image, "print(open('/exec.txt').read())").stdout == "x\n"


def test_deleting_a_file_in_run_removes_it_from_the_image(build, boxer):
    image = build("FROM python:3.12\nCOPY a.txt b.txt /data/\n"
                  "RUN python -c \"import os; os.remove('/data/a.txt')\"\n", {"a.txt": "a", "b.txt": "b"})
    r = run_py(boxer, image, "import os; print(sorted(os.listdir('/data')))")
    assert r.stdout == "['b.txt']\n"
    layers = boxer_py.read_image(image)
    last = tarfile.open(fileobj=io.BytesIO(layers.layer(layers.layers[-1]))).getnames()
    assert "data/.wh.a.txt" in last


def test_failing_run_names_the_line_and_the_last_output(boxer, make_context):
    ctx = make_context("FROM python:3.12\n\nRUN python -c \"import sys; print('bad input'); sys.exit(3)\"\n")
    r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
    assert r.returncode == 1
    assert "Dockerfile:3: RUN returned exit code 3: bad input" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (ctx / "x.wasm").exists()


@pytest.mark.parametrize("command,advice", [
    ("apt-get update && apt-get install -y curl", "install Python packages with pip"),
    ("curl -fsSL https://example.com/x -o /x", "no network"),
    ("gcc -o hello hello.c", "wasm32-wasi"),
    ("npm install", "Node.js"),
])
def test_native_tools_fail_with_the_line_and_what_to_do(boxer, make_context, command, advice):
    ctx = make_context(f"FROM python:3.12\nWORKDIR /app\nRUN {command}\n")
    r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("boxer: ") and "Dockerfile:3: RUN: " in err
    assert command.split()[0] + " cannot run in a WebAssembly build" in err
    assert advice in err and "--skip-unsupported" in err
    assert "Traceback" not in r.stderr
    assert not (ctx / "x.wasm").exists()



def test_build_only_os_packages_are_skipped_with_one_warning_and_the_build_goes_on(boxer, make_context, tmp_path):
    ctx = make_context("FROM python:3.11-slim\n"
                       "RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libpq-dev \\\n"
                       "    && rm -rf /var/lib/apt/lists/*\n"
                       "RUN apk add --no-cache --virtual .build-deps build-base python3-dev && apk del .build-deps\n"
                       "RUN python -c \"open('/after', 'w').write('ok')\"\n")
    r = boxer("build", "--progress=plain", "-o", str(tmp_path / "i.wasm"), str(ctx))
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "WARNING: skipped" in line]
    assert [w.split("WARNING: ")[1] for w in warnings] == [
        "skipped apt-get install gcc, libc6-dev, libpq-dev: only for compiling native code, which a WebAssembly "
        "build never does",
        "skipped apk add build-base, python3-dev: only for compiling native code, which a WebAssembly build never does"]
    assert run_py(boxer, tmp_path / "i.wasm", "print(open('/after').read())").stdout == "ok\n"


def test_a_line_with_a_build_only_and_a_real_package_is_refused_naming_the_real_one(boxer, make_context):
    ctx = make_context("FROM python:3.11-alpine\nRUN apk add --no-cache gcc musl-dev libpq\n")
    r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("boxer: ") and last.endswith(
        "Dockerfile:2: RUN: apk cannot run in a WebAssembly build to install libpq: there are no OS packages "
        "in a WebAssembly image: install Python packages with pip, or COPY files in (or build with "
        "--skip-unsupported to skip such commands)")
    assert not (ctx / "x.wasm").exists()

def test_skip_unsupported_warns_and_goes_on(boxer, make_context, tmp_path):
    ctx = make_context("FROM python:3.12\nRUN apt-get install -y libfoo\n"
                       "RUN python -c \"open('/after', 'w').write('ok')\"\n")
    r = boxer("build", "--skip-unsupported", "-o", str(tmp_path / "i.wasm"), str(ctx))
    assert r.returncode == 0, r.stderr
    assert "WARNING: skipped apt-get" in r.stderr
    assert run_py(boxer, tmp_path / "i.wasm", "print(open('/after').read())").stdout == "ok\n"


def test_a_native_binary_in_the_image_cannot_run(boxer, make_context):
    ctx = make_context("FROM python:3.12\nCOPY tool /usr/bin/tool\nRUN /usr/bin/tool --version\n",
                       {"tool": b"\x7fELF\x02\x01\x01" + b"\0" * 64})
    r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
    assert r.returncode == 1
    assert "Dockerfile:3: RUN returned exit code 126" in r.stderr
    assert "not a WebAssembly program" in r.stderr


def test_run_cannot_reach_the_host_through_symlinks(build, boxer, tmp_path):
    marker = tmp_path / "host-secret"
    marker.write_text("HOST-SECRET")
    depth = "../" * 12
    code = ("import os\n"
            f"for name, target in (('/escape', '/'), ('/up', '{depth}'), ('/host', '{tmp_path}')):\n"
            "    try: os.symlink(target, name)\n"
            "    except OSError: pass\n"
            "found = []\n"
            f"for p in ('/escape{marker}', '/up{marker}', '/host/host-secret', '/../../..{marker}', '{marker}'):\n"
            "    try: found.append(open(p).read())\n"
            "    except OSError: pass\n"
            "    try: open(p, 'w').write('overwritten')\n"
            "    except OSError: pass\n"
            "open('/found.txt', 'w').write(repr(found))\n")
    image = build(f"FROM python:3.12\nRUN [\"python\", \"-c\", {json.dumps(code)}]\n")
    r = run_py(boxer, image, "print(open('/found.txt').read())")
    assert r.stdout == "[]\n"
    assert marker.read_text() == "HOST-SECRET"


# --- pip -----------------------------------------------------------------------------------

def test_pip_forms_install_where_the_guest_finds_them(build, boxer):
    image = build("FROM python:3.12\n"
                  "RUN pip install --upgrade pip\n"
                  "RUN pip3 install --no-cache-dir --user 'six==1.17.0'\n"
                  "RUN python -m pip install -U attrs\n")
    r = run_py(boxer, image, "import six, attr; print(six.__version__, bool(attr.__version__))")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1.17.0 True\n"


def test_venv_target_prefix_and_user_installs_survive_a_copy_to_the_next_stage(build, boxer):
    """The idioms of real Dockerfiles: a venv on PATH, --target, --prefix and --user, each
    installed in a builder stage and copied alone into a fresh final stage."""
    image = build("FROM python:3.12 AS build\n"
                  "WORKDIR /app\n"
                  "RUN python -m venv /opt/venv\n"
                  "ENV PATH=\"/opt/venv/bin:$PATH\"\n"
                  "RUN pip install six==1.17.0 && python3 -B -u -m pip install --target /app/deps attrs==23.1.0\n"
                  "RUN /usr/local/bin/python -m pip install --prefix=/pfx iniconfig==2.0.0\n"
                  "RUN python -m ensurepip && /usr/local/bin/pip3 install --user --no-cache-dir packaging==24.1\n"
                  "FROM python:3.12-slim\n"
                  "COPY --from=build /opt/venv /opt/venv\n"
                  "COPY --from=build /app/deps /app/deps\n"
                  "COPY --from=build /pfx /pfx\n"
                  "COPY --from=build /root/.local /root/.local\n"
                  "ENV PATH=\"/opt/venv/bin:$PATH\" PYTHONPATH=/app/deps:/pfx/lib/python3.12/site-packages\n")
    r = run_py(boxer, image, "import sys, six, attr, iniconfig; "
                             "print(sys.executable, sys.prefix, six.__version__, six.__file__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/opt/venv/bin/python /opt/venv 1.17.0 /opt/venv/lib/python3.12/site-packages/six.py\n"
    # The base interpreter sees the user site but not the venv's packages, as natively.
    r = boxer("run", str(image), "/usr/local/bin/python3.12", "-c", "import packaging; print(packaging.__version__); import six")
    assert r.returncode == 1 and r.stdout == "24.1\n" and "No module named 'six'" in r.stderr


def test_a_guest_python_error_names_the_program_as_native_python_does(hello_image, boxer):
    r = boxer("run", str(hello_image), "python", "-m", "nosuch")
    assert r.returncode == 1
    assert r.stderr == "/usr/local/bin/python: No module named nosuch\n"


@pytest.mark.parametrize("line,message", [
    ("python -m venv --frobnicate /v", "Dockerfile:2: RUN: python -m venv: unknown option --frobnicate"),
    ("pip install --user --target /t six", "Dockerfile:2: RUN: pip install: --user and --target cannot be combined"),
    ("python -m venv /v && /v/bin/python -m pip install --user six",
     "Dockerfile:2: RUN: pip install: --user: user site-packages are not visible in this virtualenv (/v)"),
])
def test_venv_and_pip_destination_refusals(boxer, make_context, line, message):
    ctx = make_context(f"FROM python:3.12\nRUN {line}\n")
    r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_pip_package_with_only_native_wheels_fails_naming_it(boxer, make_context):
    # orjson: native wheels and a Rust sdist, and no runtime has it compiled in (numpy would move
    # the stage to the scientific runtime: tests/test_scientific.py)
    ctx = make_context("FROM python:3.12\nRUN pip install orjson\n")
    r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
    assert r.returncode == 1
    assert "Dockerfile:2: RUN returned exit code 1: pip install: orjson has no pure-Python or WASI wheel" in r.stderr
    assert not (ctx / "x.wasm").exists()


@pytest.mark.parametrize("line,message", [
    ("pip install .", "/app is not a Python project (no pyproject.toml or setup.py)"),  # else built in the sandbox
    ("pip install -e /src", "/src does not exist in the image"),
    ("pip install -r /etc/shadow", "requirements file /etc/shadow not found in the image"),
    ("pip install -r ../../../../etc/hostname", "not found in the image"),
    ("pip install ../../../../tmp/evil.whl", "no such wheel in the image"),
    ("pip uninstall -y six", "only `pip install` runs at build time"),
])
def test_pip_refusals(boxer, make_context, line, message):
    ctx = make_context(f"FROM python:3.12\nWORKDIR /app\nRUN {line}\n")
    r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
    assert r.returncode == 1
    assert "Dockerfile:3: RUN: pip" in r.stderr and message in r.stderr
    assert "Traceback" not in r.stderr


def test_requirements_file_may_include_another(build, boxer):
    image = build("FROM python:3.12\nWORKDIR /app\nCOPY . .\nRUN pip install -r requirements.txt\n",
                  {"requirements.txt": "# base\n-r more/extra.txt\nsix==1.17.0  # pinned\n",
                   "more/extra.txt": "attrs\n"})
    r = run_py(boxer, image, "import six, attr; print('ok')")
    assert r.stdout == "ok\n", r.stderr


def test_env_pythonpath_does_not_hide_what_pip_installed(build, boxer):
    # The 3.12 runtime cannot find a site-packages of its own (its embedded stdlib hides /usr):
    # the build appends it to the PYTHONPATH a Dockerfile sets (3.11 and 3.13: test_runtimes.py).
    image = build("FROM python:3.12\nENV PYTHONPATH=/app\nWORKDIR /app\nCOPY mod.py .\nRUN pip install six\n",
                  {"mod.py": "X = 1\n"})
    r = run_py(boxer, image, "import six, mod, os; print(six.__file__, mod.X, os.environ['PYTHONPATH'])")
    assert r.stdout == "/lib/python3.12/site-packages/six.py 1 /app:/lib/python3.12/site-packages\n", r.stderr


# --- cache -----------------------------------------------------------------------------------

def test_rebuild_after_an_app_change_reruns_only_what_follows(boxer, tmp_path, fresh_cache):
    ctx = tmp_path / "app"
    shutil.copytree(EXAMPLES / "python-app", ctx)
    first = build_cli(boxer, ctx, "-o", str(tmp_path / "a.wasm"), cache=fresh_cache)
    assert first.returncode == 0, first.stderr
    assert "CACHED" not in first.stderr
    (ctx / "main.py").write_text((ctx / "main.py").read_text() + "print('changed')\n")
    second = build_cli(boxer, ctx, "-o", str(tmp_path / "b.wasm"), cache=fresh_cache)
    assert second.returncode == 0, second.stderr
    cached = cached_steps(second.stderr)
    assert any(s.startswith("RUN pip install") for s in cached)
    assert not any(s.startswith("RUN mkdir -p /app/data") for s in cached) and "RUN mkdir -p /app/data" in second.stderr
    assert boxer("run", str(tmp_path / "b.wasm")).stdout.endswith("changed\n")
    third = build_cli(boxer, ctx, "--no-cache", "-o", str(tmp_path / "c.wasm"), cache=fresh_cache)
    assert third.returncode == 0 and "CACHED" not in third.stderr


def test_a_damaged_cache_entry_is_a_miss(boxer, make_context, tmp_path, fresh_cache):
    ctx = make_context("FROM python:3.12\nRUN python -c \"open('/x', 'w').write('1')\"\n")
    assert build_cli(boxer, ctx, "-o", str(tmp_path / "a.wasm"), cache=fresh_cache).returncode == 0
    for entry in (fresh_cache / "steps").glob("*.tar"):
        entry.write_bytes(entry.read_bytes()[:-100])
    r = build_cli(boxer, ctx, "-o", str(tmp_path / "b.wasm"), cache=fresh_cache)
    assert r.returncode == 0 and "CACHED" not in r.stderr
    assert (tmp_path / "a.wasm").read_bytes() == (tmp_path / "b.wasm").read_bytes()


def test_builds_are_reproducible_with_pip_and_run(boxer, tmp_path):
    outs = []
    for n in range(2):
        out = tmp_path / f"{n}.wasm"
        r = build_cli(boxer, EXAMPLES / "python-app", "--no-cache", "-o", str(out), cache=tmp_path / f"c{n}")
        assert r.returncode == 0, r.stderr
        outs.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert outs[0] == outs[1]


# --- stages and the local store ---------------------------------------------------------------

def test_multi_stage_builder_generates_files_the_final_stage_copies(build, boxer):
    image = build("FROM python:3.12 AS builder\nWORKDIR /build\n"
                  "RUN python -c \"import json; json.dump({'squares': [i*i for i in range(5)]}, open('data.json', 'w'))\"\n"
                  "FROM python:3.12\nCOPY --from=builder /build/data.json /app/\n"
                  "CMD [\"python\", \"-c\", \"import json; print(json.load(open('/app/data.json')))\"]\n")
    r = boxer("run", str(image))
    assert r.stdout == "{'squares': [0, 1, 4, 9, 16]}\n"
    assert "/build" not in run_py(boxer, image, "import os; print(os.listdir('/'))").stdout


def test_stage_as_base_and_target(build, boxer, make_context, tmp_path):
    dockerfile = ("FROM python:3.12 AS base\nRUN python -c \"open('/base.txt', 'w').write('base')\"\n"
                  "FROM base AS test\nRUN python -c \"open('/test.txt', 'w').write('test')\"\n"
                  "FROM base\nCMD [\"python\", \"-c\", \"import os; print(sorted(f for f in os.listdir('/') if f.endswith('.txt')))\"]\n")
    assert boxer("run", str(build(dockerfile))).stdout == "['base.txt']\n"
    test_image = build(dockerfile, target="test")
    assert run_py(boxer, test_image, "print(open('/test.txt').read() + open('/base.txt').read())").stdout == "testbase\n"


def test_local_tags_serve_from_copy_from_and_run(boxer, make_context, tmp_path, fresh_cache):
    env = {"BOXER_CACHE_DIR": str(fresh_cache)}
    base = make_context("FROM python:3.12\nWORKDIR /lib\nCOPY util.py .\nENV FROM_BASE=yes\n",
                        {"util.py": "def hello():\n    return 'hello from a local base'\n"}, name="base")
    assert boxer("build", "-t", "mybase:1", str(base), env=env).returncode == 0
    app = make_context("FROM mybase:1\nENV PYTHONPATH=/lib:$PYTHONPATH\n"
                       "CMD [\"python\", \"-c\", \"import os, util; print(util.hello(), os.environ['FROM_BASE'])\"]\n",
                       name="app")
    r = boxer("build", "-t", "app", str(app), env=env)
    assert r.returncode == 0, r.stderr
    assert boxer("run", "app", env=env).stdout == "hello from a local base yes\n"
    assert boxer_py.Session("app", cache_dir=fresh_cache).run().stdout == b"hello from a local base yes\n"
    other = make_context("FROM scratch\nCOPY --from=mybase:1 /lib/util.py /util.py\n", name="other")
    assert boxer("build", "-t", "other", str(other), env=env).returncode == 0
    listing = boxer("images", env=env).stdout
    assert "mybase" in listing and "app" in listing and "other" in listing
    removed = boxer("rmi", "app", env=env).stdout.splitlines()   # as docker rmi prints it
    assert removed[0] == "Untagged: app:latest" and removed[1].startswith("Deleted: sha256:"), removed
    gone = boxer("run", "app", env=env)
    assert gone.returncode != 0 and "no such image file or local image" in gone.stderr
    missing = make_context("FROM nothere:2\n", name="missing")
    r = boxer("build", "-o", str(tmp_path / "m.wasm"), str(missing), env=env)
    assert r.returncode == 1 and "Dockerfile:1: unsupported base image 'nothere:2'" in r.stderr


def test_copy_from_an_image_file_in_the_context(build, boxer, hello_image):
    image = build("FROM python:3.12\nCOPY --from=hello.wasm /app/main.py /from-hello.py\n",
                  {"hello.wasm": hello_image.read_bytes()})
    r = run_py(boxer, image, "print(open('/from-hello.py').read() == open('/from-hello.py').read())")
    assert r.stdout == "True\n"


# --- the shell at build time ---------------------------------------------------------------------

def test_shell_utilities_act_on_the_image_never_the_host(build, boxer, tmp_path):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    marker = host_dir / "marker"
    marker.write_text("HOST")
    image = build(
        "FROM python:3.12\n"
        "RUN mkdir -p /etc && echo guest-passwd > /etc/passwd && ln -s / /escape \\\n"
        "    && cp /escape/etc/passwd /copied \\\n"
        f"    && (cp /escape{marker} /m 2>/dev/null || echo none > /m) \\\n"
        f"    && rm -rf /escape{host_dir} /../../..{host_dir} \\\n"
        f"    && echo pwned > /../../..{marker} 2>/dev/null; true\n")
    assert marker.read_text() == "HOST"
    r = run_py(boxer, image, "print(open('/copied').read().strip(), open('/m').read().strip())")
    assert r.stdout == "guest-passwd none\n"


def test_users_and_owners_are_recorded(build, boxer):
    image = build("FROM python:3.12\nRUN groupadd -r app && useradd -r -g app -d /app -m app \\\n"
                  "    && mkdir -p /app/data && echo ready > /app/data/status && chown -R app:app /app\n"
                  "USER app\nWORKDIR /app\n")
    img = boxer_py.read_image(image)
    layer = tarfile.open(fileobj=io.BytesIO(img.layer(img.layers[-2])))
    owners = {m.name: (m.uid, m.gid) for m in layer.getmembers()}
    passwd = layer.extractfile("etc/passwd").read().decode()
    uid = int(next(line for line in passwd.splitlines() if line.startswith("app:")).split(":")[2])
    assert owners["app/data/status"][0] == uid != 0
    assert img.spec.config.user == "app"
    assert run_py(boxer, image, "print(open('data/status').read().strip())").stdout == "ready\n"


def test_run_flags_cache_mount_accepted_others_refused(build, boxer, make_context):
    image = build("FROM python:3.12\nRUN --mount=type=cache,target=/root/.cache/pip --network=none \\\n"
                  "    pip install six\n")
    assert run_py(boxer, image, "import six; print('ok')").stdout == "ok\n"
    for n, (flags, message) in enumerate([
        ("--mount=type=ssh", "RUN --mount=type=ssh: a build has no network"),
        ("--mount=type=bind,target=/src,bogus=1", "RUN --mount=type=bind: unknown option 'bogus'"),
        ("--network=host", "RUN --network=host: a build has no network"),
        ("--privileged", "unknown flag --privileged"),
    ]):
        ctx = make_context(f"FROM python:3.12\nRUN {flags} echo hi\n", name=f"flags{n}")
        r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
        assert r.returncode == 1 and "Dockerfile:2: " in r.stderr and message in r.stderr, r.stderr


def test_files_a_run_under_user_makes_belong_to_that_user(build):
    image = build("FROM python:3.12\nRUN useradd -u 1234 -m app\nUSER app\nWORKDIR /home/app\n"
                  "RUN python -c \"open('/home/app/mine.txt', 'w').write('x')\"\n")
    img = boxer_py.read_image(image)
    layer = tarfile.open(fileobj=io.BytesIO(img.layer(img.layers[-1])))
    assert layer.getmember("home/app/mine.txt").uid == 1234


def test_exec_form_reaches_the_shell_utilities_without_expansion(build, boxer):
    image = build('FROM python:3.12\nENV X=expanded\nRUN ["mkdir", "-p", "/made/$X"]\n'
                  'RUN ["sh", "-c", "echo $X > /made/sh.txt"]\n')
    r = run_py(boxer, image, "import os; print(os.listdir('/made'), open('/made/sh.txt').read().strip())")
    assert r.stdout == "['$X', 'sh.txt'] expanded\n" or r.stdout == "['sh.txt', '$X'] expanded\n"


def test_run_here_documents(build, boxer, make_context):
    image = build("FROM python:3.12\n"
                  "RUN <<EOF\nset -e\n# not an instruction\nmkdir -p /app\necho hi > /app/x\nEOF\n"
                  "RUN --network=none python - <<PY\nopen('/app/py', 'w').write('from stdin')\nPY\n"
                  "WORKDIR /app\n")
    r = run_py(boxer, image, "import os; print(sorted(os.listdir('.')), open('x').read().strip(), open('py').read())")
    assert r.stdout == "['py', 'x'] hi from stdin\n", r.stderr
    for n, (text, message) in enumerate([
        ("RUN <<EOF\necho never closed\n", "Dockerfile:2: RUN: here-document is not closed by a line 'EOF'"),
        ("COPY <<EOT /x\nhi\nEOT\n", "Dockerfile:2: COPY with a here-document is not supported"),
    ]):
        ctx = make_context("FROM python:3.12\n" + text, name=f"heredoc{n}")
        r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
