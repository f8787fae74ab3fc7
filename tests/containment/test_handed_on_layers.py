"""A run whose guest only read its writable layer hands it on to the next run; any other
change, however well hidden, makes the next run get a fresh copy. Either way the next run
sees exactly what a first run sees."""
from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
from hostile_world import DATA

import boxer_py
from boxer_py.runtime.launcher import Launcher, Limits, RunSpec

# Every entry of the writable layer as the guest sees it: type, size, link count,
# modification time (but of what each run makes), content or link target. Not inodes nor
# change and access times: a fresh copy has new ones, and a guest sets the access times of
# what it reads before it could look (the host's view of them is checked below).
PROBE = r"""
import hashlib, json, os, stat
seen = {}
def look(path):
    st = os.lstat(path)
    what = [stat.filemode(st.st_mode), st.st_size, st.st_nlink]
    if path not in ('/', '/out'):  # the run made /out in / just now
        what.append(st.st_mtime_ns)
    if stat.S_ISLNK(st.st_mode):
        what.append(os.readlink(path))
    elif stat.S_ISREG(st.st_mode):
        what.append(hashlib.sha256(open(path, 'rb').read()).hexdigest())
    seen[path] = what
    if stat.S_ISDIR(st.st_mode) and path not in ('/usr/local/bin', '/usr/local/lib'):
        for name in os.listdir(path):
            look(os.path.join(path, name))
look('/')
print(json.dumps(seen))
"""

HIDE_TIMES = "st = os.stat({path!r})\n{change}\nos.utime({path!r}, ns=(st.st_atime_ns, st.st_mtime_ns))\n"

WRITERS = {
    "a new file in /tmp": "open('/tmp/left', 'w').write('x')",
    "a result in /out": "open('/out/result.txt', 'w').write('stale')",
    "same-size rewrite, times set back": HIDE_TIMES.format(
        path="/app/data.txt", change=f"open('/app/data.txt', 'w').write({DATA.upper()!r})"),
    "truncated and rewritten as it was, times set back": HIDE_TIMES.format(
        path="/app/data.txt", change=f"open('/app/data.txt', 'w').close()\nopen('/app/data.txt', 'w').write({DATA!r})"),
    "removed and made again, times set back": HIDE_TIMES.format(
        path="/app/main.py", change="d = open('/app/main.py').read(); os.remove('/app/main.py'); "
                                    "open('/app/main.py', 'w').write(d)"),
    "renamed away and back": "os.rename('/app/data.txt', '/app/x'); os.rename('/app/x', '/app/data.txt')",
    "a directory made and removed": "os.mkdir('/tmp/d'); os.rmdir('/tmp/d')",
    "a symlink made and removed": "os.symlink('../app/main.py', '/tmp/l'); os.remove('/tmp/l')",
    "a hard link made and removed": "os.link('/app/main.py', '/app/h'); os.remove('/app/h')",
    "a directory's times changed": "os.utime('/tmp', ns=(0, 0))",
    "a file's times changed": "os.utime('/app/data.txt', ns=(12345, 67890))",
    "a directory replaced by a symlink": "import shutil; shutil.rmtree('/tmp'); os.symlink('app', '/tmp')",
    "a sparse giant file, removed": "f = open('/tmp/big', 'wb'); f.seek(1 << 30); f.write(b'x'); f.close(); "
                                    "os.remove('/tmp/big')",
}


@pytest.fixture
def fresh(hostile_image, cache_dir):
    """A Session with a launcher of its own (nothing handed on from other tests' runs)."""
    launcher = Launcher(cache_dir)
    yield boxer_py.Session(hostile_image, launcher=launcher)
    launcher.close()


def probe(box: boxer_py.Session) -> tuple[dict, str]:
    """(the layer's entries, the name of the host directory that held it)."""
    held = []
    box.launcher.settle()  # the layers of runs before gone from runs/
    spec = RunSpec(("python", "-c", PROBE), limits=Limits(timeout=60),
                   on_start=lambda: held.extend(os.listdir(box.launcher.runs)))
    r = box.launcher.run(box.image, spec)
    assert r.exit_code == 0, r.stderr
    assert len(held) == 1
    return json.loads(r.stdout), held[0]


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_run_that_changed_anything_is_followed_by_a_fresh_copy(fresh, name):
    first, layer = probe(fresh)
    r = fresh.run_python("import os\n" + WRITERS[name] + "\nprint('done')", timeout=60)
    assert (r.exit_code, r.stdout) == (0, b"done\n"), r.stderr
    after, new_layer = probe(fresh)
    assert new_layer != layer  # not the layer the writer had
    assert after == first


