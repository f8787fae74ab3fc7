"""A `boxer run -t` guest against its window-size preopen (runtime/winsize.py): `/.boxer/tty`
is read-only to it, holds only `size`, and nothing it does there stops the host from
following the window or reaches the host's directory, which is gone after the run."""
from __future__ import annotations

import os
import sys

import pexpect

ATTEMPTS = r"""
import errno, os, time
def attempt(what, call):
    try:
        call()
        print(what, 'done')
    except OSError as e:
        print(what, errno.errorcode[e.errno])
T = os.environ['BOXER_TTY']
print('listing', T, sorted(os.listdir('/.boxer/tty')))
d = os.open('/.boxer/tty', os.O_RDONLY)
for what, call in [('write', lambda: open(T, 'w')), ('append', lambda: open(T, 'a')),
                   ('create', lambda: open('/.boxer/tty/x', 'w')),
                   ('dirfd-create', lambda: os.open('y', os.O_WRONLY | os.O_CREAT, dir_fd=d)),
                   ('unlink', lambda: os.unlink(T)), ('rename-out', lambda: os.rename(T, '/tmp/s')),
                   ('rename-in', lambda: (open('/tmp/fake', 'w').write('1 1'), os.rename('/tmp/fake', T))),
                   ('symlink', lambda: os.symlink('size', '/.boxer/tty/l')),
                   ('mkdir', lambda: os.mkdir('/.boxer/tty/d')), ('utime', lambda: os.utime(T)),
                   ('rmdir', lambda: os.rmdir('/.boxer/tty'))]:
    attempt(what, call)
os.rename('/.boxer', '/moved')  # its own layer's directory: the preopen stays where it was
print('after', sorted(os.listdir('/.boxer/tty')), tuple(os.get_terminal_size()), flush=True)
while os.get_terminal_size() == (80, 24):
    time.sleep(0.05)
print('followed', tuple(os.get_terminal_size()), flush=True)
"""


def test_the_window_size_preopen_is_read_only_and_still_followed(cache_dir, hello_image):
    env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0", "TERM": "xterm"}
    child = pexpect.spawn(sys.executable, ["-m", "boxer_py", "run", "-t", str(hello_image), "python", "-c", ATTEMPTS],
                          env=env, encoding="utf-8", timeout=120, dimensions=(24, 80))
    child.expect_exact("after ['size'] (80, 24)")
    said = [line.split() for line in child.before.replace("\r", "").splitlines() if line.strip()]
    said = said[[words[:1] for words in said].index(["listing"]):]  # after boxer's own progress lines, if any
    assert said[0] == ["listing", "/.boxer/tty/size", "['size']"], said
    assert {what: errno for what, errno in said[1:]} == {
        what: "EROFS" for what in ("write", "append", "create", "dirfd-create", "unlink", "rename-out", "rename-in",
                                   "symlink", "mkdir", "utime", "rmdir")}, said
    child.setwinsize(40, 120)
    child.expect_exact("followed (120, 40)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    runs = cache_dir / "runs"
    assert not [p for p in (runs.iterdir() if runs.is_dir() else ()) if ".tty-" in p.name]
