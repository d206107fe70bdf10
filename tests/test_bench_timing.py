"""One timing core for every latency harness, and one way to run a benchmark module.

``edge_runtime.timing.clock`` is replaced by a fake clock that advances exactly ``STEP`` seconds
per reading, so every timed call measures ``STEP_MS``: a harness whose numbers come out as
``STEP_MS`` took its clock from the core, one that kept its own ``time.perf_counter`` would show
the tiny models' real sub-millisecond times. (The pytest-benchmark suite is checked the same way
in ``test_bench_smoke.py``.)
"""

from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path
import shutil

import numpy as np
import pytest

from edge_runtime import timing
from edge_runtime.cli import main as edge_main

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "tests" / "assets"
MODEL = str(ASSETS / "tiny_int8.tflite")
STEP = 2.0**-9  # seconds; a power of two, so every difference of readings is exact
STEP_MS = STEP * 1e3  # 1.953125


@pytest.fixture
def fake_clock(monkeypatch) -> list[int]:
    """Replace the core's clock; the returned list holds the number of readings so far."""
    ticks = itertools.count()
    readings = [0]

    def clock() -> float:
        readings[0] += 1
        return next(ticks) * STEP

    monkeypatch.setattr(timing, "clock", clock)
    return readings


def test_core_warms_up_then_times_rounds_interleaved(fake_clock) -> None:
    calls: list[str] = []
    timed = timing.time_calls([lambda: calls.append("a"), lambda: calls.append("b")], timing.TimingConfig(runs=3, warmup=2),
                              threads=4)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3  # warm-up per function, then one of each per round
    assert timed.ms.shape == (2, 3) and np.all(timed.ms == STEP_MS) and fake_clock[0] == 2 * 2 * 3
    assert timed.conditions()["threads"] == 4 and len(timed.conditions()["loadavg_start"]) == 3
    s = timing.summarize(np.array([1.0, 2.0, 3.0, 4.0]))
    assert (s["n"], s["mean_ms"], s["min_ms"], s["p50_ms"], s["max_ms"]) == (4, 2.5, 1.0, 2.5, 4.0)
    assert s["std_ms"] == pytest.approx(np.sqrt(1.25)) and s["p90_ms"] == pytest.approx(3.7)
    with pytest.raises(ValueError, match="runs >= 1"):
        timing.TimingConfig(runs=0)
    with pytest.raises(ValueError, match="nothing to time"):
        timing.time_calls([])


def test_br35h_edge_bench_times_through_the_core(fake_clock, capsys, tmp_path) -> None:
    out = tmp_path / "b.json"
    assert edge_main(["bench", "--model", MODEL, "--threads", "1", "--runs", "4", "--warmup", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    for stage in ("inference", "preprocess"):
        assert res[stage]["n"] == 4 and res[stage]["p50_ms"] == res[stage]["max_ms"] == STEP_MS
    assert res["threads"] == 1 and len(res["loadavg_start"]) == 3
    assert "p50 1.95" in capsys.readouterr().out


def test_br35h_edge_bench_compare_times_through_the_core(fake_clock, capsys, tmp_path) -> None:
    for name in ("tiny_int8.tflite", "tiny_float32.tflite"):
        shutil.copy(ASSETS / name, tmp_path / name)
    out = tmp_path / "c.json"
    assert edge_main(["bench", "--compare", str(tmp_path), "--model", MODEL, "--threads", "1", "--runs", "3",
                      "--warmup", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["inference"]["p50_ms"] for r in res["artifacts"]] == [STEP_MS, STEP_MS]
    assert res["threads"] == 1 and len(res["loadavg_end"]) == 3


def test_edge_latency_report_times_through_the_core(fake_clock, synthetic_dataset, tmp_path) -> None:
    from benchmarks import edge_latency

    edge_latency.main(["--model", MODEL, "--data", str(synthetic_dataset), "--images", "4", "--runs", "3",
                       "--threads", "1", "--out", str(tmp_path)])
    rep = json.loads((tmp_path / "edge_latency.json").read_text())
    (row,) = rep["results"]
    assert row["bench"]["inference"]["p50_ms"] == STEP_MS and row["bench"]["inference"]["n"] == 3
    assert row["per_image"]["images"] == 4
    assert rep["command"].startswith("python -m benchmarks.edge_latency ")
    ms = f"{STEP_MS:.2f}"
    assert f"| {ms} | 0.00 | {ms} | {ms} | {ms} ms |" in (tmp_path / "edge_latency.md").read_text()  # mean std p50 p90 p99


def _edits_sys_path(source: str) -> list[int]:
    """Lines that call ``sys.path.insert/append/extend`` or assign to ``sys.path``, also inside
    strings that are code for a subprocess (``python -c``)."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("insert", "append", "extend") \
                and isinstance(node.value, ast.Attribute) and node.value.attr == "path" \
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "sys":
            hits.append(node.lineno)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "sys.path" in node.value \
                and any(f"sys.path.{m}" in node.value for m in ("insert", "append", "extend")):
            hits.append(node.lineno)
    return hits


def test_the_scan_finds_a_sys_path_edit() -> None:
    assert _edits_sys_path("import sys\nsys.path.insert(0, 'x')\n") == [2]
    assert _edits_sys_path("CHILD = 'import sys; sys.path.append(\"/r\")'\n") == [1]
    assert _edits_sys_path("import sys\nprint(sys.path[0])\n") == []


def test_no_benchmark_module_edits_sys_path() -> None:
    """Every benchmark runs as ``python -m benchmarks.NAME`` from the checkout; none patches imports."""
    offenders = {p.name: lines for p in sorted((REPO / "benchmarks").glob("*.py"))
                 if (lines := _edits_sys_path(p.read_text(encoding="utf-8")))}
    assert offenders == {}
