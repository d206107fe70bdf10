"""Edge runtime latency on this machine: per-stage medians on real BR35H images, inference
percentiles per thread count, written to ``reports/benchmarks/edge_latency.{json,md}`` beside
the suite's report. Inference is timed by ``br35h-edge bench``'s function, so both share
:mod:`edge_runtime.timing`.

    .venv/bin/python -m benchmarks.edge_latency --model models/br35h-mobilenetv2-int8.tflite
    .venv/bin/python -m benchmarks.edge_latency --proxy     # no trained model yet

``--proxy`` builds (once, into ``.cache/edge-proxy/``, needs TensorFlow) the project's exact
architecture - MobileNetV2 with ImageNet weights and the paper head, untrained head - and
converts it to fp32 and full-integer TFLite with ``convert.tflite_export``. Latency does not
depend on the weights' values, so its numbers stand for the released model's until that
exists; its predictions mean nothing and are not reported.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shlex
import sys

import numpy as np

from edge_runtime.bench import bench
from edge_runtime.classifier import Classifier
from edge_runtime.image_io import load_rgb
from edge_runtime.machine import machine_info
from edge_runtime.timing import TimingConfig, load_average, percentiles

REPO = Path(__file__).resolve().parent.parent


def build_proxy(out: Path, calibration: list[Path]) -> list[Path]:
    """fp32 + int8 TFLite of the untrained-head project model (see module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from convert.calibration import representative_dataset
    from convert.tflite_export import convert, export_saved_model
    from edge_runtime.crop import crop_image
    from train.model import build_model
    from train.paths import imagenet_weights

    paths = [out / "proxy-fp32.tflite", out / "proxy-int8.tflite"]
    if all(p.is_file() for p in paths):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    saved = export_saved_model(build_model(weights=imagenet_weights()), out / "saved_model")
    x = np.stack([crop_image(load_rgb(p))[0] for p in calibration]).astype(np.float32)
    paths[0].write_bytes(convert(saved, "fp32"))
    paths[1].write_bytes(convert(saved, "int8", representative_dataset(x)))
    return paths


def per_image(clf: Classifier, images: list[Path]) -> dict:
    """Median / p90 of each stage over real images, one prediction each (after one warm-up).

    The stage times are the classifier's own (``Prediction.timings``): a file is decoded once,
    so these cannot be repeated calls like :func:`edge_runtime.timing.time_calls`."""
    clf.classify(images[0])
    preds = [clf.classify(p) for p in images]
    stages = {
        "decode_ms": [p.timings.decode_ms for p in preds],
        "preprocess_ms": [p.timings.preprocess_ms for p in preds],
        "inference_ms": [p.timings.inference_ms for p in preds],
        "total_ms": [p.timings.total_ms for p in preds],
    }
    return {"images": len(preds), **{k: dict(zip(("median", "p90"), percentiles(v, (50, 90))))
                                     for k, v in stages.items()}}


def markdown(rep: dict) -> str:
    m = rep["machine"]
    lines = [
        "# Edge runtime latency",
        "",
        f"Command: `{rep['command']}`  ",
        f"Machine: **{m['cpu']}** ({m['arch']}, {m['cores']} cores, {m['os']}), Python {m['python']}. "
        f"Load average at start {rep['loadavg_start']} (1/5/15 min; on 2 cores anything near 2 means another "
        "job shared the machine). Measured on the x86 build machine, not on a Raspberry Pi or Jetson.",
        "",
    ]
    if rep["proxy"]:
        lines += ["Models: **proxy** - the project's MobileNetV2 + paper-head architecture with ImageNet weights and an "
                  "untrained head, converted like the release; same ops and sizes, so same latency, meaningless scores.", ""]
    lines += ["## Per image (real BR35H files, one prediction each)", "",
              "| model | threads | images | decode | preprocess (numpy crop + resize) | inference | total | preprocess / inference |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rep["results"]:
        s = r["per_image"]
        lines.append(
            f"| {Path(r['model']).name} ({r['input_dtype']}) | {r['num_threads']} | {s['images']} | "
            f"{s['decode_ms']['median']:.2f} ms | {s['preprocess_ms']['median']:.2f} ms | {s['inference_ms']['median']:.2f} ms | "
            f"{s['total_ms']['median']:.2f} ms | {s['preprocess_ms']['median'] / s['inference_ms']['median']:.2f} |")
    lines += ["", "Medians; p90 in edge_latency.json.", "", "## Inference only (`br35h-edge bench`)", "",
              "| model | backend | threads | runs | mean | std | p50 | p90 | p99 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rep["results"]:
        b = r["bench"]["inference"]
        lines.append(f"| {Path(r['model']).name} | {r['backend']} {r['backend_version']} | {r['num_threads']} | {b['n']} | "
                     f"{b['mean_ms']:.2f} | {b['std_ms']:.2f} | {b['p50_ms']:.2f} | {b['p90_ms']:.2f} | {b['p99_ms']:.2f} ms |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from train.paths import cache_dir, data_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, action="append", default=[], help=".tflite (repeatable)")
    ap.add_argument("--proxy", action="store_true", help="build and time the untrained-head proxy models")
    ap.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default: 1 and all cores up to 4)")
    ap.add_argument("--images", type=int, default=200, help="BR35H images for the per-image medians")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks",
                    help="folder for edge_latency.json and edge_latency.md")
    args = ap.parse_args(argv)
    data = data_root(args.data)
    every = sorted((data / "yes").glob("*.jpg")) + sorted((data / "no").glob("*.jpg"))
    images = every[:: max(1, len(every) // args.images)][: args.images]
    models = list(args.model)
    if args.proxy:
        models += build_proxy(cache_dir() / "edge-proxy", every[::100])
    if not models:
        ap.error("give --model PATH (repeatable) or --proxy")
    cores = os.cpu_count() or 1
    threads = args.threads or sorted({1, min(4, cores)})
    bench_image = images[len(images) // 2]
    results = []
    for model in models:
        for t in threads:
            clf = Classifier(model, num_threads=t)
            res = bench(clf, bench_image, TimingConfig(runs=args.runs, warmup=10))
            results.append({**clf.info, "bench": res, "per_image": per_image(clf, images)})
            print(f"{model.name} threads={t}: inference p50 {res['inference']['p50_ms']:.2f} ms", file=sys.stderr)
    rep = {
        "command": " ".join(["python -m benchmarks.edge_latency", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(),
        "loadavg_start": [round(x, 2) for x in load_average() or []],
        "proxy": args.proxy,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "edge_latency.json").write_text(json.dumps(rep, indent=2) + "\n")
    (args.out / "edge_latency.md").write_text(markdown(rep))
    print(markdown(rep))


if __name__ == "__main__":
    main()
