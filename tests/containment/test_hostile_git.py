"""`git+` requirements against the build host (the corpus task): the host only fetches objects
into a private bare repository (gitsource.py) and never checks anything out or runs anything
of it; the tree reaches the sandbox as a tar that the guest unpacks with tarfile's `data`
filter. A real git server on 127.0.0.1 (git daemon) serves each hostile repository."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hostile_world import SECRET
from phone_home import PhoneHome

import boxer_py
from boxer_py.builder import gitsource
from boxer_py.errors import BoxerError
from gitserver import GitServer, git, make_repo

SETUP = "from setuptools import setup\nsetup(name='hostilegit', version='1.0', py_modules=['hostilegit'])\n"
HOOK = "#!/bin/sh\necho ran > {marker}\n"


def refused(ctx: Path, out: Path, cache_dir: Path) -> str:
    with pytest.raises(BoxerError) as e:
        boxer_py.build(ctx, out, cache_dir=cache_dir)
    message = str(e.value)
    assert message and "\n" not in message and "Traceback" not in message, message
    assert not out.exists()
    return message


def hostile_repo(path: Path, files: dict[str, str | bytes] | None = None, modes: dict[str, str] | None = None) -> str:
    """A repository whose setup.py installs the module hostilegit, with `files` added or replaced."""
    return make_repo(path, {"setup.py": SETUP, "hostilegit.py": "OK = 1\n", **(files or {})}, modes)


def install_refused(repos: Path, name: str, tmp_path: Path, cache_dir: Path, make_context) -> tuple[str, str]:
    """`RUN pip install git+URL` of the repository `repos/name`, served by a git server: the
    build's one-line refusal, and URL."""
    with GitServer(repos) as server:
        url = f"{server.url}/{name}"
        return refused(make_context(f"FROM python:3.12\nRUN pip install git+{url}\n"), tmp_path / "x.wasm",
                       cache_dir), url


def test_a_hostile_repository_runs_nothing_on_the_host(tmp_path, cache_dir, make_context, monkeypatch, listener):
    """Its setup.py writes a host path and connects to the host's 127.0.0.1; it commits hook
    scripts; its submodules point at a file: repository holding a secret and at a listener; the
    user's own git configuration names a hooks directory. Nothing runs on the host, no
    submodule is fetched, setup.py ran only in the sandbox."""
    hook_marker = tmp_path / "hook-ran.txt"
    phone = PhoneHome(tmp_path / "host" / "setup-ran.txt", listener)
    secret_repo = tmp_path / "secret-repo"
    secret_commit = make_repo(secret_repo, {"secret.txt": SECRET})
    home = tmp_path / "home"
    (home / "hooks").mkdir(parents=True)
    for name in ("reference-transaction", "post-checkout", "post-merge", "post-index-change"):
        (home / "hooks" / name).write_text(HOOK.format(marker=hook_marker))
        (home / "hooks" / name).chmod(0o755)
    (home / ".gitconfig").write_text(f"[core]\n\thooksPath = {home / 'hooks'}\n")
    monkeypatch.setenv("HOME", str(home))
    repos = tmp_path / "repos"
    hook = HOOK.format(marker=hook_marker)
    hostile_repo(repos / "evil", {
        "setup.py": phone.setup_py("hostilegit"), "hooks/post-checkout": hook, ".githooks/post-checkout": hook,
        ".gitmodules": f'[submodule "sub"]\n\tpath = sub\n\turl = file://{secret_repo}\n'
                       f'[submodule "net"]\n\tpath = net\n\turl = git://127.0.0.1:{listener.port}/x\n',
        "sub": secret_commit, "net": secret_commit},
        modes={"hooks/post-checkout": "100755", ".githooks/post-checkout": "100755", "sub": "160000", "net": "160000"})
    out = tmp_path / "x.wasm"
    with GitServer(repos) as server:
        boxer_py.build(make_context(f"FROM python:3.12\nRUN pip install git+{server.url}/evil\n"), out, cache_dir=cache_dir)
    assert not hook_marker.exists(), "a hook ran on the build host"
    root = tmp_path / "rootfs"
    phone.assert_ran_only_in_the_sandbox(out, root, "hostilegit")
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
                assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("kind", ["fetch", "tree"])
