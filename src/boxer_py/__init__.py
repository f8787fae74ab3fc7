"""boxer-py: build an unmodified Dockerfile into one WebAssembly image and run it in a sandbox.

    import boxer_py
    boxer_py.build("examples/hello-python", "hello.wasm")
    box = boxer_py.Session("hello.wasm")
    result = box.run_python("print(6 * 7)", timeout=5, memory="256m")   # RunResult

Names are imported on first use, so `boxer run` does not pay for the build stack.
"""
from __future__ import annotations

import importlib

from boxer_py.errors import (
    AuthError,
    BoxerError,
    BuildError,
    DockerfileError,
    ImageError,
    InvalidReference,
    RegistryError,
    RunError,
    ShellError,
)

_LAZY = {
    "build": "api.build", "BuildResult": "build.pipeline",
    "Image": "image.imagefile", "read_image": ("image.imagefile", "read"),
    "Launcher": "runtime.launcher", "Limits": "runtime.spec", "Mount": "runtime.spec",
    "RunResult": "runtime.spec", "RunSpec": "runtime.spec",
    "Session": "api.session",
    "push": "registry.transfer", "pull": "registry.transfer",
    "export_layout": "registry.transfer", "import_layout": "registry.transfer",
}

__all__ = ["AuthError", "BoxerError", "BuildError", "DockerfileError", "ImageError", "InvalidReference",
           "RegistryError", "RunError", "ShellError", *_LAZY]


def __getattr__(name: str):
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'boxer_py' has no attribute {name!r}")
    module, attr = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value
