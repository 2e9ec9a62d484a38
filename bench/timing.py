"""Wall-clock timing shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def module_times(groups: dict[str, list[Any]]) -> Iterator[dict[str, list[float]]]:
    """While open: the wall time of every call of each group's modules (forward hooks), listed per group key."""
    spent: dict[str, list[float]] = {key: [] for key in groups}
    started: dict[int, float] = {}

    def pre(module: Any, args: Any) -> None:
        started[id(module)] = time.perf_counter()

    handles = []
    for key, modules in groups.items():

        def post(module: Any, args: Any, out: Any, key: str = key) -> None:
            spent[key].append(time.perf_counter() - started.pop(id(module)))

        for module in modules:
            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield spent
    finally:
        for handle in handles:
            handle.remove()
