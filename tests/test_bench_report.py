"""Units of the benchmark report: the ratio targets, the vector-unit floor, the fixed image set."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.artifacts import classify
from benchmarks.floor import count_macs, nominal_peak
from benchmarks.report import ratios, targets

ASSETS = Path(__file__).resolve().parent / "assets"


def _row(runtime: str, precision: str, threads: int, stage: str, median: float) -> dict:
    return {"id": f"{runtime}-{precision}-t{threads}-{stage}", "runtime": runtime, "precision": precision,
            "threads": threads, "stage": stage, "median_ms": median}


@pytest.mark.parametrize("int8_ms, met", [(3.0, True), (4.0, False)])
def test_int8_target_is_judged_from_the_measured_ratio(int8_ms: float, met: bool) -> None:
    rows = [_row("litert", "float32", 1, "inference", 7.5), _row("litert", "int8", 1, "inference", int8_ms),
            _row("litert", "int8", 1, "end_to_end", 1.2 * int8_ms)]
    ratios(rows)
    assert rows[1]["ratio"] == pytest.approx(int8_ms / 7.5)
    assert rows[2]["e2e_over_inference"] == pytest.approx(1.2)
    judged = {t: ok for t, _, ok in targets(rows, None)}
    assert judged["LiteRT int8 <= 0.5x float32, 1 thread"] is met
    assert judged["end to end <= 1.3x inference (litert-int8-t1-end_to_end)"] is True


def test_floor_target_uses_the_strictest_peak() -> None:
    rows = [_row("litert", "int8", 1, "inference", 3.0)]
    floor = {"peaks": {"nominal": {"int8_floor_ms_1core": 1.8, "int8_floor_ms_all_cores": 0.9},
                       "measured": {"int8_floor_ms_1core": 1.2, "int8_floor_ms_all_cores": 0.6}}}
    (target, measured, ok), = [t for t in targets(rows, floor) if "floor" in t[0]]
    assert "2.50x (measured peak)" in measured and ok is True


def test_nominal_peak_is_table_times_clock() -> None:
    peak = nominal_peak({"vendor": "AMD", "flags": ["avx2", "avx512_vnni"], "mhz": 2500.0})
    assert (peak.int8_gmacs, peak.fp32_gmacs) == pytest.approx((64 * 2.5, 16 * 2.5))
    assert nominal_peak({"vendor": "AMD", "flags": ["sse2"], "mhz": 2500.0}) is None
    assert nominal_peak({"vendor": "", "flags": ["asimd", "asimddp"], "mhz": 2400.0}).int8_gmacs == pytest.approx(32 * 2.4)


def test_mac_count_matches_the_graph_shapes_and_ignores_precision() -> None:
    f32, i8 = count_macs(ASSETS / "tiny_float32.tflite"), count_macs(ASSETS / "tiny_int8.tflite")
    assert f32["total"] == sum(v for k, v in f32.items() if k != "total") > 0
    assert f32 == i8  # same network, other precision: same multiply-accumulates


@pytest.mark.parametrize("name, runtime, precision", [
    ("model_fp32.tflite", "litert", "float32"), ("model_int8.tflite", "litert", "int8"),
    ("model_dynamic.tflite", "litert", "dynamic-range"), ("br35h-mobilenetv2-fp16.tflite", "litert", "float16"),
    ("model.onnx", "onnxruntime", "float32"), ("model_int8.onnx", "onnxruntime", "int8"), ("model.keras", "keras", "float32")])
def test_artifacts_are_classified_by_suffix_and_name(name: str, runtime: str, precision: str) -> None:
    a = classify(Path(name))
    assert (a.runtime, a.precision) == (runtime, precision)


def test_fixed_images_are_balanced_and_deterministic(tmp_path: Path) -> None:
    from benchmarks.images import fixed_rows

    m = tmp_path / "m.csv"
    lines = ["path,sha256,label,group,split"] + [f"{l}/{l}{i}.jpg,{'0' * 64},{l},{i},{'test' if i % 3 else 'train'}"
                                                 for l in ("yes", "no") for i in range(12)]
    m.write_text("\n".join(lines) + "\n")
    rows = fixed_rows(m, 6)
    assert [r.label for r in rows] == ["yes", "no"] * 3
    assert all(r.split == "test" for r in rows) and rows == fixed_rows(m, 6)
