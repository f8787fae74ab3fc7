"""boxer-py: build an unmodified Dockerfile into one WebAssembly image and run it in a sandbox.

    import boxer_py
    boxer_py.build("examples/hello-python", "hello.wasm")
    box = boxer_py.Session("hello.wasm")
    result = box.run_python("print(6 * 7)", timeout=5, memory="256m")   # RunResult
"""
from .build import BuildResult, build
from .errors import BoxerError, BuildError, DockerfileError, ImageError, RunError
from .imagefile import Image
from .imagefile import read as read_image
from .launcher import Launcher, Limits, Mount, RunResult, RunSpec
from .session import Session

__all__ = [
    "BoxerError", "BuildError", "BuildResult", "DockerfileError", "Image", "ImageError", "Launcher",
    "Limits", "Mount", "RunError", "RunResult", "RunSpec", "Session", "build", "read_image",
]
