"""Where the edge runtime's preprocessing time goes, step by step, before and after its fast path.

decode (Pillow, ``image_io.load_rgb``) -> gray -> blur + threshold -> erode/dilate -> region
search (runs, components, box) -> crop + resize (Pillow bicubic). Two compositions of the same
steps, timed interleaved on the same decoded image (round by round, best of ``--repeat``) so a
loaded machine slows both alike:

- ``before``: the step-by-step pipeline (weighted gray, rounded uint8 blur, RGB resize);
- ``after``: ``crop.crop_image`` (gray skipped when R = G = B, blur compared on its accumulator,
  one-channel resize for grey slices): the same box and pixels;
- ``reduced``: ``crop_image`` with ``analysis_min_side`` (``--analysis-min-side``): mask and
  region search on a reduced image, an opt-in whose answers ``benchmarks/prep_parity.py`` measures.

Images are picked evenly by rank of their shorter side, so small (~150 px) to large (>1000 px)
slices are all in; medians are reported overall and per size band, next to the int8 model's
inference in the same run, because the share is what matters:

    python -m benchmarks.preprocess_profile --n 60 --out reports/edge/preprocess_profile
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import os
from pathlib import Path
import shlex
import sys
import time

import numpy as np
from PIL import Image

from edge_runtime import crop as C
from edge_runtime.config import CropBox, CropConfig
from edge_runtime.image_io import crop_and_resize, crop_and_resize_gray, load_rgb
from edge_runtime.interpreter import TFLiteModel
from edge_runtime.machine import describe, machine_info
from benchmarks.output import write_report

#: Shorter-side bands (px) the medians are split by: BR35H's median side is ~260 px.
BANDS = ((0, 300), (300, 700), (700, 1 << 30))


def _ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _before(rgb: np.ndarray, cfg: CropConfig) -> dict[str, float]:
    """The pipeline as composed before the fast path, each step timed; returns ms per step."""
    t: dict[str, float] = {}
    out: dict = {}
    t["gray"] = _ms(lambda: out.__setitem__("g", C.to_gray(rgb)))
    t["blur"] = _ms(lambda: out.__setitem__("b", C.gaussian_blur(out["g"], cfg.blur_ksize, cfg.blur_sigma)))
    t["threshold_morphology"] = _ms(lambda: out.__setitem__("m", C._box_filter(C._box_filter(
        out["b"] > cfg.threshold, cfg.erode_iterations, True), cfg.dilate_iterations, False)))
    t["region_search"] = _ms(lambda: out.__setitem__("box", C.box_of_mask(out["m"], cfg)))
    t["degenerate"] = _ms(lambda: C.degenerate(rgb, out["box"], cfg))
    t["crop_resize"] = _ms(lambda: crop_and_resize(rgb, out["box"], cfg.size, cfg.resample))
    return t


def _before_crop(rgb: np.ndarray, cfg: CropConfig) -> np.ndarray:
    """:func:`_before` without the timers: the crop as composed before the fast path."""
    mask = C.gaussian_blur(C.to_gray(rgb), cfg.blur_ksize, cfg.blur_sigma) > cfg.threshold
    box = C.box_of_mask(C._box_filter(C._box_filter(mask, cfg.erode_iterations, True), cfg.dilate_iterations, False), cfg)
    C.degenerate(rgb, box, cfg)
    return crop_and_resize(rgb, box, cfg.size, cfg.resample)


def _after(rgb: np.ndarray, cfg: CropConfig) -> dict[str, float]:
    """``crop_image``'s steps, each timed (same order, same result as ``crop_image``)."""
    t: dict[str, float] = {}
    out: dict = {}
    t["gray"] = _ms(lambda: out.__setitem__("g", C.gray_of(rgb)))
    g, is_gray = out["g"]
    t["blur"] = _ms(lambda: out.__setitem__("b", C.blur_above(g, cfg.blur_ksize, cfg.blur_sigma, cfg.threshold)))
    t["threshold_morphology"] = _ms(lambda: out.__setitem__("m", C._box_filter(C._box_filter(
        out["b"], cfg.erode_iterations, True), cfg.dilate_iterations, False)))
    t["region_search"] = _ms(lambda: out.__setitem__("box", C.box_of_mask(out["m"], cfg)))
    t["degenerate"] = _ms(lambda: C.degenerate(rgb, out["box"], cfg, g))
    box: CropBox = out["box"]
    t["crop_resize"] = _ms(lambda: crop_and_resize_gray(g, box, cfg.size, cfg.resample) if is_gray
                           else crop_and_resize(rgb, box, cfg.size, cfg.resample))
    return t


