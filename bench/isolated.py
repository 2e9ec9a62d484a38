"""One call measured alone in a fresh process (a benchmark script re-run in its own --worker mode): the extra peak
memory it needs and its median time."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench.timing import median_seconds


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_and_median(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """The peak resident set size after one call minus the one before it (inputs already allocated), then the
    median time of `repeats` more calls (the first doubled as warm-up)."""
    before = _maxrss_mb()
    call()
    peak = _maxrss_mb() - before
    return {"ms": 1000 * median_seconds(call, 0, repeats), "peak_mb": peak}


def worker_result(script: str, *args: object) -> dict[str, float]:
    """Runs `python script --worker args...` and returns the JSON its last stdout line holds."""
    cmd = [sys.executable, script, "--worker", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
