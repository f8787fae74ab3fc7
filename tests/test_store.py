"""Docker's habits for building and the local store, through the real CLI (issue 20): build
into the store, several tags, ids that do not depend on tags, tag/images/rmi/history,
save/load, prune, and build's Docker flags. No guest starts here (FROM scratch, shell-only RUN)."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boxer_py.image import imagefile


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def bx(cache):
    """The real `boxer` with a cache (and so a local store) of this test's own."""

    def run(*args: str, input: str | bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "BOXER_CACHE_DIR": str(cache)}
        return subprocess.run([sys.executable, "-m", "boxer_py", *args], input=input, capture_output=True,
                              text=not isinstance(input, bytes), cwd=cwd, env=env, timeout=300)

    return run


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r


def one_line(r: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


APP = "FROM scratch\nCOPY . /app/\nRUN mkdir -p /data && echo made > /data/f\n"


def listing(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_size for p in sorted(directory.rglob("*"))}


def test_build_without_o_writes_only_to_the_store_and_never_into_the_context(bx, make_context, cache):
    ctx = make_context(APP, {"main.py": "print('hi')\n"})
    before = listing(ctx)
    ids = [ok(bx("build", "-q", str(ctx))).stdout.strip() for _ in range(3)]
    assert listing(ctx) == before, "nothing lands in the build context"
    assert len(set(ids)) == 1, "COPY . . does not take an earlier image in: the same image every time"
    [row] = json.loads(ok(bx("images", "--json")).stdout)
    assert row["id"] == ids[0] and row["tag"] == ""
    assert "<none>" in ok(bx("images")).stdout
    image = imagefile.read(row["path"])
    assert image.id == ids[0]
    # a run from the cwd of the context with `boxer build .` too
    ok(bx("build", "-q", ".", cwd=ctx))
    assert listing(ctx) == before


def test_the_id_does_not_depend_on_the_tag_and_several_tags_name_one_image(bx, make_context, tmp_path):
    ctx = make_context(APP, {"main.py": "x = 1\n"})
    one = ok(bx("build", "-q", "-t", "x1", str(ctx))).stdout.strip()
    two = ok(bx("build", "-q", "-t", "x2", str(ctx))).stdout.strip()
    assert one == two
    r = ok(bx("build", "-t", "x3", "-t", "team/x4:v1", "--iidfile", str(tmp_path / "iid"), "--json", str(ctx)))
    built = json.loads(r.stdout)
    assert built["id"] == one and built["tags"] == ["x3:latest", "team/x4:v1"]
    assert (tmp_path / "iid").read_text() == one
    names = ok(bx("images", "--format", "{{.Repository}}:{{.Tag}}")).stdout.split()
    assert sorted(names) == ["team/x4:v1", "x1:latest", "x2:latest", "x3:latest"]
    [info] = json.loads(ok(bx("inspect", "x3")).stdout)
    assert info["Id"] == one and info["RepoTags"] == ["team/x4:v1", "x1:latest", "x2:latest", "x3:latest"]
    # -o writes the file too; the same bytes the store keeps
    out = tmp_path / "out.wasm"
    ok(bx("build", "-q", "-t", "x1", "-o", str(out), str(ctx)))
    assert out.read_bytes() == Path(json.loads(ok(bx("images", "--json", "x1")).stdout)[0]["path"]).read_bytes()


def test_o_without_t_keeps_the_store_out_of_it(bx, make_context, tmp_path):
    ctx = make_context(APP)
    ok(bx("build", "-q", "-o", str(tmp_path / "x.wasm"), str(ctx)))
    assert (tmp_path / "x.wasm").is_file()
    assert json.loads(ok(bx("images", "--json")).stdout) == []


def test_tag_images_columns_format_and_quiet(bx, make_context):
    ctx = make_context(APP)
    image_id = ok(bx("build", "-q", "-t", "app:1", str(ctx))).stdout.strip()
    ok(bx("tag", "app:1", "localhost:5000/team/app:2"))
    ok(bx("tag", image_id[7:19], "byid"))
    lines = ok(bx("images")).stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    assert rows == {("app", "1", image_id[7:19]), ("localhost:5000/team/app", "2", image_id[7:19]),
                    ("byid", "latest", image_id[7:19])}
    size = Path(json.loads(ok(bx("images", "--json", "app:1")).stdout)[0]["path"]).stat().st_size
    assert all(line.split()[-1] == f"{size / 1000:.3g}kB" and "ago" in line for line in lines[1:])
    assert ok(bx("images", "-q")).stdout == image_id[7:19] + "\n", "one id per image, as docker images -q"
    assert ok(bx("images", "-q", "--no-trunc")).stdout == image_id + "\n"
    assert ok(bx("images", "app")).stdout.count("\n") == 2
    table = ok(bx("images", "--format", "table {{.Tag}}\\t{{.ID}}")).stdout.splitlines()
    assert table[0].split() == ["TAG", "IMAGE", "ID"] and len(table) == 4
    rows_json = [json.loads(x) for x in ok(bx("images", "--format", "{{json .}}")).stdout.splitlines()]
    assert {r["Repository"] for r in rows_json} == {"app", "localhost:5000/team/app", "byid"}
    one_line(bx("images", "--format", "{{.Nope}}"), "--format: unknown field .Nope")
    one_line(bx("images", "--format", "{{range .}}x{{end}}"), "only {{.Field}} placeholders")
    one_line(bx("tag", "missing:1", "x"), "no such image: missing:1")
    one_line(bx("tag", "app:1", "Bad Name"), "invalid tag")


def test_rmi_untags_deletes_and_needs_force_for_an_id_with_several_tags(bx, make_context, cache):
    ctx = make_context(APP)
    image_id = ok(bx("build", "-q", "-t", "a", "-t", "b", str(ctx))).stdout.strip()
    blob = cache / "images" / "blobs" / (image_id[7:] + ".wasm")
    assert blob.is_file()
    one_line(bx("rmi", image_id[7:19]), "must be forced", "a:latest, b:latest")
    assert ok(bx("rmi", "a")).stdout == "Untagged: a:latest\n"
    assert blob.is_file(), "b still names it"
    ok(bx("tag", "b", "c"))
    r = ok(bx("rmi", "-f", image_id[7:19]))
    assert r.stdout == f"Untagged: b:latest\nUntagged: c:latest\nDeleted: {image_id}\n"
    assert not blob.exists()
    ok(bx("rmi", "-f", "gone"))  # -f: a missing image is no error, as docker rmi -f
    one_line(bx("rmi", "gone"), "no such image: gone")


def test_history_lists_instructions_and_layer_sizes(bx, make_context):
    ctx = make_context(APP + "ENV A=1\nWORKDIR /app\n", {"big.bin": b"x" * 50_000})
    ok(bx("build", "-q", "-t", "h", str(ctx)))
    lines = ok(bx("history", "h")).stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "BY", "SIZE", "COMMENT"]
    body = [line.split("   ") for line in lines[1:]]
    created_by = [[c.strip() for c in row if c.strip()][1] for row in body]
    assert created_by == ["WORKDIR /app", "ENV A=1", "RUN mkdir -p /data && echo made > /data/f", "COPY . /app/",
                          "FROM scratch"]
    copy_size = [[c.strip() for c in row if c.strip()][2] for row in body][3]
    assert copy_size.endswith("kB") and 50 < float(copy_size[:-2]) < 70
    assert lines[1].startswith(ok(bx("images", "-q", "h")).stdout.strip())
    assert all(line.startswith("<missing>") for line in lines[2:])
    rows = json.loads(ok(bx("history", "--json", "h")).stdout)
    image = imagefile.read(json.loads(ok(bx("images", "--json", "h")).stdout)[0]["path"])
    assert sum(r["size"] for r in rows) == sum(d.size for d in image.layers)


