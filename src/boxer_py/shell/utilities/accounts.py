"""useradd, adduser, groupadd, addgroup, usermod (Debian and BusyBox flags) for the RUN shell.

Accounts are appended to the rootfs's /etc/passwd and /etc/group (image/users.py); home
directories are created in the rootfs and their owner recorded like chown.
"""
from __future__ import annotations

from boxer_py.image import users as accounts
from boxer_py.image.rootfs import within
from boxer_py.shell.utilities.core import Call, Failure, Utility, lexists, new_dir, parse_options, value


def _make_home(call: Call, home: str, uid: int, gid: int) -> None:
    host = call.host(home)   # existing components are real directories inside root
    if lexists(host) and not host.is_dir():
        raise Failure(f"cannot create directory {home}")
    missing = []
    while not host.exists():   # everything that exists on the way is inside root (resolve)
        missing.append(host)
        host = host.parent
    for directory in reversed(missing):
        new_dir(directory)
    host = call.host(home)
    call.owners[within(call.root, host)] = (uid, gid)


def _add_group(call: Call, name: str, gid: str | None, system: bool, exist_ok: bool = False) -> int:
    existing = accounts.groups(call.root)
    if name in existing:
        return 0 if exist_ok else call.fail(f"group '{name}' already exists", 9)
    taken = {g for g, _ in existing.values()}
    if gid is not None:
        if not gid.isdigit():
            return call.fail(f"invalid group ID '{gid}'", 3)
        if int(gid) in taken and not exist_ok:
            return call.fail(f"GID '{gid}' already exists", 4)
    accounts.add_group(call.root, name, int(gid) if gid is not None else accounts.next_id(taken, system))
    return 0


def groupadd(call: Call) -> int:
    opts, operands = parse_options(call, "rfo", "gK", {"system": "r", "gid": "g=", "force": "f",
                                                  "non-unique": "o", "key": "K="})
    if len(operands) != 1:
        return call.fail("expected one group name", 2)
    return _add_group(call, operands[0], value(opts, "g"), bool(opts.get("r")), bool(opts.get("f")))


def _add_to_group(call: Call, user: str, group: str) -> int:
    """`adduser USER GROUP` / `addgroup USER GROUP`: both users and group must exist."""
    if accounts.user(call.root, user) is None:
        return call.fail(f"The user `{user}' does not exist.")
    if not accounts.add_member(call.root, group, user):
        return call.fail(f"The group `{group}' does not exist.")
    return 0


def addgroup(call: Call) -> int:
    """Debian's (`--system --gid N name`) and BusyBox's (`-S -g N name`); `addgroup user group`."""
    opts, operands = parse_options(call, "S", "g", {"system": "S", "gid": "g=", "quiet": "q", "force-badname": "b"})
    if len(operands) == 2:
        return _add_to_group(call, *operands)
    if len(operands) != 1:
        return call.fail("expected one group name")
    return _add_group(call, operands[0], value(opts, "g"), bool(opts.get("S")))


def _add_user(call: Call, name: str, *, uid: str | None, group: str | None, same_group: bool,
              system: bool, home: str | None, create_home: bool, shell: str, gecos: str,
              extra: list[str]) -> int:
    if accounts.user(call.root, name) is not None:
        return call.fail(f"user '{name}' already exists", 9)
    taken = {u.uid for u in accounts.users(call.root)}
    if uid is not None:
        if not uid.isdigit():
            return call.fail(f"invalid user ID '{uid}'", 3)
        if int(uid) in taken:
            return call.fail(f"UID {uid} is not unique", 4)
        number = int(uid)
    else:
        number = accounts.next_id(taken, system)
    if group is not None:
        gid = accounts.group_id(call.root, group)
        if gid is None:
            return call.fail(f"group '{group}' does not exist", 6)
    elif same_group:
        existing = accounts.groups(call.root)
        if name in existing:
            gid = existing[name][0]
        else:
            gids = {g for g, _ in existing.values()}
            gid = number if number not in gids else accounts.next_id(gids, system)
            accounts.add_group(call.root, name, gid)
    else:
        gid = 65534 if system else 100
    for g in extra:
        if not accounts.add_member(call.root, g, name):
            return call.fail(f"group '{g}' does not exist", 6)
    home = home or f"/home/{name}"
    accounts.add_user(call.root, accounts.User(name, number, gid, home, shell), gecos)
    if create_home:
        _make_home(call, home, number, gid)
    return 0


