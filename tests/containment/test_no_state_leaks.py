"""No run can change what the next run sees, and a tampered image never runs."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading

import pytest
from hostile_world import DATA

import boxer_py
from boxer_py import ImageError

VANDAL = """
import os, shutil
open('/app/data.txt', 'w').write('vandalised')
os.remove('/app/main.py')
open('/tmp/left-behind', 'w').write('x')
open('/root/.profile', 'w').write('export EVIL=1')
open('/out/old-result.txt', 'w').write('stale')
os.environ['EVIL'] = '1'
for top in ('/usr', '/tmp'):
    shutil.rmtree(top, ignore_errors=True)
print('vandalised')
"""
LOOK = ("import os\nprint(sorted(os.listdir('/tmp')), sorted(os.listdir('/root')), sorted(os.listdir('/out')),"
        " 'EVIL' in os.environ, sorted(os.listdir('/usr/local/lib')))")
CLEAN = "[] [] [] False ['python3.12', 'python312.zip']\n"


def tree_digest(root) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            h.update(p.encode())
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def test_a_vandal_run_through_a_session_leaves_the_next_run_clean(hostile_box, launcher):
    cached = launcher.rootfs(hostile_box.image)
    before = tree_digest(cached)
    r = hostile_box.run_python(VANDAL)
    assert (r.exit_code, r.stdout) == (0, b"vandalised\n"), r.stderr
    assert r.files == {"/out/old-result.txt": b"stale"}
    assert hostile_box.run().stdout.decode() == DATA  # the image's CMD and file, as built
    r = hostile_box.run_python(LOOK)
    assert r.stdout.decode() == CLEAN, r.stderr
    assert r.files == {}
    assert tree_digest(cached) == before  # the shared unpacked image is never written by a run


def test_a_vandal_run_through_the_cli_leaves_the_next_run_clean(boxer, hostile_image):
    r = boxer("run", "--json", str(hostile_image), "python", "-c", VANDAL)
    assert (r.returncode, json.loads(r.stdout)["stdout"]) == (0, "vandalised\n"), r.stderr
    r = boxer("run", str(hostile_image))
    assert (r.returncode, r.stdout) == (0, DATA), r.stderr
    r = boxer("run", "--json", str(hostile_image), "python", "-c", LOOK)
    assert json.loads(r.stdout)["stdout"] == CLEAN


def test_concurrent_runs_never_see_each_others_files(hostile_box):
    writer = ("import time\nfor i in range(200):\n    open('/tmp/shared', 'w').write(str(i))\n"
              "    open('/app/data.txt', 'w').write('changed')\n")
    reader = ("import os\nseen = 0\nfor i in range(200):\n    seen += os.path.exists('/tmp/shared')\n"
              "    seen += open('/app/data.txt').read() != 'original image data\\n'\nprint(seen)")
    results = {}

    def go(name, code):
        results[name] = hostile_box.run_python(code, timeout=60)

    threads = [threading.Thread(target=go, args=(f"w{i}", writer)) for i in range(3)]
    threads += [threading.Thread(target=go, args=(f"r{i}", reader)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.exit_code == 0 for r in results.values()), {k: r.stderr for k, r in results.items()}
    assert [results[f"r{i}"].stdout for i in range(3)] == [b"0\n"] * 3


def test_huge_env_from_the_caller_is_passed_without_harm(hostile_box):
    big = "v" * (4 << 20)
    r = hostile_box.run_python("import os; print(len(os.environ['BIG']))", env={"BIG": big})
    assert (r.exit_code, r.stdout) == (0, b"4194304\n"), r.stderr


@pytest.fixture
def tampered(hostile_image, tmp_path):
    """A copy of the image with one byte flipped inside its first layer (size unchanged)."""
    data = bytearray(hostile_image.read_bytes())
    spot = data.find(b"original image data")
    assert spot > 0
    data[spot] ^= 0x20
    out = tmp_path / "tampered.wasm"
    out.write_bytes(bytes(data))
    return out


def test_a_tampered_image_is_refused_by_the_cli(boxer, tampered):
    r = boxer("run", str(tampered))
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.startswith("boxer: ") and "digest" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_a_tampered_image_is_refused_by_the_api(tampered, launcher):
    with pytest.raises(ImageError, match="digest"):
        boxer_py.Session(tampered, launcher=launcher)


def test_an_image_tampered_after_a_trusted_run_is_checked_again(boxer, hostile_image, tmp_path):
    image = tmp_path / "image.wasm"
    shutil.copy(hostile_image, image)
    assert boxer("run", str(image)).returncode == 0  # verified once; the verified stamp is recorded
    data = bytearray(image.read_bytes())
    data[data.find(b"original image data")] ^= 0x20
    with open(image, "r+b") as f:  # in place: same inode and size
        f.write(bytes(data))
    r = boxer("run", str(image))
    assert r.returncode == 1 and "digest" in r.stderr, r.stderr


def test_an_image_kept_by_a_launcher_is_read_again_once_tampered(hostile_image, launcher, tmp_path):
    """A launcher keeps each image it read (runtime/verified.Opened): the same file, changed in
    place after a run (same inode and size), is read again and refused, not the kept one run."""
    image = tmp_path / "image.wasm"
    shutil.copy(hostile_image, image)
    first = launcher.open(image)
    assert launcher.open(image) is first  # unchanged: kept
    data = bytearray(image.read_bytes())
    data[data.find(b"original image data")] ^= 0x20
    with open(image, "r+b") as f:
        f.write(bytes(data))
    with pytest.raises(ImageError, match="digest"):
        launcher.open(image)
