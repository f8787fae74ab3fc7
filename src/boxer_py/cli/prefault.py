"""The pages a served run makes its own, made so ahead in the next run's process.

A run forked by the run server (server.py) shares the server's memory copy-on-write, and its
first write to each page of it takes a fault and a copy: about 1,300 pages for a `python -c
pass`, a third of the run's own time. The next run, the same code on the same objects, writes
the same pages. So a run lists, before it ends, which pages of its writable private mappings are
present and mapped by it alone (/proc/self/pagemap: its copies, and pages it was first to
touch), and the spare forked for the next request makes those pages its own while it waits
(MADV_POPULATE_WRITE: faulted in writable, as if written, without changing a byte), stopping
as soon as its request comes. The run lists them while its guest's instance still exists, and
the pages of a file's mapping by their place in the file: so the guest's own memory, mapped
copy-on-write from its compiled module at another address in each process, is made ready too
once the spare has made its instance (ahead.py). Only this process's own memory is read or
touched, and only private writable mappings: nothing here can change what a run computes.
Where Linux lacks any of it (before 5.14), a run simply takes its faults. With it, a served
`python -c pass` took about 100 such faults before its guest started instead of about 1,200,
and its guest about 120 (half of them code it maps again, without a copy) instead of 240.

Read-only mappings are left alone: a forked process maps the code it runs again one fault at a
time (about 60 faults on the path of a `python -c pass`, each without a copy), but the pages a
run has mapped are thousands (the interpreter's and Wasmtime's code it ran at any time), which
would cost the spare more CPU than those faults cost the run. The server's own pages are left
alone too: what it writes while the spare lives is copied then (about 120 faults while it
reads and hands on a request), but the pages it holds alone before a fork are all those it
shared with the run that just ended, and copying them all again cost 13 ms of CPU per run.
"""
from __future__ import annotations

import array
import bisect
import ctypes
import os
import select
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_MAPPING = 256 << 20  # larger mappings (a guest's reserved memory) are not the server's heap
MAX_RANGES = 4096  # kept of a run's list (32 bytes each: the pipe it travels on is made big enough, server.py)
POPULATE_WRITE = 23  # MADV_POPULATE_WRITE, Linux 5.14
EVERY = 16  # ranges faulted in between two looks at whether the request came
# The top byte of a pagemap entry: bit 63 "present", bit 61 "a file's page (or shared)", bit 56
# "exclusively mapped" (Linux 4.2). A page of its own: present, mapped here alone, and not the
# file's (a page of a private file mapping that was only read is the file's, and need not be copied).
_MINE = bytes(0x31 if b & 0xA1 == 0x81 else 0x30 for b in range(256))

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


def mappings() -> list[Mapping]:
    """This process's private writable mappings, but for very large ones."""
    out = []
    try:
        with open("/proc/self/maps", "rb") as maps:
            for line in maps:
                fields = line.split(None, 5)
                if fields[1][1:2] != b"w" or fields[1][3:4] != b"p":
                    continue
                start, end = (int(x, 16) for x in fields[0].split(b"-"))
                major, minor = (int(x, 16) for x in fields[3].split(b":"))
                named = len(fields) > 5 and fields[5].startswith(b"/")
                if end - start <= MAX_MAPPING:
                    out.append(Mapping(start, end, int(fields[2], 16),
                                       (os.makedev(major, minor), int(fields[4])) if named else (0, 0)))
    except (OSError, ValueError, IndexError):
        return []
    return out


def owned() -> bytes:
    """The pages this process holds alone in its private writable mappings, as (device, inode,
    where, length) records of 8-byte integers, at most MAX_RANGES of them: `where` is the
    offset in the file of a file's mapping (another process may map it elsewhere, as a guest's
    memory image is), else the address (device and inode 0)."""
    records: list[int] = []
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return b""
    try:
        for m in mappings():
            first = m.start // PAGE
            try:
                entries = os.pread(fd, (m.end - m.start) // PAGE * 8, first * 8)
            except OSError:
                continue
            base = m.offset if m.file != (0, 0) else m.start
            mine = entries[7::8].translate(_MINE)
            at = mine.find(b"1")
            while at >= 0 and len(records) < 4 * MAX_RANGES:
                stop = mine.find(b"0", at)
                stop = len(mine) if stop < 0 else stop
                records += [*m.file, base + at * PAGE, (stop - at) * PAGE]
                at = mine.find(b"1", stop)
    finally:
        os.close(fd)
    return array.array("Q", records).tobytes()


def populate(ranges: bytes, waiting: int | None = None, files_only: bool = False) -> int:
    """Make the pages of `ranges` (from `owned` in an earlier run) this process's own, where they
    lie in its private writable mappings (of the same file, for a file's pages); stop once
    `waiting` (a descriptor) is readable. `files_only`: only the pages of files' mappings (a
    second pass, once a guest's memory is mapped). Returns how many bytes were faulted in."""
    if _madvise is None or not ranges:
        return 0
    ours: dict[tuple[int, int], list[tuple[int, Mapping]]] = {}  # by file: (where it starts, it)
    for m in mappings():
        ours.setdefault(m.file, []).append((m.offset if m.file != (0, 0) else m.start, m))
    for found in ours.values():
        found.sort(key=lambda x: x[0])
    starts = {key: [where for where, _ in found] for key, found in ours.items()}
    done = 0
    records = memoryview(ranges).cast("Q")
    for i in range(0, len(records) - 3, 4):
        if waiting is not None and i % (4 * EVERY) == 0 and select.select([waiting], [], [], 0)[0]:
            break
        device, inode, where, length = records[i:i + 4]
        if files_only and (device, inode) == (0, 0):
            continue
        found = ours.get((device, inode), [])
        at = max(0, bisect.bisect_right(starts.get((device, inode), []), where) - 1)
        while at < len(found) and found[at][0] < where + length:
            first, m = found[at]
            address = m.start + where - first  # where it is here
            low, high = max(m.start, address), min(m.end, address + length)
            if low < high and _madvise(low, high - low, POPULATE_WRITE) == 0:
                done += high - low
            at += 1
    return done
