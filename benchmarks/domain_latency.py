"""What the domain check and the float tail cost: one inference, with vs without, same network.

    python -m benchmarks.domain_latency --plain runs/X/convert-plain --checked runs/X/convert \\
        --out reports/domain/dev-latency

``--plain``: ``python -m convert ... --domain off`` output, or a folder that
``--export-plain MODEL.keras --manifest M`` fills first with just the plain int8 / fp16 TFLite and
ONNX (same exporters and calibration selection as ``python -m convert``, no evaluation: minutes
instead of a full conversion); ``--checked``: the default ``python -m convert`` output.
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


def export_plain(keras_path: Path, manifest: Path, out: Path, data_root: str | None = None) -> None:
    """The one-output artifacts of ``keras_path``, calibrated like ``python -m convert`` does."""
    import tempfile

    import keras

    from convert import calibration, onnx_export, tflite_export
    from convert.config import QuantizationConfig
    from train.data.cache import load_crops
    from train.data.manifest import read_manifest

    out.mkdir(parents=True, exist_ok=True)
    qcfg = QuantizationConfig()
    model = keras.saving.load_model(keras_path, compile=False)
    chosen = calibration.select_calibration(read_manifest(manifest), qcfg)
    train = load_crops(manifest, "train", data_root=data_root, progress=False)
    calib = calibration.pick_arrays(train.x, train.paths, chosen).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        saved = tflite_export.export_saved_model(model, Path(tmp) / "sm")
        (out / "model_fp16.tflite").write_bytes(tflite_export.convert(saved, "fp16"))
        rep = calibration.representative_dataset(calib)
        (out / "model_int8.tflite").write_bytes(tflite_export.convert(saved, "int8", rep, qcfg))
    onnx_export.export_onnx(model, out / "model.onnx")


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
    p.add_argument("--export-plain", type=Path, metavar="MODEL.keras",
                   help="first write the plain (one-output) artifacts of this model into --plain")
    p.add_argument("--manifest", type=Path, help="calibration source for --export-plain")
    args = p.parse_args(argv)
    if args.export_plain:
        if args.manifest is None:
            p.error("--export-plain needs --manifest")
        export_plain(args.export_plain, args.manifest, args.plain)
    r = measure(args.plain, args.checked, args.rounds, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(r, indent=1) + "\n")
    (args.out / "latency.md").write_text(markdown(r))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
