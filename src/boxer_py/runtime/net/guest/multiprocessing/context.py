"""The parts of multiprocessing.context that importers name; see the package's docstring."""
import errno
import os
import queue as _queue
import threading as _threading
from multiprocessing import process
from multiprocessing.process import active_children, current_process, parent_process

__all__ = ["AuthenticationError", "BufferTooShort", "BoundedSemaphore", "Condition", "Event", "JoinableQueue", "Lock",
           "Pipe", "Pool", "Process", "ProcessError", "Queue", "RLock", "Semaphore", "SimpleQueue", "SpawnProcess", "TimeoutError", "Value",
           "Array", "Manager", "active_children", "allow_connection_pickling", "cpu_count", "current_process",
           "freeze_support", "get_all_start_methods", "get_context", "get_start_method", "parent_process",
           "set_executable", "set_forkserver_preload", "set_start_method"]


class ProcessError(Exception):
    pass


class BufferTooShort(ProcessError):
    pass


class TimeoutError(ProcessError):
    pass


class AuthenticationError(ProcessError):
    pass


def _refuse(*args, **kwargs):
    raise OSError(errno.ENOSYS, process.NO_PROCESSES)


class Process(process.BaseProcess):
    """A process of the default start method: start() fails (no process can start)."""

    _start_method = None


SpawnProcess = ForkProcess = ForkServerProcess = Process


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
    BufferTooShort, AuthenticationError = BufferTooShort, AuthenticationError
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
