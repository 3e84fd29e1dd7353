"""Per-item cost of a step repeated in passes, for the "flat cost" benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed_passes(passes: int, n: int, step: Callable[[], None]) -> list[tuple[float, float]]:
    """Run ``step`` ``n`` times per pass; each pass's wall and process CPU milliseconds
    per step."""
    costs = []
    for _ in range(passes):
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            step()
        costs.append(((time.perf_counter() - started) * 1000 / n,
                      (time.process_time() - cpu) * 1000 / n))
    return costs
