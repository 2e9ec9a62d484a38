"""Wall-clock timing shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(run: Callable[[], Any], warmup: int, reps: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of `run()` over `reps` calls after `warmup` untimed ones (`sync` waits for async devices)."""
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
