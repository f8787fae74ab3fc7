"""multiprocessing for a guest whose CPython has none (the VMware 3.12 build leaves it out: a
guest has no processes). Libraries import it without starting a process (uvicorn's
supervisors, gunicorn-style worker counts, celery through billiard, kombu's finalizers), so
it imports, with the process objects (`process`) and the helpers of `util`; starting a process
fails with one clear OSError (ENOSYS), as on the runtimes whose standard library has it.
Locks, events and queues are the threading ones: one process, so they mean the same.

One package for both ways a guest gets it: a networked run's modules (first on PYTHONPATH;
if the image's standard library does have multiprocessing, that one is loaded instead), and
the python bases' stand-ins (toolchain/runtimes/guest/_boxer_multiprocessing*.py link here;
sitecustomize serves them only where the standard library has none)."""
try:
    import _boxer_net
except ImportError:  # a stand-in of the python base, not a networked run's module
    _boxer_net = None

if _boxer_net is not None and _boxer_net.load_real_package(__name__, globals()):
    pass
else:
    from multiprocessing import context, process, util  # noqa: F401
    from multiprocessing.context import *  # noqa: F403 - its __all__: the module's public names

    SUBDEBUG, SUBWARNING = util.SUBDEBUG, util.SUBWARNING
