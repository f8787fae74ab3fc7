"""File utilities of the RUN shell (mkdir, cp, mv, rm, ln, chmod, chown, find, tar...), on the rootfs."""
from __future__ import annotations

import fnmatch
import io
import os
import posixpath
import re
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from boxer_py.errors import BoxerError
from boxer_py.image import users as accounts
from boxer_py.image.rootfs import extract_tar, within
from boxer_py.shell.parse import ShellError
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


def _parse_mode(call: Call, spec: str, current: int, is_dir: bool) -> int:
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        m = re.fullmatch(r"([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)", clause)
        if not m:
            raise ShellError(f"{call.name}: invalid mode '{spec}'")
        who = m.group(1) or ""
        mask = 0
        for w in who or "a":
            mask |= {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}[w]
        umask = 0o022 if not who else 0
        for op, perms in re.findall(r"([-+=])([rwxXst]*|[ugo])", m.group(2)):
            bits = 0
            if perms and perms in "ugo" and len(perms) == 1:
                shift = {"u": 6, "g": 3, "o": 0}[perms]
                part = (mode >> shift) & 7
                bits = part << 6 | part << 3 | part
            else:
                for p in perms:
                    if p == "r":
                        bits |= 0o444
                    elif p == "w":
                        bits |= 0o222
                    elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
                        bits |= 0o111
                    elif p == "s":
                        bits |= 0o6000
                    elif p == "t":
                        bits |= 0o1000
            bits &= mask & ~umask
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                mode = (mode & ~(mask & 0o7777 & ~(0o7000 if is_dir else 0))) | bits
    return mode & 0o7777


def mkdir(call: Call) -> int:
    opts, operands = parse_options(call, "pv", "m", {"parents": "p", "mode": "m=", "verbose": "v"})
    if not operands:
        return call.fail("missing operand")
    mode = _parse_mode(call, str(opts["m"]), 0o777, True) if "m" in opts else None

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


def _walk(host: Path) -> list[Path]:
    """`host` and, for a real directory, everything under it; symlinks are listed, not entered."""
    found = [host]
    if real_dir(host):
        for dirpath, dirnames, filenames in os.walk(host):
            found.extend(Path(dirpath) / n for n in sorted(dirnames + filenames))
    return found


def chmod(call: Call) -> int:
    options, rest = [], []
    for a in call.args:
        if not rest and re.fullmatch(r"-[Rfcv]+|--recursive|--silent|--quiet|--changes|--verbose", a):
            options.append(a)
        else:
            rest.append(a)
    opts, _ = parse_options(call, "Rfcv", long={"recursive": "R", "silent": "f", "quiet": "f", "changes": "c",
                                           "verbose": "v"}, args=options)
    if len(rest) < 2:
        return call.fail("missing operand")
    spec, operands = rest[0], rest[1:]
    _parse_mode(call, spec, 0, False)   # reject a bad mode before touching anything

    def change(path: str) -> None:
        host = call.host(path)
        if not host.exists():
            raise Failure(f"cannot access '{path}': No such file or directory")
        for h in _walk(host) if opts.get("R") else [host]:
            if h.is_symlink():
                continue
            current = stat.S_IMODE(h.stat().st_mode)
            os.chmod(h, _parse_mode(call, spec, current, h.is_dir()))

    return each_operand(call, operands, change)


def chown(call: Call) -> int:
    opts, operands = parse_options(call, "RhfvHLP", long={"recursive": "R", "no-dereference": "h",
                                                     "silent": "f", "quiet": "f", "verbose": "v"})
    if len(operands) < 2:
        return call.fail("missing operand")
    spec, operands = operands[0], operands[1:]
    user, colon, group = spec.partition(":")
    uid = gid = None
    if user:
        uid = accounts.user_id(call.root, user)
        if uid is None:
            return call.fail(f"invalid user: '{spec}'")
        if colon and not group:
            found = accounts.user(call.root, user)
            gid = found.gid if found else uid
    if group:
        gid = accounts.group_id(call.root, group)
        if gid is None:
            return call.fail(f"invalid group: '{spec}'")

    def change(path: str) -> None:
        host = call.host(path, follow_last=bool(opts.get("h")) is False)
        if not lexists(host):
            raise Failure(f"cannot access '{path}': No such file or directory")
        for h in _walk(host) if opts.get("R") else [host]:
            key = within(call.root, h)
            old_uid, old_gid = call.owners.get(key, (0, 0))
            call.owners[key] = (old_uid if uid is None else uid, old_gid if gid is None else gid)

    return each_operand(call, operands, change)


