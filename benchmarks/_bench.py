"""Shared helpers of the benchmark scripts: timing and the BENCH line format."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Median wall time of ``repeat`` runs, in seconds (the median resists one noisy run)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, value: float, unit: str, baseline: float) -> None:
    """Print one ``BENCH`` line; ratio = value / baseline."""
    ratio = value / baseline if baseline else float("nan")
    print(f"BENCH {name} {value:.4g} {unit} baseline={baseline:.4g} ratio={ratio:.3f}", flush=True)
