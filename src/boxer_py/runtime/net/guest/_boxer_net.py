"""boxer's network channel inside a networked guest (delivered read-only by boxer for the
run, never part of the image). CPython for WASI cannot create, bind, listen on or connect
a socket; these modules ask the host over the control descriptor, whose number is in
BOXER_NET_FD. The host checks every request against the run's -p and --allow-net.
"""
import json
import os
import sys

FD = int(os.environ.get("BOXER_NET_FD", "-1"))
HERE = os.path.dirname(os.path.abspath(__file__))


def control(request):
    """One request to the host; its answer, or the OSError it describes (a PermissionError
    for what the run's options do not allow, with the option to use in its message)."""
    if FD < 0:
        raise OSError(58, "this run has no network (boxer run -p / --allow-net)")
    os.write(FD, json.dumps(request).encode())
    answer = json.loads(os.read(FD, 65536) or b"{}")
    if "errno" in answer:
        raise OSError(answer["errno"], answer.get("message", "refused by the host"))
    return answer


def accepted_peer():
    """The peer of the connection just accepted, which the host leaves on the control
    descriptor unasked (getpeername's answer without a request); None if it did not."""
    try:
        answer = json.loads(os.read(FD, 4096) or b"{}")
    except (OSError, ValueError):
        return None
    address = answer.get("address") if isinstance(answer, dict) else None
    return tuple(address) if isinstance(address, list) and len(address) == 2 else None


def load_real(name, namespace):
    """Run the standard library's module `name` in `namespace` (this shim's own module), so
    one module object is both: the stdlib's code, then boxer's additions."""
    import importlib.machinery

    path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"the standard library's {name} module is missing")
    namespace["__spec__"] = spec
    code = spec.loader.get_code(name)
    exec(code, namespace)


def load_real_package(name, namespace):
    """For a stand-in package: if the standard library has the real one, run its __init__ in
    `namespace` with the real package's path (its submodules then come from there) and return
    True; False if there is none."""
    import importlib.machinery

    path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    namespace.update(__spec__=spec, __path__=list(spec.submodule_search_locations), __file__=spec.origin)
    sys.modules[name].__spec__ = spec
    exec(spec.loader.get_code(name), namespace)
    return True
