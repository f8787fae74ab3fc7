"""Creating, copying, moving, linking and removing files for the RUN shell: mkdir, rmdir, rm,
touch, cp, mv, ln, install.

Trees are walked without following symlinks and each destination is resolved again through
Call.host, so a symlink in the image is followed inside the rootfs, never on the host.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import stat
from pathlib import Path

from boxer_py.image import users as accounts
from boxer_py.image.rootfs import within
from boxer_py.shell import limits
from boxer_py.shell.utilities.core import (
    Call,
    Failure,
    Utility,
    each_operand,
    lexists,
    new_dir,
    new_file,
    parse_options,
    real_dir,
)
from boxer_py.shell.utilities.modes import parse_mode


def mkdir(call: Call) -> int:
    opts, operands = parse_options(call, "pv", "m", {"parents": "p", "mode": "m=", "verbose": "v"})
    if not operands:
        return call.fail("missing operand")
    mode = parse_mode(call, str(opts["m"]), 0o777, True) if "m" in opts else None

    def make(path: str) -> None:
        parts = [p for p in call.guest(path).split("/") if p]
        if opts.get("p"):
            for k in range(1, len(parts) + 1):
                host = call.host("/" + "/".join(parts[:k]))
                if host.is_dir():
                    continue
                if lexists(host):
                    raise Failure(f"cannot create directory '{path}': Not a directory")
                try:
                    new_dir(host)
                except OSError:
                    raise Failure(f"cannot create directory '{path}': No such file or directory") from None
        else:
            host = call.host(path, follow_last=False)
            if lexists(host):
                raise Failure(f"cannot create directory '{path}': File exists")
            if not host.parent.is_dir():
                raise Failure(f"cannot create directory '{path}': No such file or directory")
            new_dir(host)
        if mode is not None:
            os.chmod(call.host(path), mode)

    return each_operand(call, operands, make)


def rmdir(call: Call) -> int:
    opts, operands = parse_options(call, "p", long={"parents": "p"})

    def remove(path: str) -> None:
        targets = [path]
        if opts.get("p"):
            p = path.rstrip("/")
            while "/" in p.strip("/"):
                p = posixpath.dirname(p)
                targets.append(p)
        for t in targets:
            host = call.host(t, follow_last=False)
            if host == call.root:
                raise Failure(f"failed to remove '{t}': Device or resource busy")
            if host.is_symlink() or not host.is_dir():
                raise Failure(f"failed to remove '{t}': Not a directory" if lexists(host)
                               else f"failed to remove '{t}': No such file or directory")
            try:
                host.rmdir()
            except OSError:
                raise Failure(f"failed to remove '{t}': Directory not empty") from None

    return each_operand(call, operands, remove)


def _remove(host: Path) -> None:
    if host.is_symlink() or not host.is_dir():
        host.unlink()
    else:
        shutil.rmtree(host)


def rm(call: Call) -> int:
    opts, operands = parse_options(call, "rRfdvi", long={"recursive": "r", "force": "f", "dir": "d",
                                                     "verbose": "v", "no-preserve-root": "no-preserve-root"})
    recursive = opts.get("r") or opts.get("R")
    if not operands and not opts.get("f"):
        return call.fail("missing operand")

    def remove(path: str) -> None:
        if not path:
            if opts.get("f"):
                return
            raise Failure("cannot remove '': No such file or directory")
        if posixpath.basename(path.rstrip("/")) in (".", ".."):
            raise Failure(f"refusing to remove '.' or '..' directory: skipping '{path}'")
        host = call.host(path, follow_last=False)
        if host == call.root:
            if not recursive:
                raise Failure(f"cannot remove '{path}': Is a directory")
            if not opts.get("no-preserve-root"):
                raise Failure(f"it is dangerous to operate recursively on '{path}' (same as '/')\n"
                               f"{call.name}: use --no-preserve-root to override this failsafe")
            for child in sorted(host.iterdir()):
                _remove(child)
            return
        if not lexists(host):
            if not opts.get("f"):
                raise Failure(f"cannot remove '{path}': No such file or directory")
            return
        if real_dir(host):
            if not recursive:
                if opts.get("d"):
                    host.rmdir()
                    return
                raise Failure(f"cannot remove '{path}': Is a directory")
            shutil.rmtree(host)
        else:
            host.unlink()

    return each_operand(call, operands, remove)


def touch(call: Call) -> int:
    opts, operands = parse_options(call, "camh", "dtr", {"no-create": "c", "date": "d=", "reference": "r="})
    if not operands:
        return call.fail("missing file operand")

    def touch_one(path: str) -> None:
        host = call.host(path)
        if host.exists():
            os.utime(host)
        elif not opts.get("c"):
            if not host.parent.is_dir():
                raise Failure(f"cannot touch '{path}': No such file or directory")
            new_file(host).close()

    return each_operand(call, operands, touch_one)


def _target(call: Call, dest: str, dest_is_dir: bool, source: str) -> tuple[str, str]:
    """Where `source` lands, as a guest path and as the user wrote it: inside `dest` when it
    is a directory, like coreutils."""
    if not dest_is_dir:
        return call.guest(dest), dest
    name = posixpath.basename(source.rstrip("/")) or "/"
    base = within(call.root, call.host(dest))
    if name in (".", "/"):
        return base, dest
    return posixpath.join(base, name), posixpath.join(dest, name)


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def cp(call: Call) -> int:
    opts, operands = parse_options(call, "rRapfdPLnvTu", long={
        "recursive": "r", "archive": "a", "force": "f", "no-dereference": "P", "dereference": "L",
        "no-clobber": "n", "verbose": "v", "no-target-directory": "T", "preserve": "preserve=", "update": "u"})
    recursive = bool(opts.get("r") or opts.get("R") or opts.get("a"))
    no_deref = bool(opts.get("P") or opts.get("d") or opts.get("a") or (recursive and not opts.get("L")))
    preserve = bool(opts.get("p") or opts.get("a") or "preserve" in opts)
    if len(operands) < 2:
        return call.fail("missing destination file operand" if operands else "missing file operand")
    *sources, dest = operands
    dest_host = call.host(dest)
    dest_is_dir = dest_host.is_dir() and not opts.get("T")
    if len(sources) > 1 and not dest_is_dir:
        return call.fail(f"target '{dest}' is not a directory")

    def copy(source: str) -> None:
        src = call.host(source, follow_last=not no_deref)
        if not lexists(src):
            raise Failure(f"cannot stat '{source}': No such file or directory")
        target, shown = _target(call, dest, dest_is_dir, source)
        if real_dir(src):
            if not recursive:
                raise Failure(f"-r not specified; omitting directory '{source}'")
            target_host = call.host(target)
            if _inside(target_host, src):
                raise Failure(f"cannot copy a directory, '{source}', into itself, '{shown}'")
            _copy_dir(call, src, target, shown, preserve, bool(opts.get("n")))
        else:
            _copy_entry(call, src, target, shown, preserve, bool(opts.get("n")))

    return each_operand(call, sources, copy)


def _copy_entry(call: Call, src: Path, target: str, shown: str, preserve: bool, no_clobber: bool) -> None:
    if shown.endswith("/"):
        raise Failure(f"cannot create regular file '{shown}': Not a directory")
    if src.is_symlink():
        link = call.host(target, follow_last=False)
        if lexists(link):
            if no_clobber:
                return
            if real_dir(link):
                raise Failure(f"cannot overwrite directory '{shown}' with non-directory")
            link.unlink()
        os.symlink(os.readlink(src), link)
        return
    if not src.is_file():
        raise Failure(f"cannot copy '{within(call.root, src)}': not a regular file or directory")
    host = call.host(target)
    if host.is_dir():
        raise Failure(f"cannot overwrite directory '{shown}' with non-directory")
    if not host.parent.is_dir():
        raise Failure(f"cannot create regular file '{shown}': No such file or directory")
    if host.exists() and no_clobber:
        return
    if host.exists() and os.path.samefile(host, src):
        raise Failure(f"'{within(call.root, src)}' and '{shown}' are the same file")
    limits.check_dense(src)
    shutil.copyfile(src, host, follow_symlinks=False)
    (shutil.copystat if preserve else shutil.copymode)(src, host)


def _copy_dir(call: Call, src: Path, target: str, shown: str, preserve: bool, no_clobber: bool) -> None:
    host = call.host(target)
    if not host.exists():
        if not host.parent.is_dir():
            raise Failure(f"cannot create directory '{shown}': No such file or directory")
        new_dir(host)
    elif not host.is_dir():
        raise Failure(f"cannot overwrite non-directory '{shown}' with directory")
    base = within(call.root, host)
    with os.scandir(src) as entries:
        children = sorted(entries, key=lambda e: e.name)
    for entry in children:
        child_src, child_target = Path(entry.path), posixpath.join(base, entry.name)
        child_shown = posixpath.join(shown, entry.name)
        if entry.is_dir(follow_symlinks=False):
            _copy_dir(call, child_src, child_target, child_shown, preserve, no_clobber)
        else:
            _copy_entry(call, child_src, child_target, child_shown, preserve, no_clobber)
    (shutil.copystat if preserve else shutil.copymode)(src, host)


def mv(call: Call) -> int:
    opts, operands = parse_options(call, "fnvTi", long={"force": "f", "no-clobber": "n", "verbose": "v",
                                                   "no-target-directory": "T"})
    if len(operands) < 2:
        return call.fail("missing destination file operand" if operands else "missing file operand")
    *sources, dest = operands
    dest_is_dir = call.host(dest).is_dir() and not opts.get("T")
    if len(sources) > 1 and not dest_is_dir:
        return call.fail(f"target '{dest}' is not a directory")

    def move(source: str) -> None:
        src = call.host(source, follow_last=False)
        if not lexists(src):
            raise Failure(f"cannot stat '{source}': No such file or directory")
        if src == call.root:
            raise Failure(f"cannot move '{source}': Device or resource busy")
        target, shown = _target(call, dest, dest_is_dir, source)
        host = call.host(target, follow_last=False)
        if host == src:
            raise Failure(f"'{source}' and '{shown}' are the same file")
        if real_dir(src) and _inside(host, src):
            raise Failure(f"cannot move '{source}' to a subdirectory of itself, '{shown}'")
        if shown.endswith("/") and not real_dir(src) and not dest_is_dir:
            raise Failure(f"cannot move '{source}' to '{shown}': Not a directory")
        if lexists(host):
            if opts.get("n"):
                return
            if real_dir(host):
                if not real_dir(src):
                    raise Failure(f"cannot overwrite directory '{shown}' with non-directory")
                if any(host.iterdir()):
                    raise Failure(f"cannot move '{source}' to '{shown}': Directory not empty")
                host.rmdir()
        elif not host.parent.is_dir():
            raise Failure(f"cannot move '{source}' to '{shown}': No such file or directory")
        os.replace(src, host)
        _move_owners(call, within(call.root, src), within(call.root, host))

    return each_operand(call, sources, move)


def _move_owners(call: Call, old: str, new: str) -> None:
    """Ownership recorded by chown follows a moved file or tree."""
    for key in [k for k in call.owners if k == old or k.startswith(old.rstrip("/") + "/")]:
        call.owners[new + key[len(old):]] = call.owners.pop(key)


def ln(call: Call) -> int:
    opts, operands = parse_options(call, "sfnTvr", long={"symbolic": "s", "force": "f", "no-dereference": "n",
                                                    "verbose": "v", "no-target-directory": "T"})
    if not operands:
        return call.fail("missing file operand")
    if len(operands) == 1:
        operands.append(".")
    *sources, dest = operands
    dest_is_dir = not opts.get("T") and real_dir(call.host(dest, follow_last=not opts.get("n")))
    if len(sources) > 1 and not dest_is_dir:
        return call.fail(f"target '{dest}' is not a directory")

    def link(source: str) -> None:
        target, shown = _target(call, dest, dest_is_dir, source)
        host = call.host(target, follow_last=False)
        if lexists(host):
            if not opts.get("f"):
                kind = "symbolic link" if opts.get("s") else "hard link"
                raise Failure(f"failed to create {kind} '{shown}': File exists")
            if real_dir(host):
                raise Failure(f"'{shown}': cannot overwrite directory")
            host.unlink()
        if not host.parent.is_dir():
            raise Failure(f"failed to create link '{shown}': No such file or directory")
        if opts.get("s"):
            text = source
            if opts.get("r"):   # ln -sr: the link's text is relative to the link's directory
                text = posixpath.relpath(posixpath.normpath(call.guest(source)), posixpath.dirname(target))
            os.symlink(text, host)
            return
        src = call.host(source)
        if not src.is_file():
            raise Failure(f"failed to access '{source}': No such file or directory"
                           if not src.exists() else f"'{source}': hard link not allowed for directory")
        os.link(src, host)

    return each_operand(call, sources, link)


def install(call: Call) -> int:
    """`install -d dirs`, `install [-D] [-m mode] src dest`, `install src... dir`, `-t dir`."""
    opts, operands = parse_options(call, "dDcCsvp", "mogt", {"directory": "d", "mode": "m=", "owner": "o=",
                                                        "group": "g=", "target-directory": "t=",
                                                        "verbose": "v", "compare": "C", "strip": "s",
                                                        "preserve-timestamps": "p"})
    mode_spec = str(opts.get("m", "755"))
    parse_mode(call, mode_spec, 0, False)
    owner = None
    if "o" in opts or "g" in opts:
        uid = accounts.user_id(call.root, str(opts.get("o", "root")))
        gid = accounts.group_id(call.root, str(opts.get("g", "root")))
        if uid is None or gid is None:
            return call.fail(f"invalid user or group '{opts.get('o', '')}:{opts.get('g', '')}'")
        owner = (uid, gid)

    def finish(host: Path) -> None:
        os.chmod(host, parse_mode(call, mode_spec, stat.S_IMODE(host.stat().st_mode), host.is_dir()))
        if owner:
            call.owners[within(call.root, host)] = owner

    def make_dirs(path: str) -> Path:
        parts = [p for p in call.guest(path).split("/") if p]
        for k in range(1, len(parts) + 1):
            host = call.host("/" + "/".join(parts[:k]))
            if not host.is_dir():
                if lexists(host):
                    raise Failure(f"cannot create directory '{path}': File exists")
                new_dir(host)
        return call.host(path)

    if opts.get("d"):
        return each_operand(call, operands, lambda path: finish(make_dirs(path)))
    if "t" in opts:
        sources, dest, into = operands, str(opts["t"]), True
    else:
        if len(operands) < 2:
            return call.fail("missing destination file operand")
        *sources, dest = operands
        into = len(sources) > 1 or real_dir(call.host(dest))
    if opts.get("D"):
        make_dirs(dest if into else posixpath.dirname(call.guest(dest)))

    def copy(source: str) -> None:
        src = call.host(source)
        if not src.is_file():
            raise Failure(f"cannot stat '{source}': No such file or directory" if not src.exists()
                           else f"omitting directory '{source}'")
        target, shown = _target(call, dest, into, source)
        host = call.host(target)
        if lexists(host) and not real_dir(host):
            host.unlink()
        _copy_entry(call, src, target, shown, False, False)
        finish(call.host(target))

    return each_operand(call, sources, copy)


UTILITIES: dict[str, Utility] = {
    "mkdir": mkdir, "rmdir": rmdir, "rm": rm, "touch": touch, "cp": cp, "mv": mv, "ln": ln, "install": install,
}
