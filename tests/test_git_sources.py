"""`pip install git+URL` (issue 16, the corpus task): the build host only fetches the
repository (gitsource.py), the image's CPython builds it in the sandbox, as `pip install .`.
A real git server on 127.0.0.1 (git daemon), real pip and PyPI for setuptools and a dependency,
real Wasmtime."""
from __future__ import annotations

import boxer_py
from gitserver import GitServer, commit, make_repo

SETUP = "from setuptools import setup\nsetup(name={name!r}, version={version!r}, py_modules=[{name!r}]{more})\n"


def project(name: str, version: str, text: str, more: str = "") -> dict[str, str]:
    return {"setup.py": SETUP.format(name=name, version=version, more=more), f"{name}.py": text}


def build(ctx, out, cache_dir) -> str:
    log: list[str] = []
    boxer_py.build(ctx, out, cache_dir=cache_dir, progress=log.append)
    return "\n".join(log)


def test_git_urls_are_fetched_on_the_host_and_built_in_the_sandbox(tmp_path, cache_dir, make_context, boxer):
    """A branch on the command line, and a pinned commit with a subdirectory as `-e` in a
    requirements file: both projects install (with their dependency, from the index) and run."""
    repos = tmp_path / "repos"
    make_repo(repos / "greet", project("greet", "1.0", "import six\ndef main():\n"
                                                       "    print('hello from greet', six.__name__)\n",
                                       ", install_requires=['six']"))
    pinned = make_repo(repos / "mono", {**{f"pkg/{k}": v for k, v in project("monopkg", "2.0", "X = 42\n").items()},
                                        "README": "the project is in pkg/\n"})
    commit(repos / "mono", {"pkg/monopkg.py": "X = 'moved on'\n"})  # the pin names the first commit
    server = GitServer(repos)
    try:
        ctx = make_context("FROM python:3.12\nWORKDIR /app\nCOPY requirements.txt .\n"
                           f"RUN pip install git+{server.url}/greet@main\n"
                           "RUN pip install -r requirements.txt\n",
                           {"requirements.txt": f"-e git+{server.url}/mono@{pinned}#egg=monopkg&subdirectory=pkg\n"})
        out = tmp_path / "git.wasm"
        log = build(ctx, out, cache_dir)
    finally:
        server.close()
    assert server.connections >= 2
    assert f"fetched {server.url}/greet at commit " in log, log
    assert f"fetched {server.url}/mono at commit {pinned}" in log, log
    assert "building it from source in the sandbox" in log, log
    assert "as a regular (non-editable) install" in log, log
    r = boxer("run", str(out), "python", "-c", "import greet, monopkg; greet.main(); print(monopkg.X)")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines() == ["hello from greet six", "42"], r.stdout


def test_a_branchs_commit_is_part_of_the_run_cache_key(tmp_path, cache_dir, make_context, boxer):
    """The same RUN is CACHED while the branch stays, and runs again once it moved on."""
    repos = tmp_path / "repos"
    make_repo(repos / "moving", project("moving", "1.0", "VERSION = 'first'\n"))
    server = GitServer(repos)
    try:
        ctx = make_context(f"FROM python:3.12\nRUN pip install \"moving @ git+{server.url}/moving@main\"\n")
        first, again, later = tmp_path / "1.wasm", tmp_path / "2.wasm", tmp_path / "3.wasm"
        log1 = build(ctx, first, cache_dir)
        log2 = build(ctx, again, cache_dir)
        commit(repos / "moving", project("moving", "1.1", "VERSION = 'second'\n"))
        log3 = build(ctx, later, cache_dir)
    finally:
        server.close()
    assert "#2 CACHED" not in log1 and "fetched " in log1, log1
    assert "#2 CACHED" in log2 and "fetched " not in log2, log2
    assert "#2 CACHED" not in log3 and "fetched " in log3, log3
    for image, version in ((again, "first"), (later, "second")):
        r = boxer("run", str(image), "python", "-c", "import moving; print(moving.VERSION)")
        assert r.returncode == 0 and r.stdout.strip() == version, (r.stdout, r.stderr[-2000:])
