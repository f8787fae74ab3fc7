"""multiprocessing for a networked guest whose CPython has none (CPython for WASI leaves it
out: a guest has no processes). Servers import it without using it (uvicorn's supervisors,
gunicorn-style worker counts), so it imports; starting a process fails with a clear OSError.
Locks, events and queues are the threading ones: one process, so they mean the same.
If the image's standard library does have multiprocessing, that one is loaded instead."""
import _boxer_net

if _boxer_net.load_real_package(__name__, globals()):
    pass
else:
    from multiprocessing import context  # noqa: F401
    from multiprocessing.context import *  # noqa: F403 - its __all__: the module's public names
