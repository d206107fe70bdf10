"""What separates BR35H's normals from independent normals, and the false positives from the rest.

``python -m convert.external_diagnosis --predictions reports/external/br35h-only_on_nickparvar/int8/predictions.csv
--external ../shared/data/nickparvar --out reports/external``

The BR35H-only model flags many independent normal scans as tumour. Before changing the
training data we want to know *why*: is it the intensity (windowing, sequence), the canvas
(black border, aspect), the plane (sagittal/coronal slices BR35H barely has), or something
the model looks at inside the brain? Each image gets cheap, interpretable features of what the
model actually sees (the training crop) and of what the crop throws away:

* intensity of the 224x224 crop in grey levels: mean, std, 5th/50th/95th percentiles, share of
  near-black (< 10) and bright (> 200) pixels (a T2/FLAIR proxy: bright CSF), colour tint;
* canvas: background level (mean grey outside the crop box), border (share of the image outside
  the box), the box's aspect ratio, the image's own size and aspect before any resize;
* left-right symmetry: NCC of the 64x64 crop with its mirror (a tumour lowers it too), and the
  symmetry of the head's *outline* (the crop's brain mask, each row filled between its extreme
  pixels, IoU with its mirror), which a tumour inside barely changes: axial and coronal heads are
  symmetric ovals, a sagittal head (face, neck, occiput) is not. ``plane_guess`` thresholds it:
  a rough plane estimate, a heuristic, not a label.

For each feature the report gives group medians and, as a scale-free separation measure, the
ROC-AUC of the feature alone between two groups (0.5 = no separation; 1 or 0 = perfect): BR35H
normals vs independent normals, and false positives vs true negatives among the independent
normals, and BR35H normals vs BR35H tumours: a feature that separates the training classes *and*
the external false positives from the true negatives, in the same direction, is a shortcut the
model may have learnt. Grad-CAM montages of false positives need the Keras model (``--keras``); without one the
report says they were not made.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
import json
from pathlib import Path
import shlex
import sys

import numpy as np

from edge_runtime.config import CropConfig
from edge_runtime.image_io import load_rgb
from edge_runtime.machine import describe
from edge_runtime.metrics import roc_auc

FEATURES = ("crop_mean", "crop_std", "crop_p5", "crop_p50", "crop_p95", "crop_dark", "crop_bright", "tint",
            "background", "border", "box_aspect", "image_aspect", "image_side", "symmetry", "outline_symmetry")
DESCRIPTIONS = {
    "crop_mean": "mean grey level of the 224x224 crop", "crop_std": "std of the crop's grey levels",
    "crop_p5": "5th percentile of the crop", "crop_p50": "median of the crop", "crop_p95": "95th percentile of the crop",
    "crop_dark": "share of crop pixels < 10 (black left inside the box)",
    "crop_bright": "share of crop pixels > 200 (bright CSF/fat: sequence proxy)",
    "tint": "mean |R-G| + |G-B| (0 = pure grey)", "background": "mean grey outside the crop box",
    "border": "share of the image outside the crop box", "box_aspect": "crop box width / height",
    "image_aspect": "image width / height (before any resize)", "image_side": "sqrt(width * height) in px",
    "symmetry": "NCC of the 64x64 crop with its left-right mirror",
    "outline_symmetry": "IoU of the head's filled outline with its mirror (plane proxy)",
}


@dataclass(frozen=True)
class DiagnosisConfig:
    """``per_group``: most images per group (a seeded sample; BR35H normals are all 1500 by
    default); ``seed``: the sample's seed; ``montage_per_row``: thumbnails per row in the figure;
    ``symmetric_outline``: outline symmetry at or above which ``plane_guess`` says axial/coronal
    (0.85: about the 1st percentile of BR35H normals, which are axial by eye)."""

    per_group: int = 1500
    seed: int = 0
    montage_per_row: int = 8
    thumb: int = 64
    symmetric_outline: float = 0.85


def image_features(path: str | Path, crop: CropConfig = CropConfig()) -> tuple[dict, np.ndarray]:
    """``(features, 224x224 grey crop)`` of one image, through the training crop."""
    from edge_runtime.image_io import crop_and_resize
    from train.data.crop_cv import brain_mask, find_box

    rgb = load_rgb(path, crop.max_pixels)
    box = find_box(rgb, crop)
    x = crop_and_resize(rgb, box, crop.size, crop.resample)
    grey = rgb.astype(np.float32).mean(axis=2)
    g = x.astype(np.float32).mean(axis=2)
    h, w = grey.shape
    outside = np.ones((h, w), bool)
    outside[box.top:box.bottom, box.left:box.right] = False
    from PIL import Image

    t = np.asarray(Image.fromarray(g.astype(np.uint8)).resize((64, 64), Image.Resampling.BILINEAR), np.float32).ravel()
    t -= t.mean()
    m = t.reshape(64, 64)[:, ::-1].ravel()
    den = float(np.linalg.norm(t) * np.linalg.norm(m))
    p5, p50, p95 = np.percentile(g, [5, 50, 95])
    rgb_i = rgb.astype(np.int16)
    feats = {
        "crop_mean": float(g.mean()), "crop_std": float(g.std()), "crop_p5": float(p5), "crop_p50": float(p50),
        "crop_p95": float(p95), "crop_dark": float((g < 10).mean()), "crop_bright": float((g > 200).mean()),
        "tint": float(np.abs(rgb_i[..., 0] - rgb_i[..., 1]).mean() + np.abs(rgb_i[..., 1] - rgb_i[..., 2]).mean()),
        "background": float(grey[outside].mean()) if outside.any() else float("nan"),
        "border": float(outside.mean()), "box_aspect": box.width / max(1, box.height),
        "image_aspect": w / h, "image_side": float(np.sqrt(w * h)),
        "symmetry": float(t @ m / den) if den > 0 else float("nan"),
        "outline_symmetry": outline_symmetry(brain_mask(rgb, crop)[box.top:box.bottom, box.left:box.right] > 0),
        "no_brain_found": bool(box.fallback),
    }
    return feats, g.astype(np.uint8)


def outline_symmetry(mask: np.ndarray, side: int = 128) -> float:
    """IoU of the filled outline of ``mask`` (each row filled between its extreme pixels, at
    ``side x side``) with its left-right mirror; nan for an empty mask."""
    from PIL import Image

    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((side, side), Image.Resampling.NEAREST)) > 0
    fill = np.zeros_like(m)
    for i, row in enumerate(m):
        idx = np.flatnonzero(row)
        if len(idx):
            fill[i, idx[0]:idx[-1] + 1] = True
    mir = fill[:, ::-1]
    union = int((fill | mir).sum())
    return int((fill & mir).sum()) / union if union else float("nan")


PLANES = ("axial/coronal?", "sagittal/oblique?")


def plane_guess(f: dict, cfg: DiagnosisConfig = DiagnosisConfig()) -> str:
    """Heuristic from the outline: symmetric -> axial or coronal, asymmetric -> sagittal (or a
    strongly tilted slice). It cannot tell axial from coronal."""
    return PLANES[0] if f["outline_symmetry"] >= cfg.symmetric_outline else PLANES[1]


def load_groups(predictions: Path, external_root: Path, br35h_root: Path, manifest: Path, cfg: DiagnosisConfig
                ) -> dict[str, list[tuple[Path, float | None]]]:
    """Group name -> [(path, model score or None)], sampled with ``cfg.seed``."""
    from train.data.manifest import read_manifest

    rng = np.random.default_rng(cfg.seed)
    rows = list(csv.DictReader(predictions.open()))
    br35h = read_manifest(manifest)
    groups: dict[str, list[tuple[Path, float | None]]] = {
        "BR35H normals": [(br35h_root / r.path, None) for r in br35h if r.label == "no"],
        "BR35H tumours": [(br35h_root / r.path, None) for r in br35h if r.label == "yes"],
    }
    ok = [r for r in rows if not r["error"]]
    indep_no = [r for r in ok if r["label"] == "no" and r["twin"] == "0"]
    groups["external normals, true negative"] = [(external_root / r["path"], float(r["p_tumour"]))
                                                 for r in indep_no if r["predicted"] == "no"]
    groups["external normals, false positive"] = [(external_root / r["path"], float(r["p_tumour"]))
                                                  for r in indep_no if r["predicted"] == "yes"]
    groups["external normals, BR35H twins"] = [(external_root / r["path"], float(r["p_tumour"]))
                                               for r in ok if r["label"] == "no" and r["twin"] == "1"]
    groups["external tumours, missed"] = [(external_root / r["path"], float(r["p_tumour"]))
                                          for r in ok if r["label"] == "yes" and r["twin"] == "0" and r["predicted"] == "no"]
    groups["external tumours, detected"] = [(external_root / r["path"], float(r["p_tumour"]))
                                            for r in ok if r["label"] == "yes" and r["twin"] == "0" and r["predicted"] == "yes"]
    for name, items in groups.items():
        if len(items) > cfg.per_group:
            idx = np.sort(rng.choice(len(items), cfg.per_group, replace=False))
            groups[name] = [items[i] for i in idx]
    return groups


def separation(a: np.ndarray, b: np.ndarray) -> float:
    """ROC-AUC of a feature alone for telling ``b`` (positive) from ``a``; nan-safe."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return float("nan")
    return roc_auc(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b])


