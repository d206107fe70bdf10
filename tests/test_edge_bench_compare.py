"""``br35h-edge bench --compare``: every artifact timed in one run, a choice with its reason;
and a tflite-runtime under numpy 2 is refused with a clear message, not a traceback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import shutil

import pytest

from edge_runtime import bench, interpreter
from edge_runtime.cli import main

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture
def shipped(tmp_path) -> Path:
    """A models/ folder: two tiny TFLite files and a conversion report naming one by sha256."""
    for name in ("tiny_int8.tflite", "tiny_float32.tflite"):
        shutil.copy(ASSETS / name, tmp_path / name)
    digest = hashlib.sha256((tmp_path / "tiny_int8.tflite").read_bytes()).hexdigest()
    (tmp_path / "conversion_report.json").write_text(json.dumps(
        {"artifacts": {"model_int8.tflite": {"sha256": digest, "metrics": {"accuracy": 0.9}}}}))
    return tmp_path


def test_compare_times_every_artifact_and_explains_the_choice(capsys, shipped, tmp_path):
    rc = main(["bench", "--compare", str(shipped), str(shipped / "tiny_int8.tflite"), "--model",
               str(shipped / "tiny_int8.tflite"), "--threads", "1", "--runs", "5", "--warmup", "1",
               "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "c.json").read_text())
    assert rc == 0
    names = sorted(r["name"] for r in res["artifacts"])
    assert names == ["tiny_float32.tflite", "tiny_int8.tflite"]  # the file given twice is timed once
    acc = {r["name"]: r["accuracy"] for r in res["artifacts"]}
    assert acc == {"tiny_int8.tflite": 0.9, "tiny_float32.tflite": None}
    assert min(r["ratio_to_fastest"] for r in res["artifacts"]) == 1.0
    assert res["use"] in names and res["why"] and f"use {res['use']}" in out
    assert res["machine"]["isa_level"] in out and len(res["loadavg_start"]) == 3


def _row(name: str, p50: float, accuracy=None) -> dict:
    return {"name": name, "accuracy": accuracy, "inference": {"p50_ms": p50}}


def test_int8_is_kept_while_within_ten_percent_of_the_fastest():
    choice, why = bench.recommend([_row("m-int8.tflite", 10.5, 0.995), _row("m-fp16.tflite", 10.0)])
    assert choice["name"] == "m-int8.tflite" and "within 10 %" in why and "99.50 %" in why
    choice, why = bench.recommend([_row("m-int8.tflite", 15.0), _row("m-fp16.tflite", 10.0), _row("m.onnx", 12.0)])
    assert choice["name"] == "m-fp16.tflite" and "1.50x slower" in why and "fastest here" in why
    choice, why = bench.recommend([_row("m-int8.tflite", 4.0), _row("m-fp16.tflite", 8.0)])
    assert choice["name"] == "m-int8.tflite" and why == "fastest here"


def test_tflite_runtime_under_numpy2_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(interpreter.np, "__version__", "2.1.0")
    monkeypatch.setattr(interpreter.importlib.metadata, "version",
                        lambda dist: {"tflite-runtime": "2.14.0"}.get(dist, "9.9"))
    reason = interpreter._numpy_mismatch("tflite-runtime")
    assert "tflite-runtime 2.14.0" in reason and "numpy<2" in reason
    with pytest.raises(ImportError, match="numpy<2"):
        interpreter.find_backend("tflite-runtime")
    assert interpreter._numpy_mismatch("ai-edge-litert") is None
    monkeypatch.setattr(interpreter.np, "__version__", "1.26.4")
    assert interpreter._numpy_mismatch("tflite-runtime") is None