def test_save_and_load_round_trip_by_file_pipe_and_gzip(bx, make_context, tmp_path, cache):
    ctx = make_context(APP)
    image_id = ok(bx("build", "-q", "-t", "saved:1", "-t", "other", str(ctx))).stdout.strip()
    archive = tmp_path / "saved.tar"
    ok(bx("save", "-o", str(archive), "saved:1", "other"))
    data = archive.read_bytes()
    piped = subprocess.run([sys.executable, "-m", "boxer_py", "save", "saved:1", "other"], capture_output=True,
                           env={**os.environ, "BOXER_CACHE_DIR": str(cache)}, timeout=300)
    assert piped.returncode == 0 and piped.stdout == data, "the same archive on stdout, byte for byte"
    ok(bx("rmi", "-f", image_id))
    assert ok(bx("load", "-i", str(archive))).stdout == "Loaded image: other:latest\nLoaded image: saved:1\n"
    assert ok(bx("images", "-q", "--no-trunc")).stdout.strip() == image_id
    ok(bx("rmi", "-f", image_id))
    assert b"Loaded image: saved:1" in ok(bx("load", input=gzip.compress(data))).stdout
    assert json.loads(ok(bx("inspect", "saved:1")).stdout)[0]["Id"] == image_id
    one_line(bx("save", "-o", str(tmp_path / "x.tar"), "nothere"), "nothere: no such image")
    assert not (tmp_path / "x.tar").exists()
    one_line(bx("load", "-i", str(tmp_path / "missing.tar")), "missing.tar: no such file")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    one_line(bx("load", "-i", str(tmp_path / "junk.tar")), "junk.tar: not a tar archive")


