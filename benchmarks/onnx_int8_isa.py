"""Does the ONNX int8 artifact give the same answers on every x86 instruction-set level?

Quantizes an fp32 ONNX model with each recipe (``convert.onnx_export``), calibrated on the same
train-split images the release uses, and runs every result on the test split three ways on this
CPU (``convert.onnx_export.KERNEL_SESSION_CONFIG``): ``native`` (the kernels onnxruntime picks
here), ``exact`` (exact int32 accumulation, the arithmetic of VNNI CPUs) and ``qdq-float`` (float
maths on the quantized values). On a CPU without VNNI, native vs exact is the difference between
this machine and an AVX-512 VNNI one; on a VNNI CPU the two are the same kernels. Reference: the
fp32 ONNX model's probabilities.

    python -m benchmarks.onnx_int8_isa --onnx models/br35h-mobilenetv2.onnx \\
        --manifest splits/br35h-paper.csv --out reports/convert/onnx_int8_isa
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import shlex
import sys
import tempfile
import time

import numpy as np

from convert import calibration
from convert.config import (DEFAULT_ONNX_RECIPE, FULL_RANGE_ONNX_RECIPE, REDUCE_RANGE_ONNX_RECIPE, OnnxInt8Recipe,
                            QuantizationConfig)
from convert.evaluate import score
from convert.onnx_export import KERNEL_SESSION_CONFIG, predict, quantize_onnx_int8, session
from edge_runtime.machine import describe, machine_info
from benchmarks.output import write_report

RECIPES: dict[str, OnnxInt8Recipe] = {
    "int8 x int8, full range (before)": FULL_RANGE_ONNX_RECIPE,
    "int8 x int8, reduce_range (7-bit weights)": REDUCE_RANGE_ONNX_RECIPE,
    "uint8 x uint8 (shipped)": DEFAULT_ONNX_RECIPE,
}


def _median_ms(sess, x: np.ndarray, runs: int = 30) -> float:
    """Median ms of one image through ``sess`` after 3 warm-up runs (ratios within a run are what count)."""
    ms = []
    for i in range(runs + 3):
        t = time.perf_counter()
        predict(sess, x)
        if i >= 3:
            ms.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ms))


def measure(fp32: Path, calib_x: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
            recipes: dict[str, OnnxInt8Recipe] = RECIPES, threads: int | None = None, log=print) -> dict:
    """Accuracy/agreement vs fp32 per recipe and kernel, plus the largest native-vs-exact change."""
    fp32_sess = session(fp32, num_threads=threads)
    ref = predict(fp32_sess, test_x)
    out = {"fp32": {**score(ref, test_y, ref).to_dict(), "latency_ms": _median_ms(fp32_sess, test_x[:1])},
           "recipes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, recipe in recipes.items():
            t = time.perf_counter()
            path = quantize_onnx_int8(fp32, Path(tmp) / "int8.onnx", calib_x, recipe)
            row = {"recipe": recipe.to_dict(), "quantize_seconds": round(time.perf_counter() - t, 1), "kernels": {}}
            probs, row["latency_ms"] = {}, {}
            for kernel in KERNEL_SESSION_CONFIG:
                sess = session(path, kernel, threads)
                probs[kernel] = predict(sess, test_x)
                row["kernels"][kernel] = score(probs[kernel], test_y, ref).to_dict()
                row["latency_ms"][kernel] = _median_ms(sess, test_x[:1])
            diff = np.abs(probs["native"] - probs["exact"])
            row["native_vs_exact"] = {"max_prob_diff": float(diff.max()),
                                      "class_changes": int((probs["native"].argmax(1) != probs["exact"].argmax(1)).sum())}
            out["recipes"][name] = row
            log(f"{name}: " + ", ".join(f"{k} {100 * v['accuracy']:.2f}%" for k, v in row["kernels"].items())
                + f"; native vs exact max diff {diff.max():.3f}")
    return out


def markdown(rep: dict) -> str:
    n = rep["fp32"]["n"]
    lines = [
        "# ONNX int8 across x86 instruction-set levels",
        "",
        f"Machine: {describe(rep['machine'])}; load average at start {rep['loadavg']}, at end {rep.get('loadavg_end')}.",
        f"Command: `{rep['command']}`",
        f"Model: `{rep['onnx']}`; calibration: {rep['calibration']['n']} train images "
        f"({rep['calibration']['selection']}, seed {rep['calibration']['seed']}); test: {n} images of `{rep['manifest']}`.",
        f"fp32 ONNX accuracy: {100 * rep['fp32']['accuracy']:.2f} %. Agreement and max prob diff are against fp32 ONNX.",
        "",
        "Kernels: **native** = what onnxruntime runs on this CPU; **exact** = `session.x64quantprecision=1`, exact int32 "
        "accumulation (what VNNI CPUs compute natively); **qdq-float** = `session.disable_quant_qdq=1`, float maths on "
        "the quantized values. On a CPU without VNNI, native vs exact is this machine vs an AVX-512 VNNI one.",
        "",
        f"Latency: median of 30 single-image runs, {rep.get('threads') or 'default'} threads, in this run; the "
        f"machine is shared, so compare ratios within the table (fp32 ONNX: {rep['fp32']['latency_ms']:.1f} ms).",
        "",
        "| recipe | kernel | accuracy | agreement | max prob diff | latency ms | vs fp32 |",
        "|---|---|---|---|---|---:|---:|",
    ]
    for name, row in rep["recipes"].items():
        for kernel, m in row["kernels"].items():
            lines.append(f"| {name} | {kernel} | {100 * m['accuracy']:.2f} % ({round(m['accuracy'] * n)}/{n}) | "
                         f"{100 * m['agreement']:.2f} % | {m['max_prob_diff']:.3f} | {row['latency_ms'][kernel]:.1f} | "
                         f"{row['latency_ms'][kernel] / rep['fp32']['latency_ms']:.2f} |")
    lines += ["", "| recipe | native vs exact: max prob diff | class changes |", "|---|---|---|"]
    for name, row in rep["recipes"].items():
        d = row["native_vs_exact"]
        lines.append(f"| {name} | {d['max_prob_diff']:.4f} | {d['class_changes']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.onnx_int8_isa", description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, default=Path("models/br35h-mobilenetv2.onnx"))
    ap.add_argument("--manifest", type=Path, default=Path("splits/br35h-paper.csv"))
    ap.add_argument("--data", default=None, help="BR35H root (default: $BR35H_DATA or ../shared/data/br35h)")
    ap.add_argument("--calibration-size", type=int, default=QuantizationConfig.calibration_size)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("reports/convert/onnx_int8_isa"))
    args = ap.parse_args(argv)
    for flag, path in (("--onnx", args.onnx), ("--manifest", args.manifest)):
        if not path.is_file():
            print(f"error: {flag} {path}: no such file", file=sys.stderr)
            return 2
    from train.data.cache import load_crops
    from train.data.manifest import read_manifest

    cfg = QuantizationConfig(calibration_size=args.calibration_size)
    chosen = calibration.select_calibration(read_manifest(args.manifest), cfg)
    train = load_crops(args.manifest, split="train", data_root=args.data)
    test = load_crops(args.manifest, split="test", data_root=args.data)
    calib_x = calibration.pick_arrays(train.x, train.paths, chosen).astype(np.float32)
    rep = {"command": "python -m benchmarks.onnx_int8_isa " + shlex.join(sys.argv[1:] if argv is None else argv),
           "machine": machine_info(), "loadavg": [round(v, 2) for v in os.getloadavg()], "threads": args.threads,
           "onnx": str(args.onnx),
           "manifest": str(args.manifest),
           "calibration": {"n": len(calib_x), "selection": cfg.selection, "seed": cfg.seed},
           **measure(args.onnx, calib_x, test.x.astype(np.float32), np.asarray(test.y), threads=args.threads)}
    print(write_report(rep, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
