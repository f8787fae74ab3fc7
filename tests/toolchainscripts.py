"""The toolchain's build scripts (toolchain/cpython/*.py) as modules, for the tests that call
their functions: they are scripts, not part of the boxer_py package."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLCHAIN = Path(__file__).resolve().parents[1] / "toolchain" / "cpython"


def load(name: str) -> ModuleType:
    """toolchain/cpython/NAME.py, loaded afresh. A script that puts its own directory first on
    sys.path (to import build.py and verify.py beside it) leaves sys.path as it found it."""
    spec = importlib.util.spec_from_file_location(f"toolchain_{name}", TOOLCHAIN / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
    return module
