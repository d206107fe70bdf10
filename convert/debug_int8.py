"""Why does int8 lose accuracy? Rank layers by quantization error and try the cures.

``python -m convert.debug_int8 --model M.keras --manifest splits/br35h-paper.csv --out DIR``

1. ``tf.lite.experimental.QuantizationDebugger`` on the calibration images: per-tensor
   RMSE / scale (1.0 = one quantization step of error on average; ~0.29 is pure rounding noise)
   -> ``layer_stats.csv``, worst first.
2. Candidates, each converted and scored on the test split against the Keras model:
   the default recipe; calibration sizes/selections; the default recipe with the N worst
   tensors kept float (``--keep-worst-tensors``, selective quantization by debugger error; the
   shipped ``--int8-keep-float K`` of ``python -m convert`` ranks convs by weight rounding instead).
-> ``int8_debug.{json,md}``. Full-int8 stays the shipped artifact; this says what to change.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
import tempfile
import time

import numpy as np

from convert import calibration, report, tflite_export
from convert.config import QuantizationConfig
from convert.evaluate import score
from convert.runtimes import TFLiteRunner, keras_predict
from edge_runtime.machine import describe
from train.data.manifest import read_manifest


def layer_stats(saved_model: Path, calib_x: np.ndarray, qcfg: QuantizationConfig) -> list[dict]:
    """Per-tensor debugger statistics plus ``rmse/scale``, sorted worst first."""
    import tensorflow as tf

    conv = tflite_export.make_converter(saved_model, "int8", calibration.representative_dataset(calib_x), qcfg)
    conv.inference_input_type = conv.inference_output_type = tf.float32  # the debugger compares float tensors
    dbg = tf.lite.experimental.QuantizationDebugger(converter=conv,
                                                    debug_dataset=calibration.representative_dataset(calib_x))
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    for r in rows:
        scale = float(r["scale"])
        r["rmse/scale"] = float(np.sqrt(float(r["mean_squared_error"])) / scale) if scale else 0.0
    return sorted(rows, key=lambda r: -r["rmse/scale"])


def evaluate_int8(saved_model: Path, calib_x: np.ndarray, qcfg: QuantizationConfig, test_x, test_y, ref) -> dict:
    t = time.perf_counter()
    flat = tflite_export.convert(saved_model, "int8", calibration.representative_dataset(calib_x), qcfg)
    m = score(TFLiteRunner(flat).predict(test_x), test_y, ref)
    return {"config": qcfg.to_dict(), "bytes": len(flat), **m.to_dict(), "seconds": round(time.perf_counter() - t, 1)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m convert.debug_int8", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--data", default=None, help="BR35H root (default: $BR35H_DATA or ../shared/data/br35h)")
    p.add_argument("--calibration-seed", type=int, default=0)
    p.add_argument("--calibration-sizes", default="100,300,1000", help="calibration sizes to try (stratified)")
    p.add_argument("--calibration-selections", default="random,groups",
                   help="other calibration selections to try at 300 images")
    p.add_argument("--keep-worst-tensors", default="1,3,10", metavar="N,N,...",
                   help="numbers of worst tensors (by debugger error) to keep float, one candidate each; "
                        "not python -m convert's --int8-keep-float, which ranks convs by weight-rounding sensitivity")
    return p.parse_args(argv)


def main(argv=None) -> int:
    import keras

    from convert.pipeline import default_loader

    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    load = default_loader()
    model = keras.saving.load_model(args.model, compile=False)
    rows = read_manifest(args.manifest)
    train = load(args.manifest, split="train", data_root=args.data)
    test = load(args.manifest, split="test", data_root=args.data)
    test_x, test_y = test.x.astype(np.float32), np.asarray(test.y)
    ref = keras_predict(model, test_x)
    keras_acc = score(ref, test_y, ref).accuracy

    def calib(q: QuantizationConfig) -> np.ndarray:
        return calibration.pick_arrays(train.x, train.paths, calibration.select_calibration(rows, q)).astype(np.float32)

    seed = args.calibration_seed
    base = QuantizationConfig(seed=seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        saved = tflite_export.export_saved_model(model, Path(tmp) / "sm")
        stats = layer_stats(saved, calib(base), base)
        with open(args.out / "layer_stats.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(stats[0]))
            w.writeheader()
            w.writerows(stats)
        candidates = [QuantizationConfig(calibration_size=int(n), seed=seed) for n in args.calibration_sizes.split(",")]
        candidates += [QuantizationConfig(selection=s, seed=seed) for s in args.calibration_selections.split(",") if s]
        named = [r["tensor_name"] for r in stats if r["op_name"] != "SOFTMAX"]  # output stays integer
        candidates += [QuantizationConfig(seed=seed, denylisted_nodes=tuple(named[:int(k)]))
                       for k in args.keep_worst_tensors.split(",") if k]
        for q in candidates:
            r = evaluate_int8(saved, calib(q), q, test_x, test_y, ref)
            results.append(r)
            print(f"{q.calibration_size:5d} {q.selection:10s} float={len(q.denylisted_nodes):2d}: acc {100 * r['accuracy']:.2f}% "
                  f"agree {100 * r['agreement']:.2f}% maxdiff {r['max_prob_diff']:.3f} ({r['seconds']}s)", flush=True)
    out = {"model": str(args.model), "manifest": str(args.manifest), "machine": describe(),
           "keras_accuracy": keras_acc, "n_test": len(test_y), "worst_tensors": stats[:15], "candidates": results,
           "tools": report.tool_versions()}
    (args.out / "int8_debug.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    (args.out / "int8_debug.md").write_text(markdown(out))
    print(f"wrote {args.out / 'int8_debug.md'}")
    return 0


def markdown(r: dict) -> str:
    lines = [f"# int8 debugging: `{r['model']}`", "", f"Machine: {r['machine']}. Test split of `{r['manifest']}`: "
             f"{r['n_test']} images; Keras accuracy {100 * r['keras_accuracy']:.2f}%.", "",
             "## Worst tensors (QuantizationDebugger, RMSE / scale on the calibration images)", "",
             "| tensor | op | rmse/scale | scale |", "|---|---|---:|---:|"]
    lines += [f"| `{s['tensor_name']}` | {s['op_name']} | {s['rmse/scale']:.3f} | {float(s['scale']):.4g} |"
              for s in r["worst_tensors"]]
    lines += ["", "## Candidates (each a full conversion, scored on the test split)", "",
              "| calibration | selection | tensors kept float | accuracy % | agreement % | max prob diff | KiB |",
              "|---:|---|---:|---:|---:|---:|---:|"]
    for c in r["candidates"]:
        q = c["config"]
        lines.append(f"| {q['calibration_size']} | {q['selection']} | {len(q['denylisted_nodes'])} | "
                     f"{100 * c['accuracy']:.2f} | {100 * c['agreement']:.2f} | {c['max_prob_diff']:.3f} | {c['bytes'] / 1024:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
