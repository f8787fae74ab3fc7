"""A guest against its single-file mounts (`-v FILE:GUEST[:ro]`): the file is a copy in the
run's layer pinned by its identity (runtime/wasi/readonly.py), so no path the guest can make
(a link, a hard link, `..`, a directory descriptor, a renamed parent) writes a `:ro` file or
removes or replaces either kind, and a writable one is written back only as the file the
guest was given, never past --disk."""
from __future__ import annotations

import pytest

ATTEMPTS = """import errno, os
def attempt(what, call):
    try:
        call()
        print(what, 'done')
    except OSError as e:
        print(what, errno.errorcode[e.errno])
F = '/app/config.yaml'
os.symlink('../app/config.yaml', '/tmp/link')
open('/tmp/other', 'w').write('replaced')
d = os.open('/app', os.O_RDONLY)
for what, call in [
        ('write', lambda: open(F, 'w')), ('append', lambda: open(F, 'a')), ('r+', lambda: open(F, 'r+')),
        ('truncate', lambda: os.truncate(F, 0)), ('utime', lambda: os.utime(F)),
        ('utime-through-fd', lambda: os.utime(os.open(F, os.O_RDONLY))),
        ('through-symlink', lambda: open('/tmp/link', 'w').write('via link')),
        ('through-dirfd', lambda: os.write(os.open('config.yaml', os.O_WRONLY | os.O_TRUNC, dir_fd=d), b'fd')),
        ('through-dotdot', lambda: open('/app/../app/./config.yaml', 'a').write('dots')),
        ('hard-link', lambda: os.link(F, '/tmp/hard')),
        ('unlink', lambda: os.unlink(F)), ('rename-away', lambda: os.rename(F, '/tmp/moved')),
        ('rename-over', lambda: os.rename('/tmp/other', F)), ('replace-over', lambda: os.replace('/tmp/other', F)),
        ('symlink-over', lambda: (os.unlink(F), os.symlink('/tmp/other', F)))]:
    attempt(what, call)
os.rename('/app', '/moved')  # the file goes with its directory, and stays what it is
attempt('after-moving-its-directory', lambda: open('/moved/config.yaml', 'a').write('moved'))
print(repr(open('/moved/config.yaml').read()))
"""

REFUSED = ["write", "append", "r+", "truncate", "utime", "utime-through-fd", "through-symlink", "through-dirfd",
           "through-dotdot"]
REMOVALS = ["unlink", "rename-away", "rename-over", "replace-over", "symlink-over"]


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_a_read_only_file_mount_cannot_be_written_replaced_or_removed(build, boxer, tmp_path, version):
    image = build(f"FROM python:{version}\nRUN mkdir /app\n")
    config = tmp_path / "config.yaml"
    config.write_text("debug: true\n")
    r = boxer("run", "-v", f"{config}:/app/config.yaml:ro", str(image), "python", "-c", ATTEMPTS)
    assert r.returncode == 0, r.stderr
    said = dict(line.split(" ", 1) for line in r.stdout.splitlines()[:-1])
    assert said == {**{w: "EROFS" for w in REFUSED + REMOVALS + ["after-moving-its-directory"]},
                    "hard-link": "EXDEV"}, r.stdout
    assert r.stdout.splitlines()[-1] == repr("debug: true\n")
    assert config.read_text() == "debug: true\n"


def test_a_writable_file_mount_takes_writes_but_cannot_be_replaced(build, boxer, tmp_path):
    """Writes by every path reach the host file; removing or replacing it is EBUSY, as for
    a file bind-mounted into a container, so what is written back is the file given."""
    image = build("FROM python:3.13\nRUN mkdir /app\n")
    config = tmp_path / "config.yaml"
    config.write_text("debug: true\n")
    r = boxer("run", "-v", f"{config}:/app/config.yaml", str(image), "python", "-c", ATTEMPTS)
    assert r.returncode == 0, r.stderr
    said = dict(line.split(" ", 1) for line in r.stdout.splitlines()[:-1])
    assert said == {**{w: "done" for w in REFUSED + ["after-moving-its-directory"]},
                    **{w: "EBUSY" for w in REMOVALS}, "hard-link": "EXDEV"}, r.stdout
    assert config.read_text() == "fddotsmoved" == eval(r.stdout.splitlines()[-1])


def test_a_writable_file_mount_grown_past_the_disk_limit_is_not_written_back(build, boxer, tmp_path):
    image = build("FROM python:3.13\nRUN mkdir /app\n")
    config = tmp_path / "config.yaml"
    config.write_text("debug: true\n")
    grow = "f = open('/app/config.yaml', 'a')\nwhile True:\n    f.write('x' * 65536); f.flush()\n"
    r = boxer("run", "--disk", "4m", "-v", f"{config}:/app/config.yaml:rw", str(image), "python", "-c", grow)
    assert r.returncode == 134, r.stderr
    assert r.stderr.endswith(f"-v {config}:/app/config.yaml: not written back: the run wrote past --disk\n"), r.stderr
    assert config.read_text() == "debug: true\n"
    r = boxer("run", "--disk", "4m", "-v", f"{config}:/app/config.yaml:ro", str(image), "python", "-c", grow)
    assert r.returncode == 1 and "[Errno 69] Read-only file system" in r.stderr, r.stderr
    assert config.read_text() == "debug: true\n"


def test_a_file_mount_written_back_is_the_host_file_itself_never_a_link(build, boxer, tmp_path):
    """The host path given with -v is written in place (a bind mount's inode), from the copy
    the guest was given: it could not unlink it to leave a link to another file there."""
    image = build("FROM python:3.13\nRUN mkdir /app\n")
    config, elsewhere = tmp_path / "config.yaml", tmp_path / "elsewhere"
    config.write_text("debug: true\n")
    elsewhere.write_text("untouched")
    inode = config.stat().st_ino
    code = ("import os\nopen('/app/config.yaml', 'w').write('new')\n"
            "try:\n    os.unlink('/app/config.yaml')\nexcept OSError as e:\n    print(e.errno)\n")
    r = boxer("run", "-v", f"{config}:/app/config.yaml", str(image), "python", "-c", code)
    assert (r.returncode, r.stdout) == (0, "10\n"), r.stderr
    assert config.read_text() == "new" and config.stat().st_ino == inode and elsewhere.read_text() == "untouched"
