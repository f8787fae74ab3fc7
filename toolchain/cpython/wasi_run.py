"""Run a CPython WASI module under wasmtime-py with a runtime's layout (for the checks here).

    python wasi_run.py RUNTIME_DIR [--stack BYTES] [--env K=V]... [--dir HOST::GUEST]... -- ARGS...

RUNTIME_DIR holds either the vendored files (pythonX.Y.wasm[.xz], pythonXY.zip[.xz]) or a build's
out/ directory. The runtime is laid out as a launcher would (see README.md):

    /usr/local/bin/pythonX.Y       the module (argv[0])
    /usr/local/lib/pythonXY.zip    the stdlib; PYTHONHOME=/usr/local puts it on sys.path

The guest's "/" is a temporary directory holding that layout, preopened read-write.
"""
from __future__ import annotations

import argparse
import lzma
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import wasmtime

MIB = 1 << 20


_engines: dict[int, wasmtime.Engine] = {}


def engine(stack: int = 2 * MIB) -> wasmtime.Engine:
    """boxer's engine settings (runtime/modcache.py) plus a larger wasm stack; one per size."""
    if stack in _engines:
        return _engines[stack]
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.wasm_exceptions = True
    config.max_wasm_stack = stack
    config.cache = True
    _engines[stack] = wasmtime.Engine(config)
    return _engines[stack]


def find(runtime: Path) -> tuple[str, Path, Path]:
    """(version, module, zip), decompressing vendored .xz files into a cache beside /tmp."""
    names = [p.name for p in runtime.iterdir()]
    mod = next(n for n in names if re.fullmatch(r"python3\.\d+\.wasm(\.xz)?", n))
    version = re.match(r"python(3\.\d+)", mod).group(1)
    zipname = f"python{version.replace('.', '')}.zip"
    out = []
    for name in (mod, zipname + (".xz" if mod.endswith(".xz") else "")):
        p = runtime / name
        if name.endswith(".xz"):
            cache = Path(tempfile.gettempdir()) / "cpython-wasi-cache" / runtime.resolve().name
            cache.mkdir(parents=True, exist_ok=True)
            target = cache / name[:-3]
            if not target.exists() or target.stat().st_mtime < p.stat().st_mtime:
                tmp = target.with_name(f".{target.name}.{os.getpid()}")
                tmp.write_bytes(lzma.decompress(p.read_bytes()))
                os.replace(tmp, target)   # atomic: concurrent checks never read half a file
            p = target
        out.append(p)
    return version, out[0], out[1]


def layout(runtime: Path, root: Path) -> tuple[str, Path]:
    version, module, stdlib = find(runtime)
    (root / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    (root / "usr/local/lib").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    dst = root / "usr/local/lib" / stdlib.name
    if not dst.exists():
        try:
            os.link(stdlib, dst)
        except OSError:
            shutil.copy(stdlib, dst)
    return version, module


_modules: dict[tuple[int, str], wasmtime.Module] = {}


def run_module(module_path: Path, argv: list[str], env: dict[str, str], dirs=(),
               stack: int = 2 * MIB, stdout: str | None = None, stderr: str | None = None) -> int:
    """One fresh instance of a WASI command module; returns its exit status."""
    key = (stack, str(module_path))
    if key not in _modules:
        _modules[key] = wasmtime.Module.from_file(engine(stack), str(module_path))
    store = wasmtime.Store(engine(stack))
    store.set_epoch_deadline(1 << 40)
    wasi = wasmtime.WasiConfig()
    wasi.argv = argv
    wasi.env = list(env.items())
    for host, guest in dirs:
        wasi.preopen_dir(str(host), guest)
    if stdout:
        wasi.stdout_file = stdout
    else:
        wasi.inherit_stdout()
    if stderr:
        wasi.stderr_file = stderr
    else:
        wasi.inherit_stderr()
    wasi.inherit_stdin()
    store.set_wasi(wasi)
    linker = wasmtime.Linker(store.engine)
    linker.define_wasi()
    inst = linker.instantiate(store, _modules[key])
    try:
        inst.exports(store)["_start"](store)
        return 0
    except wasmtime.ExitTrap as t:
        return t.code


def run(runtime: Path, args: list[str], env: dict[str, str] | None = None,
        dirs=(), stack: int = 2 * MIB, root: Path | None = None,
        stdout: str | None = None, stderr: str | None = None) -> int:
    """Run one of our runtimes with the launcher layout: "/" is `root` (a temporary directory
    by default) holding /usr/local/lib/pythonXY.zip, PYTHONHOME=/usr/local."""
    own = root is None
    root = Path(tempfile.mkdtemp(prefix="cpy-wasi-")) if own else root
    try:
        version, module_path = layout(runtime, root)
        e = {"PYTHONHOME": "/usr/local", "LANG": "C.UTF-8", "HOME": "/tmp"}
        e.update(env or {})
        return run_module(module_path, [f"/usr/local/bin/python{version}", *args], e,
                          [(root, "/"), *dirs], stack, stdout, stderr)
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runtime", type=Path)
    ap.add_argument("--stack", type=int, default=2 * MIB)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--dir", action="append", default=[], help="HOST::GUEST")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    env = dict(kv.split("=", 1) for kv in a.env)
    dirs = [tuple(d.split("::", 1)) for d in a.dir]
    sys.exit(run(a.runtime, args, env, dirs, a.stack))


if __name__ == "__main__":
    main()
