"""Parity of the edge runtime's numpy crop with the OpenCV training crop, on all of BR35H.

Writes ``reports/edge/parity.json`` and ``parity.md``:

- crop box: identical on what share of the 3000 labelled images, largest coordinate difference,
  every differing image listed; the binary masks compared too (the numpy mask is meant to be
  bit-exact, so a mask difference points at the step that drifted);
- preprocessing time per image (crop + resize of a decoded image), numpy vs OpenCV, median;
- with ``--model``: predicted class through the numpy path vs through the training path on
  the test split of ``--manifest`` (goal >= 99.8 % agreement) and the model's median
  inference time, so preprocessing can be put next to it.

This script may import OpenCV and ``train``; ``edge_runtime`` never does.

    .venv/bin/python -m benchmarks.parity                         # crop parity only
    .venv/bin/python -m benchmarks.parity --model models/br35h-mobilenetv2-int8.tflite
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
from pathlib import Path
import shlex
import sys
import time

import numpy as np

from edge_runtime import crop as np_crop
from edge_runtime.config import LABELS, CropConfig
from edge_runtime.image_io import crop_and_resize, load_rgb
from edge_runtime.interpreter import DEFAULT_THREADS, TFLiteModel
from edge_runtime.machine import machine_info
from train.data import crop_cv
from train.data.manifest import read_manifest
from train.paths import data_root

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ParityConfig:
    data: Path
    out: Path
    manifest: Path
    model: Path | None = None
    threads: int = DEFAULT_THREADS
    limit: int | None = None  # first N images only (smoke runs); the report says so
    repeat: int = 3  # timings are the best of this many runs per image


def _timed(fn, *args, repeat: int = 1):
    """Result and the best of ``repeat`` wall times in ms (best-of filters scheduler stalls
    on a shared machine; a 1 ms crop once took 2 s while a training job held both cores)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, (time.perf_counter() - t0) * 1e3)
    return out, best


def crop_parity(cfg: ParityConfig, crop: CropConfig) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Box/mask comparison over every labelled image; returns the summary and test-split crops."""
    paths = sorted((cfg.data / "yes").glob("*.jpg")) + sorted((cfg.data / "no").glob("*.jpg"))
    paths = paths[: cfg.limit] if cfg.limit else paths
    test = {r.path for r in read_manifest(cfg.manifest) if r.split == "test"} if cfg.model else set()
    diffs, t_np, t_cv, t_resize, crops = [], [], [], [], {}
    masks_equal = fallbacks = 0
    for p in paths:
        rel = p.relative_to(cfg.data).as_posix()
        rgb = load_rgb(p, crop.max_pixels)
        box_np, ms_np = _timed(np_crop.find_box, rgb, crop, repeat=cfg.repeat)
        box_cv, ms_cv = _timed(crop_cv.find_box, rgb, crop, repeat=cfg.repeat)
        img_np, ms_resize = _timed(crop_and_resize, rgb, box_np, crop.size, crop.resample, repeat=cfg.repeat)
        img_cv = crop_and_resize(rgb, box_cv, crop.size, crop.resample)  # = crop_cv.crop_image
        t_np.append(ms_np)
        t_cv.append(ms_cv)
        t_resize.append(ms_resize)
        masks_equal += bool(np.array_equal(np_crop.brain_mask(rgb, crop), crop_cv.brain_mask(rgb, crop) > 0))
        fallbacks += box_np.fallback
        d = max(abs(a - b) for a, b in zip(box_np.as_tuple(), box_cv.as_tuple()))
        if d or box_np.fallback != box_cv.fallback:
            diffs.append({"path": rel, "numpy": list(box_np.as_tuple()), "opencv": list(box_cv.as_tuple()),
                          "max_abs_diff": d, "shape": list(rgb.shape[:2])})
        if rel in test:
            crops[rel] = (img_np, img_cv)
    n = len(paths)
    return {
        "images": n,
        "box_identical": n - len(diffs),
        "box_identical_pct": 100.0 * (n - len(diffs)) / n,
        "box_max_abs_diff_px": max((d["max_abs_diff"] for d in diffs), default=0),
        "box_within_2px_pct": 100.0 * sum(d["max_abs_diff"] <= 2 for d in diffs) / n + 100.0 * (n - len(diffs)) / n,
        "mask_identical": masks_equal,
        "numpy_fallbacks": fallbacks,
        "differences": diffs,
        "box_ms_median": {"numpy": float(np.median(t_np)), "opencv": float(np.median(t_cv))},
        "box_ms_p90": {"numpy": float(np.percentile(t_np, 90)), "opencv": float(np.percentile(t_cv, 90))},
        "box_ms_max": {"numpy": float(np.max(t_np)), "opencv": float(np.max(t_cv))},
        "resize_ms_median": float(np.median(t_resize)),
        "preprocess_ms_median": {"numpy": float(np.median(np.add(t_np, t_resize))),
                                 "opencv": float(np.median(np.add(t_cv, t_resize)))},
    }, crops


def class_parity(cfg: ParityConfig, crops: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Predicted class through both crops on the test split, plus per-path accuracy."""
    model = TFLiteModel(cfg.model, cfg.threads)
    agree = correct_np = correct_cv = 0
    flips, t_inf = [], []
    for rel, (img_np, img_cv) in sorted(crops.items()):
        s_np, ms = _timed(model.scores, img_np)
        s_cv = model.scores(img_cv)
        t_inf.append(ms)
        truth = LABELS.index(rel.split("/")[0])
        c_np, c_cv = int(np.argmax(s_np)), int(np.argmax(s_cv))
        agree += c_np == c_cv
        correct_np += c_np == truth
        correct_cv += c_cv == truth
        if c_np != c_cv:
            flips.append({"path": rel, "score_numpy": float(s_np[1]), "score_training": float(s_cv[1])})
    n = len(crops)
    return {
        **model.describe(),
        "test_images": n,
        "class_agree": agree,
        "class_agree_pct": 100.0 * agree / n if n else None,
        "accuracy_numpy_path_pct": 100.0 * correct_np / n if n else None,
        "accuracy_training_path_pct": 100.0 * correct_cv / n if n else None,
        "flips": flips,
        "inference_ms_median": float(np.median(t_inf)) if t_inf else None,
    }


