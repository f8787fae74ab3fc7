"""boxer: what CPython for WASI lacks and a container has, added as CPython starts (site.py
imports this module). A Dockerfile's own sitecustomize.py earlier on sys.path replaces it.

- os.getuid, geteuid, getgid, getegid and getgroups: WASI has no users, so CPython for WASI
  has none of them, and getpass.getuser() and pwd.getpwuid(os.getuid()) failed. They answer
  as in a container: the image's USER (or `boxer run --user`), which boxer passes as
  BOXER_USER when it is not root, looked up in the image's /etc/passwd and /etc/group. They
  read it at each call: a pre-initialised interpreter imports this module before a run's
  environment is known.
- os.chown, lchown and fchown: a file has no owner in WASI. With a uid of 0, tarfile's
  extraction and shutil.chown call them as they would as root in a container: they succeed
  for a file that exists (checked as stat would), with nothing to change.
- socket.AF_UNIX (wasi-libc's 3), which gunicorn and others name at import: creating such
  a socket still fails, as WASI has no Unix sockets.
- socket's SO_* option names that CPython for WASI leaves out (SO_KEEPALIVE...; neo4j imports
  it), with wasi-libc's values, as the networked guest's socket module has them.
- socket.getservbyname and getservbyport (neo4j imports them), from the image's
  /etc/services as glibc reads it; the python bases have one with the common services.
- socket.gethostname (celery calls it at import): $HOSTNAME, which Docker sets in a container,
  else "localhost"; WASI has no host name.
- socket.getaddrinfo, which fails with socket.gaierror saying the run has no network, where
  CPython for WASI has none at all (socket.create_connection, urllib and requests call it
  first and failed with an AttributeError).
- os.get_terminal_size (WASI has no ioctl, so CPython for WASI has none): under `boxer run
  -t` on a terminal, boxer keeps that terminal's size in the read-only file BOXER_TTY names
  and rewrites it when the window is resized (a SIGWINCH handler then runs), so this reads
  it; COLUMNS and LINES, which boxer then set only as the size at start, are dropped, so
  shutil.get_terminal_size, rich and click follow the window as in `docker run -t`.
- concurrent.futures.thread, when the runtime's stdlib lacks it (the VMware 3.12 build):
  served from _boxer_futures_thread.py beside this file, by a finder that comes last, so a
  stdlib that has the module keeps its own.
- multiprocessing, when the runtime's stdlib lacks it (the VMware 3.12 build): boxer's own
  package (_boxer_multiprocessing*.py beside this file, the networked guest's one), by the
  same finder that comes last: it imports with multiprocessing.process and .util (celery's
  billiard and kombu use them at start-up), and starting a process fails with ENOSYS.
- multiprocessing's popen_fork, popen_forkserver and popen_spawn_posix, when os has no fork
  (every WASI runtime): from _boxer_no_processes.py, by a finder that comes first, so that
  Process.start() fails with one clear OSError (ENOSYS) instead of an AttributeError.
- ssl, served from _boxer_ssl.py beside this file (boxer's one ssl for guests: no runtime has
  OpenSSL, and the VMware 3.12 build has no ssl module at all), by a finder that comes first,
  so it replaces a stdlib ssl that could only fail for want of _ssl. A networked run
  (BOXER_NET_FD set) gets the same module from boxer's network modules on PYTHONPATH, which
  then win: they speak the running host's protocol."""
import os as _os
import sys as _sys


def _table(path):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return [line.split(":") for line in f.read().splitlines()]
    except OSError:
        return []


def _identity():
    """(uid, gid, groups) of BOXER_USER ("name", "uid", "name:group" or "uid:gid"), as Docker
    reads USER: a name unknown to /etc/passwd counts as nobody (65534)."""
    user, _, group = _os.environ.get("BOXER_USER", "").partition(":")
    passwd = [f for f in _table("/etc/passwd") if len(f) == 7 and f[2].isdigit() and f[3].isdigit()]
    uid = gid = 0
    name = "root"
    if user.isdigit():
        uid = int(user)
        found = [f for f in passwd if int(f[2]) == uid]
        name, gid = (found[0][0], int(found[0][3])) if found else ("", 0)
    elif user and user != "root":
        found = [f for f in passwd if f[0] == user]
        name, uid, gid = (user, int(found[0][2]), int(found[0][3])) if found else ("", 65534, 65534)
    groups = [f for f in _table("/etc/group") if len(f) == 4 and f[2].isdigit()]
    if group:
        found = [f for f in groups if f[0] == group]
        gid = int(group) if group.isdigit() else int(found[0][2]) if found else 65534
    extra = [int(f[2]) for f in groups if name and name in f[3].split(",")] if not group else []
    return uid, gid, [gid] + [g for g in extra if g != gid]


def _services():
    """(name and aliases, port, protocol) of each line of /etc/services."""
    for f in _table("/etc/services"):
        words = ":".join(f).partition("#")[0].split()
        if len(words) >= 2 and words[1].count("/") == 1:
            port, _, proto = words[1].partition("/")
            if port.isdigit():
                yield [words[0], *words[2:]], int(port), proto


def _getservbyname(servicename, protocolname=None, /):
    """getservbyname(servicename[, protocolname]) -> integer"""
    for names, port, proto in _services():
        if servicename in names and protocolname in (None, proto):
            return port
    raise OSError("service/proto not found")


def _getservbyport(port, protocolname=None, /):
    """getservbyport(port[, protocolname]) -> string"""
    if not 0 <= port <= 65535:
        raise OverflowError("getservbyport: port must be 0-65535.")
    for names, number, proto in _services():
        if number == port and protocolname in (None, proto):
            return names[0]
    raise OSError("port/proto not found")


