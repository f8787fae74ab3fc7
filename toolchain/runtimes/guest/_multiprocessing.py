"""boxer: a WebAssembly guest has no processes and CPython for WASI has no semaphores. This
stand-in for the `_multiprocessing` extension lets `multiprocessing` and its submodules import
(libraries import `multiprocessing.pool` for its ThreadPool at start-up, as the kubernetes
client does) and makes creating a process lock fail with one clear error."""
import errno as _errno

_WHY = "multiprocessing is not available: a WebAssembly guest has no processes or semaphores"

flags: dict = {}


class SemLock:
    SEM_VALUE_MAX = 2147483647

    def __init__(self, *args, **kwargs):
        raise OSError(_errno.ENOSYS, _WHY)

    @classmethod
    def _rebuild(cls, *args):
        raise OSError(_errno.ENOSYS, _WHY)


def sem_unlink(name):
    raise OSError(_errno.ENOSYS, _WHY)