def test_image_prune_and_system_prune_free_what_they_report(bx, make_context, cache):
    ctx = make_context(APP)
    ok(bx("build", "-q", "-t", "keep", str(ctx)))
    ctx2 = make_context(APP + "RUN echo more > /more\n", name="ctx2")
    dangling = ok(bx("build", "-q", str(ctx2))).stdout.strip()
    blob = cache / "images" / "blobs" / (dangling[7:] + ".wasm")
    size = blob.stat().st_size
    r = bx("image", "prune", input="n\n")
    assert r.returncode == 0 and "Are you sure you want to continue? [y/N]" in r.stdout and blob.exists()
    r = ok(bx("image", "prune", "-f"))
    assert r.stdout == (f"Deleted Images:\ndeleted: {dangling}\n\nTotal reclaimed space: {size / 1000:.3g}kB\n")
    assert not blob.exists() and ok(bx("images", "-q")).stdout.strip() != ""
    steps = cache / "steps"
    held = sum(p.stat().st_size for p in steps.iterdir())
    assert held > 0, "the RUN steps were cached"
    r = ok(bx("system", "prune", "-f"))
    assert r.stdout == f"Total reclaimed space: {held / 1000:.3g}kB\n"
    assert list(steps.iterdir()) == []
    assert ok(bx("images", "--format", "{{.Repository}}")).stdout == "keep\n", "a tagged image stays"
    r = ok(bx("system", "prune", "-a", "-f"))
    assert "untagged: keep:latest" in r.stdout and "Total reclaimed space:" in r.stdout
    assert ok(bx("images", "-q")).stdout == ""


def test_build_flags_docker_users_type(bx, make_context, tmp_path):
    ctx = make_context("FROM scratch\nCOPY a.txt /\n", {"a.txt": "a"})
    text = "FROM scratch\nCOPY a.txt /from-stdin.txt\n"
    r = ok(bx("build", "-q", "-t", "stdin", "-f", "-", str(ctx), input=text))
    layer_names = _names(r.stdout.strip(), bx)
    assert "from-stdin.txt" in layer_names
    r = ok(bx("build", "-q", "-t", "nocontext", "-", input="FROM scratch\nLABEL only=stdin\n"))
    [info] = json.loads(ok(bx("inspect", "nocontext")).stdout)
    assert info["Config"]["Labels"] == {"only": "stdin"}
    ok(bx("build", "-q", "-t", "labelled", "--label", "org.example.team=core", "--label", "empty=", str(ctx)))
    [info] = json.loads(ok(bx("inspect", "labelled")).stdout)
    assert info["Config"]["Labels"] == {"org.example.team": "core", "empty": ""}
    for platform in ("wasi/wasm", "wasip1/wasm"):
        ok(bx("build", "-q", "--platform", platform, "--pull", str(ctx)))
    one_line(bx("build", "-q", "--platform", "linux/amd64", str(ctx)), "--platform linux/amd64",
             "WebAssembly (wasi/wasm) images only")
    for url in ("https://github.com/docker/getting-started.git", "git@github.com:me/app.git",
                "https://example.com/context.tar.gz", "github.com/me/app"):
        one_line(bx("build", "-q", url), url, "local directory only")
    plain = ok(bx("build", "--progress=plain", "--no-cache", str(ctx)))
    assert "COPY a.txt /" in plain.stderr
    quiet = ok(bx("build", "--progress=quiet", str(ctx)))
    assert quiet.stderr == "" and quiet.stdout.startswith("sha256:")
    one_line(bx("build", "-q", "--label", "=x", str(ctx)), "--label =x: expected KEY=VALUE")


