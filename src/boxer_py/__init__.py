"""boxer-py: build an unmodified Dockerfile into one WebAssembly image and run it in a sandbox.

    import boxer_py
    boxer_py.build("examples/hello-python", "hello.wasm")
    image = boxer_py.read_image("hello.wasm")
    exit_code = boxer_py.Launcher(cache_dir).run(image, boxer_py.RunSpec(command=("python", "-V")))
"""
from .build import BuildResult, build
from .errors import BoxerError, BuildError, DockerfileError, ImageError, RunError
from .imagefile import Image
from .imagefile import read as read_image
from .launcher import Launcher, Limits, Mount, RunResult, RunSpec

__all__ = [
    "BoxerError", "BuildError", "BuildResult", "DockerfileError", "Image", "ImageError", "Launcher",
    "Limits", "Mount", "RunError", "RunResult", "RunSpec", "build", "read_image",
]
