"""Packages whose C code is optional, sdist-only projects and local projects install in their
pure-Python form: their source is built into a wheel inside the sandbox (the image's CPython
under Wasmtime, no compiler), never on the build host (issue 16 item 3). Real pip, the real
package index, real Wasmtime; a local index on 127.0.0.1 for what fails."""
from __future__ import annotations

import re

import pytest

import boxer_py
from boxer_py.errors import BoxerError
from pyindex import Index, download_setuptools, sdist, wheel


def run_py(boxer, image, code):
    r = boxer("run", str(image), "python", "-c", code)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def build_logged(make_context, tmp_path, cache_dir, dockerfile, files=None, name="ctx"):
    """Build with the library; (image path, build log lines)."""
    ctx = make_context(dockerfile, files, name=name)
    out = tmp_path / f"{name}.wasm"
    log: list[str] = []
    boxer_py.build(ctx, out, cache_dir=cache_dir, progress=log.append)
    return out, log


# Each runtime: 3.11.2's tarfile predates extraction filters, 3.11 and 3.13 have no chmod (ENOSYS),
# 3.9 has no tomllib (the guest reads pyproject.toml with tomli, which the host installs for it).
@pytest.mark.parametrize("python", ["3.12", "3.11", "3.13", "3.9"])
def test_a_flask_app_gets_markupsafe_in_its_pure_python_form(make_context, tmp_path, cache_dir, boxer, python):
    image, log = build_logged(make_context, tmp_path, cache_dir,
                              f"FROM python:{python}\nWORKDIR /app\nCOPY requirements.txt .\n"
                              "RUN pip install --no-cache-dir -r requirements.txt\n",
                              {"requirements.txt": "flask\n"})
    text = "\n".join(log)
    assert re.search(r"building markupsafe \S+ from source in the sandbox \(pure Python: no compiler in "
                     r"WebAssembly\)", text, re.IGNORECASE), text
    assert re.search(r"built markupsafe-\S+-py3-none-any\.whl in the sandbox in [0-9.]+s", text), text
    assert ".boxer-sdist-" not in text.split("installed into")[-1]
    out = run_py(boxer, image, "import importlib.util, markupsafe, flask\n"
                               "print(importlib.util.find_spec('markupsafe._speedups'))\n"
                               "print(markupsafe.escape('<a href=\"x\">'))\n"
                               "app = flask.Flask('t')\n"
                               "app.route('/')(lambda: flask.render_template_string('{{ x }}', x='<b>'))\n"
                               "print(app.test_client().get('/').data.decode())\n")
    assert out.splitlines() == ["None", "&lt;a href=&#34;x&#34;&gt;", "&lt;b&gt;"], out
    # nothing of the build is left in the image
    root = tmp_path / "rootfs"
    from boxer_py.image.rootfs import unpack
    unpack(boxer_py.read_image(image), root)
    assert not list(root.glob(".boxer-*")), list(root.glob(".boxer-*"))


def test_pyyaml_and_an_sdist_only_package_build_in_the_sandbox(make_context, tmp_path, cache_dir, boxer):
    """PyYAML 6.0.2 (C extension optional, no wheel for WASI) and docopt 0.6.2 (only an sdist)."""
    image, log = build_logged(make_context, tmp_path, cache_dir,
                              "FROM python:3.12\nRUN pip install PyYAML==6.0.2 docopt==0.6.2\n")
    text = "\n".join(log)
    assert re.search(r"building pyyaml 6\.0\.2 from source in the sandbox", text, re.IGNORECASE), text
    assert re.search(r"building docopt 0\.6\.2 from source in the sandbox", text, re.IGNORECASE), text
    out = run_py(boxer, image, "import yaml, docopt\n"
                               "print(yaml.safe_load('a: [1, 2]\\nb: {c: true}'))\n"
                               "print(yaml.__with_libyaml__)\n"
                               "print(docopt.docopt('Usage: p <x>', argv=['7']))\n")
    assert out.splitlines() == ["{'a': [1, 2], 'b': {'c': True}}", "False", "{'<x>': '7'}"], out


LOCAL_PROJECTS = {
    # a pyproject.toml project with a dependency from the index, installed with -e
    "app/pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
                          '[project]\nname = "localapp"\nversion = "1.2"\ndependencies = ["six==1.17.0"]\n'
                          '[tool.setuptools]\npackages = ["localapp"]\n',
    "app/localapp/__init__.py": "import six\nGREETING = 'hello from localapp ' + six.__version__\n",
    # a setup.py-only project, installed with `python setup.py install`
    "legacy/setup.py": "from setuptools import setup\nsetup(name='legacy', version='0.1', py_modules=['legacy'])\n",
    "legacy/legacy.py": "VALUE = 42\n",
}