def chgrp(call: Call) -> int:
    if len(call.args) >= 2:
        flags = [a for a in call.args if a.startswith("-")]
        operands = [a for a in call.args if not a.startswith("-")]
        if operands:
            call.args = flags + [":" + operands[0]] + operands[1:]
    return chown(call)


def ls(call: Call) -> int:
    opts, operands = parse_options(call, "aA1ldF", long={"all": "a", "almost-all": "A"})
    status = 0
    files, dirs = [], []
    for name in operands or ["."]:
        try:
            link = call.host(name, follow_last=False)
            host = link if opts.get("l") or opts.get("d") else call.host(name)
        except Failure as e:
            status = call.fail(str(e), 2)
            continue
        if not lexists(link):
            status = call.fail(f"cannot access '{name}': No such file or directory", 2)
        elif real_dir(host) and not opts.get("d"):
            dirs.append((name, host))
        else:
            files.append((name, link))
    lines = [_ls_line(call, n, h, opts) for n, h in files]
    for k, (name, host) in enumerate(dirs):
        if len(operands) > 1:
            lines.append(("\n" if lines or k else "") + f"{name}:")
        names = sorted(os.listdir(host))
        if opts.get("a"):
            names = [".", ".."] + names
        elif not opts.get("A"):
            names = [n for n in names if not n.startswith(".")]
        lines.extend(_ls_line(call, n, host / n if n not in (".", "..") else host, opts) for n in names)
    if lines:
        call.print("\n".join(lines) + "\n")
    return status


def _ls_line(call: Call, name: str, host: Path, opts: dict) -> str:
    if not opts.get("l"):
        return name
    st = host.lstat()
    uid, gid = call.owners.get(within(call.root, host), (0, 0))
    text = f"{stat.filemode(st.st_mode)} 1 {uid} {gid} {st.st_size:>8} {name}"
    return text + (f" -> {os.readlink(host)}" if host.is_symlink() else "")


@dataclass
class _Find:
    """A parsed `find` expression node: ('and'|'or', a, b), ('not', a) or a primary."""
    op: str
    args: tuple


class _FindRun:
    def __init__(self, call: Call, expr: _Find, post_order: bool, mindepth: int, maxdepth: int | None):
        self.call, self.expr, self.post_order = call, expr, post_order
        self.mindepth, self.maxdepth = mindepth, maxdepth
        self.batches: dict[int, tuple[list[str], list[str]]] = {}
        self.status = 0
        self.pruned = False

    def walk(self, shown: str, host: Path, depth: int) -> None:
        descend = real_dir(host) and (self.maxdepth is None or depth < self.maxdepth)
        self.pruned = False
        if not self.post_order and depth >= self.mindepth:
            self.eval(self.expr, shown, host)
        if descend and not self.pruned:
            try:
                names = sorted(os.listdir(host))
            except OSError:
                self.status = self.call.fail(f"'{shown}': No such file or directory")
                names = []
            for name in names:
                child = shown + name if shown.endswith("/") else f"{shown}/{name}"
                self.walk(child, host / name, depth + 1)
        if self.post_order and depth >= self.mindepth:
            self.eval(self.expr, shown, host)

    def eval(self, node: _Find, shown: str, host: Path) -> bool:
        op, a = node.op, node.args
        if op == "and":
            return self.eval(a[0], shown, host) and self.eval(a[1], shown, host)
        if op == "or":
            return self.eval(a[0], shown, host) or self.eval(a[1], shown, host)
        if op == "not":
            return not self.eval(a[0], shown, host)
        if op in ("name", "iname"):
            name = posixpath.basename(shown.rstrip("/")) or shown
            return _fnmatch(name, a[0], op == "iname")
        if op in ("path", "ipath"):
            return _fnmatch(shown, a[0], op == "ipath")
        if op == "type":
            kinds = a[0].split(",")
            if host.is_symlink():
                return "l" in kinds
            if not host.exists():
                return False
            return ("d" if host.is_dir() else "f" if host.is_file() else "?") in kinds
        if op == "empty":
            if host.is_symlink():
                return False
            return not any(host.iterdir()) if host.is_dir() else host.stat().st_size == 0
        if op in ("print", "print0"):
            self.call.print(shown + ("\n" if op == "print" else "\0"))
            return True
        if op == "true":
            return True
        if op == "false":
            return False
        if op == "prune":
            self.pruned = True
            return True
        if op == "delete":
            try:
                host.rmdir() if real_dir(host) else host.unlink()
            except OSError as e:
                self.status = self.call.fail(f"cannot delete '{shown}': {e.strerror}")
                return False
            return True
        if op == "exec":
            command, batch = list(a[0]), a[1]
            if batch:
                self.batches.setdefault(id(node), (command, []))[1].append(shown)
                return True
            return self.call.run([arg.replace("{}", shown) for arg in command]) == 0
        raise ShellError(f"find: unsupported expression '-{op}'")

    def finish(self) -> int:
        for command, paths in self.batches.values():
            at = command.index("{}")
            if self.call.run(command[:at] + paths + command[at + 1:]) != 0:
                self.status = 1
        return self.status


