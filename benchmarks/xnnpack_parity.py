"""The shipped TFLite models with XNNPACK on, off, and on the reference kernels, on real test crops;
and the same crops through tflite-runtime (the 32-bit Pi route) when its venv is given.

XNNPACK picks microkernels per instruction set; the reference kernels use no SIMD. Equal outputs
mean the int8 answers do not depend on the x86 level. Writes ``<out>.json`` and ``<out>.md``:

    python -m benchmarks.xnnpack_parity --n 40 --out reports/edge/xnnpack_parity \\
        [--tflite-runtime-python .cache/venvs/tflite-runtime-*/bin/python]

(The tflite-runtime venv is the one ``tests/test_edge_tflite_runtime.py`` builds.)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

from edge_runtime.interpreter import RESOLVERS, TFLiteModel, find_backend
from edge_runtime.machine import describe, machine_info
from benchmarks.output import write_report

MODELS = ("models/br35h-mobilenetv2-int8.tflite", "models/br35h-mobilenetv2-fp16.tflite")

# Run in the other venv: numpy + that venv's interpreter only (edge_runtime is installed there).
_WORKER = """
import sys, time, numpy as np
from edge_runtime.interpreter import TFLiteModel, find_backend
crops, out, model = np.load(sys.argv[1]), sys.argv[2], sys.argv[3]
m = TFLiteModel(model, num_threads=1)
raw, ms = [], []
for c in crops:
    m._interp.set_tensor(m._in["index"], m._quantize(c)); t = time.perf_counter(); m._interp.invoke()
    ms.append((time.perf_counter() - t) * 1e3); raw.append(m._interp.get_tensor(m._out["index"]).reshape(-1))
b = find_backend()
np.savez(out, raw=np.array(raw), ms=np.array(ms), backend=f"{b.name} {b.version}", numpy=np.__version__)
"""


def run(model: Path, crops: np.ndarray, resolver: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw output tensor, dequantized scores and invoke ms per crop, 1 thread."""
    m = TFLiteModel(model, num_threads=1, resolver=resolver)
    raw, ms = [], []
    for c in crops:
        m._interp.set_tensor(m._in["index"], m._quantize(c))  # noqa: SLF001 - raw outputs are the point
        t = time.perf_counter()
        m._interp.invoke()
        ms.append((time.perf_counter() - t) * 1e3)
        raw.append(m._interp.get_tensor(m._out["index"]).reshape(-1))
    raw = np.array(raw)
    q = m.output_quant
    scores = (raw.astype(np.float32) - q.zero_point) * q.scale if q.is_quantized else raw.astype(np.float32)
    return raw, scores, np.array(ms)


def _compare(name: str, raw, scores, ms, ref_raw, ref_scores) -> dict:
    return {"kernels": name, "max_output_steps_vs_reference": float(np.abs(raw.astype(np.float64) - ref_raw).max()),
            "max_score_diff_vs_reference": float(np.abs(scores - ref_scores).max()),
            "class_changes_vs_reference": int((scores.argmax(1) != ref_scores.argmax(1)).sum()),
            "median_invoke_ms": float(np.median(ms))}


def measure(models: list[Path], crops: np.ndarray, other_python: str | None, log=print) -> dict:
    out = {}
    for model in models:
        res = {r: run(model, crops, r) for r in RESOLVERS}
        ref_raw, ref_scores = res["reference"][0].astype(np.float64), res["reference"][1]
        rows = [_compare(f"{find_backend().name} {find_backend().version}, {r}", *res[r], ref_raw, ref_scores)
                for r in RESOLVERS]
        if other_python:
            with tempfile.TemporaryDirectory() as tmp:
                np.save(Path(tmp) / "crops.npy", crops)
                proc = subprocess.run([other_python, "-c", _WORKER, str(Path(tmp) / "crops.npy"),
                                       str(Path(tmp) / "out.npz"), str(model.resolve())],
                                      capture_output=True, text=True, cwd=tmp)
                if proc.returncode != 0:
                    raise RuntimeError(f"{other_python}: {proc.stderr.strip()[-500:]}")
                z = np.load(Path(tmp) / "out.npz")
                raw = z["raw"]
                q = TFLiteModel(model, 1).output_quant
                scores = (raw.astype(np.float32) - q.zero_point) * q.scale if q.is_quantized else raw.astype(np.float32)
                rows.append(_compare(f"{z['backend']} (numpy {z['numpy']}), default kernels", raw, scores, z["ms"],
                                     ref_raw, ref_scores))
        out[str(model)] = rows
        for r in rows:
            log(f"{model.name}: {r}")
    return out


def markdown(rep: dict) -> str:
    lines = ["# TFLite kernels: XNNPACK on/off, reference kernels, tflite-runtime", "",
             f"Machine: {describe(rep['machine'])}; load average {rep['loadavg_start']} -> {rep['loadavg_end']}.  ",
             f"Command: `{rep['command']}`  ",
             f"Inputs: {rep['n']} test crops of `{rep['manifest']}` (every {rep['step']}th), 1 thread. Reference: "
             "LiteRT's reference kernels (no SIMD). Latency is a median over the same crops in this run (the machine is shared: compare "
             "within a model). Raw output diff: of the output tensor as stored, i.e. in int8 steps for the int8 model.", ""]
    for model, rows in rep["models"].items():
        lines += [f"## `{model}`", "", "| kernels | max raw output diff | max score diff | class changes | median invoke ms |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['kernels']} | {r['max_output_steps_vs_reference']:g} | {r['max_score_diff_vs_reference']:.4f} | "
                  f"{r['class_changes_vs_reference']} | {r['median_invoke_ms']:.1f} |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.xnnpack_parity", description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", type=Path, default=[Path(m) for m in MODELS])
    ap.add_argument("--manifest", type=Path, default=Path("splits/br35h-paper.csv"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--n", type=int, default=40, help="test crops, evenly spaced over the test split")
    ap.add_argument("--tflite-runtime-python", default=None, help="python of a venv with tflite-runtime + edge_runtime")
    ap.add_argument("--out", type=Path, default=Path("reports/edge/xnnpack_parity"))
    args = ap.parse_args(argv)
    from train.data.cache import load_crops

    test = load_crops(args.manifest, split="test", data_root=args.data)
    step = max(1, len(test.x) // args.n)
    crops = np.ascontiguousarray(test.x[::step][:args.n]).astype(np.uint8)
    start = [round(v, 2) for v in os.getloadavg()]
    rep = {"command": "python -m benchmarks.xnnpack_parity " + shlex.join(sys.argv[1:] if argv is None else argv),
           "machine": machine_info(), "manifest": str(args.manifest), "n": len(crops), "step": step,
           "loadavg_start": start, "models": measure(args.models, crops, args.tflite_runtime_python)}
    print(write_report(rep, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
