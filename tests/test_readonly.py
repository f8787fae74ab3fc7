"""`boxer.readonly:DIR` labels: a directory served read-only from the cached image instead of
being copied into every run (bases use it for their runtime; any image may for its data)."""
from __future__ import annotations

import hashlib


def run_py(boxer, image, code):
    return boxer("run", str(image), "python", "-c", code)


def test_the_python_runtime_is_shared_read_only(build, boxer, cache_dir):
    image = build("FROM python:3.12\n")
    r = run_py(boxer, image, "print('ok')")
    assert r.stdout == "ok\n", r.stderr
    runtime = next((cache_dir / "rootfs").glob("*/usr/local/bin/python3.12"))
    before = hashlib.sha256(runtime.read_bytes()).hexdigest()
    # CPython's embedded stdlib hides /usr from the guest; writing there never reaches the cache.
    run_py(boxer, image, "open('/usr/local/bin/python3.12', 'wb').write(b'x')")
    assert hashlib.sha256(runtime.read_bytes()).hexdigest() == before


def test_an_image_may_share_its_data_read_only(build, boxer):
    image = build("FROM python:3.12\nCOPY data /data\nLABEL boxer.readonly:/data=\n",
                  {"data/big.csv": "a,b\n1,2\n"})
    code = ("print(open('/data/big.csv').read().splitlines()[1])\n"
            "for attempt in (lambda: open('/data/big.csv', 'w'), lambda: open('/data/new', 'w'),\n"
            "                lambda: __import__('os').symlink('/', '/data/up')):\n"
            "    try: attempt(); print('WROTE')\n"
            "    except OSError: print('refused')\n"
            "open('/elsewhere', 'w').write('fine'); print('rest writable')\n")
    r = run_py(boxer, image, code)
    assert r.stdout == "1,2\nrefused\nrefused\nrefused\nrest writable\n", r.stderr


def test_hostile_readonly_labels_are_ignored(build, boxer, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("HOST")
    image = build("FROM python:3.12\nCOPY data /data\nRUN ln -s / /link && ln -s ../.. /data/up\n"
                  f"LABEL boxer.readonly:/= boxer.readonly:/link= boxer.readonly:/data/up= "
                  f"boxer.readonly:/../../{tmp_path}= boxer.readonly:relative=\n",
                  {"data/f.txt": "x"})
    code = ("import os\n"
            "open('/root-write', 'w').write('ok')\n"       # / stays the run's writable copy
            "print(sorted(os.listdir('/')))\n"
            f"print(os.path.exists('{secret}'))\n")
    r = run_py(boxer, image, code)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "root-write" in lines[0] and lines[1] == "False"
    assert secret.read_text() == "HOST"


def test_a_mount_over_a_shared_directory_wins(build, boxer, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "f.txt").write_text("mounted")
    image = build("FROM python:3.12\nCOPY data /data\nLABEL boxer.readonly:/data=\n", {"data/f.txt": "image"})
    r = boxer("run", "-v", f"{mine}:/data", str(image), "python", "-c",
              "print(open('/data/f.txt').read()); open('/data/g', 'w').write('w')")
    assert r.stdout == "mounted\n", r.stderr
    assert (mine / "g").read_text() == "w"
