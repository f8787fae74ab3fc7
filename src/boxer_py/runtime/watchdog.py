"""The process-wide backstop of a CLI run's timeout."""
from __future__ import annotations

import json
import os
import threading

from boxer_py.runtime.spec import TIMEOUT_EXIT_CODE, RunResult


def arm(seconds: float, as_json: bool) -> None:
    """Epoch interruption stops guest code, not a guest blocked in the host (a long sleep):
    past the deadline plus a grace second, the whole process ends with the timeout code."""

    def expire() -> None:
        if as_json:
            os.write(1, (json.dumps(RunResult(TIMEOUT_EXIT_CODE, timed_out=True,
                                              trap=f"timed out after {seconds - 1:g}s (blocked)").to_json()) + "\n").encode())
        else:
            os.write(2, f"boxer: timed out after {seconds - 1:g}s (blocked)\n".encode())
        os._exit(TIMEOUT_EXIT_CODE)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
