"""The labels that carry a runtime's settings (issue 17) are image data, so hostile: a wasm
stack an image asks for is bounded (the guest's stack lives on the host thread's), a stack bomb
under the largest allowed one traps cleanly on any thread, and the site-packages a base's label
names for pip cannot lead a build outside the rootfs."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import wasmtime

import boxer_py

# Recurses until the stack is exhausted: each call keeps 8 locals live.
BOMB = """(module
  (func $f (param i64) (result i64)
    (local i64 i64 i64 i64 i64 i64 i64)
    (i64.add (call $f (i64.add (local.get 0) (i64.const 1))) (local.get 0)))
  (func (export "_start") (drop (call $f (i64.const 0))))
  (memory (export "memory") 1))"""


@pytest.fixture(scope="module")
def bomb_image(tmp_path_factory) -> Path:
    ctx = tmp_path_factory.mktemp("bomb")
    (ctx / "bomb.wasm").write_bytes(bytes(wasmtime.wat2wasm(BOMB)))
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY bomb.wasm /bomb.wasm\n"
                                    "LABEL boxer.wasm-stack:/bomb.wasm=2097152\nENTRYPOINT [\"/bomb.wasm\"]\n")
    out = ctx / "bomb.wasm.img"
    boxer_py.build(ctx, out)
    return out


@pytest.mark.parametrize("size", ["1073741824", "18446744073709551616", "0x200000", "-1"])
def test_a_wasm_stack_beyond_the_bound_is_refused_with_one_line(boxer, make_context, tmp_path, size):
    ctx = make_context(f"FROM scratch\nCOPY bomb.wasm /bomb.wasm\nLABEL boxer.wasm-stack:/bomb.wasm={size}\n"
                       "ENTRYPOINT [\"/bomb.wasm\"]\n", {"bomb.wasm": bytes(wasmtime.wat2wasm(BOMB))})
    out = tmp_path / "big.wasm"
    assert boxer("build", "-q", "-o", str(out), str(ctx)).returncode == 0
    r = boxer("run", str(out))
    assert r.returncode == 125
    assert r.stderr.strip().splitlines() == [
        f"boxer: image label boxer.wasm-stack:/bomb.wasm={size!r}: the wasm stack must be a number of bytes "
        "from 65536 to 2097152"]


def test_a_stack_bomb_under_the_largest_stack_traps_on_any_thread(bomb_image, cache_dir):
    with boxer_py.Session(bomb_image, cache_dir=cache_dir) as box:
        results = [box.run()]
        worker = threading.Thread(target=lambda: results.append(box.run()))
        worker.start()
        worker.join(120)
    assert len(results) == 2
    for r in results:
        assert r.exit_code == 134 and "call stack exhausted" in (r.trap or ""), r


def test_a_site_packages_label_cannot_lead_pip_out_of_the_rootfs(build, tmp_path):
    # A base (a local image here) whose label names a site-packages above the root: pip's files
    # still land inside the image's rootfs, resolved as in a chroot.
    base = build("FROM python:3.13\nLABEL \"boxer.site-packages:/usr/local/bin/python3.13\"=/../../../../../tmp/escaped\n",
                 tag="hostile-site:1")
    assert base.is_file()
    image = build("FROM hostile-site:1\nRUN pip install six\n")
    with boxer_py.Session(image, cache_dir=tmp_path / "c") as box:
        r = box.run_python("import os; print(os.listdir('/tmp/escaped'))")
    assert "six.py" in r.stdout.decode()
    assert not Path("/tmp/escaped").exists()
