"""The benchmark suite on the tiny test models and a few synthetic images, so it cannot rot.

Runs the real ``python -m benchmarks`` command (minimal rounds, no timing assertions, no floor
compilation); checks that every case and every report section comes out, and that the accuracy
assertion fails when the bar cannot be met.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "tests" / "assets"


@pytest.fixture
def suite_inputs(tmp_path: Path, synthetic_dataset: Path) -> tuple[Path, Path]:
    """Artifacts folder (tiny float32 + int8 under convert's names) and a manifest: half test, half train."""
    arts = tmp_path / "artifacts"
    arts.mkdir()
    shutil.copy(ASSETS / "tiny_float32.tflite", arts / "model_fp32.tflite")
    shutil.copy(ASSETS / "tiny_int8.tflite", arts / "model_int8.tflite")
    manifest = tmp_path / "manifest.csv"
    files = sorted(p for p in synthetic_dataset.rglob("*.jpg"))
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "sha256", "label", "group", "split"])
        for i, p in enumerate(files):
            w.writerow([p.relative_to(synthetic_dataset).as_posix(), "0" * 64, p.parent.name, i, "test" if i % 2 else "train"])
    return arts, manifest


def _run(out: Path, arts: Path, manifest: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "benchmarks", "--out", str(out), "--no-floor", "--artifacts", str(arts),
           "--manifest", str(manifest), "--grouped-manifest", str(out / "absent.csv"), "--data", str(data),
           "--images", "4", "--rounds", "3", "--warmup", "1", "--threads", "1", *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_suite_writes_every_case_and_the_report(tmp_path, suite_inputs, synthetic_dataset) -> None:
    arts, manifest = suite_inputs
    out = tmp_path / "report"
    done = _run(out, arts, manifest, synthetic_dataset, "--expected-accuracy", "0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    benches = json.loads((out / "latency.json").read_text())["benchmarks"]
    names = sorted(b["name"] for b in benches)
    assert names == sorted(["preprocess"] + [f"litert-{p}-t1-{s}" for p in ("float32", "int8") for s in ("inference", "end_to_end")])
    for b in benches:
        e = b["extra_info"]
        assert b["stats"]["rounds"] == 3
        assert e["p5_ms"] <= e["median_ms"] <= e["p95_ms"]
        assert e["peak_rss_mib"] >= e["rss_after_imports_mib"] > 0
    assert "br35h" in json.loads((out / "latency.json").read_text())["machine_info"]

    acc = json.loads((out / "accuracy.json").read_text())
    n_test = sum(1 for r in csv.DictReader(manifest.open()) if r["split"] == "test")
    assert {r["artifact"] for r in acc["records"]} == {"model_fp32.tflite", "model_int8.tflite"}
    assert all(r["splits"]["paper_test"]["n"] == n_test for r in acc["records"])
    int8 = next(r for r in acc["records"] if r["artifact"] == "model_int8.tflite")
    assert int8["float32_reference"]["artifact"] == "model_fp32.tflite"

    md = (out / "README.md").read_text()
    for section in ("## Headline", "## Targets", "## Every case", "## Accuracy", "litert-int8-t1-end_to_end"):
        assert section in md
    assert (out / "latency.png").stat().st_size > 0 and (out / "accuracy_vs_size.png").stat().st_size > 0


def test_accuracy_below_the_bar_fails_the_run(tmp_path, suite_inputs, synthetic_dataset) -> None:
    arts, manifest = suite_inputs
    out = tmp_path / "report"
    done = _run(out, arts, manifest, synthetic_dataset, "--expected-accuracy", "100.01", "--tolerance", "0", "-k", "accuracy")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "model_fp32.tflite:" in done.stdout and "< 100.01 %" in done.stdout
    assert len(json.loads((out / "accuracy.json").read_text())["records"]) == 2  # written even when failing


def test_suite_times_with_the_runtime_timing_core(tmp_path, suite_inputs, synthetic_dataset, monkeypatch) -> None:
    """In process, with :data:`edge_runtime.timing.clock` replaced by one that advances exactly
    2**-9 s per reading: every round pytest-benchmark records, and every percentile, is that step."""
    import itertools

    from benchmarks.__main__ import main
    from edge_runtime import timing

    step = 2.0**-9
    ticks = itertools.count()
    monkeypatch.setattr(timing, "clock", lambda: next(ticks) * step)
    arts, manifest = suite_inputs
    out = tmp_path / "report"
    status = main(["--out", str(out), "--no-floor", "--artifacts", str(arts), "--manifest", str(manifest),
                   "--grouped-manifest", str(out / "absent.csv"), "--data", str(synthetic_dataset), "--images", "2",
                   "--rounds", "3", "--warmup", "1", "--threads", "1", "-k", "latency", "-q"])
    assert status == 0
    benches = json.loads((out / "latency.json").read_text())["benchmarks"]
    assert len(benches) == 5
    for b in benches:
        assert b["stats"]["min"] == b["stats"]["max"] == step and b["stats"]["rounds"] == 3
        assert b["extra_info"]["p5_ms"] == b["extra_info"]["median_ms"] == b["extra_info"]["p95_ms"] == step * 1e3


def test_benchmarks_are_not_collected_by_default() -> None:
    """``make test`` must stay fast: the suite runs only on purpose."""
    import tomllib

    assert tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]