def test_a_huge_repository_is_refused_within_its_bound(tmp_path, cache_dir, make_context, monkeypatch, kind):
    """Random bytes over the fetch bound, or zeros (a small pack) whose files are over the tree
    bound: one line, nothing built."""
    monkeypatch.setattr(gitsource, "MAX_FETCH" if kind == "fetch" else "MAX_TREE", 1 << 20)
    big = os.urandom(3 << 20) if kind == "fetch" else bytes(8 << 20)
    repos = tmp_path / "repos"
    hostile_repo(repos / "huge", {"data.bin": big})
    message, url = install_refused(repos, "huge", tmp_path, cache_dir, make_context)
    assert f"Dockerfile:2: RUN: pip install: git+{url}: " in message, message
    assert "the repository is larger than 1048576 bytes" in message, message


def test_links_out_of_the_tree_are_refused_in_the_sandbox(tmp_path, cache_dir, make_context):
    """A symlink to a host file (absolute, and climbing with ..) that setup.py would read: the
    host never checks the tree out, and the guest's unpacking refuses the links."""
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text(SECRET)
    repos = tmp_path / "repos"
    hostile_repo(repos / "links", {"setup.py": "print(open('climb').read())\n" + SETUP, "abs": str(secret_file),
                                   "climb": "../" * 30 + str(secret_file).lstrip("/")},
                 modes={"abs": "120000", "climb": "120000"})
    message, _ = install_refused(repos, "links", tmp_path, cache_dir, make_context)
    assert "building it from source in the sandbox failed: " in message, message
    assert "link" in message.lower(), message
    assert SECRET not in message


def test_a_tree_entry_named_dotdot_is_refused_by_the_fetch(tmp_path, cache_dir, make_context):
    repos = tmp_path / "repos"
    hostile_repo(repos / "dotdot")
    blob = git(repos / "dotdot", "hash-object", "-w", "--stdin", input=b"escaped\n")
    tree = git(repos / "dotdot", "mktree", input=f"100644 blob {blob}\t..\n".encode())
    top = git(repos / "dotdot", "commit-tree", tree, "-m", "dotdot")
    git(repos / "dotdot", "update-ref", "refs/heads/main", top)
    message, url = install_refused(repos, "dotdot", tmp_path, cache_dir, make_context)
    assert f"fetching {url} failed: " in message, message


REFUSED = ["git+file://{repo}", "git+file://{repo}#egg=x", "x @ git+file://{repo}", "git+{repo}",
           "git+ssh://git@127.0.0.1/x", "git+git@127.0.0.1:x/y", "git+ext::sh%20-c%20touch%20{marker}",
           "git+https://127.0.0.1:1/x@--upload-pack=touch%20{marker}"]


@pytest.mark.parametrize("where", ["command", "requirements", "editable"])
@pytest.mark.parametrize("url", REFUSED)
def test_git_urls_that_would_read_the_host_are_refused(tmp_path, cache_dir, make_context, url, where):
    marker = tmp_path / "ran.txt"
    repo = tmp_path / "repo"
    hostile_repo(repo)
    text = url.format(repo=repo, marker=marker)
    if where == "command":
        run = f"pip install '{text}'"
    else:
        run = "pip install -r /requirements.txt"
    line = f"-e {text.split(' @ ')[-1]}" if where == "editable" else text
    ctx = make_context(f"FROM python:3.12\nCOPY requirements.txt /\nRUN {run}\n", {"requirements.txt": line + "\n"})
    message = refused(ctx, tmp_path / "x.wasm", cache_dir)
    assert "Dockerfile:3: RUN: pip install: " in message, message
    assert "is not a branch, tag or commit" in message or "only git+https://" in message, message
    assert not marker.exists()
