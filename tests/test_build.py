"""`boxer build`: each Dockerfile instruction, .dockerignore, multi-stage builds and
reproducibility, checked in the image a user gets (its files, layers and config)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

import boxer_py
from boxer_py.dockerfile.bases import load_catalog, lookup
from boxer_py.image.rootfs import unpack

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def rootfs(image: Path, into: Path) -> Path:
    """The image's files, its layers applied in order, as a plain directory."""
    into.mkdir()
    unpack(boxer_py.read_image(image), into)
    return into


def tree(root: Path) -> dict[str, str]:
    """Every path under root: file contents, "<dir>" or "-> target" for links."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            host = Path(dirpath) / name
            rel = "/" + host.relative_to(root).as_posix()
            if host.is_symlink():
                out[rel] = "-> " + os.readlink(host)
            elif host.is_dir():
                out[rel] = "<dir>"
            else:
                out[rel] = host.read_text(errors="replace")
    return out


def members(image: Path) -> dict[str, tarfile.TarInfo]:
    """Layer tar entries by guest path, later layers winning."""
    img = boxer_py.read_image(image)
    out = {}
    for layer in img.layers:
        with tarfile.open(fileobj=io.BytesIO(img.layer(layer))) as tar:
            out.update({"/" + m.name: m for m in tar})
    return out


def config(image: Path):
    return boxer_py.read_image(image).spec.config


def tar_bytes(entries: dict[str, bytes | None], gz: bool = False) -> bytes:
    """A tar of files (bytes) and directories (None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0) if gz else buf.getvalue()


# FROM


def test_from_python_installs_the_pinned_runtime(build, tmp_path):
    img = build("FROM python:3.12\n")
    root = rootfs(img, tmp_path / "root")
    runtime = root / "usr/local/bin/python3.12"
    # the pinned upstream module without its DWARF sections (tests/unit/test_runtime_bases.py)
    assert hashlib.sha256(runtime.read_bytes()).hexdigest() == lookup(load_catalog(), "python:3.12").base.nodebug_sha256
    assert os.readlink(root / "usr/local/bin/python") == "python3.12"
    assert os.readlink(root / "usr/local/bin/python3") == "python3.12"
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o755  # on the host: no sticky bit, no world write
    with tarfile.open(fileobj=io.BytesIO((image := boxer_py.read_image(img)).layer(image.layers[0]))) as t:
        assert t.getmember("tmp").mode == 0o1777  # what the guest's image says
    c = config(img)
    assert c.cmd == ("python3",)
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in c.env


def test_from_scratch_starts_empty(build, tmp_path):
    img = build("FROM scratch\nCOPY only.txt /\n", {"only.txt": "x"})
    assert tree(rootfs(img, tmp_path / "root")) == {"/only.txt": "x"}
    assert len(boxer_py.read_image(img).layers) == 1
    assert config(img).env == () and config(img).cmd == ()


# COPY


FILES = {"a.txt": "A", "b.txt": "B", "app.py": "print(1)", "lib.py": "x = 1",
         "src/main.py": "main", "src/pkg/mod.py": "mod", "src/empty/.keep": "", "docs/guide.md": "guide"}


def test_copy_files_to_files_and_directories(build, tmp_path):
    img = build("FROM scratch\nWORKDIR /w\n"
                "COPY a.txt /renamed.txt\n"
                "COPY a.txt /into/\n"
                "COPY a.txt b.txt /multi/\n"
                "COPY a.txt rel/\n"
                "COPY b.txt .\n", FILES)
    t = tree(rootfs(img, tmp_path / "root"))
    assert t["/renamed.txt"] == "A"
    assert t["/into/a.txt"] == "A"
    assert (t["/multi/a.txt"], t["/multi/b.txt"]) == ("A", "B")
    assert t["/w/rel/a.txt"] == "A"
    assert t["/w/b.txt"] == "B"