def test_local_projects_and_sdists_build_in_the_sandbox(make_context, tmp_path, cache_dir, boxer):
    """`pip install -e .` (installed non-editable, and said so), `python setup.py install` and
    `pip install dist/x.tar.gz` of pure-Python projects of the context."""
    files: dict[str, str | bytes] = dict(LOCAL_PROJECTS)
    files["dist/tinysd-0.3.tar.gz"] = sdist("tinysd", "0.3", {
        "setup.py": "from setuptools import setup\nsetup(name='tinysd', version='0.3', py_modules=['tinysd'])\n",
        "tinysd.py": "NAME = 'tinysd'\n"})
    image, log = build_logged(make_context, tmp_path, cache_dir,
                              "FROM python:3.12\nWORKDIR /src\nCOPY . .\n"
                              "RUN cd app && pip install -e .\n"
                              "RUN cd legacy && python setup.py install\n"
                              "RUN pip install dist/tinysd-0.3.tar.gz\n", files)
    text = "\n".join(log)
    assert "installing /src/app as a regular (non-editable) install" in text, text
    assert "building /src/app from source in the sandbox" in text, text
    assert "building /src/legacy from source in the sandbox" in text, text
    assert "building /src/dist/tinysd-0.3.tar.gz from source in the sandbox" in text, text
    out = run_py(boxer, image, "import os, localapp, legacy, tinysd\n"
                               "print(localapp.GREETING, legacy.VALUE, tinysd.NAME)\n"
                               "print(localapp.__file__.startswith('/lib/python3.12/site-packages/'))\n")
    assert out.splitlines() == ["hello from localapp 1.17.0 42 tinysd", "True"], out


def test_local_projects_named_in_a_requirements_file_build_in_the_sandbox(make_context, tmp_path, cache_dir, boxer):
    """A lock file as rye writes it (`-e file:.` then pins), and the other spellings of a local
    project in a requirements file (`./dir`, `name @ file:///abs`), as `pip install -r` installs
    them: built in the sandbox, paths relative to the RUN's directory, as pip takes them."""
    files: dict[str, str | bytes] = {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
                          '[project]\nname = "tasks"\nversion = "0.1"\n[tool.setuptools]\npackages = ["tasks"]\n',
        "tasks/__init__.py": "NAME = 'tasks'\n",
        "requirements.lock": "# generated by rye\n-e file:.\nsix==1.17.0\n    # via tasks\n",
        "more.txt": "./legacy\nlocalapp @ file:///code/app\n",
        **LOCAL_PROJECTS}
    image, log = build_logged(make_context, tmp_path, cache_dir,
                              "FROM python:3.12.0-slim\nWORKDIR /code\nCOPY . /code/\n"
                              "RUN pip install --no-cache-dir -r requirements.lock\nRUN pip install -r more.txt\n", files)
    text = "\n".join(log)
    assert "installing /code as a regular (non-editable) install" in text, text
    assert "building /code/legacy from source in the sandbox" in text, text
    out = run_py(boxer, image, "import tasks, six, legacy, localapp; print(tasks.NAME, six.__version__, legacy.VALUE)")
    assert out == "tasks 1.17.0 42\n", out


def test_setup_py_commands_have_setuptools_as_in_the_official_images(make_context, tmp_path, cache_dir, boxer):
    """`python setup.py sdist` then `pip install dist/*` (a real Dockerfile's steps): setuptools
    and wheel are on hand for that RUN only, as the official images ship them, and not left in."""
    files: dict[str, str | bytes] = {
        "setup.py": "from setuptools import setup, find_packages\n"
                    "setup(name='demojd', version='0.1', packages=find_packages())\n",
        "demojd/__init__.py": "", "demojd/__main__.py": "print('hello from demojd')\n"}
    image, log = build_logged(make_context, tmp_path, cache_dir,
                              "FROM python:3.12\nWORKDIR /app\nADD . /app\nRUN python setup.py sdist\n"
                              "RUN pip install dist/*\n", files)
    assert "building /app/dist/demojd-0.1.tar.gz from source in the sandbox" in "\n".join(log), log
    out = run_py(boxer, image, "import os, runpy, importlib.util as u\n"
                               "print(sorted(os.listdir('/app/dist')), u.find_spec('setuptools'))\n"
                               "print([x for x in os.listdir('/') if x.startswith('.boxer')])\n"
                               "runpy.run_module('demojd', run_name='__main__')\n")
    assert out.splitlines() == ["['demojd-0.1.tar.gz'] None", "[]", "hello from demojd"], out


