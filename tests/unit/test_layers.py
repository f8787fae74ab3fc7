"""Layer tars are made from the rootfs only: never from a host path of the same name."""
from __future__ import annotations

import io
import tarfile

from boxer_py.image.rootfs import layer_tar


def _members(layer: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar}  # type: ignore[union-attr]


def test_a_layer_of_the_whole_root_reads_the_rootfs_not_the_host(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_bytes(b"inside the image\n")
    members = _members(layer_tar(root, {"/"}, {}))
    assert members == {"etc": None, "etc/hostname": b"inside the image\n"}


def test_a_layer_without_recursion_holds_only_the_named_paths_and_their_parents(tmp_path):
    root = tmp_path / "rootfs"
    (root / "app" / "old").mkdir(parents=True)
    (root / "app" / "old" / "big.bin").write_bytes(b"x" * 1000)
    (root / "app" / "new.txt").write_bytes(b"new\n")
    members = _members(layer_tar(root, {"/app", "/app/new.txt"}, {}, recursive=False))
    assert members == {"app": None, "app/new.txt": b"new\n"}