def test_copy_directory_copies_its_contents(build, tmp_path):
    img = build("FROM scratch\nCOPY src /app/\nCOPY src/pkg /lib\n", FILES)
    t = tree(rootfs(img, tmp_path / "root"))
    assert {k: v for k, v in t.items() if k.startswith("/app")} == {
        "/app": "<dir>", "/app/main.py": "main", "/app/pkg": "<dir>", "/app/pkg/mod.py": "mod",
        "/app/empty": "<dir>", "/app/empty/.keep": ""}
    assert t["/lib/mod.py"] == "mod"


def test_copy_globs(build, tmp_path):
    img = build("FROM scratch\nCOPY *.py /py/\nCOPY src/*/mod.py /deep/\nCOPY ?.txt /q/\n", FILES)
    t = tree(rootfs(img, tmp_path / "root"))
    assert sorted(k for k in t if k.startswith("/py/")) == ["/py/app.py", "/py/lib.py"]
    assert t["/deep/mod.py"] == "mod"
    assert sorted(k for k in t if k.startswith("/q/")) == ["/q/a.txt", "/q/b.txt"]


def test_copy_keeps_modes_and_takes_chmod_and_chown(build, make_context, tmp_path):
    ctx = make_context("FROM scratch\n"
                       "COPY tool.sh /keep/\n"
                       "COPY --chmod=640 tool.sh /mode/\n"
                       "COPY --chmod=700 src /modedir/\n"
                       "COPY --chown=1000:2000 a.txt /ids/\n"
                       "COPY --chown=root a.txt /root-owned/\n"
                       "COPY passwd /etc/passwd\nCOPY group /etc/group\n"
                       "COPY --chown=app:staff a.txt /named/\n"
                       "COPY --chown=app src /named-dir/\n",
                       {**FILES, "tool.sh": "#!/bin/sh\n", "passwd": "root:x:0:0::/root:/bin/sh\napp:x:1001:1001::/home/app:/bin/sh\n",
                        "group": "root:x:0:\nstaff:x:50:\n"})
    os.chmod(ctx / "tool.sh", 0o755)
    out = tmp_path / "img.wasm"
    boxer_py.build(ctx, out)
    m = members(out)
    assert m["/keep/tool.sh"].mode == 0o755
    assert m["/mode/tool.sh"].mode == 0o640
    assert m["/modedir/pkg/mod.py"].mode == 0o700
    assert (m["/ids/a.txt"].uid, m["/ids/a.txt"].gid) == (1000, 2000)
    assert (m["/root-owned/a.txt"].uid, m["/root-owned/a.txt"].gid) == (0, 0)
    assert (m["/named/a.txt"].uid, m["/named/a.txt"].gid) == (1001, 50)
    assert (m["/named-dir/pkg/mod.py"].uid, m["/named-dir/pkg/mod.py"].gid) == (1001, 1001)
    assert (m["/keep/tool.sh"].uid, m["/keep/tool.sh"].gid) == (0, 0)


# ADD


def test_add_copies_files_and_extracts_local_tars(build, tmp_path):
    archive = tar_bytes({"pkg": None, "pkg/__init__.py": b"init", "pkg/data.txt": b"data"})
    img = build("FROM scratch\n"
                "ADD notes.txt /notes/\n"
                "ADD bundle.tar /opt/\n"
                "ADD bundle.tar.gz /gz\n"
                "COPY bundle.tar /kept/\n",
                {"notes.txt": "plain", "bundle.tar": archive, "bundle.tar.gz": tar_bytes({"z.txt": b"zipped"}, gz=True)})
    t = tree(rootfs(img, tmp_path / "root"))
    assert t["/notes/notes.txt"] == "plain"
    assert (t["/opt/pkg/__init__.py"], t["/opt/pkg/data.txt"]) == ("init", "data")
    assert t["/gz/z.txt"] == "zipped"
    assert (tmp_path / "root/kept/bundle.tar").read_bytes() == archive  # COPY never extracts


# WORKDIR, ENV, ARG


