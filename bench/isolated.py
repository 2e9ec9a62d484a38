"""One call measured alone in a fresh process (a benchmark script re-run in its own --worker mode): the extra peak
memory it needs and its median time."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
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


ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, args: list[str], env: Mapping[str, str] | None = None, check: bool = False
               ) -> subprocess.CompletedProcess:
    """`python -m module args...` in a fresh process that imports the repository's packages (the root on its path)."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, check=check)


def worker_result(module: str, *args: object) -> dict[str, float]:
    """Runs `python -m module --worker args...` and returns the JSON its last stdout line holds."""
    done = run_module(module, ["--worker", *map(str, args)], check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
