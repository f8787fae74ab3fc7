"""The vendored filesystem layer of standalone modules (src/boxer_py/image/vfs.wasm) and alias
layer of pushed programs (aliasfs.wasm) are what toolchain/vfs/vfs.c and aliasfs.c compile to:
rebuilt with the Makefile's own flags and compared."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _flags(name: str) -> list[str]:
    text = (REPO / "toolchain/vfs/Makefile").read_text().replace("\\\n", " ")
    return re.search(rf"^{name} := (.*)$", text, re.M).group(1).split()


@pytest.mark.parametrize("name", ["vfs", "aliasfs"])
def test_vendored_vfs_is_what_the_source_compiles_to(name, tmp_path):
    if shutil.which("clang-19") is None or shutil.which("wasm-ld-19") is None:
        pytest.skip("clang-19 and lld-19 are not installed here (Debian packages clang-19 lld-19)")
    out = tmp_path / f"{name}.wasm"
    subprocess.run(["clang-19", *_flags("CFLAGS"), *_flags("LDFLAGS"), "-o", str(out), f"{name}.c"],
                   cwd=REPO / "toolchain/vfs", check=True, timeout=300)
    assert out.read_bytes() == (REPO / f"src/boxer_py/image/{name}.wasm").read_bytes()