def test_workdir_creates_directories_and_chains(build, tmp_path):
    img = build("FROM scratch\nENV BASE=/srv\nWORKDIR $BASE\nWORKDIR app\nWORKDIR ../data\nCOPY a.txt .\n", FILES)
    assert config(img).working_dir == "/srv/data"
    t = tree(rootfs(img, tmp_path / "root"))
    assert t["/srv/app"] == "<dir>"
    assert t["/srv/data/a.txt"] == "A"


def test_env_forms_and_expansion(build, tmp_path):
    img = build("FROM scratch\n"
                'ENV A=1 B="two words"\n'
                "ENV LEGACY three more words\n"
                "ENV C=$A-${B} D=${NOPE:-fallback} E=${A:+set} F=\\$A G='$A' H=\"$A\"\n"
                "ENV DEST=/from-env\n"
                "COPY a.txt $DEST/\n", FILES)
    env = config(img).env_dict()
    assert env == {"A": "1", "B": "two words", "LEGACY": "three more words", "C": "1-two words",
                   "D": "fallback", "E": "set", "F": "$A", "G": "$A", "H": "1", "DEST": "/from-env"}
    assert tree(rootfs(img, tmp_path / "root"))["/from-env/a.txt"] == "A"


def test_arg_defaults_build_args_and_scope(boxer, make_context, tmp_path):
    ctx = make_context("ARG BASE=scratch\nARG GLOBAL=g\n"
                       "FROM $BASE\n"
                       "LABEL before=x$GLOBAL\n"
                       "ARG GLOBAL\n"
                       "ARG WHERE=/default\n"
                       "ARG VERSION\n"
                       "LABEL after=$GLOBAL version=$VERSION\n"
                       "COPY a.txt $WHERE/\n", FILES)
    out = tmp_path / "img.wasm"
    r = boxer("build", "-q", "--build-arg", "WHERE=/overridden", "--build-arg", "VERSION=1.2", str(ctx), "-o", str(out))
    assert r.returncode == 0, r.stderr
    c = config(out)
    assert c.labels == {"before": "x", "after": "g", "version": "1.2"}
    assert "/overridden/a.txt" in tree(rootfs(out, tmp_path / "root"))
    assert not any(e.split("=")[0] in ("BASE", "GLOBAL", "WHERE", "VERSION") for e in c.env)  # ARGs stay out of Env


# Metadata, through the CLI like a user would see it


def test_metadata_is_recorded_in_inspect(boxer, make_context, tmp_path):
    ctx = make_context('FROM python:3.12\n'
                       'LABEL org.opencontainers.image.title="my app" version=2\n'
                       'LABEL "multi word"="value with spaces"\n'
                       'MAINTAINER someone@example.com\n'
                       'EXPOSE 8080 53/udp\n'
                       'EXPOSE 8080/tcp\n'
                       'USER 1000:1000\n'
                       'VOLUME ["/data"]\n'
                       'STOPSIGNAL SIGINT\n'
                       'WORKDIR /app\n'
                       'ENV MODE=prod\n')
    out = tmp_path / "meta.wasm"
    r = boxer("build", "-q", "-t", "meta:1", str(ctx), "-o", str(out))
    assert r.returncode == 0, r.stderr
    [info] = json.loads(boxer("inspect", str(out)).stdout)
    cfg = info["Config"]
    assert info["RepoTags"] == ["meta:1"]
    # the base's own label comes first, as a Docker base image's labels are inherited
    base_labels = load_catalog()["python:3.12.0"].labels
    assert cfg["Labels"] == {**base_labels, "org.opencontainers.image.title": "my app",
                             "version": "2", "multi word": "value with spaces"}
    assert info["Author"] == "someone@example.com"  # MAINTAINER: the image's author, as BuildKit records it
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["User"] == "1000:1000"
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["WorkingDir"] == "/app"
    assert cfg["Env"][-1] == "MODE=prod"
    assert cfg["Cmd"] == ["python3"]  # inherited from the base
    assert [h["created_by"] for h in info["History"]][:2] == ["FROM python:3.12", "LABEL org.opencontainers.image.title=my app version=2"]


