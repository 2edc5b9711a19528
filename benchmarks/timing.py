"""Timing shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, after one untimed call if ``warm_up``.

    The warm-up absorbs first-call allocation and dispatch costs; skip it when one call
    is long enough that those costs do not matter.
    """
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
