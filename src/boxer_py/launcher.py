"""Runs an image under Wasmtime: the image's rootfs as `/`, a private writable copy per run.

The guest gets exactly: its argv and env, the per-run copy of the rootfs (thrown away
after), the mounts it was given, and stdio. No sockets, no other host path, no host
environment variable.
"""
from __future__ import annotations

import os
import posixpath
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from .errors import RunError
from .imagefile import Image
from .modcache import ModuleCache, new_engine
from .rootfs import copy_tree, resolve, unpack
from .variables import expand
from .wasicwd import set_cwd

WASM_MAGIC = b"\0asm"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
TRAP_EXIT_CODE = 134  # like a native program killed by SIGABRT


@dataclass(frozen=True)
class Mount:
    host: Path
    guest: str
    read_only: bool = False

    @classmethod
    def parse(cls, spec: str) -> "Mount":
        """Docker's -v syntax: HOST:GUEST[:ro|rw]."""
        parts = spec.split(":")
        read_only = False
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            read_only = parts.pop() == "ro"
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise RunError(f"-v {spec}: expected HOST:GUEST[:ro]")
        return cls(Path(parts[0]), parts[1], read_only)


@dataclass(frozen=True)
class RunSpec:
    """What to run and with what: each field overrides the image config when set."""

    command: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    mounts: tuple[Mount, ...] = ()
    stdin: str | None = None  # a host file, "-" for this process's stdin, None for empty


def resolve_argv(image: Image, spec: RunSpec) -> list[str]:
    """Docker's rules: ENTRYPOINT + CMD; run arguments replace CMD; --entrypoint clears CMD."""
    config = image.spec.config
    entrypoint = list(spec.entrypoint) if spec.entrypoint is not None else list(config.entrypoint)
    if spec.command:
        cmd = list(spec.command)
    else:
        cmd = list(config.cmd) if spec.entrypoint is None else []
    argv = entrypoint + cmd
    if not argv:
        raise RunError("no command: the image has no ENTRYPOINT or CMD; give one after the image")
    return argv


def shell_words(script: str, env: dict[str, str]) -> list[str]:
    """`/bin/sh -c SCRIPT` without a shell: one simple command, with $VAR expansion."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars="|&;<>()`")
    lexer.whitespace_split = True
    words = list(lexer)
    special = [w for w in words if w and all(c in "|&;<>()`" for c in w)]
    if special or "$(" in script:
        raise RunError(f"the command {script!r} needs a shell ({(special or ['$('])[0]}), and a "
                       "WebAssembly image has none; use the exec form: [\"prog\", \"arg\"]")
    return [expand(w, env) for w in words]


def _reason(error: Exception) -> str:
    """The root cause of a wasmtime error, on one line."""
    lines = [x.strip() for x in str(error).splitlines() if x.strip()]
    if "Caused by:" in lines:
        return lines[lines.index("Caused by:") + 1]
    return lines[0] if lines else type(error).__name__


class Launcher:
    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        self.engine = new_engine()
        self.modules = ModuleCache(self.engine, self.cache_dir / "modules")
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()

    def rootfs(self, image: Image) -> Path:
        """The image's filesystem, unpacked once per image id into the cache (read-only to runs)."""
        target = self.cache_dir / "rootfs" / image.id.replace(":", "-")
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        try:
            unpack(image, tmp)
            os.rename(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not target.is_dir():
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    def run(self, image: Image, spec: RunSpec = RunSpec()) -> int:
        """Run to completion with this process's stdout/stderr; return the guest's exit code."""
        config = image.spec.config
        env = {**config.env_dict(), **spec.env}
        env.setdefault("HOME", "/root" if config.user in ("", "root", "0") else "/")
        argv = resolve_argv(image, spec)
        if argv[:2] in (["/bin/sh", "-c"], ["sh", "-c"]) and len(argv) >= 3:
            argv = shell_words(argv[2], env)
        workdir = posixpath.normpath(posixpath.join("/", spec.workdir or config.working_dir))
        base = self.rootfs(image)
        with tempfile.TemporaryDirectory(prefix="boxer-run-") as tmp:
            root = Path(tmp) / "rootfs"
            copy_tree(base, root)
            resolve(root, workdir).mkdir(parents=True, exist_ok=True)
            program = self._find_program(root, argv[0], env.get("PATH", DEFAULT_PATH), workdir)
            loaded = self.modules.load(program.read_bytes())
            wasi = wasmtime.WasiConfig()
            wasi.argv = argv
            wasi.env = list(env.items())
            wasi.preopen_dir(str(root), "/")
            for m in self._check_mounts(spec.mounts, root):
                wasi.preopen_dir(str(m.host), m.guest, not m.read_only)
            if spec.stdin == "-":
                wasi.inherit_stdin()
            else:
                wasi.stdin_file = spec.stdin or os.devnull
            wasi.inherit_stdout()
            wasi.inherit_stderr()
            store = wasmtime.Store(self.engine)
            store.set_epoch_deadline(1 << 62)
            store.set_wasi(wasi)
            try:
                instance = self.linker.instantiate(store, loaded.module)
            except wasmtime.WasmtimeError as e:
                raise RunError(f"{argv[0]}: cannot start: {str(e).splitlines()[0]}", 126) from None
            exports = instance.exports(store)
            if workdir != "/" and loaded.cwd_slot is not None and "memory" in exports:
                set_cwd(store, exports["memory"], loaded.cwd_slot, workdir)
            start = exports.get("_start")
            if start is None:
                raise RunError(f"{argv[0]}: not a WASI command (no _start)", 126)
            try:
                start(store)
            except wasmtime.ExitTrap as e:
                return e.code
            except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
                os.write(2, f"boxer: {argv[0]} crashed: {_reason(e)}\n".encode())
                return TRAP_EXIT_CODE
            return 0

    def _find_program(self, root: Path, name: str, path: str, workdir: str) -> Path:
        if "/" in name:
            candidates = [posixpath.join(workdir, name)]
        else:
            candidates = [posixpath.join(d or ".", name) for d in path.split(":")]
        for guest in candidates:
            host = resolve(root, guest)
            if host.is_file():
                with open(host, "rb") as f:
                    if f.read(4) != WASM_MAGIC:
                        raise RunError(f"{name}: {guest} is not a WebAssembly program "
                                       "(native binaries and scripts cannot run here)", 126)
                return host
        where = "" if "/" in name else f" in PATH ({path})"
        raise RunError(f"{name}: not found{where}", 127)

    def _check_mounts(self, mounts: tuple[Mount, ...], root: Path) -> list[Mount]:
        out = []
        for m in mounts:
            guest = posixpath.normpath(m.guest)
            if not guest.startswith("/") or guest == "/":
                raise RunError(f"-v {m.host}:{m.guest}: the guest path must be absolute and not /")
            host = m.host.resolve()
            if not host.is_dir():
                raise RunError(f"-v {m.host}:{m.guest}: {m.host} is not a directory (only directories can be mounted)")
            mountpoint = resolve(root, guest)
            if mountpoint.is_symlink() or (mountpoint.exists() and not mountpoint.is_dir()):
                raise RunError(f"-v {m.host}:{m.guest}: {guest} is not a directory in the image")
            mountpoint.mkdir(parents=True, exist_ok=True)
            out.append(Mount(host, guest, m.read_only))
        return out
