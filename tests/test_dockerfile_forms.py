"""Dockerfile forms real projects use, built end to end as BuildKit builds them (issue 16, item 7):
what the image holds, what `boxer inspect` shows, what a run prints, and one-line refusals."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

import boxer_py
from test_build import cached_steps, config, members, rootfs, tree
from test_errors import one_line_error


def layer_names(image: Path) -> list[str]:
    """Every entry of every layer (not only the last to win)."""
    img = boxer_py.read_image(image)
    names = []
    for layer in img.layers:
        with tarfile.open(fileobj=io.BytesIO(img.layer(layer))) as tar:
            names += ["/" + m.name for m in tar]
    return names


# Trailing text, parser directives and the metadata instructions


JOKEBOT = """\
# syntax=docker/dockerfile:1
ARG VCS_REF= # CHANGE ME
ARG VERSION ???
FROM python:3.12
LABEL org.label-schema.vcs-ref=$VCS_REF
MAINTAINER Jo Doe <jo@example.com>
WORKDIR /app
COPY app.py .
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \\
    CMD python -c "import sys; sys.exit(0)"
STOPSIGNAL SIGINT
SHELL ["/bin/bash", "-c"]
ONBUILD COPY . /app
CMD python app.py
"""


def test_a_real_world_header_builds_and_its_metadata_is_in_inspect(boxer, make_context, tmp_path):
    ctx = make_context(JOKEBOT, {"app.py": "print('joke')\n"})
    out = tmp_path / "jokebot.wasm"
    r = boxer("build", "-q", str(ctx), "-o", str(out))
    assert r.returncode == 0, r.stderr
    [info] = json.loads(boxer("inspect", str(out)).stdout)
    cfg = info["Config"]
    assert info["Author"] == "Jo Doe <jo@example.com>"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", 'python -c "import sys; sys.exit(0)"'],
                                  "Interval": 30 * 10**9, "Timeout": 5 * 10**9, "StartPeriod": 5 * 10**9,
                                  "Retries": 3}
    assert cfg["StopSignal"] == "SIGINT" and cfg["Shell"] == ["/bin/bash", "-c"]
    assert cfg["OnBuild"] == ["COPY . /app"]
    assert cfg["Labels"]["org.label-schema.vcs-ref"] == ""  # VCS_REF= set it empty; `# CHANGE ME` set nothing
    assert "maintainer" not in cfg["Labels"]
    r = boxer("run", str(out))
    assert r.returncode == 0 and r.stdout == "joke\n", r.stderr


def test_escape_directive_is_honoured(build, tmp_path):
    img = build("# escape=`\nFROM python:3.12\nRUN echo one `\n    two > /out.txt\n")
    assert tree(rootfs(img, tmp_path / "root"))["/out.txt"] == "one two\n"


def test_onbuild_triggers_run_in_the_image_built_from_it(boxer, make_context, tmp_path):
    base = make_context('FROM python:3.12\nONBUILD COPY app.py /app/\nONBUILD RUN echo built > /app/marker\n',
                        name="onbuild-base")
    r = boxer("build", "-q", "-t", "leniency-onbuild:1", str(base), "-o", str(tmp_path / "base.wasm"))
    assert r.returncode == 0, r.stderr
    child = make_context('FROM leniency-onbuild:1\nCMD ["python", "/app/app.py"]\n', {"app.py": "print('child')\n"},
                         name="onbuild-child")
    out = tmp_path / "child.wasm"
    r = boxer("build", str(child), "-o", str(out))
    assert r.returncode == 0, r.stderr
    t = tree(rootfs(out, tmp_path / "root"))
    assert t["/app/marker"] == "built\n" and t["/app/app.py"] == "print('child')\n"
    assert config(out).on_build == ()  # Docker clears the triggers once they ran
    assert boxer("run", str(out)).stdout == "child\n"


# COPY and ADD flags


def test_copy_link_gives_the_same_result(build):
    files = {"a.txt": "A", "d/b.txt": "B"}
    plain = build("FROM scratch\nCOPY a.txt d /x/\n", files)
    linked = build("FROM scratch\nCOPY --link a.txt d /x/\n", files)
    assert boxer_py.read_image(plain).spec.diff_ids == boxer_py.read_image(linked).spec.diff_ids


def test_copy_chmod_octal_and_symbolic_on_files_and_directories(build):
    files = {"f.txt": "f", "run.sh": "#!/bin/sh\n", "d/inner.txt": "i", "d/sub/deep.txt": "x"}
    img = build("FROM scratch\nCOPY --chmod=640 f.txt /octal/\nCOPY --chmod=0750 d /octal-dir/\n"
                "COPY --chmod=u=rwx,go=rX f.txt d /sym/\nCOPY --chmod=a-w,u+x f.txt /minus.txt\n"
                "ADD --chmod=go-rwx run.sh /add.sh\n", files)
    m = {path: info.mode for path, info in members(img).items()}
    assert m["/octal/f.txt"] == 0o640
    assert (m["/octal-dir/inner.txt"], m["/octal-dir/sub"], m["/octal-dir/sub/deep.txt"]) == (0o750, 0o750, 0o750)
    assert m["/sym/f.txt"] == 0o755  # u=rwx makes it executable, so X gives go x too (as chmod does)
    assert m["/sym/sub"] == 0o755
    assert m["/minus.txt"] == 0o544 and m["/add.sh"] == 0o600


def test_copy_parents_keeps_directories_and_pivots_at_dot(build, tmp_path):
    files = {"src/app/main.py": "m", "src/app/util/u.py": "u", "src/lib/l.py": "l", "other/o.py": "o"}
    img = build("FROM scratch\nCOPY --parents src/app/main.py other/o.py /keep/\n"
                "COPY --parents src/./app /pivot/\nCOPY --parents ./src/./*/*.py /glob/\n", files)
    t = tree(rootfs(img, tmp_path / "root"))
    assert t["/keep/src/app/main.py"] == "m" and t["/keep/other/o.py"] == "o"
    assert t["/pivot/app/main.py"] == "m" and t["/pivot/app/util/u.py"] == "u" and "/pivot/src" not in t
    assert t["/glob/app/main.py"] == "m" and t["/glob/lib/l.py"] == "l" and "/glob/app/util" not in t


def test_copy_exclude_leaves_out_matching_paths(build, tmp_path):
    files = {"app/main.py": "m", "app/main.pyc": "c", "app/pkg/mod.pyc": "c", "app/tests/t.py": "t",
             "notes.md": "n"}
    img = build("FROM scratch\nCOPY --exclude=**/*.pyc --exclude=tests app /app/\n"
                "COPY --exclude=*.md notes.md app/main.py /top/\n", files)
    t = tree(rootfs(img, tmp_path / "root"))
    assert {p for p in t if p.startswith("/app/")} == {"/app/main.py", "/app/pkg"}
    assert set(t) >= {"/top/main.py"} and "/top/notes.md" not in t


def test_add_checksum_verifies_the_local_file(build, boxer, make_context, tmp_path):
    data = b"release 1.0\n"
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    img = build(f"FROM scratch\nADD --checksum={good} --keep-git-dir=true --link pkg.txt /pkg.txt\n",
                {"pkg.txt": data})
    assert tree(rootfs(img, tmp_path / "root"))["/pkg.txt"] == "release 1.0\n"
    bad = "sha256:" + "0" * 64
    ctx = make_context(f"FROM scratch\nADD --checksum={bad} pkg.txt /pkg.txt\n", {"pkg.txt": data}, name="bad")
    out = tmp_path / "bad.wasm"
    one_line_error(boxer("build", "-q", str(ctx), "-o", str(out)), "Dockerfile:2: ADD --checksum: pkg.txt has the digest "
                   + good, "not the expected " + bad)
    assert not out.exists()


# RUN --mount


def test_bind_mounts_are_visible_to_the_run_and_absent_from_the_layer(build, tmp_path):
    files = {"requirements.txt": "six\n", "conf/a.ini": "[a]\n"}
    img = build("FROM python:3.12 AS tools\nRUN mkdir -p /opt/tool && echo tool-data > /opt/tool/data\n"
                "FROM python:3.12\nRUN mkdir -p /mnt/keep && echo kept > /mnt/keep/file\n"
                "RUN --mount=type=bind,source=requirements.txt,target=/tmp/req.txt "
                "--mount=type=bind,source=conf,target=/mnt/keep "
                "--mount=type=bind,from=tools,source=/opt/tool,target=/mnt/tool "
                "--mount=type=bind,target=/ctx "
                "cat /tmp/req.txt /mnt/keep/a.ini /mnt/tool/data /ctx/conf/a.ini > /seen.txt "
                "&& echo scribble > /mnt/keep/new.txt\n", files)
    t = tree(rootfs(img, tmp_path / "root"))
    assert t["/seen.txt"] == "six\n[a]\ntool-data\n[a]\n"
    assert t["/mnt/keep/file"] == "kept\n" and "/mnt/keep/a.ini" not in t and "/mnt/keep/new.txt" not in t
    assert not {"/tmp/req.txt", "/mnt/tool", "/ctx", "/opt/tool/data"} & set(t)
    last = boxer_py.read_image(img)
    with tarfile.open(fileobj=io.BytesIO(last.layer(last.layers[-1]))) as tar:
        assert {m.name for m in tar} - {"", ".", "mnt", "mnt/keep", "tmp"} == {"seen.txt"}


def test_tmpfs_mount_is_empty_and_discarded(build, tmp_path):
    img = build("FROM python:3.12\nRUN --mount=type=tmpfs,target=/work echo x > /work/f && ls /work > /listing\n")
    t = tree(rootfs(img, tmp_path / "root"))
    assert t["/listing"] == "f\n" and "/work" not in t


SECRET_FILE = """\
FROM python:3.12
RUN --mount=type=secret,id=token cat /run/secrets/token > /copied.txt
RUN --mount=type=secret,id=token,target=/etc/token.conf,required=true \\
    --mount=type=secret,id=token,env=API_TOKEN \\
    python -c "import os; print(open('/etc/token.conf').read() == os.environ['API_TOKEN'])" > /check.txt
