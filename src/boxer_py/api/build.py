"""`boxer_py.build`: the build pipeline wired to the runtime that runs RUN's programs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from boxer_py.builder.pipeline import BuildResult
from boxer_py.builder.pipeline import build as build_pipeline
from boxer_py.builder.runstep import Ran
from boxer_py.image.store import default_cache_dir
from boxer_py.runtime.net.policy import Network


def build(context: str | Path, output: str | Path | None, **options: Any) -> BuildResult:
    """Build `context` into the image file `output` (see build.pipeline.build for the options);
    a RUN step that runs a program of the image runs it under Wasmtime, loaded on first use.
    `allow_net`: hosts RUN's programs may connect to (`boxer build --allow-net`); none otherwise."""
    cache_dir = Path(options.get("cache_dir") or default_cache_dir())
    network = Network.parse(allow=tuple(options.pop("allow_net", None) or ()))  # RUN's only network
    launchers: list[Any] = []

    def run_in(*args: Any, **kwargs: Any) -> Ran:
        if not launchers:  # Wasmtime is loaded only when a RUN step runs a program
            from boxer_py.runtime.launcher import Launcher
            launchers.append(Launcher(cache_dir))
        result: Ran = launchers[0].run_in(*args, **kwargs, **({"network": network} if network.enabled else {}))
        return result

    return build_pipeline(context, output, run_in=run_in, **options)