def _fnmatch(text: str, pattern: str, fold: bool) -> bool:
    return fnmatch.fnmatchcase(text.lower(), pattern.lower()) if fold else fnmatch.fnmatchcase(text, pattern)


_FIND_TESTS = {"-name": 1, "-iname": 1, "-path": 1, "-ipath": 1, "-wholename": 1, "-type": 1, "-empty": 0,
               "-print": 0, "-print0": 0, "-delete": 0, "-prune": 0, "-true": 0, "-false": 0}
_FIND_ACTIONS = {"print", "print0", "delete", "exec", "prune"}


def find_files(call: Call) -> int:
    args = list(call.args)
    while args and args[0] in ("-P", "-H"):
        args.pop(0)
    if args and args[0] == "-L":
        raise ShellError("find: unsupported option '-L' (following symlinks)")
    starts = []
    while args and not args[0].startswith("-") and args[0] not in ("(", "!", ")"):
        starts.append(args.pop(0))
    settings = {"post_order": False, "mindepth": 0, "maxdepth": None}
    tokens = []
    k = 0
    while k < len(args):
        a = args[k]
        if a in ("-depth", "-d"):
            settings["post_order"] = True
        elif a in ("-maxdepth", "-mindepth"):
            if k + 1 >= len(args) or not args[k + 1].isdigit():
                raise ShellError(f"find: {a} needs a number")
            settings[a[1:]] = int(args[k + 1])
            k += 1
        elif a in ("-xdev", "-mount", "-noleaf", "-ignore_readdir_race"):
            pass
        else:
            tokens.append(a)
        k += 1
    parser = _FindParser(tokens)
    expr = parser.parse() if tokens else _Find("true", ())
    if "delete" in parser.seen:
        settings["post_order"] = True
    if not parser.seen & _FIND_ACTIONS - {"prune"}:
        expr = _Find("and", (expr, _Find("print", ())))
    run = _FindRun(call, expr, bool(settings["post_order"]), int(settings["mindepth"]),
                   settings["maxdepth"] if settings["maxdepth"] is None else int(settings["maxdepth"]))
    for start in starts or ["."]:
        try:
            host = call.host(start, follow_last=False)
        except Failure as e:
            run.status = call.fail(str(e))
            continue
        if not lexists(host):
            run.status = call.fail(f"'{start}': No such file or directory")
            continue
        run.walk(start, host, 0)
    return run.finish()


class _FindParser:
    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.seen = tokens, 0, set()

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self) -> _Find:
        expr = self.or_()
        if self.peek() is not None:
            raise ShellError(f"find: unexpected '{self.peek()}'")
        return expr

    def or_(self) -> _Find:
        left = self.and_()
        while self.peek() in ("-o", "-or"):
            self.pos += 1
            left = _Find("or", (left, self.and_()))
        return left

    def and_(self) -> _Find:
        left = self.not_()
        while self.peek() not in (None, "-o", "-or", ")"):
            if self.peek() in ("-a", "-and"):
                self.pos += 1
            left = _Find("and", (left, self.not_()))
        return left

    def not_(self) -> _Find:
        if self.peek() in ("!", "-not"):
            self.pos += 1
            return _Find("not", (self.not_(),))
        return self.primary()

    def primary(self) -> _Find:
        token = self.peek()
        if token is None:
            raise ShellError("find: expression expected")
        self.pos += 1
        if token == "(":
            inner = self.or_()
            if self.peek() != ")":
                raise ShellError("find: missing )")
            self.pos += 1
            return inner
        if token in ("-exec", "-execdir"):
            if token == "-execdir":
                raise ShellError("find: unsupported expression '-execdir'")
            command = []
            while self.peek() not in (";", "+", None):
                command.append(self.tokens[self.pos])
                self.pos += 1
            end = self.peek()
            if end is None or not command or (end == "+" and "{}" not in command):
                raise ShellError("find: -exec needs a command ending with ';' or '{} +'")
            self.pos += 1
            self.seen.add("exec")
            return _Find("exec", (tuple(command), end == "+"))
        if token not in _FIND_TESTS:
            raise ShellError(f"find: unsupported expression '{token}'")
        values = self.tokens[self.pos:self.pos + _FIND_TESTS[token]]
        if len(values) < _FIND_TESTS[token]:
            raise ShellError(f"find: {token} needs a value")
        self.pos += len(values)
        op = "path" if token == "-wholename" else token[1:]
        self.seen.add(op)
        return _Find(op, tuple(values))