def _names(image_id: str, bx) -> set[str]:
    import io
    import tarfile

    path = json.loads(bx("images", "--json").stdout)
    image = imagefile.read(next(p["path"] for p in path if p["id"] == image_id))
    names = set()
    for d in image.layers:
        with tarfile.open(fileobj=io.BytesIO(image.layer(d))) as t:
            names.update(m.name.rsplit("/", 1)[-1] for m in t)
    return names


# --- build progress ----------------------------------------------------------------------


def step_lines(stderr: str, number: int) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"#{number} ")]


def test_progress_is_buildkits_plain_lines_header_first_output_as_it_comes(bx, make_context):
    ctx = make_context("FROM scratch\nCOPY a.txt /\nRUN echo one && echo two >&2 && echo kept > /f && "
                       "printf 'no newline'\nENV X=1\n", {"a.txt": "a"})
    r = ok(bx("build", "--progress=plain", str(ctx)))
    assert step_lines(r.stderr, 1) == ["#1 [1/3] FROM scratch", "#1 DONE 0.0s"]
    assert step_lines(r.stderr, 2)[0] == "#2 [2/3] COPY a.txt /"
    run = step_lines(r.stderr, 3)
    assert run[0] == "#3 [3/3] RUN echo one && echo two >&2 && echo kept > /f && printf 'no newline'"
    assert [line.split(" ", 2)[2] for line in run[1:4]] == ["one", "two", "no newline"]
    assert all(float(line.split()[1]) >= 0 for line in run[1:4]) and run[4].startswith("#3 DONE ")
    assert not any(line.endswith(" kept") for line in run), "what a command redirects to a file is not shown"
    assert step_lines(r.stderr, 4) == [], "ENV makes no step"
    again = ok(bx("build", "--progress=plain", str(ctx)))
    assert step_lines(again.stderr, 3) == [run[0], "#3 CACHED"]
    auto = ok(bx("build", str(ctx))).stderr
    assert "\x1b" not in auto and step_lines(auto, 3) == [run[0], "#3 CACHED"], "auto when piped is plain"


def test_pip_shows_what_it_downloads_on_a_terminal_and_stays_quiet_when_piped(tmp_path, make_context):
    import boxer_py
    from pyindex import Index, wheel

    index = Index({"tinypkg-1.0-py3-none-any.whl": wheel("tinypkg", "1.0")})
    try:
        ctx = make_context(f"FROM python:3.12\nRUN pip install --index-url {index.url}/simple/ tinypkg\n")
        cache = tmp_path / "cache"
        piped: list[str] = []
        boxer_py.build(ctx, None, cache_dir=cache, progress=piped.append, no_cache=True)
        lines: list[str] = []
        statuses: list[str] = []
        boxer_py.build(ctx, None, cache_dir=cache, progress=lines.append, status=statuses.append, no_cache=True)
    finally:
        index.close()
    assert any(s.startswith("Collecting tinypkg") for s in statuses), statuses
    assert any("tinypkg-1.0-py3-none-any.whl" in s for s in statuses), statuses

    def log(progress: list[str]) -> list[str]:  # the RUN's output lines, without their times
        return [line.split(" ", 2)[2] for line in progress if line.startswith("#2 ") and line.split(" ")[1][0].isdigit()]

    assert log(lines) == log(piped) and any("installed into" in x for x in log(lines)), (lines, piped)
    assert not any("Collecting" in x or "Downloading" in x for x in log(piped))


def test_tty_progress_on_a_terminal_draws_a_status_line(cache, make_context):
    import pty
    import select

    from pyindex import Index, wheel

    index = Index({"tinypkg-1.0-py3-none-any.whl": wheel("tinypkg", "1.0")})
    ctx = make_context(f"FROM python:3.12\nRUN pip install --index-url {index.url}/simple/ tinypkg\n")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "boxer_py", "build", str(ctx)], stdout=subprocess.PIPE,
                                stderr=slave, env={**os.environ, "BOXER_CACHE_DIR": str(cache)})
        os.close(slave)
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 300)
            assert ready, "the build went silent"
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side closed: the build ended
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=300) == 0
    finally:
        os.close(master)
        index.close()
    text = seen.decode(errors="replace")
    assert "#2 [2/2] RUN pip install" in text and "#2 DONE" in text
    assert "\r\x1b[K" in text and "Collecting tinypkg" in text, "the status line said what pip does"
