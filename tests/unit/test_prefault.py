"""A served run lists the pages of its server's memory it made its own, and the process forked
for the next run makes the same pages its own before its request comes (cli/prefault.py): on
real forked processes, reading /proc/self/pagemap as the kernel reports it."""
from __future__ import annotations

import ctypes
import mmap
import os

import pytest

from boxer_py.cli import prefault

PAGES = 64
WRITTEN = range(8, 20)

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/pagemap"), reason="Linux's pagemap")


def _alone(address: int) -> bool:
    """Whether the page at `address` is present and mapped by this process alone."""
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        entry = int.from_bytes(os.pread(fd, 8, address // prefault.PAGE * 8), "little")
    finally:
        os.close(fd)
    return bool(entry >> 63 & 1) and bool(entry >> 56 & 1)


def _in_child(work) -> bytes:
    """What `work()` returns in a forked process (its exit status says if it raised)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            os.write(write, work())
        except BaseException:  # noqa: BLE001 - reported as the status
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    return data


def test_the_next_process_makes_the_pages_the_last_one_wrote_its_own_and_they_keep_their_bytes():
    area = mmap.mmap(-1, PAGES * prefault.PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for page in range(PAGES):
        area[page * prefault.PAGE:(page + 1) * prefault.PAGE] = bytes([page]) * prefault.PAGE
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))

    def run() -> bytes:
        for page in WRITTEN:
            area[page * prefault.PAGE] = page  # the same byte: a write all the same
        return prefault.owned()

    ranges = _in_child(run)
    listed = memoryview(ranges).cast("Q")
    pages = {(listed[i] + off - base) // prefault.PAGE for i in range(0, len(listed), 2)
             for off in range(0, listed[i + 1], prefault.PAGE)}
    assert set(WRITTEN) <= pages  # and nothing else of the area, which that process only read
    assert not pages & (set(range(PAGES)) - set(WRITTEN))

    def spare() -> bytes:
        before = [_alone(base + page * prefault.PAGE) for page in range(PAGES)]
        prefault.populate(ranges)
        after = [_alone(base + page * prefault.PAGE) for page in range(PAGES)]
        same = all(area[page * prefault.PAGE:(page + 1) * prefault.PAGE] == bytes([page]) * prefault.PAGE
                   for page in range(PAGES))
        return bytes([any(before), all(after[p] for p in WRITTEN), any(after[p] for p in range(PAGES) if p not in WRITTEN),
                      same])

    shared, made_own, others, same = _in_child(spare)
    assert (shared, made_own, others, same) == (False, True, False, True)
    area.close()


def test_a_list_from_elsewhere_touches_nothing_outside_this_processs_private_writable_memory():
    unmapped = b"".join(x.to_bytes(8, "little") for x in (prefault.PAGE, 16 * prefault.PAGE, 1 << 46, 1 << 20))
    assert prefault.populate(unmapped) == 0
