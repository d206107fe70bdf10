"""The one timing core behind every latency number: warm-up, timed calls, summary, conditions.

``br35h-edge bench`` (one model, or ``--compare`` of several), ``benchmarks.edge_latency`` and the
pytest-benchmark suite (``python -m benchmarks``, whose timer is :func:`now`) all read the clock
and summarise through this module, so their numbers are measured the same way and a test can
check that by replacing :data:`clock`. It lives in the runtime because a device has only the
runtime, and it uses the standard library and numpy only.

A number is only comparable with the thread count and the machine's load beside it, so a
measurement carries both.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import time
from typing import Callable, Sequence

import numpy as np

#: Seconds, monotonic. Read at every call (never bound at import), so a test can replace it.
clock: Callable[[], float] = time.perf_counter


def now() -> float:
    """:data:`clock`'s current value; a dotted name (``edge_runtime.timing.now``) that
    pytest-benchmark's ``--benchmark-timer`` option can load."""
    return clock()


@dataclass(frozen=True)
class TimingConfig:
    """Untimed warm-up calls (first-call allocation, caches, XNNPACK packing), then timed calls."""

    runs: int = 100
    warmup: int = 10

    def __post_init__(self) -> None:
        if self.runs < 1 or self.warmup < 0:
            raise ValueError(f"need runs >= 1 and warmup >= 0, got {self.runs} and {self.warmup}")


@dataclass(frozen=True)
class Timed:
    """Per-call milliseconds of functions timed in one run, with the conditions they ran under."""

    ms: np.ndarray  # shape (functions, runs), in call order
    threads: int | None  # interpreter threads of what was timed; None when not a model
    loadavg_start: list[float] | None  # 1/5/15-minute load average; None where the OS has none
    loadavg_end: list[float] | None

    def conditions(self) -> dict:
        """What a report puts beside the numbers: threads and the load average around the run."""
        return {"threads": self.threads, "loadavg_start": self.loadavg_start, "loadavg_end": self.loadavg_end}


def load_average() -> list[float] | None:
    """The 1/5/15-minute load average, or None where the OS does not report one (Windows)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def time_calls(fns: Sequence[Callable[[], object]], cfg: TimingConfig = TimingConfig(),
               threads: int | None = None) -> Timed:
    """Warm each function up ``cfg.warmup`` times (in order), then time ``cfg.runs`` rounds that
    call every function once.

    Several functions are interleaved round by round so that on a shared machine each sees the
    same load and their ratios hold even when absolute times drift; one function is a plain loop.
    """
    if not fns:
        raise ValueError("nothing to time: no functions given")
    load_start = load_average()
    for fn in fns:
        for _ in range(cfg.warmup):
            fn()
    ms = np.empty((len(fns), cfg.runs))
    for i in range(cfg.runs):
        for j, fn in enumerate(fns):
            t0 = clock()
            fn()
            ms[j, i] = (clock() - t0) * 1e3
    return Timed(ms, threads, load_start, load_average())


def percentiles(ms: np.ndarray, qs: Sequence[float]) -> list[float]:
    """The ``qs`` percentiles (0-100, linear interpolation) of a sample of milliseconds."""
    return [float(v) for v in np.percentile(np.asarray(ms, dtype=float), list(qs))]


def summarize(ms: np.ndarray) -> dict:
    """n, mean, std (population), min, p50, p90, p99, max of a sample of milliseconds."""
    ms = np.asarray(ms, dtype=float)
    p50, p90, p99 = percentiles(ms, (50, 90, 99))
    return {"n": int(ms.size), "mean_ms": float(ms.mean()), "std_ms": float(ms.std()), "min_ms": float(ms.min()),
            "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": float(ms.max())}
