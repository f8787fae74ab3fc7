"""Running an unpacked OCI image the way containerd's runwasi shims run it, with the plain
`wasmtime` CLI and no boxer code: argv = Entrypoint + Cmd, argv[0] opened by its literal path
inside the rootfs, the config's Env, the rootfs preopened as `/` and nothing else, and no
working directory set inside the program (runwasi's wasmtime, wasmer, wamr and wasmedge shims
all do just this). Not fixtures, so tests/test_registry.py and tests/test_everywhere.py share it.
"""
from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path


def command(wasmtime: Path, rootfs: Path, config: dict) -> list[str]:
    """The wasmtime command line for the image config `config` (the OCI document) on `rootfs`."""
    assert (config["os"], config["architecture"]) == ("wasip1", "wasm")
    run = config["config"]
    argv = (run.get("Entrypoint") or []) + (run.get("Cmd") or [])
    program = argv[0]
    assert program.startswith("/"), f"runwasi opens argv[0] by its literal path: {program!r} is relative"
    host = rootfs / program.lstrip("/")
    assert host.read_bytes()[:4] == b"\0asm", f"{program} is a WebAssembly file inside the rootfs"
    line = [str(wasmtime), "run", "--dir", f"{rootfs}::/", "--argv0", program]
    for pair in run.get("Env") or []:
        line += ["--env", pair]
    return line + [str(host), *argv[1:]]


def run(wasmtime: Path, rootfs: Path, config: dict, cwd: Path, input: bytes | None = None,
        options: tuple[str, ...] = (), timeout: int = 600) -> subprocess.CompletedProcess:
    """Run it from `cwd` (a directory that is not the image's: nothing leaks from the host's);
    `options` go to `wasmtime run` (a compile cache, say), `input` to its stdin; `timeout`
    covers the CLI's first compile of the program."""
    line = command(wasmtime, rootfs, config)
    return subprocess.run([*line[:2], *options, *line[2:]], input=input, capture_output=True, cwd=cwd, timeout=timeout)


def unpack_layout(layout: Path, rootfs: Path) -> dict:
    """Apply the layers of the one image in an OCI layout to `rootfs`; its config document."""
    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    rootfs.mkdir()
    for layer in manifest["layers"]:
        data = blob(layer["digest"])
        assert layer["mediaType"] in ("application/vnd.oci.image.layer.v1.tar+gzip",
                                      "application/vnd.oci.image.layer.v1.tar"), layer["mediaType"]
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data) if layer["mediaType"].endswith("gzip") else data)) as tar:
            tar.extractall(rootfs, filter="data")   # later layers replace files, as containerd applies them
    return json.loads(blob(manifest["config"]["digest"]))
