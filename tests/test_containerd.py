"""What a Kubernetes node does with a pushed image, as far as it can be done here: Debian's
containerd (tests/containerdnode.py: started by this module, with its own config, root, state
and socket under a temp dir) pulls the image through the CRI `PullImage` call the kubelet makes.
That every example pulled this way runs as `boxer run` runs it is tests/test_everywhere.py."""
from __future__ import annotations

import grpc
import pytest

import containerdnode

pytestmark = pytest.mark.skipif(bool(containerdnode.missing()), reason=containerdnode.missing() or "-")


def test_the_wasm_artifact_and_containerd_versions_are_as_documented(boxer, registry, containerd, hello_image):
    """docs/registry.md: containerd before 1.6.25 (1.7 before 1.7.7) cannot unpack `--format wasm`."""
    ref = f"{registry.host}/k8s/artifact:1"
    assert boxer("push", "-q", "--format", "wasm", str(hello_image), ref).returncode == 0
    version = containerdnode.version()
    if version < (1, 6, 25) or (1, 7) <= version < (1, 7, 7):
        with pytest.raises(grpc.RpcError) as failed:
            containerd.pull(ref)
        assert "mismatched image rootfs and manifest layers" in (failed.value.details() or "")
    else:
        assert containerd.pull(ref).startswith("sha256:"), f"containerd {version} unpacks Wasm artifacts"
