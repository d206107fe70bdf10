"""Does the int8 model get faster without the uint8 <-> int8 QUANTIZE ops at its two ends?

The shipped int8 TFLite has uint8 I/O (MediaPipe's ImageClassifier takes uint8 or float32 only),
so the graph starts and ends with a QUANTIZE op that XNNPACK may leave to the builtin kernels.
This strips those two ops from a copy (int8 in, int8 out, same scales, zero points shifted by
128; the TFLite metadata is dropped, so the copy is for measuring only), checks the scores are
unchanged and times both interleaved on one thread:

    python -m benchmarks.int8_io --out reports/benchmarks/int8_io
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shlex
import sys
import time

import numpy as np

from edge_runtime.machine import describe, machine_info


def strip_quantize_ends(model: bytes) -> bytes:
    """The model without its first and last op, which must both be QUANTIZE."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    m = tfl.ModelT.InitFromPackedBuf(model, 0)
    sg = m.subgraphs[0]
    quantize = tfl.BuiltinOperator.QUANTIZE
    ends = (sg.operators[0], sg.operators[-1])
    codes = [m.operatorCodes[op.opcodeIndex] for op in ends]
    if any(max(c.builtinCode, c.deprecatedBuiltinCode) != quantize for c in codes):
        raise ValueError("the model does not start and end with QUANTIZE ops")
    sg.inputs = np.array([ends[0].outputs[0]], np.int32)
    sg.outputs = np.array([ends[1].inputs[0]], np.int32)
    sg.operators = sg.operators[1:-1]
    m.metadata, m.metadataBuffer = None, None
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _runner(model: bytes):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    return it, it.get_input_details()[0], it.get_output_details()[0]


def measure(model: Path, runs: int = 100, warmup: int = 10) -> dict:
    variants = {"uint8 I/O (shipped)": model.read_bytes()}
    variants["int8 I/O (end QUANTIZE ops removed)"] = strip_quantize_ends(variants["uint8 I/O (shipped)"])
    crop = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3)).astype(np.uint8)
    runners, scores = {}, {}
    for name, content in variants.items():
        it, inp, out = _runner(content)
        x = crop if inp["dtype"] == np.uint8 else (crop.astype(np.int16) - 128).astype(np.int8)
        it.set_tensor(inp["index"], x)
        it.invoke()
        scale, zp = out["quantization"]
        scores[name] = (it.get_tensor(out["index"]).astype(np.float32) - zp) * scale
        runners[name] = it
    ms = {name: [] for name in runners}
    for i in range(runs + warmup):  # interleaved: both see the same load
        for name, it in runners.items():
            t = time.perf_counter()
            it.invoke()
            if i >= warmup:
                ms[name].append((time.perf_counter() - t) * 1e3)
    first = next(iter(scores.values()))
    return {"score_max_diff": float(max(np.abs(s - first).max() for s in scores.values())),
            "median_ms": {k: float(np.median(v)) for k, v in ms.items()}, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.int8_io", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path("models/br35h-mobilenetv2-int8.tflite"))
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("reports/benchmarks/int8_io"))
    args = ap.parse_args(argv)
    start = [round(v, 2) for v in os.getloadavg()]
    rep = {"command": "python -m benchmarks.int8_io " + shlex.join(sys.argv[1:] if argv is None else argv),
           "machine": machine_info(), "model": str(args.model), "loadavg_start": start, **measure(args.model, args.runs)}
    rep["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    base = rep["median_ms"]["uint8 I/O (shipped)"]
    lines = ["# int8 model: uint8 I/O (shipped) vs int8 I/O", "", f"Machine: {describe(rep['machine'])}; load average "
             f"{rep['loadavg_start']} -> {rep['loadavg_end']}.  ", f"Command: `{rep['command']}`  ",
             f"Largest score difference between the two: {rep['score_max_diff']:.4f}. Median of {rep['runs']} interleaved "
             "runs, 1 thread (compare the ratio, not the absolute times, on a shared machine).", "",
             "| variant | median ms | ratio |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.2f} | {v / base:.3f} |" for k, v in rep["median_ms"].items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
