"""registry/transfer.py's LayerCache: a push gzips a layer once; the next push uses the entry
only if its bytes have the sha256 it records (damaged or half-written: gzipped again)."""
from __future__ import annotations

import gzip

from boxer_py.registry import oci
from boxer_py.registry.transfer import LayerCache


def test_a_layer_is_gzipped_once_and_a_damaged_entry_again(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(oci, "gzip_layer", lambda tar: made.append(tar) or gzip.compress(tar, 6, mtime=0))
    cache, tar = LayerCache(tmp_path), b"a layer tar " * 1000
    expected = gzip.compress(tar, 6, mtime=0)
    name = oci.sha256(tar).removeprefix("sha256:")
    (tmp_path / f"{name}.tar.gz").write_bytes(expected)   # what an older boxer kept: not read, removed
    assert cache(tar) == expected and len(made) == 1
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.layer"]
    assert cache(tar) == expected and len(made) == 1, "the entry is used"
    entry = tmp_path / f"{name}.layer"
    whole = entry.read_bytes()
    for damaged in (whole[:len(whole) // 2], whole[:-1] + bytes([whole[-1] ^ 1]), b"", expected):
        entry.write_bytes(damaged)   # half written, one bit flipped, empty, a bare gzip stream
        assert cache(tar) == expected
        assert entry.read_bytes() == whole
    assert len(made) == 5