@pytest.mark.parametrize("tail, entrypoint, cmd", [
    ("", (), ("python3",)),  # the base's CMD
    ('CMD ["python", "app.py"]', (), ("python", "app.py")),
    ("CMD python app.py --flag", (), ("/bin/sh", "-c", "python app.py --flag")),
    ('ENTRYPOINT ["python"]', ("python",), ()),  # an ENTRYPOINT drops the inherited CMD
    ("ENTRYPOINT python -u", ("/bin/sh", "-c", "python -u"), ()),
    ('ENTRYPOINT ["python"]\nCMD ["-V"]', ("python",), ("-V",)),
    ('CMD ["-V"]\nENTRYPOINT ["python"]', ("python",), ("-V",)),  # a CMD of this stage stays
    ('CMD ["first"]\nCMD ["last"]', (), ("last",)),
])
def test_entrypoint_and_cmd_are_recorded_like_docker(tail, entrypoint, cmd):
    from boxer_py.dockerfile.parser import parse
    from boxer_py.dockerfile.plan import make_plan

    plan = make_plan(parse(f"FROM python:3.12\n{tail}\n"), load_catalog())
    c = plan.stages[plan.target].config
    assert (c.entrypoint, c.cmd) == (entrypoint, cmd)


@pytest.mark.parametrize("ref", ["python:3.12", "python:3.12-slim", "python:3.12.0", "python:3", "python:latest",
                                 "python", "docker.io/library/python:3.12-alpine", "library/python:3",
                                 "python:3.12.3-slim-bookworm", "python:slim", "python:alpine", "python:3-slim",
                                 "python:3.12.0a5-slim", "python:3.12-windowsservercore-ltsc2022"])
def test_python_references_that_name_the_312_base(ref):
    from boxer_py.dockerfile.parser import parse
    from boxer_py.dockerfile.plan import make_plan

    plan = make_plan(parse(f"FROM {ref}\n"), load_catalog())
    assert plan.stages[0].base.python == "3.12.0"
    assert plan.warnings == ()


@pytest.mark.parametrize("ref, version", [
    ("python:3.11-slim", "3.11.2"), ("python:3.11.0-slim-bullseye", "3.11.2"), ("python:3.11.9-alpine3.19", "3.11.2"),
    ("python:3.13", "3.13.5"), ("python:3.13-slim-bookworm", "3.13.5"), ("python:3.13.1", "3.13.5"),
    ("docker.io/library/python:3.13-alpine", "3.13.5"),
    ("python:3.9", "3.9.2"), ("python:3.9.20-alpine3.19", "3.9.2"), ("python:3.9-slim-bullseye", "3.9.2"),
])
def test_python_tags_of_39_311_and_313_name_the_runtimes_built_here(ref, version):
    from boxer_py.dockerfile.parser import parse
    from boxer_py.dockerfile.plan import make_plan

    plan = make_plan(parse(f"FROM {ref}\n"), load_catalog())
    base = plan.stages[0].base
    assert (base.python, base.vendored, plan.warnings) == (version, f"cpython-{version.rsplit('.', 1)[0]}", ())
    assert base.sha256 == json.loads((Path(__file__).parent.parent / "toolchain/runtimes" / base.vendored
                                      / "provenance.json").read_text())["outputs"][base.file]["sha256"]


