"""poetry and pipenv in RUN (builder/locks.py): their lock files installed through pip, for
the guest, into the environment each tool would have used, with real pip and real Wasmtime."""
from __future__ import annotations

import json

import pytest

POETRY_PROJECT = """\
[tool.poetry]
name = "demo"
version = "0.1.0"
package-mode = false

[tool.poetry.dependencies]
python = "^3.11"
six = "1.17.0"
colorama = { version = "0.4.6", markers = "sys_platform == 'win32'" }

[tool.poetry.group.dev.dependencies]
iniconfig = "2.0.0"
"""

# Lock format 2.1 (poetry 2): each package names its groups.
POETRY_LOCK_21 = """\
[[package]]
name = "colorama"
version = "0.4.6"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
markers = "sys_platform == \\"win32\\""
files = []

[[package]]
name = "iniconfig"
version = "2.0.0"
description = ""
optional = false
python-versions = ">=3.7"
groups = ["dev"]
files = []

[[package]]
name = "six"
version = "1.17.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
files = []

[metadata]
lock-version = "2.1"
python-versions = "^3.11"
content-hash = "0"
"""

# Lock format 2.0 (poetry 1.5-1.8): no groups; what belongs to main follows from the project.
POETRY_LOCK_20 = """\
[[package]]
name = "attrs"
version = "23.1.0"
description = ""
optional = false
python-versions = ">=3.7"
files = []

[[package]]
name = "iniconfig"
version = "2.0.0"
description = ""
optional = false
python-versions = ">=3.7"
files = []

[[package]]
name = "six"
version = "1.17.0"
description = ""
optional = false
python-versions = "*"
files = []

[package.dependencies]
attrs = ">=20"

[metadata]
lock-version = "2.0"
python-versions = "^3.11"
content-hash = "0"
"""

CHECK = "import sys, importlib.util as u; print(sys.prefix, *[bool(u.find_spec(m)) for m in ('six', 'attr', 'iniconfig', 'colorama')])"


def _run(boxer, image, *argv):
    r = boxer("run", str(image), *argv)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_poetry_in_project_venv_with_groups_copied_to_the_final_stage(build, boxer):
    image = build("FROM python:3.12 AS build\n"
                  "RUN pip install poetry\n"
                  "WORKDIR /app\n"
                  "COPY pyproject.toml poetry.lock ./\n"
                  "RUN poetry config virtualenvs.in-project true && poetry install --no-root --no-interaction\n"
                  "FROM python:3.12\n"
                  "COPY --from=build /app/.venv /app/.venv\n",
                  {"pyproject.toml": POETRY_PROJECT, "poetry.lock": POETRY_LOCK_21})
    # six (main) only: iniconfig is dev, colorama's marker excludes WASI.
    assert _run(boxer, image, "/app/.venv/bin/python", "-c", CHECK) == "/app/.venv True False False False\n"


def test_poetry_lock_without_groups_follows_the_projects_dependencies(build, boxer):
    image = build("FROM python:3.12\n"
                  "ENV POETRY_VIRTUALENVS_CREATE=false\n"
                  "WORKDIR /app\n"
                  "COPY . .\n"
                  "RUN poetry install --no-root --with dev\n",
                  {"pyproject.toml": POETRY_PROJECT, "poetry.lock": POETRY_LOCK_20})
    # six and, through its locked dependencies, attrs; iniconfig from --with dev.
    assert _run(boxer, image, "python", "-c", CHECK) == "/usr/local True True True False\n"


def test_pipenv_the_way_its_docs_build_an_image(build, boxer):
    lock = {"_meta": {"hash": {"sha256": "0"}, "pipfile-spec": 6, "requires": {}, "sources": []},
            "default": {"six": {"hashes": [], "index": "pypi", "version": "==1.17.0"},
                        "colorama": {"version": "==0.4.6", "markers": "sys_platform == 'win32'"}},
            "develop": {"iniconfig": {"version": "==2.0.0"}}}
    image = build("FROM python:3.12 AS builder\n"
                  "RUN pip install --no-cache-dir pipenv==2023.12.1\n"
                  "ENV PIPENV_VENV_IN_PROJECT=1\n"
                  "WORKDIR /app\n"
                  "COPY Pipfile Pipfile.lock /app/\n"
                  "RUN pipenv --no-site-packages install -v --deploy\n"
                  "FROM python:3.12-slim\n"
                  "WORKDIR /app\n"
                  "COPY --from=builder /app/.venv /app/.venv\n"
                  'ENTRYPOINT ["/app/.venv/bin/python"]\n',
                  {"Pipfile": '[packages]\nsix = "==1.17.0"\n', "Pipfile.lock": json.dumps(lock)})
    assert _run(boxer, image, "-c", CHECK) == "/app/.venv True False False False\n"


@pytest.mark.parametrize("run,files,message", [
    ("poetry install", {"pyproject.toml": POETRY_PROJECT},
     "Dockerfile:4: RUN: poetry install: no poetry.lock in /app: run `poetry lock` on the host and COPY it in"),
    ("poetry lock", {}, "Dockerfile:4: RUN: poetry lock: only `poetry install`, `poetry sync` and `poetry config`"),
    ("pipenv install --system", {"Pipfile.lock": json.dumps({"default": {"evil": {"path": "./evil"}}})},
     "Dockerfile:4: RUN: pipenv install: Pipfile.lock: evil: only packages from an index can be installed"),
    ("pipenv install requests", {"Pipfile": "[packages]\n"},
     "Dockerfile:4: RUN: pipenv install: requests: only the Pipfile's packages install at build time"),
])
def test_poetry_and_pipenv_refusals_name_the_line(boxer, make_context, run, files, message):
    ctx = make_context(f"FROM python:3.12\nWORKDIR /app\nCOPY . .\nRUN {run}\n", files)
    r = boxer("build", "-o", str(ctx / "x.wasm"), str(ctx))
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
