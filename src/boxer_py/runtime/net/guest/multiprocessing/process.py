"""multiprocessing.process for a guest whose CPython has none (see the package's docstring):
the process objects. The main process is the one that runs; another can be made, configured
and inspected, and its start() fails with one clear OSError (ENOSYS), as on the runtimes whose
standard library has multiprocessing. `_current_process` is a module global that callers may
replace (billiard does, for its own process class)."""
import errno
import itertools
import os

__all__ = ["BaseProcess", "current_process", "active_children", "parent_process"]

NO_PROCESSES = "multiprocessing cannot start a process: a WebAssembly guest has no processes"

try:
    ORIGINAL_DIR = os.path.abspath(os.getcwd())
except OSError:
    ORIGINAL_DIR = None


def current_process():
    """The process object of the running process."""
    return _current_process


def active_children():
    """The children still running: a guest never has any."""
    return []


def parent_process():
    """The parent's process object: the main process has none."""
    return _parent_process


class AuthenticationString(bytes):
    def __reduce__(self):
        raise TypeError("Pickling an AuthenticationString object is disallowed for security reasons")


class BaseProcess:
    """A process: made and configured as usual; start() refuses, as no process can start."""

    _start_method = None

    def _Popen(self, process_obj):
        raise OSError(errno.ENOSYS, NO_PROCESSES)

    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None, *, daemon=None):
        assert group is None, "group argument must be None for now"
        self._identity = _current_process._identity + (next(_process_counter),)
        self._config = dict(_current_process._config)
        self._parent_pid = os.getpid()
        self._parent_name = _current_process.name
        self._popen = None
        self._closed = False
        self._target, self._args, self._kwargs = target, tuple(args), dict(kwargs or {})
        self._name = name or f"{type(self).__name__}-{':'.join(str(i) for i in self._identity)}"
        if daemon is not None:
            self.daemon = daemon

    def run(self):
        """What the process would run: the target with its arguments."""
        if self._target:
            self._target(*self._args, **self._kwargs)

    def start(self):
        """Start the process: fails with OSError(ENOSYS) in a guest."""
        if self._closed:
            raise ValueError("process object is closed")
        assert self._popen is None, "cannot start a process twice"
        self._popen = self._Popen(self)

    def terminate(self):
        pass

    def kill(self):
        pass

    def join(self, timeout=None):
        if self._popen is None:
            raise AssertionError("can only join a started process")

    def is_alive(self):
        return self is _current_process

    def close(self):
        self._closed = True

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, name):
        assert isinstance(name, str), "name must be a string"
        self._name = name

    @property
    def daemon(self):
        return self._config.get("daemon", False)

    @daemon.setter
    def daemon(self, daemonic):
        self._config["daemon"] = daemonic

    @property
    def authkey(self):
        return self._config["authkey"]

    @authkey.setter
    def authkey(self, authkey):
        self._config["authkey"] = AuthenticationString(authkey)

    @property
    def exitcode(self):
        return None

    @property
    def ident(self):
        return os.getpid() if self is _current_process else None

    pid = ident

    @property
    def sentinel(self):
        raise ValueError("process not started")

    def __repr__(self):
        status = "started" if self is _current_process else "initial"
        return f"<{type(self).__name__} name={self._name!r} parent={self._parent_pid} {status}>"


class _MainProcess(BaseProcess):
    def __init__(self):
        self._identity = ()
        self._name = "MainProcess"
        self._parent_pid = None
        self._popen = None
        self._closed = False
        self._target, self._args, self._kwargs = None, (), {}
        self._config = {"authkey": AuthenticationString(os.urandom(32)), "semprefix": "/mp"}

    def close(self):
        pass


_parent_process = None
_current_process = _MainProcess()
_process_counter = itertools.count(1)
_children = set()