RUN --mount=type=secret,id=absent ls /run/secrets > /absent.txt || echo none > /absent.txt
"""


def test_secret_mounts_reach_the_run_and_never_the_image(boxer, make_context, tmp_path):
    token = "s3cr3t-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    secret = tmp_path / "token.txt"
    secret.write_text(token)
    ctx = make_context(SECRET_FILE)
    out = tmp_path / "secret.wasm"
    r = boxer("build", str(ctx), "-o", str(out), "--secret", f"id=token,src={secret}")
    assert r.returncode == 0, r.stderr
    t = tree(rootfs(out, tmp_path / "root"))
    assert t["/copied.txt"] == token  # what the RUN itself wrote out is the user's doing, as in Docker
    assert t["/check.txt"] == "True\n"
    assert t["/absent.txt"] == "none\n"  # a secret not given and not required: no mount
    assert not any(p.startswith(("/run/secrets", "/etc/token.conf")) for p in layer_names(out))
    raw = out.read_bytes()
    assert raw.count(token.encode()) == 1  # only inside /copied.txt's layer entry
    [info] = json.loads(boxer("inspect", str(out)).stdout)
    assert token not in json.dumps(info) and not any("API_TOKEN" in e for e in info["Config"]["Env"])
    # a required secret not given: one line naming the line and the flag to pass
    ctx = make_context("FROM python:3.12\nRUN --mount=type=secret,id=pw,required echo\n", name="required")
    one_line_error(boxer("build", "-q", str(ctx), "-o", str(tmp_path / "x.wasm")),
                   "Dockerfile:2: RUN --mount: type=secret,id=pw: no such secret",
                   "--secret id=pw,src=FILE")
    one_line_error(boxer("build", "-q", str(ctx), "-o", str(tmp_path / "x.wasm"), "--secret", "pw"),
                   "--secret pw: expected id=NAME,src=FILE")
    one_line_error(boxer("build", "-q", str(ctx), "-o", str(tmp_path / "x.wasm"), "--secret",
                         f"id=pw,src={tmp_path / 'missing'}"), "--secret id=pw: cannot read")
    assert not (tmp_path / "x.wasm").exists()


def test_run_cache_keys_on_bound_content_not_on_secrets(boxer, make_context, tmp_path, cache_dir):
    secret = tmp_path / "s.txt"
    secret.write_text("one")
    ctx = make_context("FROM python:3.12\nRUN --mount=type=bind,source=in.txt,target=/in "
                       "--mount=type=secret,id=s cat /in > /out.txt\n", {"in.txt": "v1"})
    build = lambda: boxer("build", str(ctx), "-o", str(tmp_path / "c.wasm"),  # noqa: E731
                          "--secret", f"id=s,src={secret}")
    assert build().returncode == 0
    r = build()
    assert cached_steps(r.stderr), r.stderr
    secret.write_text("two")  # as in BuildKit, a secret's content is not part of the key
    assert cached_steps(build().stderr)
    (ctx / "in.txt").write_text("v2")
    r = build()
    assert r.returncode == 0 and cached_steps(r.stderr) == []
    assert tree(rootfs(tmp_path / "c.wasm", tmp_path / "root"))["/out.txt"] == "v2"


# --target


def test_target_skips_stages_it_does_not_need(boxer, make_context, tmp_path):
    ctx = make_context("FROM node:18 AS frontend\nRUN npm ci\n"
                       "FROM python:3.12 AS broken\nCOPY --from=nowhere /x /y\n"
                       "FROM python:3.12 AS api\nCOPY app.py /app/\nCMD [\"python\", \"/app/app.py\"]\n"
                       "FROM python:3.12 AS full\nCOPY --from=frontend /dist /dist\n",
                       {"app.py": "print('api')\n"})
    out = tmp_path / "api.wasm"
    r = boxer("build", "--target", "api", str(ctx), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "frontend" not in r.stderr and "nowhere" not in r.stderr
    assert boxer("run", str(out)).stdout == "api\n"
    one_line_error(boxer("build", "-q", "--target", "broken", str(ctx), "-o", str(tmp_path / "b.wasm")),
                   "Dockerfile:4: COPY --from=nowhere: no earlier stage")
    one_line_error(boxer("build", "-q", str(ctx), "-o", str(tmp_path / "f.wasm")),
                   "Dockerfile:1: unsupported base image 'node:18'")


@pytest.mark.parametrize("dockerfile", [
    "FROM python:3.12\nRUN --mount=type=bind,source=../etc,target=/x echo\n",
    "FROM python:3.12\nRUN --mount=type=bind,source=/etc/passwd,target=/x echo\n",
])
def test_bind_mounts_stay_inside_the_context(boxer, make_context, tmp_path, dockerfile):
    ctx = make_context(dockerfile)
    one_line_error(boxer("build", "-q", str(ctx), "-o", str(tmp_path / "x.wasm")), "Dockerfile:2: RUN --mount")


def test_a_run_that_swaps_a_mount_directory_for_a_link_cannot_reach_the_host(boxer, make_context, tmp_path):
    # The RUN replaces /run/secrets by a link to a host directory: taking the secret away again
    # must not follow it (the host would read the link as its own path) and the build fails.
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "s").write_text("host file")
    secret = tmp_path / "s.txt"
    secret.write_text("x")
    ctx = make_context(f"FROM python:3.12\nRUN --mount=type=secret,id=s rm -rf /run/secrets && "
                       f"ln -s {canary} /run/secrets\n")
    out = tmp_path / "swap.wasm"
    one_line_error(boxer("build", "-q", str(ctx), "-o", str(out), "--secret", f"id=s,src={secret}"),
                   "Dockerfile:2: RUN --mount: the RUN replaced a directory on the way to /run/secrets/s with a link")
    assert (canary / "s").read_text() == "host file" and not out.exists()
