"""Timing shared by the benchmarks: best-of-N wall times of several variants, interleaved."""

from __future__ import annotations

import math
import time
from typing import Callable


def interleaved_best(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """The best wall time of each variant over ``repeat`` rounds; each round runs every variant
    once, in turn, so that a load passing over the machine hits all of them alike."""
    best = {name: math.inf for name in runs}
    for _ in range(repeat):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best