def markdown(rep: dict) -> str:
    c = rep["crop"]
    m = rep["machine"]
    lines = [
        "# Edge runtime: numpy crop vs OpenCV training crop",
        "",
        f"Command: `{rep['command']}`  ",
        f"Machine: {m['cpu']} ({m['arch']}, {m['cores']} cores), Python {m['python']}  ",
        f"Crop config fingerprint: `{rep['crop_fingerprint']}`",
        "",
        "## Crop box (all labelled BR35H images)" if not rep["limit"] else f"## Crop box (first {rep['limit']} images only)",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| images | {c['images']} | 3000 |",
        f"| box identical | {c['box_identical']} ({c['box_identical_pct']:.2f} %) | >= 99 % |",
        f"| largest box difference | {c['box_max_abs_diff_px']} px | <= 2 px |",
        f"| mask bit-identical | {c['mask_identical']} | |",
        f"| whole-image fallbacks (numpy) | {c['numpy_fallbacks']} | |",
        f"| crop box median, numpy / OpenCV | {c['box_ms_median']['numpy']:.2f} / {c['box_ms_median']['opencv']:.2f} ms | |",
        f"| crop box p90 / max, numpy | {c['box_ms_p90']['numpy']:.2f} / {c['box_ms_max']['numpy']:.2f} ms | |",
        f"| resize to 224 (Pillow bicubic, shared by both paths) median | {c['resize_ms_median']:.2f} ms | |",
        f"| preprocessing median (box + resize), numpy / OpenCV | {c['preprocess_ms_median']['numpy']:.2f} / "
        f"{c['preprocess_ms_median']['opencv']:.2f} ms | |",
        "",
        f"Times: best of {rep['repeat']} runs per image, then median/p90/max over images; an already decoded",
        "image, single thread, on a 2-core machine shared with a training job.",
        "",
    ]
    if c["differences"]:
        lines += ["Differing boxes (left, top, right, bottom):", "", "| image | numpy | OpenCV | max diff |", "|---|---|---|---|"]
        lines += [f"| {d['path']} | {d['numpy']} | {d['opencv']} | {d['max_abs_diff']} |" for d in c["differences"]]
        lines.append("")
    k = rep.get("class")
    lines += ["## Predicted class, numpy path vs training path (test split)", ""]
    if k is None:
        lines += ["Not measured: no `--model` given (no trained model existed when this report was written).", ""]
    else:
        lines += [
            f"Model: `{k['model']}` ({k['input_dtype']} input), backend {k['backend']} {k['backend_version']}, "
            f"{k['num_threads']} threads",
            "",
            *([f"Note: {rep['note']}", ""] if rep.get("note") else []),
            "| measure | value | goal |",
            "|---|---|---|",
            f"| test images | {k['test_images']} | |",
            f"| same class | {k['class_agree']} ({k['class_agree_pct']:.2f} %) | >= 99.8 % |",
            f"| accuracy, numpy path | {k['accuracy_numpy_path_pct']:.2f} % | |",
            f"| accuracy, training path | {k['accuracy_training_path_pct']:.2f} % | |",
            f"| inference median | {k['inference_ms_median']:.2f} ms | |",
            f"| preprocessing / inference (medians) | {c['preprocess_ms_median']['numpy'] / k['inference_ms_median']:.2f} | small |",
            "",
        ]
        lines += [f"- flip: {f['path']} numpy {f['score_numpy']:.4f} vs training {f['score_training']:.4f}" for f in k["flips"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="BR35H folder (default: train.paths.data_root())")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "edge")
    ap.add_argument("--manifest", type=Path, default=REPO / "splits" / "br35h-paper.csv")
    ap.add_argument("--model", type=Path, help=".tflite model for the class-parity half")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    ap.add_argument("--note", default="", help="one line about the model, printed in the report")
    ap.add_argument("--limit", type=int, help="first N images only (smoke run)")
    ap.add_argument("--repeat", type=int, default=3, help="time each image's crop this many times, keep the best")
    args = ap.parse_args(argv)
    cfg = ParityConfig(data_root(args.data), args.out, args.manifest, args.model, args.threads, args.limit, args.repeat)
    crop = CropConfig()
    crop_rep, crops = crop_parity(cfg, crop)
    rep = {
        "command": " ".join(["python -m benchmarks.parity", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(),
        "crop_fingerprint": crop.fingerprint(),
        "limit": cfg.limit,
        "repeat": cfg.repeat,
        "crop": crop_rep,
        "class": class_parity(cfg, crops) if cfg.model else None,
        "note": args.note,
    }
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "parity.json").write_text(json.dumps(rep, indent=2) + "\n")
    (cfg.out / "parity.md").write_text(markdown(rep))
    print(markdown(rep))


if __name__ == "__main__":
    main()