def host_view(layer: Path) -> dict[str, tuple]:
    """Each entry's type, size, access and modification times, read on the host without
    setting any access time (directories opened with O_NOATIME, entries lstat'ed)."""
    view, todo = {}, [layer]
    while todo:
        path = todo.pop()
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOATIME)
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        for name in names:
            st = os.lstat(path / name)
            view[str(path / name)] = (st.st_mode, st.st_size, st.st_atime_ns, st.st_mtime_ns)
            if stat.S_ISDIR(st.st_mode):
                todo.append(path / name)
    return view


def test_a_run_that_only_read_hands_its_layer_on_as_it_found_it(fresh):
    first, layer = probe(fresh)
    second, again = probe(fresh)  # the probe itself reads every file and lists every directory
    assert (second, again) == (first, layer)  # the same layer, handed on
    kept = fresh.launcher.workspaces.spares / layer / "rootfs"
    before = host_view(kept)
    reader = ("import os, json, csv, statistics\n"
              "print(open('/app/data.txt').read(), sorted(os.listdir('/app')), os.listdir('/tmp'))")
    r = fresh.run_python(reader)
    assert r.stdout.decode() == f"{DATA} ['data.txt', 'main.py'] []\n"
    fresh.launcher.settle()
    assert host_view(kept) == before  # the access times the reader set are set back
    assert probe(fresh) == (first, layer)


def test_a_timed_out_or_over_quota_writer_is_followed_by_a_fresh_copy(fresh):
    first, layer = probe(fresh)
    r = fresh.run_python("open('/tmp/slow', 'w').write('x')\nwhile True: pass", timeout=1)
    assert r.timed_out
    assert probe(fresh)[0] == first
    r = fresh.run_python("open('/tmp/big', 'wb').write(b'x' * (8 << 20))", disk="1m", timeout=60)
    assert r.disk_full
    after, new_layer = probe(fresh)
    assert after == first and new_layer != layer


def test_a_layer_goes_only_to_runs_that_add_the_same_directories(fresh, tmp_path):
    """The launcher makes the workdir, /out and mount points in the layer: a layer made for
    other ones is not handed to a run that would not have them."""
    first, _ = probe(fresh)
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    r = fresh.run_python("open('/data/through-the-mount', 'w').write('x')", workdir="/srv/work",
                         mounts=[f"{mounted}:/data"], output_dir="/results")
    assert r.exit_code == 0, r.stderr
    assert (mounted / "through-the-mount").read_text() == "x"  # the layer itself was untouched
    assert probe(fresh)[0] == first  # no /srv/work, /data nor /results here
    r = fresh.run_python("import os\nprint(os.getcwd(), os.listdir('/data'), os.listdir('/results'))",
                         workdir="/srv/work", mounts=[f"{mounted}:/data"], output_dir="/results")
    assert r.stdout == b"/srv/work ['through-the-mount'] []\n", r.stderr


def test_runs_side_by_side_never_see_what_another_left(fresh):
    first, _ = probe(fresh)
    failures = []

    def go(i: int) -> None:
        for n in range(6):
            code = "open('/tmp/mine', 'w').write('x')\nopen('/app/data.txt', 'a').write('y')" if (i + n) % 2 else PROBE
            r = fresh.run_python(code, timeout=60)
            if r.exit_code != 0:
                failures.append(r.stderr)
            elif code == PROBE and (tree := json.loads(r.stdout)) != first:
                failures.append([k for k in set(tree) | set(first) if tree.get(k) != first.get(k)][:4])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_layers_kept_are_bounded(fresh):
    """A caller with a new workdir for every run does not make the kept layers pile up."""
    from boxer_py.runtime.workspace import SPARES_PER_IMAGE, UNTOUCHED_KEPT

    spares = fresh.launcher.workspaces.spares
    spares.mkdir(parents=True, exist_ok=True)
    others = set(os.listdir(spares))  # the cache dir is shared: other launchers' spares may be there
    for i in range(UNTOUCHED_KEPT + 6):
        r = fresh.run_python("import os; print(os.getcwd())", workdir=f"/job/{i}")
        assert r.stdout == f"/job/{i}\n".encode(), r.stderr
    fresh.launcher.settle()
    assert len(set(os.listdir(spares)) - others) <= UNTOUCHED_KEPT + SPARES_PER_IMAGE
    assert os.listdir(fresh.launcher.runs) == []
    fresh.launcher.close()
    assert set(os.listdir(spares)) <= others
