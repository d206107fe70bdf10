"""Where the edge runtime's preprocessing time goes, step by step, on real BR35H images.

decode (Pillow, ``image_io.load_rgb``) -> gray -> blur -> threshold + erode/dilate -> region
search (runs, components, box) -> crop + resize (Pillow bicubic), each timed alone on the same
decoded image (best of ``--repeat``), median over ``--n`` images, next to the int8 model's
inference on this machine in the same run, because the share is what matters:

    python -m benchmarks.preprocess_profile --n 60 --out reports/edge/preprocess_profile
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import shlex
import sys
import time

import numpy as np

from edge_runtime import crop as C
from edge_runtime.config import CropConfig
from edge_runtime.image_io import crop_and_resize, load_rgb
from edge_runtime.interpreter import TFLiteModel
from edge_runtime.machine import describe, machine_info
from benchmarks.output import write_report


def _best_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t) * 1e3)
    return best


def profile(paths: list[Path], model: Path | None, repeat: int = 3, cfg: CropConfig = CropConfig()) -> dict:
    steps: dict[str, list[float]] = {k: [] for k in ("decode", "gray", "blur", "threshold_morphology", "region_search",
                                                      "crop_resize", "crop_total")}
    for p in paths:
        steps["decode"].append(_best_ms(lambda: load_rgb(p, cfg.max_pixels), repeat))
        rgb = load_rgb(p, cfg.max_pixels)
        gray = C.to_gray(rgb)
        blur = C.gaussian_blur(gray, cfg.blur_ksize, cfg.blur_sigma)
        steps["gray"].append(_best_ms(lambda: C.to_gray(rgb), repeat))
        steps["blur"].append(_best_ms(lambda: C.gaussian_blur(gray, cfg.blur_ksize, cfg.blur_sigma), repeat))
        steps["threshold_morphology"].append(_best_ms(lambda: C._box_filter(C._box_filter(
            blur > cfg.threshold, cfg.erode_iterations, True), cfg.dilate_iterations, False), repeat))
        box = C.find_box(rgb, cfg)
        mask_ms = steps["gray"][-1] + steps["blur"][-1] + steps["threshold_morphology"][-1]
        steps["region_search"].append(max(0.0, _best_ms(lambda: C.find_box(rgb, cfg), repeat) - mask_ms))
        steps["crop_resize"].append(_best_ms(lambda: crop_and_resize(rgb, box, cfg.size, cfg.resample), repeat))
        steps["crop_total"].append(_best_ms(lambda: C.crop_image(rgb, cfg), repeat))
    out = {k: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90))} for k, v in steps.items()}
    if model is not None:
        m = TFLiteModel(model, num_threads=1)
        crop, _ = C.crop_image(load_rgb(paths[0], cfg.max_pixels), cfg)
        for _ in range(5):
            m.scores(crop)
        out["inference_int8_1thread"] = {"median_ms": float(np.median([_best_ms(lambda: m.scores(crop), 1)
                                                                        for _ in range(50)]))}
        inf = out["inference_int8_1thread"]["median_ms"]
        pre = out["decode"]["median_ms"] + out["crop_total"]["median_ms"]
        out["end_to_end_over_inference"] = (pre + inf) / inf
    return out


def markdown(rep: dict) -> str:
    p = rep["profile"]
    lines = ["# Preprocessing profile (edge runtime)", "",
             f"Machine: {describe(rep['machine'])}; load average {rep['loadavg_start']} -> {rep['loadavg_end']}.  ",
             f"Command: `{rep['command']}`  ", f"{rep['n']} images of `{rep['folder']}`; best of {rep['repeat']} per "
             "image and step, median (p90) over images. On a shared machine, read the shares, not the absolutes.", "",
             "| step | median ms | p90 ms |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['median_ms']:.2f} | {v.get('p90_ms', float('nan')):.2f} |" for k, v in p.items()
              if isinstance(v, dict)]
    if "end_to_end_over_inference" in p:
        lines += ["", f"End to end / inference (decode + crop_total + inference, over inference): "
                      f"**{p['end_to_end_over_inference']:.2f}x**."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.preprocess_profile", description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path("../shared/data/br35h/yes"))
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", type=Path, default=Path("models/br35h-mobilenetv2-int8.tflite"))
    ap.add_argument("--out", type=Path, default=Path("reports/edge/preprocess_profile"))
    args = ap.parse_args(argv)
    paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        print(f"error: --folder {args.folder}: no images", file=sys.stderr)
        return 2
    paths = paths[:: max(1, len(paths) // args.n)][: args.n]
    start = [round(v, 2) for v in os.getloadavg()]
    rep = {"command": "python -m benchmarks.preprocess_profile " + shlex.join(sys.argv[1:] if argv is None else argv),
           "machine": machine_info(), "folder": str(args.folder), "n": len(paths), "repeat": args.repeat,
           "loadavg_start": start, "profile": profile(paths, args.model if args.model.is_file() else None, args.repeat)}
    print(write_report(rep, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