def profile(paths: list[Path], model: Path | None, repeat: int = 3, cfg: CropConfig = CropConfig(),
            analysis_min_side: int = 224) -> dict:
    """Per image: best-of-``repeat`` ms of every step and total, interleaved round by round."""
    reduced = replace(cfg, analysis_min_side=analysis_min_side)
    images = []
    for p in paths:
        best: dict[str, float] = {}
        decode = float("inf")
        for _ in range(repeat):
            decode = min(decode, _ms(lambda: load_rgb(p, cfg.max_pixels)))
            rgb = load_rgb(p, cfg.max_pixels)
            for name, steps in (("before", _before(rgb, cfg)), ("after", _after(rgb, cfg))):
                for k, v in steps.items():
                    best[f"{name}.{k}"] = min(best.get(f"{name}.{k}", float("inf")), v)
            for name, fn in (("before.crop_total", lambda: _before_crop(rgb, cfg)),
                             ("after.crop_total", lambda: C.crop_image(rgb, cfg)),
                             ("reduced.crop_total", lambda: C.crop_image(rgb, reduced))):
                best[name] = min(best.get(name, float("inf")), _ms(fn))
        images.append({"path": str(p), "short_side": int(min(rgb.shape[:2])), "decode": decode, **best})
    out: dict = {"per_image": images, "overall": _medians(images)}
    out["bands"] = {f"{lo}-{hi if hi < 1 << 30 else ''}": _medians([i for i in images if lo <= i["short_side"] < hi])
                    for lo, hi in BANDS}
    if model is not None:
        m = TFLiteModel(model, num_threads=1)
        crop, _ = C.crop_image(load_rgb(paths[0], cfg.max_pixels), cfg)
        for _ in range(5):
            m.scores(crop)
        inf = float(np.median([_ms(lambda: m.scores(crop)) for _ in range(50)]))
        o = out["overall"]
        out["inference_int8_1thread_ms"] = inf
        out["end_to_end_over_inference"] = {
            k: (o["decode"]["median_ms"] + o[f"{k}.crop_total"]["median_ms"] + inf) / inf
            for k in ("before", "after", "reduced")}
    return out


def _medians(images: list[dict]) -> dict:
    if not images:
        return {"n": 0}
    keys = [k for k in images[0] if k not in ("path", "short_side")]
    res: dict = {"n": len(images)}
    for k in keys:
        v = [i[k] for i in images]
        res[k] = {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90))}
    return res


STEPS = ("gray", "blur", "threshold_morphology", "region_search", "degenerate", "crop_resize", "crop_total")