@pytest.mark.parametrize("ref, wanted", [
    ("python:3.10-alpine", "3.10"), ("python:3.10.12-slim", "3.10"),
    ("python:3.7-alpine", "3.7"), ("python:3.8.20-alpine3.19", "3.8"),
    ("--platform=$BUILDPLATFORM python:3.8-slim-buster", "3.8"),
])
def test_older_python_tags_take_the_nearest_newer_runtime_with_a_warning(ref, wanted):
    from boxer_py.dockerfile.parser import parse
    from boxer_py.dockerfile.plan import make_plan

    plan = make_plan(parse(f"FROM {ref}\n"), load_catalog())
    newest_at_least = min((b for b in load_catalog().values() if b.python
                           and tuple(map(int, b.python.split(".")[:2])) >= tuple(map(int, wanted.split(".")))),
                          key=lambda b: tuple(map(int, b.python.split(".")[:2])))
    assert plan.stages[0].base == newest_at_least
    (warning,) = plan.warnings
    assert warning.startswith("Dockerfile:1: ") and f"Python {wanted}" in warning and newest_at_least.python in warning


@pytest.mark.parametrize("ref", ["gcr.io/distroless/python3-debian12", "gcr.io/distroless/python3:nonroot",
                                 "gcr.io/distroless/python3-debian11:debug"])
def test_distroless_python_is_a_cpython_3_with_a_warning(ref):
    from boxer_py.dockerfile.parser import parse
    from boxer_py.dockerfile.plan import make_plan

    plan = make_plan(parse(f"FROM {ref}\n"), load_catalog())
    assert plan.stages[0].base.default
    (warning,) = plan.warnings
    assert "distroless" in warning


def test_a_digest_cannot_be_checked_and_says_so():
    from boxer_py.dockerfile.parser import parse
    from boxer_py.dockerfile.plan import make_plan

    digest = "sha256:" + "ab" * 32
    plan = make_plan(parse(f"FROM python:3.12-slim@{digest}\n"), load_catalog())
    assert plan.stages[0].base.python == "3.12.0"
    (warning,) = plan.warnings
    assert "cannot be checked" in warning and digest in warning


# .dockerignore


def test_dockerignore_patterns_and_exceptions(build, tmp_path):
    files = {".dockerignore": "# comment\n*.log\nsecrets/\n**/*.tmp\ndocs\n!docs/keep.md\n*.md\n!README.md\n/build\n",
             "app.py": "app", "debug.log": "log", "secrets/key": "k", "pkg/x.tmp": "t", "pkg/deep/y.tmp": "t",
             "pkg/mod.py": "m", "docs/guide.md": "g", "docs/keep.md": "kept", "README.md": "readme",
             "NOTES.md": "n", "build/out.bin": "o", "sub/build/kept.txt": "kept"}
    img = build("FROM scratch\nCOPY . /ctx/\n", files)
    t = tree(rootfs(img, tmp_path / "root"))
    got = sorted(k.removeprefix("/ctx/") for k, v in t.items() if k.startswith("/ctx/") and v != "<dir>")
    assert got == [".dockerignore", "Dockerfile", "README.md", "app.py", "docs/keep.md", "pkg/mod.py",
                   "sub/build/kept.txt"]


def test_an_ignored_file_cannot_be_copied_by_name(boxer, make_context, tmp_path):
    ctx = make_context("FROM scratch\nCOPY secret.env /\n", {".dockerignore": "*.env\n", "secret.env": "TOKEN=1"})
    r = boxer("build", "-q", str(ctx), "-o", str(tmp_path / "x.wasm"))
    assert r.returncode == 1 and "Dockerfile:2: COPY secret.env: no such file" in r.stderr
    assert not (tmp_path / "x.wasm").exists()


# Multi-stage


STAGES = """
FROM scratch AS assets
COPY data /data
LABEL stage=assets

FROM scratch AS Broken
COPY does-not-exist /x

FROM assets AS extended
COPY a.txt /data/

FROM python:3.12
COPY --from=assets /data /app/data
COPY --from=0 /data/one.txt /app/by-index.txt
COPY --from=EXTENDED /data/a.txt /app/
CMD ["python", "-c", "print(open('/app/data/one.txt').read())"]
"""


