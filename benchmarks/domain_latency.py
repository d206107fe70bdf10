"""What the domain check and the float tail cost: one inference, with vs without, same network.

    python -m benchmarks.domain_latency --plain runs/X/convert-plain --checked runs/X/convert \\
        --out reports/domain/dev-latency

``--plain``: ``python -m convert ... --domain off`` output; ``--checked``: the default output.
For each artifact (int8 and fp16 TFLite through the device runtime's interpreter, ONNX through
onnxruntime) the two files are timed in alternating rounds (so load from other processes hits
both alike): 1 thread, one 224x224 crop, ``--rounds`` x ``--runs`` invokes after a warm-up;
the median and the ratio are reported.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import sys
import time

import numpy as np

from edge_runtime.machine import describe

ARTIFACTS = ("model_int8.tflite", "model_fp16.tflite", "model.onnx")


def _runner(path: Path):
    x = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    if path.suffix == ".tflite":
        from edge_runtime.interpreter import TFLiteModel

        m = TFLiteModel(path, 1)
        return lambda: m.run(x)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    xf = x[None].astype(np.float32)
    return lambda: s.run(None, {name: xf})


def _times(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def measure(plain: Path, checked: Path, rounds: int = 10, runs: int = 30, warmup: int = 20) -> dict:
    res = {"machine": describe(), "rounds": rounds, "runs_per_round": runs, "threads": 1, "artifacts": {}}
    for name in ARTIFACTS:
        a, b = plain / name, checked / name
        if not (a.is_file() and b.is_file()):
            continue
        fa, fb = _runner(a), _runner(b)
        _times(fa, warmup), _times(fb, warmup)
        ta, tb = [], []
        for _ in range(rounds):
            ta += _times(fa, runs)
            tb += _times(fb, runs)
        ma, mb = statistics.median(ta), statistics.median(tb)
        res["artifacts"][name] = {"plain_ms": ma, "checked_ms": mb, "extra_pct": 100 * (mb / ma - 1),
                                  "plain_bytes": a.stat().st_size, "checked_bytes": b.stat().st_size}
    return res


def markdown(r: dict) -> str:
    lines = [f"# Latency of the domain check (1 thread, median of {r['rounds']} x {r['runs_per_round']} invokes)", "",
             f"Machine: {r['machine']}", "",
             "| artifact | without (ms) | with domain check + float tail (ms) | extra | size without / with (KiB) |",
             "|---|---:|---:|---:|---|"]
    for n, v in r["artifacts"].items():
        lines.append(f"| `{n}` | {v['plain_ms']:.2f} | {v['checked_ms']:.2f} | {v['extra_pct']:+.1f} % | "
                     f"{v['plain_bytes'] / 1024:.0f} / {v['checked_bytes'] / 1024:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.domain_latency", description=__doc__.splitlines()[0])
    p.add_argument("--plain", required=True, type=Path)
    p.add_argument("--checked", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args(argv)
    r = measure(args.plain, args.checked, args.rounds, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(r, indent=1) + "\n")
    (args.out / "latency.md").write_text(markdown(r))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
