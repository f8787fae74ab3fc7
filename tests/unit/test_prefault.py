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
    listed = memoryview(ranges).cast("Q")  # (device, inode, where, length): the area is anonymous
    pages = {(listed[i + 2] + off - base) // prefault.PAGE for i in range(0, len(listed), 4)
             if listed[i] == listed[i + 1] == 0 for off in range(0, listed[i + 3], prefault.PAGE)}
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
    unmapped = b"".join(x.to_bytes(8, "little") for x in (0, 0, prefault.PAGE, 16 * prefault.PAGE,
                                                           0, 0, 1 << 46, 1 << 20,
                                                           7, 7, 0, 1 << 20))  # no such file
    assert prefault.populate(unmapped) == 0


def test_pages_of_a_file_are_found_again_where_the_next_process_maps_that_file(tmp_path):
    """A guest's memory is a private mapping of its compiled module's file, which the next
    process maps at another address: its pages are listed by their place in the file and made
    that process's own wherever the file is mapped there; a read-only mapping of the same file
    is left alone."""
    data = tmp_path / "image"
    data.write_bytes(bytes(range(256)) * (PAGES * prefault.PAGE // 256))

    def mapped() -> tuple[mmap.mmap, int, mmap.mmap, int]:
        """The file mapped privately writable and read-only, and where each is."""
        with open(data, "rb") as f:
            memory = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            code = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        inode = str(data.stat().st_ino)
        at = {}
        for line in open("/proc/self/maps"):
            fields = line.split()
            if len(fields) > 5 and fields[4] == inode:
                at[fields[1][:2]] = int(fields[0].split("-")[0], 16)
        return memory, at["rw"], code, at["r-"]

    def run() -> bytes:
        memory, _, code, _ = mapped()
        for page in WRITTEN:
            memory[page * prefault.PAGE] = memory[page * prefault.PAGE]
            assert code[page * prefault.PAGE + 1] == 1
        return prefault.owned()

    ranges = _in_child(run)

    def spare() -> bytes:
        padding = mmap.mmap(-1, 64 * prefault.PAGE)  # so that the file lands elsewhere than in `run`
        memory, at, code, code_at = mapped()
        prefault.populate(ranges)
        made = [_alone(at + page * prefault.PAGE) for page in range(PAGES)]
        mapped_code = any(_present(code_at + page * prefault.PAGE) for page in range(PAGES))
        same = memory[:] == data.read_bytes()
        padding.close()
        return bytes([all(made[p] for p in WRITTEN), any(made[p] for p in range(PAGES) if p not in WRITTEN),
                      mapped_code, same])

    assert tuple(_in_child(spare)) == (True, False, False, True)


def _present(address: int) -> bool:
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        return bool(int.from_bytes(os.pread(fd, 8, address // prefault.PAGE * 8), "little") >> 63 & 1)
    finally:
        os.close(fd)
