"""The parts of multiprocessing.context that importers name; see the package's docstring."""
import os
import queue as _queue
import threading as _threading

__all__ = ["BoundedSemaphore", "Condition", "Event", "JoinableQueue", "Lock", "Pipe", "Pool", "Process",
           "ProcessError", "Queue", "RLock", "Semaphore", "SimpleQueue", "SpawnProcess", "TimeoutError", "Value",
           "Array", "Manager", "active_children", "allow_connection_pickling", "cpu_count", "current_process",
           "freeze_support", "get_all_start_methods", "get_context", "get_start_method", "parent_process",
           "set_executable", "set_forkserver_preload", "set_start_method"]
_NO_PROCESSES = "multiprocessing: a WebAssembly guest cannot start processes (run one server process)"


class ProcessError(Exception):
    pass


class TimeoutError(ProcessError):
    pass


def _refuse(*args, **kwargs):
    raise OSError(58, _NO_PROCESSES)


class BaseProcess:
    """A process that cannot start: constructing one works (so code can decide), start() fails."""

    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None, *, daemon=None):
        self._target, self._args, self._kwargs = target, tuple(args), dict(kwargs or {})
        self.name, self.daemon, self.exitcode, self.pid = name or "Process-1", daemon, None, None

    def run(self):
        if self._target is not None:
            self._target(*self._args, **self._kwargs)

    start = _refuse

    def is_alive(self):
        return False

    def join(self, timeout=None):
        pass

    def terminate(self):
        pass

    kill = close = terminate


class _MainProcess(BaseProcess):
    def __init__(self):
        super().__init__(name="MainProcess")
        self.pid = os.getpid()

    def start(self):
        raise AssertionError("the main process is already running")


Process = SpawnProcess = ForkProcess = ForkServerProcess = BaseProcess
_MAIN = _MainProcess()


def current_process():
    return _MAIN


def parent_process():
    return None


def active_children():
    return []


def cpu_count():
    return os.cpu_count() or 1


def allow_connection_pickling():
    pass


def freeze_support():
    pass


def get_start_method(allow_none=False):
    return "spawn"


def get_all_start_methods():
    return ["spawn"]


def set_start_method(method, force=False):
    pass


def set_executable(executable):
    pass


def set_forkserver_preload(module_names):
    pass


Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event = (
    _threading.Lock, _threading.RLock, _threading.Condition, _threading.Semaphore, _threading.BoundedSemaphore,
    _threading.Event)
Queue = JoinableQueue = _queue.Queue
SimpleQueue = _queue.SimpleQueue
Pipe = Pool = Manager = Value = Array = _refuse


class BaseContext:
    """What get_context() returns: the module's functions, for every start method."""

    ProcessError, TimeoutError, Process = ProcessError, TimeoutError, Process
    Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event = Lock, RLock, Condition, Semaphore, \
        BoundedSemaphore, Event
    Queue, JoinableQueue, SimpleQueue = Queue, JoinableQueue, SimpleQueue
    Pipe = Pool = Manager = Value = Array = staticmethod(_refuse)
    current_process, parent_process, active_children = (staticmethod(current_process), staticmethod(parent_process),
                                                        staticmethod(active_children))
    cpu_count, allow_connection_pickling = staticmethod(cpu_count), staticmethod(allow_connection_pickling)
    freeze_support, get_start_method = staticmethod(freeze_support), staticmethod(get_start_method)

    def get_context(self, method=None):
        return self


DefaultContext = SpawnContext = ForkContext = ForkServerContext = BaseContext
_CONTEXT = BaseContext()


def get_context(method=None):
    if method not in (None, "spawn", "fork", "forkserver"):
        raise ValueError(f"cannot find context for {method!r}")
    return _CONTEXT