def test_a_directory_that_is_no_project_is_a_one_line_error(make_context, tmp_path, cache_dir):
    ctx = make_context("FROM python:3.12\nWORKDIR /app\nRUN pip install .\n")
    with pytest.raises(BoxerError) as e:
        boxer_py.build(ctx, tmp_path / "x.wasm", cache_dir=cache_dir)
    assert str(e.value).endswith("Dockerfile:3: RUN: pip install: .: building it from source in the sandbox "
                                 "failed: /app is not a Python project (no pyproject.toml or setup.py)"), e.value
    assert not (tmp_path / "x.wasm").exists()



def test_a_failed_build_is_named_by_the_error_its_setup_printed(make_context, tmp_path, cache_dir):
    """psycopg2's setup.py says "Error: pg_config executable not found." and goes on writing: the
    build's one line names that error, not the last thing it wrote."""
    setup = ("import sys\nprint('Error: pg_config executable not found.', file=sys.stderr)\n"
             "print('writing top-level names to needspg.egg-info/top_level.txt')\nsys.exit(1)\n")
    ctx = make_context("FROM python:3.12\nWORKDIR /app\nCOPY . .\nRUN pip install .\n", {"setup.py": setup})
    with pytest.raises(BoxerError) as e:
        boxer_py.build(ctx, tmp_path / "x.wasm", cache_dir=cache_dir)
    assert str(e.value).endswith("Dockerfile:4: RUN: pip install: .: building it from source in the sandbox "
                                 "failed: pg_config executable not found."), e.value
    assert not (tmp_path / "x.wasm").exists()

# --- what cannot be built: pip's own explanation, then one line ------------------------------------------

@pytest.fixture(scope="module")
def setuptools_wheel(tmp_path_factory) -> tuple[str, bytes]:
    return download_setuptools(tmp_path_factory.mktemp("setuptools"))


@pytest.fixture
def index(setuptools_wheel):
    served = Index({
        setuptools_wheel[0]: setuptools_wheel[1],
        "webapp-1.0-py3-none-any.whl": wheel("webapp", "1.0", ("nativeonly>=1",)),
        "webapp-1.1-py3-none-any.whl": wheel("webapp", "1.1", ("nativeonly>=1",)),
        "nativeonly-1.0-cp312-cp312-manylinux_2_17_x86_64.whl": wheel("nativeonly", "1.0",
                                                                        tag="cp312-cp312-manylinux_2_17_x86_64"),
        "usesrc-1.0-py3-none-any.whl": wheel("usesrc", "1.0", ("srconly==2.0",)),
        "srconly-2.0.tar.gz": sdist("srconly", "2.0", {
            "setup.py": "from setuptools import setup\nsetup(name='srconly', version='2.0', py_modules=['srconly'])\n",
            "srconly.py": "WHERE = 'built in the sandbox'\n"}),
    })
    yield served
    served.close()


def test_a_dependency_with_neither_wheel_nor_source_is_named_with_pips_explanation(
        make_context, tmp_path, cache_dir, index):
    ctx = make_context(f"FROM python:3.12\nRUN pip install --index-url {index.url}/simple/ webapp\n")
    log: list[str] = []
    with pytest.raises(BoxerError) as e:
        boxer_py.build(ctx, tmp_path / "x.wasm", cache_dir=cache_dir, progress=log.append)
    message = str(e.value)
    assert "\n" not in message
    assert message.endswith("RUN returned exit code 1: pip install: nativeonly has no pure-Python or WASI wheel "
                            "for Python 3.12 and no source distribution, so it cannot run in WebAssembly; use a "
                            "pure-Python alternative"), message
    text = "\n".join(log)
    assert "webapp 1.1 depends on nativeonly>=1" in text, text  # pip's explanation, not a bare ResolutionImpossible
    assert "Collecting" not in text and "Downloading" not in text, text


def test_a_dependency_with_only_source_on_a_private_index_builds(make_context, tmp_path, cache_dir, index, boxer):
    image, log = build_logged(make_context, tmp_path, cache_dir,
                              f"FROM python:3.12\nRUN pip install --index-url {index.url}/simple/ usesrc\n")
    assert any("building srconly 2.0 from source in the sandbox" in line for line in log), log
    assert "/files/srconly-2.0.tar.gz" in index.requests
    assert run_py(boxer, image, "import usesrc, srconly; print(srconly.WHERE)") == "built in the sandbox\n"