def install(call: Call) -> int:
    """`install -d dirs`, `install [-D] [-m mode] src dest`, `install src... dir`, `-t dir`."""
    opts, operands = parse_options(call, "dDcCsvp", "mogt", {"directory": "d", "mode": "m=", "owner": "o=",
                                                        "group": "g=", "target-directory": "t=",
                                                        "verbose": "v", "compare": "C", "strip": "s",
                                                        "preserve-timestamps": "p"})
    mode_spec = str(opts.get("m", "755"))
    _parse_mode(call, mode_spec, 0, False)
    owner = None
    if "o" in opts or "g" in opts:
        uid = accounts.user_id(call.root, str(opts.get("o", "root")))
        gid = accounts.group_id(call.root, str(opts.get("g", "root")))
        if uid is None or gid is None:
            return call.fail(f"invalid user or group '{opts.get('o', '')}:{opts.get('g', '')}'")
        owner = (uid, gid)

    def finish(host: Path) -> None:
        os.chmod(host, _parse_mode(call, mode_spec, stat.S_IMODE(host.stat().st_mode), host.is_dir()))
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


class _StrippedTar:
    """A tar's members with `--strip-components` applied, for rootfs.extract_tar."""

    def __init__(self, tar: tarfile.TarFile, strip: int, wanted: list[str]):
        self.tar, self.strip, self.wanted = tar, strip, wanted

    def _strip(self, name: str) -> str | None:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        return "/".join(parts[self.strip:]) if len(parts) > self.strip else None

    def __iter__(self):
        for m in self.tar:
            if self.wanted and not any(m.name.strip("./") == w.strip("./") or
                                       m.name.strip("./").startswith(w.strip("./") + "/") for w in self.wanted):
                continue
            name = self._strip(m.name)
            if name is None:
                continue
            if m.islnk():
                link = self._strip(m.linkname)
                if link is None:
                    continue
                m.linkname = link
            m.name = name
            yield m

    def extractfile(self, member: tarfile.TarInfo):
        return self.tar.extractfile(member)


def tar(call: Call) -> int:
    """Extracting (and listing) archives into the rootfs: `tar -xzf file -C dir`."""
    args = list(call.args)
    if args and not args[0].startswith("-"):
        args[0] = "-" + args[0]   # tar xzf file
    opts, operands = parse_options(call, "xtzjJvopcaP", "fC", {
        "extract": "x", "get": "x", "list": "t", "gzip": "z", "bzip2": "j", "xz": "J", "verbose": "v",
        "file": "f=", "directory": "C=", "strip-components": "strip=", "no-same-owner": "o",
        "no-same-permissions": "no-same-permissions", "same-permissions": "p", "preserve-permissions": "p",
        "overwrite": "overwrite", "create": "c"}, args=args)
    if opts.get("c"):
        raise ShellError("tar: creating archives (-c) is not supported in RUN")
    if not (opts.get("x") or opts.get("t")):
        raise ShellError("tar: only -x (extract) and -t (list) are supported in RUN")
    strip = str(opts.get("strip", "0"))
    if not strip.isdigit():
        return call.fail(f"invalid number of elements to strip: '{strip}'", 2)
    name = str(opts.get("f", "-"))
    try:
        data = call.stdin if name == "-" else call.host(name).read_bytes()
    except (Failure, OSError):
        return call.fail(f"{name}: Cannot open: No such file or directory", 2)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            members = _StrippedTar(archive, int(strip), operands)
            if opts.get("t"):
                call.print("".join(m.name + ("/" if m.isdir() else "") + "\n" for m in members))
                return 0
            dest = call.host(str(opts.get("C", ".")))
            if not real_dir(dest):
                return call.fail(f"{opts.get('C')}: Cannot open: No such file or directory", 2)
            written = extract_tar(members, call.root, within(call.root, dest), f"tar {name}")
    except (tarfile.TarError, EOFError) as e:
        return call.fail(f"{name}: not a readable archive ({e})", 2)
    except BoxerError as e:
        return call.fail(str(e), 2)
    if opts.get("v"):
        call.print("".join(w + "\n" for w in sorted(written)))
    return 0


FILE_UTILITIES: dict[str, Utility] = {
    "mkdir": mkdir, "rmdir": rmdir, "rm": rm, "touch": touch, "cp": cp, "mv": mv, "ln": ln,
    "chmod": chmod, "chown": chown, "chgrp": chgrp, "ls": ls, "find": find_files, "install": install, "tar": tar,
}
