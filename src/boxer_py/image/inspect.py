"""`boxer inspect`'s JSON: an image as `docker inspect` shows one, so Docker users read it as is."""
from __future__ import annotations

from typing import Any

from boxer_py.image.imagefile import Image


def inspect_json(img: Image, tags: list[str] | None = None) -> dict[str, Any]:
    """`tags`: the local store's names of this image (an image file carries none, unless an
    older boxer wrote its tag into the manifest)."""
    tag = img.annotations.get("org.opencontainers.image.ref.name")
    return {
        "Id": img.id,
        "RepoTags": tags if tags else ([tag] if tag else []),
        "Architecture": "wasm",
        "Os": "wasip1",
        "Author": img.spec.author,  # MAINTAINER
        "Size": sum(d.size for d in img.layers),
        "Config": img.spec.config.to_oci(),
        "RootFS": {"Type": "layers", "Layers": [d.digest for d in img.layers]},
        "History": [h.to_json() for h in img.spec.history],
    }
