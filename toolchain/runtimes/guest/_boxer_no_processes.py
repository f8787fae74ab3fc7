"""boxer: multiprocessing's popen_fork, popen_forkserver and popen_spawn_posix for a guest,
which has no fork, no exec and no processes. CPython's own modules fail at import with
"module 'os' has no attribute 'WNOHANG'" when Process.start() asks for one (as CPython's own
test_re does, or a library's worker pool); sitecustomize's finder serves this one under those
names instead, whose Popen fails with one clear error."""
import errno as _errno

_WHY = "multiprocessing cannot start a process: a WebAssembly guest has no processes"


class Popen:
    """What Process.start() creates to start the child: here it refuses."""

    def __init__(self, process_obj):
        raise OSError(_errno.ENOSYS, _WHY)
