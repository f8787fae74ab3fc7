"""boxer-py: build an unmodified Dockerfile into one WebAssembly image and run it in a sandbox.

    import boxer_py
    boxer_py.build("examples/hello-python", "hello.wasm")
    box = boxer_py.Session("hello.wasm")
    result = box.run_python("print(6 * 7)", timeout=5, memory="256m")   # RunResult
    with box.interpreter() as it:                                        # state between calls
        it.run("x = 6 * 7"); it.run("x").stdout                          # b"42\n"

Names are imported on first use, so `boxer run` does not pay for the build stack.
"""
# The `boxer` client imports this package on every command, before a served run: so no
# `from __future__` (itself a module to load), no typing (with the re, enum and collections it
# loads), and not even the errors, which the client never raises.
TYPE_CHECKING = False
if TYPE_CHECKING:  # what __getattr__ gives, for type checkers ("X as X": re-exported)
    from typing import Any

    from boxer_py.api.aio import AsyncInterpreter as AsyncInterpreter
    from boxer_py.api.aio import AsyncSession as AsyncSession
    from boxer_py.api.build import build as build
    from boxer_py.api.session import Session as Session
    from boxer_py.builder.pipeline import BuildResult as BuildResult
    from boxer_py.errors import AuthError as AuthError
    from boxer_py.errors import BoxerError as BoxerError
    from boxer_py.errors import BuildError as BuildError
    from boxer_py.errors import DockerfileError as DockerfileError
    from boxer_py.errors import ImageError as ImageError
    from boxer_py.errors import InvalidReference as InvalidReference
    from boxer_py.errors import RegistryError as RegistryError
    from boxer_py.errors import RunError as RunError
    from boxer_py.errors import ShellError as ShellError
    from boxer_py.image.imagefile import Image as Image
    from boxer_py.image.imagefile import read as read_image  # noqa: F401 - in __all__ through _LAZY
    from boxer_py.registry.transfer import export_layout as export_layout
    from boxer_py.registry.transfer import import_layout as import_layout
    from boxer_py.registry.transfer import pull as pull
    from boxer_py.registry.transfer import push as push
    from boxer_py.runtime.interpreter import Interpreter as Interpreter
    from boxer_py.runtime.launcher import Launcher as Launcher
    from boxer_py.runtime.spec import Limits as Limits
    from boxer_py.runtime.spec import Mount as Mount
    from boxer_py.runtime.spec import RunResult as RunResult
    from boxer_py.runtime.spec import RunSpec as RunSpec

_LAZY = {
    **dict.fromkeys(("AuthError", "BoxerError", "BuildError", "DockerfileError", "ImageError", "InvalidReference",
                     "RegistryError", "RunError", "ShellError"), "errors"),
    "build": "api.build", "BuildResult": "builder.pipeline",
    "Image": "image.imagefile", "read_image": ("image.imagefile", "read"),
    "Launcher": "runtime.launcher", "Limits": "runtime.spec", "Mount": "runtime.spec",
    "RunResult": "runtime.spec", "RunSpec": "runtime.spec",
    "Session": "api.session", "AsyncSession": "api.aio", "AsyncInterpreter": "api.aio",
    "Interpreter": "runtime.interpreter",
    "push": "registry.transfer", "pull": "registry.transfer",
    "export_layout": "registry.transfer", "import_layout": "registry.transfer",
}

__all__ = [*_LAZY]


def __dir__() -> list[str]:
    """The public API, loaded or not (dir() would otherwise show only what was used)."""
    return sorted({*__all__, *(k for k in globals() if k.startswith("__"))})


def __getattr__(name: str) -> "Any":
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'boxer_py' has no attribute {name!r}")
    from importlib import import_module

    module, attr = where if isinstance(where, tuple) else (where, name)
    value = getattr(import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value