def _gethostname():
    """Return the current host's name (WASI has none: $HOSTNAME, as Docker sets it, else localhost)."""
    return _os.environ.get("HOSTNAME") or "localhost"


def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """A run without a network resolves no names (a networked run's socket module has its own)."""
    raise _socket_gaierror()(-3, "this sandbox has no network to resolve names in "
                                 "(--allow-net HOST gives it one)")


def _socket_gaierror():
    import _socket
    return getattr(_socket, "gaierror", OSError)


def _get_terminal_size(fd=1, /):
    """Return the size of the terminal window as (columns, lines)."""
    where = _os.environ.get("BOXER_TTY")
    try:
        if where and _os.isatty(fd):
            with open(where, "rb") as f:
                columns, lines = (int(n) for n in f.read(64).split())
            return _os.terminal_size((columns, lines))
    except (OSError, ValueError):
        pass
    raise OSError(59, "Inappropriate ioctl for device")  # ENOTTY, as for a descriptor that is no terminal


def _install():
    if not hasattr(_os, "get_terminal_size"):
        _os.get_terminal_size = _get_terminal_size
        if _os.environ.get("BOXER_TTY"):  # boxer's COLUMNS and LINES: the size at start only
            _os.environ.pop("COLUMNS", None)
            _os.environ.pop("LINES", None)
    if not hasattr(_os, "getuid"):
        _os.getuid = _os.geteuid = lambda: _identity()[0]
        _os.getgid = _os.getegid = lambda: _identity()[1]
        _os.getgroups = lambda: list(_identity()[2])
        for f, doc in ((_os.getuid, "Return the current process's user id."),
                       (_os.getgid, "Return the current process's group id."),
                       (_os.getgroups, "Return list of supplemental group IDs for the process.")):
            f.__doc__ = doc
    if not hasattr(_os, "chown"):
        def ids(uid, gid):
            """uid and gid must be integers (or have __index__), as CPython's converter wants."""
            for value, name in ((uid, "uid"), (gid, "gid")):
                if not hasattr(type(value), "__index__"):
                    raise TypeError(f"{name} should be integer, not {type(value).__name__}")

        def chown(path, uid, gid, *, dir_fd=None, follow_symlinks=True):
            """Change the owner and group id of path (WASI has no owners: checks it exists)."""
            ids(uid, gid)
            _os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

        def lchown(path, uid, gid):
            """Change the owner and group id of path, not following links (see chown)."""
            ids(uid, gid)
            _os.stat(path, follow_symlinks=False)

        def fchown(fd, uid, gid):
            """Change the owner and group id of the file fd (see chown)."""
            ids(uid, gid)
            _os.fstat(fd)

        _os.chown, _os.lchown, _os.fchown = chown, lchown, fchown
    import _socket
    if not hasattr(_socket, "AF_UNIX") and 3 not in (v for k, v in vars(_socket).items() if k.startswith("AF_")):
        _socket.AF_UNIX = 3
    for name, value in (("SO_REUSEADDR", 2), ("SO_KEEPALIVE", 9), ("SO_ERROR", 4), ("SO_SNDBUF", 7),
                        ("SO_RCVBUF", 8), ("SO_LINGER", 13), ("SO_BROADCAST", 6)):
        if not hasattr(_socket, name):
            setattr(_socket, name, value)
    if not hasattr(_socket, "getservbyname"):
        _socket.getservbyname, _socket.getservbyport = _getservbyname, _getservbyport
    if not hasattr(_socket, "getaddrinfo"):
        _socket.getaddrinfo = _getaddrinfo
    if not hasattr(_socket, "gethostname"):
        _socket.gethostname = _gethostname
    here = _os.path.dirname(_os.path.abspath(__file__))

    class _StandIns:
        """Stdlib modules served from boxer's stand-ins beside this file."""

        def __init__(self, modules, packages=()):
            self.modules, self.packages = modules, packages

        def find_spec(self, fullname, path=None, target=None):
            file = self.modules.get(fullname)
            if file is None:
                return None
            import importlib.util
            # a package's submodules are served by this finder too (its __path__ is empty)
            search = [] if fullname in self.packages else None
            return importlib.util.spec_from_file_location(fullname, _os.path.join(here, file),
                                                          submodule_search_locations=search)

    # last: only what the runtime's stdlib lacks
    _sys.meta_path.append(_StandIns({
        "concurrent.futures.thread": "_boxer_futures_thread.py",
        "multiprocessing": "_boxer_multiprocessing.py",
        **{f"multiprocessing.{name}": f"_boxer_multiprocessing_{name}.py" for name in ("context", "process", "util")},
    }, packages=("multiprocessing",)))
    if not hasattr(_os, "fork"):
        # first: the stdlib's own fail at import on WASI (os.WNOHANG), not with a clear error
        _sys.meta_path.insert(0, _StandIns(dict.fromkeys(
            ("multiprocessing.popen_fork", "multiprocessing.popen_forkserver", "multiprocessing.popen_spawn_posix"),
            "_boxer_no_processes.py")))

    class _Ssl:
        """boxer's ssl instead of the stdlib's, unless a networked run brings its own."""

        def find_spec(self, fullname, path=None, target=None):
            if fullname != "ssl" or "BOXER_NET_FD" in _os.environ:
                return None
            import importlib.util
            return importlib.util.spec_from_file_location("ssl", _os.path.join(here, "_boxer_ssl.py"))

    _sys.meta_path.insert(0, _Ssl())


_install()
del _install
