"""Does running the crop's mask and region search on a reduced image change any answer?

The runtime's default crop is the training crop, box and pixels (checked here again against
OpenCV's ``train/data/crop_cv.py`` on every image). ``CropConfig.analysis_min_side = n`` runs the
mask and region search on the gray image reduced by an integer factor (keeping ``n`` px on its
shorter side) and scales the box back; the crop and resize still read full-size pixels. That
moves the box by a few pixels on large images, so it is measured like the JPEG draft decode was:

1. on the **val** rows (paper split of BR35H, Nickparvar's val rows of the multi-source split),
   each candidate ``n`` is compared with the training crop through both shipped int8 models:
   label flips (at each contract's default operating point), domain-check flips, max and p99
   ``|delta score|``, box difference in full-size pixels;
2. the smallest ``n`` that passes :data:`RULE` on val is chosen (none if none passes);
3. the **test** rows are run once, for that ``n`` only, and reported as they come out.

Images whose crop is pixel-identical to the training crop are not sent through the models (their
scores cannot differ). Decoding is the full-size decode training uses (no draft).

    python -m benchmarks.prep_parity                # writes reports/edge/prep_parity.{json,md}
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
import os
from pathlib import Path
import shlex
import sys

import numpy as np

from benchmarks.output import write_report
from edge_runtime import Classifier
from edge_runtime.config import CropConfig
from edge_runtime.crop import analysis_factor, crop_image
from edge_runtime.image_io import load_rgb
from edge_runtime.machine import describe, machine_info
from train.data.crop_cv import crop_image as training_crop
from train.data.manifest import read_manifest
from train.data.sources import RootResolver

MODELS = (Path("models/multisource-mobilenetv2-int8.tflite"), Path("models/br35h-mobilenetv2-int8.tflite"))
#: What a candidate must meet on val, for every model, to be chosen: no label and no domain-check
#: flip, and scores that move less than the int8 output step (1/256) for 99 % of images.
RULE = {"label_flips": 0, "domain_flips": 0, "p99_abs_dscore_max": 1 / 256, "max_abs_dscore_max": 0.05}


@dataclass(frozen=True)
class Row:
    path: Path
    source: str


def rows_of(split: str, paper: Path, multi: Path, roots: RootResolver) -> list[Row]:
    """The paper split's BR35H rows and the multi-source split's Nickparvar rows of ``split``."""
    rows = [Row(roots(r.source) / r.path, r.source) for r in read_manifest(paper) if r.split == split]
    rows += [Row(roots(r.source) / r.path, r.source) for r in read_manifest(multi)
             if r.split == split and r.source == "nickparvar"]
    if not rows:
        raise SystemExit(f"error: no {split!r} rows in {paper} or {multi}")
    return rows


def _box_diff(a, b) -> int:
    return max(abs(x - y) for x, y in zip(a.as_tuple(), b.as_tuple()))


def compare(rows: list[Row], classifiers: dict[str, Classifier], sides: list[int]) -> dict:
    """Training crop vs the default runtime crop and each ``analysis_min_side`` in ``sides``."""
    crop = next(iter(classifiers.values())).crop
    cfgs = {n: replace(crop, analysis_min_side=n) for n in sides}
    default_mismatch: list[str] = []
    per = {n: {"reduced": 0, "pixels_identical": 0, "box_diff": [], "dscore": {m: [] for m in classifiers},
               "label_flips": {m: [] for m in classifiers}, "domain_flips": {m: [] for m in classifiers}}
           for n in sides}
    ref_scores: dict[str, tuple] = {}
    for row in rows:
        rgb = load_rgb(row.path, crop.max_pixels)
        ref_img, ref_box = training_crop(rgb, crop)
        img, box = crop_image(rgb, crop)
        if box.as_tuple() != ref_box.as_tuple() or not np.array_equal(img, ref_img):
            default_mismatch.append(str(row.path))
        ref_scores.clear()
        for n, cfg in cfgs.items():
            p = per[n]
            img, box = crop_image(rgb, cfg)
            p["reduced"] += analysis_factor(*rgb.shape[:2], cfg) > 1
            p["box_diff"].append(_box_diff(box, ref_box))
            if np.array_equal(img, ref_img):
                p["pixels_identical"] += 1
                for m in classifiers:
                    p["dscore"][m].append(0.0)
                continue
            for m, clf in classifiers.items():
                if m not in ref_scores:
                    ref_scores[m] = _answer(clf, ref_img)
                got, want = _answer(clf, img), ref_scores[m]
                p["dscore"][m].append(abs(got[0] - want[0]))
                if got[1] != want[1]:
                    p["label_flips"][m].append({"path": str(row.path), "training": want[0], "reduced": got[0]})
                if got[2] != want[2]:
                    p["domain_flips"][m].append(str(row.path))
    return {"images": len(rows), "by_source": {s: sum(r.source == s for r in rows) for s in sorted({r.source for r in rows})},
            "default_crop_differs_from_training": default_mismatch,
            "settings": [_summary(n, per[n]) for n in sides]}


def _answer(clf: Classifier, image: np.ndarray) -> tuple[float, bool, bool | None]:
    """(P(tumour), tumour at the default operating point, in domain) for a ready crop."""
    scores, domain = clf.model.run(image)
    score = float(scores[1])
    thr = clf.threshold if clf.threshold is not None else 0.5
    dt = None if clf.contract is None else clf.contract.domain_threshold
    return score, score >= thr, None if dt is None or domain is None else domain >= dt


def _summary(n: int, p: dict) -> dict:
    box = np.array(p["box_diff"])
    models = {}
    for m, d in p["dscore"].items():
        d = np.array(d)
        models[m] = {"label_flips": len(p["label_flips"][m]), "domain_flips": len(p["domain_flips"][m]),
                     "max_abs_dscore": float(d.max()), "p99_abs_dscore": float(np.percentile(d, 99)),
                     "flips": p["label_flips"][m], "domain_flip_paths": p["domain_flips"][m]}
    return {"analysis_min_side": n, "reduced": int(p["reduced"]), "pixels_identical": int(p["pixels_identical"]),
            "box_identical": int((box == 0).sum()), "box_max_diff_px": int(box.max()),
            "box_p99_diff_px": float(np.percentile(box, 99)), "models": models}


def passes(setting: dict) -> bool:
    """Whether a val setting meets :data:`RULE` for every model."""
    return all(m["label_flips"] <= RULE["label_flips"] and m["domain_flips"] <= RULE["domain_flips"]
               and m["p99_abs_dscore"] <= RULE["p99_abs_dscore_max"] and m["max_abs_dscore"] <= RULE["max_abs_dscore_max"]
               for m in setting["models"].values())


def choose(val: dict) -> int | None:
    """Smallest passing ``analysis_min_side`` (the most reduction), None when none passes."""
    ok = [s["analysis_min_side"] for s in val["settings"] if passes(s)]
    return min(ok) if ok else None


def _table(part: dict, mark: bool) -> list[str]:
    lines = ["| analysis_min_side | images reduced | crop pixel-identical | box identical | box diff max / p99 (px) | "
             "model | label flips | domain flips | max abs dscore | p99 abs dscore |" + (" passes |" if mark else ""),
             "|---|---:|---:|---:|---|---|---:|---:|---:|---:|" + ("---|" if mark else "")]
    for s in part["settings"]:
        for i, (m, r) in enumerate(s["models"].items()):
            head = (f"| {s['analysis_min_side']} | {s['reduced']} | {s['pixels_identical']} | {s['box_identical']} | "
                    f"{s['box_max_diff_px']} / {s['box_p99_diff_px']:.0f} |") if i == 0 else "| | | | | |"
            lines.append(f"{head} `{Path(m).name}` | {r['label_flips']} | {r['domain_flips']} | {r['max_abs_dscore']:.4f} | "
                         f"{r['p99_abs_dscore']:.4f} |" + ((" yes |" if passes(s) else " no |") if mark and i == 0 else
                                                           (" |" if mark else "")))
    return lines


def markdown(rep: dict) -> str:
    val, test = rep["val"], rep.get("test")
    lines = ["# Crop analysis on a reduced image vs the training crop: parity", "",
             f"Command: `{rep['command']}`  ", f"Machine: {describe(rep['machine'])}; load average "
             f"{rep['loadavg_start']} -> {rep['loadavg_end']} (parity only, no timing here).  ",
             f"Rows: paper split of BR35H and Nickparvar's rows of `splits/multi-paper.csv`; full-size decode.", "",
             "Default runtime crop vs OpenCV training crop (box and pixels): "
             f"{len(val['default_crop_differs_from_training'])} of {val['images']} val images differ"
             + (f", {len(test['default_crop_differs_from_training'])} of {test['images']} test images." if test else "."), "",
             f"Rule, decided before running: on val, for every model, {RULE['label_flips']} label flips, "
             f"{RULE['domain_flips']} domain flips, p99 |dscore| <= {RULE['p99_abs_dscore_max']:.4f} (one int8 output step), "
             f"max |dscore| <= {RULE['max_abs_dscore_max']}; the smallest passing `analysis_min_side` is chosen.", "",
             f"## Val ({val['images']} images: {val['by_source']})", ""] + _table(val, True)
    lines += ["", f"Chosen on val: `analysis_min_side = {rep['chosen']}`." if rep["chosen"] is not None else
              "No candidate passed on val: the option stays off (the default, the training crop); test not run."]
    worst = max(s["box_max_diff_px"] for part in (val, test) if part for s in part["settings"])
    lines += ["", f"The rule reads answers only. The box moves by up to {worst} px: on a reduced image a thin "
              "bridge or a gap in the skull ring can close or open, and then another region wins. Answers barely "
              "move because the crop still holds the brain, but it is not the training crop, so both shipped "
              "contracts keep the option off; a contract should carry it only for a model trained with it."]
    if test:
        lines += ["", f"## Test, run once for the chosen value ({test['images']} images: {test['by_source']})", ""] + _table(test, False)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.prep_parity", description=__doc__.splitlines()[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[448, 224, 160], help="analysis_min_side candidates")
    ap.add_argument("--models", type=Path, nargs="+", default=list(MODELS))
    ap.add_argument("--paper", type=Path, default=Path("splits/br35h-paper.csv"))
    ap.add_argument("--multi", type=Path, default=Path("splits/multi-paper.csv"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("reports/edge/prep_parity"))
    args = ap.parse_args(argv)
    missing = [str(m) for m in args.models if not m.is_file()]
    if missing:
        print(f"error: model file(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    classifiers = {str(m): Classifier(m, args.threads) for m in args.models}
    crops = {c.crop for c in classifiers.values()}
    if len(crops) != 1:
        print(f"error: the models' contracts use different crops: {crops}", file=sys.stderr)
        return 2
    roots = RootResolver()
    rep = {"command": "python -m benchmarks.prep_parity " + shlex.join(sys.argv[1:] if argv is None else argv),
           "machine": machine_info(), "loadavg_start": [round(v, 2) for v in os.getloadavg()], "rule": RULE,
           "crop": CropConfig.to_dict(next(iter(crops)))}
    rep["val"] = compare(rows_of("val", args.paper, args.multi, roots), classifiers, args.sides)
    rep["chosen"] = choose(rep["val"])
    if rep["chosen"] is not None:
        rep["test"] = compare(rows_of("test", args.paper, args.multi, roots), classifiers, [rep["chosen"]])
    print(write_report(rep, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
