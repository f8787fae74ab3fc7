# Runs inside the guest's CPython, never on the host: the other half of runtime/interpreter.py.
#
# `boot()` runs once, as `python -c`, in a sandbox like an interpreter's: it readies an inbox
# and the tuple `(code of "step()", these globals)`, prints where they lie in memory (the same
# report as guest.py's boot) and exits; the host keeps that memory (the snapshot). An
# Interpreter is a fresh instance given that memory back; the host then calls
# `exec(*call)` once per request, which runs `step()`: it reads the request from the inbox,
# runs it in `__main__`'s namespace, which persists from call to call, writes the reply over
# the request and returns. Nothing here is ever baked into an image: the host hands this code
# to the boot run, as `-c`, like the rest of preinit.
import ast
import builtins
import json
import linecache
import os
import sys
import traceback

INBOX_SIZE = 1 << 20
MAX_TRACEBACK = 64 << 10
_cells = 0


def boot(preimport=()):
    global inbox, main, call
    inbox = bytearray(INBOX_SIZE)
    main = sys.modules["__main__"].__dict__
    pristine = {k: v for k, v in main.items() if k.startswith("__") and k.endswith("__")}
    main.clear()
    main.update(pristine)
    _pythonpath()  # noqa: F821 (prelude.py, run first in the same namespace: snapshot.boot_argv)
    for module in preimport:
        __import__(module)
    call = (compile("step()", "<boxer>", "exec"), globals())
    sys.stdout.write(json.dumps({"exec": id(builtins.exec), "args": id(call), "items": [id(call[0]), id(call[1])],
                                 "inbox": id(inbox), "size": INBOX_SIZE}) + "\n")
    sys.stdout.flush()
    os._exit(0)


def step():
    try:
        size = int.from_bytes(inbox[:4], "little")
        reply = _handle(json.loads(bytes(inbox[4:4 + size]).decode("utf-8", "surrogatepass")))
    except BaseException as e:
        reply = {"ok": False, "internal": repr(e)[:1000]}
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    data = json.dumps(reply).encode("utf-8", "backslashreplace")
    if len(data) > INBOX_SIZE - 4:
        data = b'{"ok": false, "internal": "reply too large"}'
    inbox[:4 + len(data)] = len(data).to_bytes(4, "little") + data


def _handle(request):
    if request["op"] == "init":
        os.environ.clear()
        os.environ.update(request["env"])
        try:
            os.chdir(request["cwd"])
        except OSError:
            pass
        import importlib
        importlib.invalidate_caches()
        if "random" in sys.modules:  # each interpreter its own sequence, not the snapshot's
            sys.modules["random"].seed()
        return {"ok": True, "python": sys.version.split()[0]}
    return _run(request["code"])


def _run(code):
    global _cells
    _cells += 1
    name = f"<cell {_cells}>"
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    try:
        tree = compile(code, name, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):  # shown as the REPL shows it, into `_`
            last = ast.Interactive([tree.body.pop()])
        exec(compile(tree, name, "exec", dont_inherit=True), main)
        if last is not None:
            exec(compile(last, name, "single", dont_inherit=True), main)
        return {"ok": True}
    except BaseException as e:
        return {"ok": False, "error": _error(e)}


def _error(exc):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == "<boxer>":
        tb = tb.tb_next
    exc.__traceback__ = tb
    sys.last_exc = sys.last_value = exc
    sys.last_type, sys.last_traceback = type(exc), tb
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        text = type(exc).__name__ + "\n"
    try:
        sys.stderr.write(text)
    except BaseException:
        pass
    try:
        message = str(exc)
    except BaseException:
        message = ""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") else kind.__module__ + "." + kind.__qualname__
    error = {"type": name, "message": message[:MAX_TRACEBACK], "traceback": text[-MAX_TRACEBACK:]}
    if isinstance(exc, SystemExit):
        code = exc.code
        error["exit"] = 0 if code is None else code if isinstance(code, int) and 0 <= code < 256 else 1
    return error
