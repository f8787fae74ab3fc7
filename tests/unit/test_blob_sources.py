"""Where boxer has seen each blob on a registry (for cross-repository mounts): a hint kept in
the cache dir, bounded, and never a reason for a push to fail."""
from __future__ import annotations

from boxer_py.registry.transfer import BlobSources

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_newest_repository_first_and_never_the_target_itself(tmp_path):
    seen = BlobSources(tmp_path / "s.json")
    seen.record("reg:5000", "team/one", [A, B])
    seen.record("reg:5000", "team/two", [A])
    assert seen.sources("reg:5000", "team/three", A) == ["team/two", "team/one"]
    assert seen.sources("reg:5000", "team/two", A) == ["team/one"]
    assert seen.sources("other:5000", "team/three", A) == [], "a blob is mounted only within one registry"


def test_bounded_per_blob_and_per_registry(tmp_path):
    seen = BlobSources(tmp_path / "s.json")
    for i in range(10):
        seen.record("reg", f"r{i}", [A])
    assert seen.sources("reg", "x", A) == ["r9", "r8", "r7", "r6"]
    seen.record("reg", "bulk", [f"sha256:{i:064x}" for i in range(BlobSources.MAX_BLOBS + 10)])
    assert len(seen._load()["reg"]) == BlobSources.MAX_BLOBS
    assert seen.sources("reg", "x", A) == [], "the oldest blobs are forgotten first"


def test_a_damaged_record_only_costs_uploads(tmp_path):
    path = tmp_path / "s.json"
    for junk in (b"{not json", b"[1, 2]", b'{"reg": {"' + A.encode() + b'": "not a list"}}', b"[" * 100_000):
        path.write_bytes(junk)
        assert BlobSources(path).sources("reg", "x", A) == []
    BlobSources(path).record("reg", "r", [A])   # replaces the junk
    assert BlobSources(path).sources("reg", "x", A) == ["r"]
