"""multiprocessing.util for a guest whose CPython has none (see the package's docstring):
its logging helpers, finalizers run at exit, after-fork hooks (never run: a guest does not
fork) and the fork-aware lock and local, which billiard and kombu import at start-up."""
import atexit
import errno
import itertools
import os
import sys
import threading
import weakref
from multiprocessing import process

__all__ = ["sub_debug", "debug", "info", "sub_warning", "get_logger", "log_to_stderr", "get_temp_dir",
           "register_after_fork", "is_exiting", "Finalize", "ForkAwareThreadLock", "ForkAwareLocal",
           "SUBDEBUG", "SUBWARNING"]

NOTSET, SUBDEBUG, DEBUG, INFO, SUBWARNING = 0, 5, 10, 20, 25
LOGGER_NAME = "multiprocessing"
DEFAULT_LOGGING_FORMAT = "[%(levelname)s/%(processName)s] %(message)s"
abstract_sockets_supported = False

_logger = None
_log_to_stderr = False


def _log(level, msg, args):
    if _logger:
        _logger.log(level, msg, *args, stacklevel=3)


def sub_debug(msg, *args):
    _log(SUBDEBUG, msg, args)


def debug(msg, *args):
    _log(DEBUG, msg, args)


def info(msg, *args):
    _log(INFO, msg, args)


def sub_warning(msg, *args):
    _log(SUBWARNING, msg, args)


def get_logger():
    """The 'multiprocessing' logger (made on first use, not propagating to the root logger)."""
    global _logger
    import logging
    if not _logger:
        _logger = logging.getLogger(LOGGER_NAME)
        _logger.propagate = False
        logging.addLevelName(SUBDEBUG, "SUBDEBUG")
        logging.addLevelName(SUBWARNING, "SUBWARNING")
    return _logger


def log_to_stderr(level=None):
    """Send the logger's records to stderr in multiprocessing's format."""
    global _log_to_stderr
    import logging
    logger = get_logger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(DEFAULT_LOGGING_FORMAT))
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    _log_to_stderr = True
    return logger


def is_abstract_socket_namespace(address):
    return False


def get_temp_dir():
    """A temporary directory for this process, removed at exit."""
    tempdir = process.current_process()._config.get("tempdir")
    if tempdir is None:
        import shutil
        import tempfile
        tempdir = tempfile.mkdtemp(prefix="pymp-")
        Finalize(None, shutil.rmtree, args=(tempdir, True), exitpriority=-100)
        process.current_process()._config["tempdir"] = tempdir
    return tempdir


_afterfork_registry = weakref.WeakValueDictionary()
_afterfork_counter = itertools.count()


def _run_after_forkers():
    for (_, _, func), obj in sorted(_afterfork_registry.items(), key=lambda item: item[0][0]):
        try:
            func(obj)
        except Exception as e:
            info("after forker raised exception %s", e)


def register_after_fork(obj, func):
    """Call func(obj) in a forked child: a guest never forks, so this only records it."""
    _afterfork_registry[(next(_afterfork_counter), id(obj), func)] = obj


_finalizer_registry = {}
_finalizer_counter = itertools.count()


class Finalize:
    """Call callback(*args, **kwargs) once: when obj is collected, when called, or at exit if
    exitpriority is not None (higher priorities first, the same priority newest first)."""

    def __init__(self, obj, callback, args=(), kwargs=None, exitpriority=None):
        if exitpriority is not None and not isinstance(exitpriority, int):
            raise TypeError(f"Exitpriority ({exitpriority!r}) must be None or int, not {type(exitpriority)}")
        if obj is not None:
            self._weakref = weakref.ref(obj, self)
        elif exitpriority is None:
            raise ValueError("Without object, exitpriority cannot be None")
        self._callback, self._args, self._kwargs = callback, args, kwargs or {}
        self._key = (exitpriority, next(_finalizer_counter))
        self._pid = os.getpid()
        _finalizer_registry[self._key] = self

    def __call__(self, wr=None):
        try:
            del _finalizer_registry[self._key]
        except KeyError:
            sub_debug("finalizer no longer registered")
            return None
        sub_debug("finalizer calling %s with args %s and kwargs %s", self._callback, self._args, self._kwargs)
        result = self._callback(*self._args, **self._kwargs)
        self._weakref = self._callback = self._args = self._kwargs = self._key = None
        return result

    def cancel(self):
        """Cancel the finalizer without calling it."""
        try:
            del _finalizer_registry[self._key]
        except KeyError:
            pass
        else:
            self._weakref = self._callback = self._args = self._kwargs = self._key = None

    def still_active(self):
        return self._key in _finalizer_registry

    def __repr__(self):
        obj = getattr(self, "_weakref", None)
        obj = obj() if obj is not None else None
        if self._key is None:
            return "<Finalize object, dead>"
        return (f"<Finalize object, callback={getattr(self._callback, '__name__', self._callback)}"
                + (f", args={self._args}" if self._args else "") + (f", kwargs={self._kwargs}" if self._kwargs else "")
                + (f", exitpriority={self._key[0]}" if self._key[0] is not None else "") + ">")


def _run_finalizers(minpriority=None):
    """Run the finalizers whose exit priority is at least minpriority (all with one if None)."""
    if _finalizer_registry is None:
        return
    if minpriority is None:
        wanted = lambda key: key[0] is not None  # noqa: E731
    else:
        wanted = lambda key: key[0] is not None and key[0] >= minpriority  # noqa: E731
    for key in sorted((k for k in list(_finalizer_registry) if wanted(k)), reverse=True):
        finalizer = _finalizer_registry.get(key)
        if finalizer is not None:
            try:
                finalizer()
            except Exception:
                import traceback
                traceback.print_exc()
    if minpriority is None:
        _finalizer_registry.clear()


_exiting = False


def is_exiting():
    """Whether the process is exiting (its finalizers are running)."""
    return _exiting or _exiting is None


def _exit_function(info=info, debug=debug, _run_finalizers=_run_finalizers, active_children=process.active_children,
                   current_process=process.current_process):
    global _exiting
    if not _exiting:
        _exiting = True
        info("process shutting down")
        debug("running all finalizers with priority >= 0")
        _run_finalizers(0)
        debug("running the remaining finalizers")
        _run_finalizers()


atexit.register(_exit_function)


class ForkAwareThreadLock:
    """A lock made anew in a forked child (here: a lock)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.acquire, self.release = self._lock.acquire, self._lock.release
        register_after_fork(self, ForkAwareThreadLock._at_fork_reinit)

    def _at_fork_reinit(self):
        self._lock._at_fork_reinit()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)


class ForkAwareLocal(threading.local):
    """A thread-local emptied in a forked child (here: a thread-local)."""

    def __reduce__(self):
        return type(self), ()


def spawnv_passfds(path, args, passfds):
    raise OSError(errno.ENOSYS, process.NO_PROCESSES)


def _flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):
            pass
