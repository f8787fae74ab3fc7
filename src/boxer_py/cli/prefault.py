"""The pages a served run makes its own, made so ahead in the next run's process.

A run forked by the run server (server.py) shares the server's memory copy-on-write, and its
first write to each page of it takes a fault and a copy: about 1,300 pages for a `python -c
pass`, a third of the run's own time. The next run, the same code on the same objects, writes
the same pages. So a run lists, before it ends, which pages of its writable private mappings are
present and mapped by it alone (/proc/self/pagemap: its copies, and pages it was first to
touch), and the spare forked for the next request makes those pages its own while it waits
(MADV_POPULATE_WRITE: faulted in writable, as if written, without changing a byte), stopping
as soon as its request comes. The same goes for the pages of read-only file mappings (the
guest's compiled code, Wasmtime's): a forked process maps them again one fault at a time, so
the run lists those it has mapped and the spare maps them ahead (MADV_POPULATE_READ). The run
lists them while its guest's instance still exists, so the guest's own memory (mapped
copy-on-write from its compiled module) is made ready too, in a spare that made the same
instance at the same address (ahead.py). Only this process's own memory is read or touched, and
only private mappings: nothing here can change what a run computes. Where Linux lacks any of it
(before 5.14), a run simply takes its faults.
"""
from __future__ import annotations

import bisect
import ctypes
import os
import select
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_MAPPING = 256 << 20  # larger mappings (a guest's reserved memory) are not the server's heap
MAX_RANGES = 4096  # kept of a run's list (40 bytes each: the pipe it travels on is made big enough, server.py)
POPULATE_READ, POPULATE_WRITE = 22, 23  # MADV_POPULATE_READ/WRITE, Linux 5.14
EVERY = 16  # ranges faulted in between two looks at whether the request came
# The top byte of a pagemap entry: bit 63 "present", bit 56 "exclusively mapped" (Linux 4.2).
_MINE = bytes(0x31 if b & 0x81 == 0x81 else 0x30 for b in range(256))
_MAPPED = bytes(0x31 if b & 0x80 else 0x30 for b in range(256))

_madvise = None
try:
    _madvise = ctypes.CDLL(None).madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
except (OSError, AttributeError):
    pass


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int  # in its file
    file: tuple[int, int]  # (device, inode); (0, 0) for anonymous memory


def mappings(advice: int) -> list[Mapping]:
    """This process's mappings that `advice` applies to, but for very large ones: the private
    writable ones (POPULATE_WRITE), or the private read-only ones of a file (POPULATE_READ:
    code, which a forked process maps anew page by page as it runs it)."""
    out = []
    try:
        with open("/proc/self/maps", "rb") as maps:
            for line in maps:
                fields = line.split(None, 5)
                perms, named = fields[1], len(fields) > 5 and fields[5].startswith(b"/")
                if perms[3:4] != b"p" or (perms[1:2] == b"w") != (advice == POPULATE_WRITE):
                    continue
                if advice == POPULATE_READ and not named:
                    continue
                start, end = (int(x, 16) for x in fields[0].split(b"-"))
                major, minor = (int(x, 16) for x in fields[3].split(b":"))
                if end - start <= MAX_MAPPING:
                    out.append(Mapping(start, end, int(fields[2], 16),
                                       (os.makedev(major, minor), int(fields[4])) if named else (0, 0)))
    except (OSError, ValueError, IndexError):
        return []
    return out


def owned(code: bool = True) -> bytes:
    """What this process made its own, as (device, inode, where, length, advice) records of
    8-byte integers, at most MAX_RANGES of them: the pages it holds alone in its private
    writable mappings (POPULATE_WRITE), then (with `code`) the pages of read-only file mappings
    it has mapped (POPULATE_READ). `where` is the offset in the file of a file's mapping
    (another process may map it elsewhere, as a guest's memory image is), else the address."""
    records: list[int] = []
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return b""
    try:
        for advice, table in ((POPULATE_WRITE, _MINE), (POPULATE_READ, _MAPPED))[:2 if code else 1]:
            for m in mappings(advice):
                first = m.start // PAGE
                try:
                    entries = os.pread(fd, (m.end - m.start) // PAGE * 8, first * 8)
                except OSError:
                    continue
                base = m.offset if m.file != (0, 0) else m.start
                mine = entries[7::8].translate(table)
                at = mine.find(b"1")
                while at >= 0 and len(records) < 5 * MAX_RANGES:
                    stop = mine.find(b"0", at)
                    stop = len(mine) if stop < 0 else stop
                    records += [*m.file, base + at * PAGE, (stop - at) * PAGE, advice]
                    at = mine.find(b"1", stop)
    finally:
        os.close(fd)
    return b"".join(x.to_bytes(8, "little") for x in records)


def populate(ranges: bytes, waiting: int | None = None) -> int:
    """Make the pages of `ranges` (from `owned` in an earlier run) this process's own, as they
    were there, where they lie in mappings of the same kind and file here; stop once `waiting`
    (a descriptor) is readable. Returns how many bytes were faulted in."""
    if _madvise is None or not ranges:
        return 0
    ours: dict[tuple[int, int, int], list[tuple[int, Mapping]]] = {}  # by kind and file: (where it starts, it)
    for advice in (POPULATE_WRITE, POPULATE_READ):
        for m in mappings(advice):
            ours.setdefault((advice, *m.file), []).append((m.offset if m.file != (0, 0) else m.start, m))
    starts = {key: [where for where, _ in sorted(found, key=lambda x: x[0])] for key, found in ours.items()}
    for found in ours.values():
        found.sort(key=lambda x: x[0])
    done = 0
    records = memoryview(ranges).cast("Q")
    for i in range(0, len(records) - 4, 5):
        if waiting is not None and i % (5 * EVERY) == 0 and select.select([waiting], [], [], 0)[0]:
            break
        device, inode, where, length, advice = records[i:i + 5]
        found = ours.get((advice, device, inode), [])
        at = max(0, bisect.bisect_right(starts.get((advice, device, inode), []), where) - 1)
        while at < len(found) and found[at][0] < where + length:
            first, m = found[at]
            address = m.start + where - first  # where it is here
            low, high = max(m.start, address), min(m.end, address + length)
            if low < high and _madvise(low, high - low, advice) == 0:
                done += high - low
            at += 1
    return done
