"""Progress lines on a terminal and silence when piped (issue 20): the elapsed-time line of a long
step (compiling, unpacking, loading, storing) and the per-blob lines of push and pull."""
from __future__ import annotations

import io
import os
import select

from boxer_py.cli.progress import TransferProgress, bar
from boxer_py.image.progress import Progress
from terminal_screen import screen


def test_a_long_step_shows_its_elapsed_time_on_a_terminal():
    master, slave = os.openpty()
    try:
        with Progress("unpacking image 0123456789ab (40 MB, once per image)", quiet=0, fd=slave):
            assert select.select([master], [], [], 60)[0], "the line is drawn while the step runs"
        os.close(slave)
        raw = b""
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:   # the terminal is closed: all of it was read
                break
            if not chunk:
                break
            raw += chunk
    finally:
        os.close(master)
    shown = screen(raw.decode())
    assert len(shown) == 1 and shown[0].startswith("boxer: unpacking image 0123456789ab (40 MB, once per image)... done in ")


def test_a_long_step_says_nothing_into_a_pipe():
    read, write = os.pipe()
    try:
        with Progress("loading archive.tar (900 MB)", quiet=0, fd=write):
            pass
        os.close(write)
        assert os.read(read, 4096) == b""
    finally:
        os.close(read)


def test_blob_lines_are_redrawn_in_place_and_messages_go_above_them():
    out = io.StringIO()
    shown = TransferProgress(out, tty=True)
    shown.line("The push refers to repository [localhost:5000/team/app]")
    shown.blob("aaaaaaaaaaaa", "Pushing", 0, 45_600_000)
    shown.blob("bbbbbbbbbbbb", "Layer already exists", 10, 10)
    for sent in range(0, 45_600_001, 100_000):   # at most ten redraws a second, never a line each
        shown.blob("aaaaaaaaaaaa", "Pushing", sent, 45_600_000)
    shown.line("aaaaaaaaaaaa: upload: PATCH answered 500; retrying in 0.2s")   # redraws the blobs below it
    lines = screen(out.getvalue())
    assert lines[:2] == ["The push refers to repository [localhost:5000/team/app]",
                         "aaaaaaaaaaaa: upload: PATCH answered 500; retrying in 0.2s"]
    assert lines[2].startswith("aaaaaaaaaaaa: Pushing [===") and lines[2].endswith("=>]  45.6MB/45.6MB")
    assert len(lines[2]) < 80 and lines[3:] == ["bbbbbbbbbbbb: Layer already exists"]   # fits 80 columns, unwrapped
    assert bar(12_300_000, 45_600_000) == "[" + "=" * 12 + ">" + " " * 37 + "]  12.3MB/45.6MB"
    assert bar(45_600_000, 45_600_000) == "[" + "=" * 49 + ">]  45.6MB/45.6MB"
    shown.blob("aaaaaaaaaaaa", "Pushed", 45_600_000, 45_600_000)
    shown.line("1: digest: sha256:abc size: 1442")
    assert screen(out.getvalue())[-3:] == ["aaaaaaaaaaaa: Pushed", "bbbbbbbbbbbb: Layer already exists",
                                           "1: digest: sha256:abc size: 1442"]


def test_piped_each_blob_says_its_last_state_once():
    out = io.StringIO()
    shown = TransferProgress(out, tty=False)
    shown.line("1: Pulling from team/app")
    for got in range(0, 30_000_001, 256 << 10):
        shown.blob("aaaaaaaaaaaa", "Downloading", got, 30_000_000)
    shown.blob("aaaaaaaaaaaa", "Pull complete", 30_000_000, 30_000_000)
    shown.blob("bbbbbbbbbbbb", "Pull complete", 5, 5)
    shown.line("Digest: sha256:abc")
    assert out.getvalue() == ("1: Pulling from team/app\naaaaaaaaaaaa: Pull complete\nbbbbbbbbbbbb: Pull complete\n"
                              "Digest: sha256:abc\n")
