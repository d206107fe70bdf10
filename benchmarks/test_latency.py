"""Latency of every case (see :mod:`benchmarks.cases`) with pytest-benchmark.

Each round processes one image of the fixed set, cycling, so every case sees the same files.
pytest-benchmark runs the warm-up and timed rounds (its storage and ``--benchmark-compare``
need its own records) with the runtime's clock (``benchmarks/conftest.py`` sets the timer);
p5/median/p95 come from :func:`edge_runtime.timing.percentiles`, like every other latency
number. Throughput and peak RSS go to ``extra_info`` too. No timing is asserted here: targets
are ratios judged in the report.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks.artifacts import open_runner
from benchmarks.cases import LatencyCase
from benchmarks.memory import peak_rss
from edge_runtime import load_rgb
from edge_runtime.crop import crop_image
from edge_runtime.timing import percentiles

_RSS: dict[tuple, dict] = {}  # (artifact path, threads) -> peak RSS, measured once per model load


def _cycle(items: list):
    it = itertools.cycle(items)
    return lambda: ((next(it),), {})


def _target(case: LatencyCase, samples: list):
    """(function of one input, the inputs it cycles through) for ``case``."""
    if case.stage == "preprocess":
        return (lambda rgb: crop_image(rgb)), [load_rgb(s.path) for s in samples]
    run = open_runner(case.artifact, case.threads)
    if case.stage == "inference":
        return run, [s.crop for s in samples]
    return (lambda path: run(crop_image(load_rgb(path))[0])), [s.path for s in samples]


def test_latency(benchmark, case: LatencyCase, samples, pytestconfig: pytest.Config) -> None:
    fn, inputs = _target(case, samples)
    benchmark.group = case.stage
    benchmark.name = case.id
    benchmark.pedantic(fn, setup=_cycle(inputs), rounds=pytestconfig.getoption("--rounds"),
                       warmup_rounds=pytestconfig.getoption("--warmup"), iterations=1)
    key = (None if case.artifact is None else str(case.artifact.path), case.threads)
    if key not in _RSS:
        _RSS[key] = peak_rss(case.artifact and case.artifact.path, case.threads, samples[0].path)
    info = {"stage": case.stage, "images": len(samples), **_RSS[key]}
    if case.artifact is not None:
        a = case.artifact
        info |= {"runtime": a.runtime, "precision": a.precision, "artifact": a.name, "size_kib": a.size_kib,
                 "threads": case.threads}
    if benchmark.enabled:
        ms = np.asarray(benchmark.stats.stats.data) * 1e3
        p5, p50, p95 = percentiles(ms, (5, 50, 95))
        info |= {"p5_ms": p5, "median_ms": p50, "p95_ms": p95, "throughput_per_s": 1e3 / p50}
        assert ms.size == pytestconfig.getoption("--rounds")
    benchmark.extra_info.update(info)