def useradd(call: Call) -> int:
    opts, operands = parse_options(call, "rmMNUlo", "ugGdscekKp", {
        "system": "r", "create-home": "m", "no-create-home": "M", "no-user-group": "N", "user-group": "U",
        "no-log-init": "l", "non-unique": "o", "uid": "u=", "gid": "g=", "groups": "G=", "home-dir": "d=",
        "home": "d=", "shell": "s=", "comment": "c=", "expiredate": "e=", "key": "K=", "password": "p="})
    if len(operands) != 1:
        return call.fail("expected one user name", 2)
    extra = [g for g in str(opts.get("G", "")).split(",") if g]
    return _add_user(call, operands[0], uid=value(opts, "u"), group=value(opts, "g"), same_group=not opts.get("N"),
                     system=bool(opts.get("r")), home=value(opts, "d"), create_home=bool(opts.get("m")),
                     shell=str(opts.get("s", "/bin/sh")), gecos=str(opts.get("c", "")), extra=extra)


def adduser(call: Call) -> int:
    """Debian's long options or BusyBox's short ones (-S -D -H -h -g -G -s -u); `adduser user group`."""
    opts, operands = parse_options(call, "SDH", "hgGsuk", {
        "system": "S", "disabled-password": "D", "disabled-login": "D", "no-create-home": "H",
        "home": "h=", "gecos": "g=", "comment": "g=", "ingroup": "G=", "gid": "gid=", "shell": "s=",
        "uid": "u=", "group": "group", "quiet": "q", "force-badname": "b", "allow-bad-names": "b"})
    if len(operands) == 2:
        return _add_to_group(call, *operands)
    if len(operands) != 1:
        return call.fail("expected one user name")
    system = bool(opts.get("S"))
    group = value(opts, "G") or value(opts, "gid")
    same_group = not system or bool(opts.get("group"))
    return _add_user(call, operands[0], uid=value(opts, "u"), group=group, same_group=same_group and group is None,
                     system=system, home=value(opts, "h"), create_home=not opts.get("H"),
                     shell=str(opts.get("s", "/usr/sbin/nologin" if system else "/bin/sh")),
                     gecos=str(opts.get("g", "")), extra=[])


def usermod(call: Call) -> int:
    """The common `usermod -aG group user`, `-G`, `-s`, `-d`."""
    opts, operands = parse_options(call, "a", "Gsdg", {"append": "a", "groups": "G=", "shell": "s=", "home": "d=",
                                                   "gid": "g="})
    if len(operands) != 1:
        return call.fail("expected one user name", 2)
    name = operands[0]
    if accounts.user(call.root, name) is None:
        return call.fail(f"user '{name}' does not exist", 6)
    for group in [g for g in str(opts.get("G", "")).split(",") if g]:
        if not accounts.add_member(call.root, group, name):
            return call.fail(f"group '{group}' does not exist", 6)
    changes = {5: opts.get("d"), 6: opts.get("s")}
    if "g" in opts:
        gid = accounts.group_id(call.root, str(opts["g"]))
        if gid is None:
            return call.fail(f"group '{opts['g']}' does not exist", 6)
        changes[3] = str(gid)
    accounts.set_fields(call.root, name, {k: str(v) for k, v in changes.items() if v is not None})
    return 0


UTILITIES: dict[str, Utility] = {
    "groupadd": groupadd, "addgroup": addgroup, "useradd": useradd, "adduser": adduser, "usermod": usermod,
}
