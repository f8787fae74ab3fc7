"""The pages a served run makes its own, made so ahead in the next run's process.

A run forked by the run server (server.py) shares the server's memory copy-on-write, and its
first write to each page of it takes a fault and a copy: about 1,300 pages for a `python -c
pass`, a third of the run's own time. The next run, the same code on the same objects, writes
the same pages. So a run lists, before it ends, which pages of its writable private mappings are
present and mapped by it alone (/proc/self/pagemap: its copies, and pages it was first to
touch), and the spare forked for the next request makes those pages its own while it waits
(MADV_POPULATE_WRITE: faulted in writable, as if written, without changing a byte), stopping
as soon as its request comes. Only this process's own memory is read or touched, and only
mappings that are private and writable: nothing here can change what a run computes. Where
Linux lacks any of it (before 5.14), a run simply takes its faults.
"""
from __future__ import annotations

import bisect
import ctypes
import os
import select

PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_MAPPING = 256 << 20  # larger mappings (a guest's reserved memory) are not the server's heap
MAX_RANGES = 1024  # kept of a run's list (16 bytes each), so that it fits the pipe it travels on (server.py)
POPULATE_WRITE = 23  # MADV_POPULATE_WRITE, Linux 5.14
EVERY = 16  # ranges faulted in between two looks at whether the request came
# The top byte of a pagemap entry: bit 63 "present", bit 56 "exclusively mapped" (Linux 4.2).
_MINE = bytes(0x31 if b & 0x81 == 0x81 else 0x30 for b in range(256))

_madvise = None
try:
    _madvise = ctypes.CDLL(None).madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
except (OSError, AttributeError):
    pass


def mappings() -> list[tuple[int, int]]:
    """This process's private writable mappings (start, end), but for very large ones."""
    out = []
    try:
        with open("/proc/self/maps", "rb") as maps:
            for line in maps:
                span, perms = line.split(None, 2)[:2]
                if perms[1:2] == b"w" and perms[3:4] == b"p":
                    start, end = (int(x, 16) for x in span.split(b"-"))
                    if end - start <= MAX_MAPPING:
                        out.append((start, end))
    except (OSError, ValueError):
        return []
    return out


def owned() -> bytes:
    """The ranges of pages that this process holds alone in its private writable mappings, as
    (address, length) pairs of 8-byte integers, at most MAX_RANGES of them."""
    ranges: list[int] = []
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return b""
    try:
        for start, end in mappings():
            first = start // PAGE
            try:
                entries = os.pread(fd, (end - start) // PAGE * 8, first * 8)
            except OSError:
                continue
            mine = entries[7::8].translate(_MINE)
            at = mine.find(b"1")
            while at >= 0 and len(ranges) < 2 * MAX_RANGES:
                stop = mine.find(b"0", at)
                stop = len(mine) if stop < 0 else stop
                ranges += [(first + at) * PAGE, (stop - at) * PAGE]
                at = mine.find(b"1", stop)
    finally:
        os.close(fd)
    return b"".join(x.to_bytes(8, "little") for x in ranges)


def populate(ranges: bytes, waiting: int | None = None) -> int:
    """Make the pages of `ranges` (from `owned` in an earlier run) this process's own, where they
    lie in its private writable mappings; stop once `waiting` (a descriptor) is readable.
    Returns how many bytes were faulted in."""
    if _madvise is None or not ranges:
        return 0
    ours = mappings()
    starts = [low for low, _ in ours]
    done = 0
    pairs = memoryview(ranges).cast("Q")
    for i in range(0, len(pairs) - 1, 2):
        if waiting is not None and i % (2 * EVERY) == 0 and select.select([waiting], [], [], 0)[0]:
            break
        start, end = pairs[i], pairs[i] + pairs[i + 1]
        at = max(0, bisect.bisect_right(starts, start) - 1)
        while at < len(ours) and ours[at][0] < end:
            low, high = max(ours[at][0], start), min(ours[at][1], end)
            if low < high and _madvise(low, high - low, POPULATE_WRITE) == 0:
                done += high - low
            at += 1
    return done
