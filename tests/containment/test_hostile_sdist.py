"""Source builds in the sandbox against the build host (issue 16 item 3).

An sdist's setup.py and a project's build backend are code from an index or the context: they
run only in the image's CPython under Wasmtime, where the host's files and sockets do not
exist. What the guest hands back (its wheel) is hostile data: a member named `../x`, a
symbolic link, a member that says it is 4 GiB, native code, or a wheel file that is itself a
link to a host file, is refused with one line, and nothing of it reaches the host or the image.
"""
from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from hostile_world import SECRET
from phone_home import PhoneHome

import boxer_py
from pyindex import Index, download_setuptools, sdist


@pytest.fixture(scope="module")
def setuptools_wheel(tmp_path_factory) -> tuple[str, bytes]:
    return download_setuptools(tmp_path_factory.mktemp("setuptools"))


def test_a_hostile_sdist_runs_only_in_the_sandbox(tmp_path, cache_dir, setuptools_wheel, make_context, listener):
    """Its setup.py writes a marker at a host path and connects to a listener on the host's
    127.0.0.1: the marker lands in the image (the code ran, in the sandbox), never on the host,
    and the listener sees nothing."""
    phone = PhoneHome(tmp_path / "host" / "sdist-ran.txt", listener)
    index = Index({setuptools_wheel[0]: setuptools_wheel[1],
                   "hostilesd-1.0.tar.gz": sdist("hostilesd", "1.0", {"setup.py": phone.setup_py("hostilesd"),
                                                                     "hostilesd.py": "OK = True\n"})})
    try:
        ctx = make_context(f"FROM python:3.12\nRUN pip install --index-url {index.url}/simple/ hostilesd\n")
        out = tmp_path / "x.wasm"
        boxer_py.build(ctx, out, cache_dir=cache_dir)
    finally:
        index.close()
    phone.assert_ran_only_in_the_sandbox(out, tmp_path / "rootfs", "hostilesd")


# --- wheels a hostile build backend hands back ---------------------------------------------------------

BACKEND = """\
import os, shutil
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = 'crafted-1.0-py3-none-any.whl'
    kind = open('kind.txt').read().strip()
    if kind == 'link':  # WASI refuses absolute targets and may refuse escaping ones: then a valid wheel's
        target = '../' * 40 + open('target.txt').read().strip().lstrip('/')
        try:
            os.symlink(target, os.path.join(wheel_directory, name))
        except OSError:
            os.symlink(os.path.relpath(os.path.abspath('crafted.whl'), wheel_directory),
                       os.path.join(wheel_directory, name))
    else:
        shutil.copy('crafted.whl', os.path.join(wheel_directory, name))
    return name
"""


def crafted(extra: dict[str, bytes] | None = None, symlink: str | None = None, huge: bool = False) -> bytes:
    dist = "crafted-1.0.dist-info"
    files = {"crafted/__init__.py": b"X = 1\n", **(extra or {}),
             f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: crafted\nVersion: 1.0\n",
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: x\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             f"{dist}/RECORD": b""}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo("crafted/link.py")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, symlink)
    data = bytearray(buf.getvalue())
    if huge:  # the central directory says the first member is 4 GiB
        at = data.index(b"PK\x01\x02")
        struct.pack_into("<I", data, at + 24, 0xFFFFFFF0)
    return bytes(data)


CASES = {
    "dotdot": ({"crafted.whl": crafted({"../../../escape.py": b"print('escaped')\n"})},
               "member '../../../escape.py' leaves its directory"),
    "absolute": ({"crafted.whl": crafted({"/etc/evil.py": b"x\n"})}, "member '/etc/evil.py' has an absolute name"),
    "symlink": ({"crafted.whl": crafted(symlink="/etc/passwd")}, "member 'crafted/link.py' is a symbolic link"),
    "huge": ({"crafted.whl": crafted(huge=True)}, "its members expand past"),
    "native": ({"crafted.whl": crafted({"crafted/_speedups.cpython-312-x86_64-linux-gnu.so": b"\x7fELF"})},
               "is native code, which cannot run in WebAssembly"),
    "link": ({"target.txt": "{secret_file}", "crafted.whl": crafted()}, "the wheel is missing or is a link"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_wheel_from_the_sandbox_is_refused_in_one_line(tmp_path, cache_dir, make_context, boxer, case):
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text(SECRET)
    files, needle = CASES[case]
    project = {"proj/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                                      'backend-path = ["."]\n',
               "proj/backend.py": BACKEND, "proj/kind.txt": case,
               **{f"proj/{k}": v.replace("{secret_file}", str(secret_file)) if isinstance(v, str) else v
                  for k, v in files.items()}}
    ctx = make_context("FROM python:3.12\nCOPY proj /proj\nRUN pip install /proj\n", project)
    out = tmp_path / "x.wasm"
    r = boxer("build", "-q", "-o", str(out), str(ctx))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith(f"boxer: {ctx}/Dockerfile:3: RUN: pip install: /proj: building it from source in "
                               "the sandbox failed: "), lines[0]
    assert needle in lines[0], lines[0]
    assert SECRET not in r.stderr and not out.exists()
    assert not (tmp_path / "escape.py").exists() and not Path("/escape.py").exists()