def test_multi_stage_copy_from_and_unused_stages(boxer, make_context, tmp_path):
    ctx = make_context(STAGES, {"data/one.txt": "one", "data/sub/two.txt": "two", "a.txt": "A"})
    out = tmp_path / "multi.wasm"
    r = boxer("build", str(ctx), "-o", str(out))
    assert r.returncode == 0, r.stderr  # the broken stage is not needed, so it is not built
    assert "Broken" not in r.stderr and "broken" not in r.stderr
    t = tree(rootfs(out, tmp_path / "root"))
    assert (t["/app/data/one.txt"], t["/app/data/sub/two.txt"]) == ("one", "two")
    assert t["/app/by-index.txt"] == "one" and t["/app/a.txt"] == "A"
    assert "/data" not in t  # only what was copied, not the other stage's rootfs
    assert "stage" not in config(out).labels
    assert boxer("run", str(out)).stdout == "one\n"


def test_target_builds_a_named_stage(boxer, make_context, tmp_path):
    ctx = make_context(STAGES, {"data/one.txt": "one", "data/sub/two.txt": "two", "a.txt": "A"})
    out = tmp_path / "target.wasm"
    r = boxer("build", "-q", "--target", "extended", str(ctx), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert tree(rootfs(out, tmp_path / "root")) == {"/data": "<dir>", "/data/one.txt": "one", "/data/sub": "<dir>",
                                                    "/data/sub/two.txt": "two", "/data/a.txt": "A"}
    assert config(out).labels == {"stage": "assets"}  # FROM <stage> inherits its config
    r = boxer("build", "-q", "--target", "broken", str(ctx), "-o", str(out))
    assert r.returncode == 1 and "Dockerfile:7: COPY does-not-exist: no such file" in r.stderr


# Reproducibility


def test_builds_are_byte_identical(make_context, tmp_path):
    files = {"a.txt": "A", "src/main.py": "main", "bundle.tar": tar_bytes({"t/x": b"x"})}
    dockerfile = "FROM scratch\nCOPY . /app/\nADD bundle.tar /opt/\nWORKDIR /w\nENV A=1\nCMD [\"x\"]\n"
    first, second = tmp_path / "first.wasm", tmp_path / "second.wasm"
    ctx = make_context(dockerfile, files)
    boxer_py.build(ctx, first)
    copy = tmp_path / "elsewhere"
    shutil.copytree(ctx, copy)
    for dirpath, _, filenames in os.walk(copy):
        for name in filenames:
            os.utime(Path(dirpath) / name, (1_000_000, 1_000_000))  # other times, same contents
    boxer_py.build(copy, second)
    assert first.read_bytes() == second.read_bytes()


def test_python_example_builds_are_byte_identical(tmp_path, hello_image):
    again = tmp_path / "again.wasm"
    boxer_py.build(EXAMPLES / "hello-python", again, tag="hello")
    assert again.read_bytes() == hello_image.read_bytes()


# The RUN cache


def test_a_step_skipped_with_skip_unsupported_is_not_cached_for_a_plain_build(make_context, tmp_path):
    """Issue 16 item 9: after a build with --skip-unsupported, a plain build of the same file
    must fail on its apt-get line, not pass it as CACHED."""
    ctx = make_context("FROM python:3.12\nRUN apt-get update && apt-get install -y libfoo\n")
    cache = tmp_path / "cache"
    lines: list[str] = []
    boxer_py.build(ctx, tmp_path / "skipped.wasm", cache_dir=cache, skip_unsupported=True, progress=lines.append)
    assert any("WARNING: skipped apt-get" in line for line in lines)
    lines.clear()
    with pytest.raises(boxer_py.BoxerError, match="Dockerfile:2: RUN: apt-get cannot run in a WebAssembly build"):
        boxer_py.build(ctx, tmp_path / "plain.wasm", cache_dir=cache, progress=lines.append)
    assert cached_steps(lines) == []
    assert not (tmp_path / "plain.wasm").exists()
    # and the skipped build itself is still cached for the next build with the flag
    boxer_py.build(ctx, tmp_path / "again.wasm", cache_dir=cache, skip_unsupported=True, progress=lines.append)
    assert any(step.startswith("RUN apt-get") for step in cached_steps(lines))



def test_the_os_package_table_is_part_of_the_run_cache_key(make_context, tmp_path, monkeypatch):
    """A build-only apk line is skipped by builder/osdeps.py's table: once that table changes,
    the step it decided is run again, not taken from the cache."""
    from boxer_py.builder import osdeps

    ctx = make_context("FROM python:3.12\nRUN apk add --no-cache gcc musl-dev\n")
    cache = tmp_path / "cache"
    lines: list[str] = []
    boxer_py.build(ctx, tmp_path / "a.wasm", cache_dir=cache, progress=lines.append)
    assert any("WARNING: skipped apk add gcc, musl-dev: only for compiling" in line for line in lines)
    lines.clear()
    boxer_py.build(ctx, tmp_path / "b.wasm", cache_dir=cache, progress=lines.append)
    assert cached_steps(lines) == ["RUN apk add --no-cache gcc musl-dev"]
    lines.clear()
    monkeypatch.setattr(osdeps, "RULES_KEY", "another table")
    boxer_py.build(ctx, tmp_path / "c.wasm", cache_dir=cache, progress=lines.append)
    assert cached_steps(lines) == []


def test_workdir_strips_quotes_as_docker_does(build, tmp_path):
    img = build("FROM scratch\nWORKDIR \"/my app\"\nCOPY a.txt ./\nWORKDIR '/b'\nWORKDIR c d\n", {"a.txt": "a"})
    image = boxer_py.read_image(img)
    assert image.spec.config.working_dir == "/b/c d"
    t = tree(rootfs(img, tmp_path / "root"))
    assert t["/my app/a.txt"] == "a" and t["/b/c d"] == "<dir>"
    assert '"/my app"' not in t and "/\"" not in "".join(t)


def cached_steps(lines: list[str] | str) -> list[str]:
    """The steps a build's progress (BuildKit's plain lines: `#5 [2/3] RUN ...`, then `#5 CACHED`)
    says were taken from the cache."""
    import re

    headers: dict[str, str] = {}
    cached = []
    for line in lines.splitlines() if isinstance(lines, str) else lines:
        if m := re.match(r"#(\d+) \[[^\]]*\] (.*)", line):
            headers[m.group(1)] = m.group(2)
        elif m := re.match(r"#(\d+) CACHED$", line):
            cached.append(headers[m.group(1)])
    return cached


def _history(boxer, image) -> tuple[list[tuple[str, bool]], int]:
    [info] = json.loads(boxer("inspect", str(image)).stdout)
    return ([(h["created_by"].split()[0], h.get("empty_layer", False)) for h in info["History"]],
            len(info["RootFS"]["Layers"]))


def test_history_marks_the_instructions_that_made_no_layer(boxer, hello_image, make_context, tmp_path):
    """As Docker does: history and scanner tools pair the unmarked entries with the layers."""
    assert _history(boxer, hello_image) == ([("FROM", False), ("LABEL", True), ("ENV", True), ("WORKDIR", False),
                                             ("COPY", False), ("CMD", True)], 3)
    ctx = make_context('FROM scratch AS first\nCOPY app.wasm /app.wasm\nENV A=1\n'
                       'FROM first\nWORKDIR /w\nRUN mkdir -p /d\nMAINTAINER me\nCMD ["/app.wasm"]\n',
                       {"app.wasm": b"\0asm\x01\0\0\0"})
    out = tmp_path / "multi.wasm"
    r = boxer("build", "-q", str(ctx), "-o", str(out))
    assert r.returncode == 0, r.stderr
    entries, layers = _history(boxer, out)
    assert [kind for kind, _ in entries] == ["FROM", "COPY", "ENV", "WORKDIR", "RUN", "MAINTAINER", "CMD"]
    assert entries[0] == ("FROM", True), "scratch makes no layer"
    assert sum(not empty for _, empty in entries) == layers
