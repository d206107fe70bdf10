"""Does reduced-size JPEG decoding (draft) change any answer? Class parity on a split.

For each of the paper split's test images, the shipped model classifies the image decoded at
full size (the runtime's default, identical to training) and decoded with libjpeg DCT scaling
(``DecodeConfig(draft=True, draft_min_side=S)``) for several ``S``. ``--split val`` runs the
same on the validation split, which is what a default should be decided on. Reported per ``S``: how many
images were actually reduced, label agreement with the full-size path, max and mean |delta score|,
the largest crop-box difference in full-size pixels, accuracy of both paths, and decode time.
Writes ``reports/edge/NAME.{json,md}`` (``--name``, default ``draft_parity``).

    .venv/bin/python -m benchmarks.draft_parity --model models/br35h-mobilenetv2-int8.tflite
    .venv/bin/python -m benchmarks.draft_parity --model models/br35h-mobilenetv2-fp16.tflite \
        --sides 448 --name draft_parity_fp16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

import numpy as np

from benchmarks.cpu_features import vector_features
from edge_runtime import Classifier
from edge_runtime.image_io import DecodeConfig, load_image
from edge_runtime.machine import machine_info
from train.data.manifest import read_manifest
from train.paths import data_root

REPO = Path(__file__).resolve().parent.parent


def run(model: Path, data: Path, manifest: Path, sides: list[int], threads: int, split: str = "test") -> dict:
    rows = [r for r in read_manifest(manifest) if r.split == split]
    full = Classifier(model, threads, decode=DecodeConfig(draft=False))
    base = {r.path: full.classify(data / r.path) for r in rows}
    truth = {r.path: r.label for r in rows}
    out = {"model": str(model), "split": split, "test_images": len(rows), "machine": machine_info(),
           "accuracy_full_pct": 100 * float(np.mean([base[p].label == truth[p] for p in base])),
           "decode_ms_median_full": float(np.median([base[p].timings.decode_ms for p in base])), "settings": []}
    for side in sides:
        clf = Classifier(model, threads, decode=DecodeConfig(draft=True, draft_min_side=side))
        preds = {p: clf.classify(data / p) for p in base}
        drafted = [p for p in base if load_image(data / p, clf.decode).scale > 1]
        dscore = np.array([abs(preds[p].score - base[p].score) for p in base])
        flips = [{"path": p, "full": base[p].score, "draft": preds[p].score} for p in base if preds[p].label != base[p].label]
        box = max((max(abs(a - b) for a, b in zip(preds[p].box.as_tuple(), base[p].box.as_tuple())) for p in drafted), default=0)
        out["settings"].append({
            "draft_min_side": side, "drafted": len(drafted), "label_agree": len(base) - len(flips),
            "max_abs_dscore": float(dscore.max()), "mean_abs_dscore_drafted": float(np.mean([dscore[i] for i, p in enumerate(base) if p in drafted])) if drafted else 0.0,
            "box_max_diff_px": int(box), "accuracy_draft_pct": 100 * float(np.mean([preds[p].label == truth[p] for p in base])),
            "decode_ms_median_drafted_full": float(np.median([base[p].timings.decode_ms for p in drafted])) if drafted else None,
            "decode_ms_median_drafted_draft": float(np.median([preds[p].timings.decode_ms for p in drafted])) if drafted else None,
            "flips": flips,
        })
    return out


def markdown(rep: dict, command: str) -> str:
    m = rep["machine"]
    lines = ["# Reduced-size JPEG decoding (draft, the device default) vs full decode: class parity", "",
             f"Command: `{command}`  ", f"Machine: {m['cpu']} ({m['arch']}, {m['cores']} cores; {vector_features()}), Python {m['python']}  ",
             f"Model: `{rep['model']}`; {rep['test_images']} {rep.get('split', 'test')} images of `splits/br35h-paper.csv`; "
             f"accuracy with full decode {rep['accuracy_full_pct']:.2f} %", "",
             "Decode times were taken on a shared machine (other jobs running): indicative only.", "",
             "| draft_min_side | images reduced | labels identical | max abs dscore | mean abs dscore (reduced) | max box diff (px) | accuracy with draft | decode ms median, reduced images: full / draft |",
             "|---|---|---|---|---|---|---|---|"]
    for s in rep["settings"]:
        dm = (f"{s['decode_ms_median_drafted_full']:.1f} / {s['decode_ms_median_drafted_draft']:.1f}"
              if s["drafted"] else "-")
        lines.append(f"| {s['draft_min_side']} | {s['drafted']} | {s['label_agree']}/{rep['test_images']} | "
                     f"{s['max_abs_dscore']:.2e} | {s['mean_abs_dscore_drafted']:.2e} | {s['box_max_diff_px']} | "
                     f"{s['accuracy_draft_pct']:.2f} % | {dm} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "br35h-mobilenetv2-int8.tflite")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--manifest", type=Path, default=REPO / "splits" / "br35h-paper.csv")
    ap.add_argument("--sides", type=int, nargs="+", default=[448, 336, 224])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--split", default="test", help="manifest split (decide on val, report test)")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "edge")
    ap.add_argument("--name", default="draft_parity", help="report file stem (one per model)")
    args = ap.parse_args()
    rep = run(args.model, data_root(args.data), args.manifest, args.sides, args.threads, args.split)
    command = "python -m benchmarks.draft_parity " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({**rep, "command": command}, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(rep, command))
    print(markdown(rep, command))


if __name__ == "__main__":
    main()