def markdown(rep: dict) -> str:
    p = rep["profile"]
    o = p["overall"]
    lines = ["# Preprocessing profile (edge runtime): before / after the fast path", "",
             f"Machine: {describe(rep['machine'])}; load average {rep['loadavg_start']} -> {rep['loadavg_end']}.  ",
             f"Command: `{rep['command']}`  ",
             f"{rep['n']} images of `{rep['folder']}`, picked evenly by rank of the shorter side "
             f"({rep['short_side_range'][0]}-{rep['short_side_range'][1]} px); before and after interleaved round by "
             f"round, best of {rep['repeat']} per image and step, median (p90) over images. On a shared machine, "
             "read the ratios, not the absolutes. `before` and `after` give the same box and pixels; `reduced` is "
             f"`analysis_min_side = {rep['analysis_min_side']}` (opt-in, see prep_parity.md).", "",
             f"Decode (full size): {o['decode']['median_ms']:.2f} ms median ({o['decode']['p90_ms']:.2f} p90).", "",
             "| step | before median (p90) ms | after median (p90) ms | after / before (medians) |", "|---|---:|---:|---:|"]
    for s in STEPS:
        b, a = o[f"before.{s}"], o[f"after.{s}"]
        ratio = a["median_ms"] / b["median_ms"] if b["median_ms"] > 0 else float("nan")
        lines.append(f"| {s} | {b['median_ms']:.2f} ({b['p90_ms']:.2f}) | {a['median_ms']:.2f} ({a['p90_ms']:.2f}) | {ratio:.2f} |")
    r = o["reduced.crop_total"]
    lines.append(f"| crop_total, reduced | | {r['median_ms']:.2f} ({r['p90_ms']:.2f}) | "
                 f"{r['median_ms'] / o['before.crop_total']['median_ms']:.2f} |")
    lines += ["", "By shorter side (crop_total medians, ms):", "",
              "| side px | images | before | after | reduced | after / before | reduced / before |", "|---|---:|---:|---:|---:|---:|---:|"]
    for band, m in p["bands"].items():
        if m["n"]:
            b, a, r = (m[f"{k}.crop_total"]["median_ms"] for k in ("before", "after", "reduced"))
            lines.append(f"| {band} | {m['n']} | {b:.2f} | {a:.2f} | {r:.2f} | {a / b:.2f} | {r / b:.2f} |")
    if "end_to_end_over_inference" in p:
        e = p["end_to_end_over_inference"]
        lines += ["", f"int8 inference, 1 thread: {p['inference_int8_1thread_ms']:.2f} ms (median of 50). "
                      "End to end / inference (decode + crop_total + inference, over inference): "
                      f"before **{e['before']:.2f}x**, after **{e['after']:.2f}x**, reduced **{e['reduced']:.2f}x**."]
    return "\n".join(lines) + "\n"


def _by_side(paths: list[Path], n: int) -> list[Path]:
    """``n`` paths evenly spaced by rank of the shorter side (header read only)."""
    sides = []
    for p in paths:
        with Image.open(p) as im:
            sides.append((min(im.size), p.name, p))
    sides.sort()
    idx = np.unique(np.linspace(0, len(sides) - 1, min(n, len(sides))).round().astype(int))
    return [sides[i][2] for i in idx]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.preprocess_profile", description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path("../shared/data/br35h/yes"))
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--analysis-min-side", type=int, default=224, help="analysis_min_side of the 'reduced' column")
    ap.add_argument("--model", type=Path, default=Path("models/br35h-mobilenetv2-int8.tflite"))
    ap.add_argument("--out", type=Path, default=Path("reports/edge/preprocess_profile"))
    args = ap.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: --folder {args.folder}: not a directory", file=sys.stderr)
        return 2
    paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        print(f"error: --folder {args.folder}: no images", file=sys.stderr)
        return 2
    paths = _by_side(paths, args.n)
    start = [round(v, 2) for v in os.getloadavg()]
    prof = profile(paths, args.model if args.model.is_file() else None, args.repeat,
                   analysis_min_side=args.analysis_min_side)
    sides = [i["short_side"] for i in prof["per_image"]]
    rep = {"command": "python -m benchmarks.preprocess_profile " + shlex.join(sys.argv[1:] if argv is None else argv),
           "machine": machine_info(), "folder": str(args.folder), "n": len(paths), "repeat": args.repeat,
           "analysis_min_side": args.analysis_min_side, "short_side_range": [min(sides), max(sides)],
           "loadavg_start": start, "profile": prof}
    print(write_report(rep, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