def montage(rows: list[tuple[str, list[np.ndarray]]], cfg: DiagnosisConfig) -> "Image.Image":
    """Grey thumbnails, one labelled row per group (Pillow only, small PNG)."""
    from PIL import Image, ImageDraw

    label_h, s, n = 14, cfg.thumb, cfg.montage_per_row
    canvas = Image.new("L", (n * s, len(rows) * (s + label_h)), 255)
    draw = ImageDraw.Draw(canvas)
    for i, (name, imgs) in enumerate(rows):
        y = i * (s + label_h)
        draw.text((2, y + 1), name, fill=0)
        for j, g in enumerate(imgs[:n]):
            canvas.paste(Image.fromarray(g).resize((s, s), Image.Resampling.BILINEAR), (j * s, y + label_h))
    return canvas


def run(predictions: Path, external_root: Path, br35h_root: Path, manifest: Path, out: Path, keras_model: Path | None,
        cfg: DiagnosisConfig = DiagnosisConfig(), command: str = "", log=print) -> dict:
    groups = load_groups(predictions, external_root, br35h_root, manifest, cfg)
    feats: dict[str, list[dict]] = {}
    crops: dict[str, list[np.ndarray]] = {}
    for name, items in groups.items():
        log(f"{name}: {len(items)} images")
        feats[name], crops[name] = [], []
        for path, score in items:
            f, g = image_features(path)
            f["plane_guess"], f["score"], f["path"] = plane_guess(f, cfg), score, str(path)
            feats[name].append(f)
            crops[name].append(g)
    table = {name: {k: float(np.nanmedian([f[k] for f in fs])) if fs else None for k in FEATURES}
             for name, fs in feats.items()}
    planes = {name: {p: sum(f["plane_guess"] == p for f in fs) for p in PLANES}
              for name, fs in feats.items()}
    col = lambda name, k: np.array([f[k] for f in feats[name]], float)  # noqa: E731
    comparisons = {
        "BR35H normals -> BR35H tumours (what training could use)": ("BR35H normals", "BR35H tumours"),
        "BR35H normals -> external normals (all independent)": ("BR35H normals", None),
        "external true negatives -> false positives": ("external normals, true negative", "external normals, false positive"),
        "BR35H normals -> external false positives": ("BR35H normals", "external normals, false positive"),
    }
    sep = {}
    for title, (a, b) in comparisons.items():
        if b is None:
            bv = lambda k: np.r_[col("external normals, true negative", k), col("external normals, false positive", k)]  # noqa: E731
        else:
            bv = lambda k, b=b: col(b, k)  # noqa: E731
        sep[title] = {k: separation(col(a, k), bv(k)) for k in FEATURES}
    # seeded random picks: "most confident" would be arbitrary (int8 scores tie at 255/256)
    rng = np.random.default_rng(cfg.seed + 1)
    n = cfg.montage_per_row

    def pick(name: str, k: int) -> list[int]:
        return sorted(rng.permutation(len(feats[name]))[:k].tolist())

    fp_name = "external normals, false positive"
    fp_idx = pick(fp_name, 2 * n)
    rows = [(f"{label} (random)", [crops[name][i] for i in pick(name, n)]) for label, name in (
        ("BR35H normals", "BR35H normals"), ("BR35H tumours", "BR35H tumours"),
        ("external normals: true negatives", "external normals, true negative"))]
    rows += [("external normals: false positives (random)", [crops[fp_name][i] for i in fp_idx[:n]]),
             ("external normals: false positives (random, cont.)", [crops[fp_name][i] for i in fp_idx[n:]]),
             ("external normals that are BR35H twins (random)",
              [crops["external normals, BR35H twins"][i] for i in pick("external normals, BR35H twins", n)])]
    out.mkdir(parents=True, exist_ok=True)
    montage(rows, cfg).save(out / "diagnosis_montage.png", optimize=True)
    fp_shown = [feats[fp_name][i] for i in fp_idx]
    gradcam_note = "not made: no Keras model of the BR35H-only network was available (pass --keras)"
    if keras_model is not None:
        gradcam_note = _gradcam_figure(keras_model, [f["path"] for f in fp_shown], out)
    machine = describe()  # names the CPU's vector features
    result = {"command": command, "machine": machine, "config": cfg.__dict__,
              "groups": {k: len(v) for k, v in feats.items()}, "medians": table, "plane_guess": planes,
              "separation_auc": sep, "gradcam": gradcam_note,
              "false_positives_shown": [{"path": f["path"], "score": f["score"], "outline_symmetry": f["outline_symmetry"],
                                         "symmetry": f["symmetry"], "plane_guess": f["plane_guess"]} for f in fp_shown]}
    (out / "diagnosis.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    return result


def _gradcam_figure(keras_model: Path, paths: list[str], out: Path) -> str:
    """Grad-CAM (tumour class) overlays of the given images into ``diagnosis_gradcam.png``."""
    import keras
    from PIL import Image

    from train.data.crop_cv import crop_image
    from train.gradcam import gradcam, overlay

    model = keras.saving.load_model(keras_model, compile=False)
    x = np.stack([crop_image(load_rgb(p))[0] for p in paths])
    heat, _ = gradcam(model, x, class_index=1)
    tiles = [Image.fromarray(overlay(img, h)).resize((112, 112)) for img, h in zip(x, heat)]
    canvas = Image.new("RGB", (112 * len(tiles), 112))
    for i, t in enumerate(tiles):
        canvas.paste(t, (112 * i, 0))
    canvas.save(out / "diagnosis_gradcam.png", optimize=True)
    return f"diagnosis_gradcam.png: Grad-CAM for the tumour class of {keras_model} on the {len(paths)} false positives of the montage"


def markdown(r: dict) -> str:
    groups = list(r["groups"])
    short = {g: g.replace("external ", "ext. ") for g in groups}
    lines = [
        "# Why the BR35H-only model flags independent normals: diagnosis", "",
        f"Command: `{r['command']}`  ", f"Machine: {r['machine']}", "",
        "Features of what the model sees (the training crop, 224x224) and of what the crop removes, per group; "
        f"groups larger than {r['config']['per_group']} are a seeded sample (seed {r['config']['seed']}). "
        "External = Nickparvar images that are *not* near-twins of BR35H (twins are their own group). "
        "Definitions are in `convert/external_diagnosis.py`.", "",
        "| group | images |", "|---|---|", *[f"| {g} | {n} |" for g, n in r["groups"].items()], "",
        "## Medians", "",
        "| feature | " + " | ".join(short[g] for g in groups) + " |",
        "|---|" + "---|" * len(groups),
    ]
    for k in FEATURES:
        vals = [r["medians"][g][k] for g in groups]
        lines.append(f"| {k} | " + " | ".join("n/a" if v is None else f"{v:.3g}" for v in vals) + " |")
    lines += ["", "## Separation by one feature (ROC-AUC; 0.5 = none, 0 or 1 = complete)", "",
              "| feature | meaning | " + " | ".join(r["separation_auc"]) + " |",
              "|---|---|" + "---|" * len(r["separation_auc"])]
    for k in FEATURES:
        vals = [r["separation_auc"][t][k] for t in r["separation_auc"]]
        lines.append(f"| {k} | {DESCRIPTIONS[k]} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    lines += ["", "Strongest single-feature separations (|AUC - 0.5| largest):", ""]
    for title, d in r["separation_auc"].items():
        top = sorted(((k, v) for k, v in d.items() if v == v), key=lambda kv: -abs(kv[1] - 0.5))[:4]
        lines.append(f"- {title}: " + ", ".join(f"{k} {v:.2f}" for k, v in top))
    lines += ["", f"## Rough plane estimate (outline symmetry >= {r['config']['symmetric_outline']}: axial/coronal)", "",
              "| group | " + " | ".join(PLANES) + " |", "|---|---|---|"]
    for g, d in r["plane_guess"].items():
        n = max(1, sum(d.values()))
        lines.append(f"| {g} | " + " | ".join(f"{d[p]} ({100 * d[p] / n:.0f} %)" for p in PLANES) + " |")
    lines += ["", "## Examples", "", "![montage](diagnosis_montage.png)", "",
              "Rows (seeded random picks): BR35H normals, BR35H tumours, external true negatives, two rows of external false positives, "
              "external normals that are BR35H twins (model inputs, grey).", "",
              f"Grad-CAM: {r['gradcam']}.", "",
              "The false positives of the montage, left to right, top row first:", "",
              "| image | P(tumour) | outline symmetry | plane? |", "|---|---|---|---|"]
    for f in r["false_positives_shown"]:
        lines.append(f"| `{Path(f['path']).parent.name}/{Path(f['path']).name}` | {f['score']:.3f} | {f['outline_symmetry']:.2f} | {f['plane_guess']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convert.external_diagnosis", description=__doc__.splitlines()[0])
    p.add_argument("--predictions", required=True, type=Path, help="predictions.csv of a convert.external run")
    p.add_argument("--external", required=True, type=Path, help="the folder that run evaluated")
    p.add_argument("--br35h", type=Path, help="BR35H folder (default: $BR35H_DATA or ../shared/data/br35h)")
    p.add_argument("--manifest", type=Path, default=Path("splits/br35h-paper.csv"), help="BR35H rows (its 'no' rows are used)")
    p.add_argument("--keras", type=Path, help="the BR35H-only Keras model, for Grad-CAM of false positives")
    p.add_argument("--per-group", type=int, default=DiagnosisConfig.per_group)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    from train.paths import data_root

    cfg = DiagnosisConfig(per_group=args.per_group)
    command = "python -m convert.external_diagnosis " + shlex.join(sys.argv[1:] if argv is None else argv)
    r = run(args.predictions, args.external, data_root(args.br35h), args.manifest, args.out, args.keras, cfg, command,
            log=lambda s: print(s, file=sys.stderr))
    (args.out / "diagnosis.md").write_text(markdown(r))
    print(f"report: {args.out / 'diagnosis.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
