"""Choose the domain-check method by measurement, on validation data only.

    python -m benchmarks.domain_select --model runs/X/model.keras --manifest splits/br35h-paper.csv \\
        --ood-dev /tmp/ood-dev --out reports/domain/dev-selection

Candidates: Mahalanobis (shared covariance, ``dims`` whitened principal directions, fitted on
train features) for several ``dims``, the maximum softmax probability and the energy score
(both on the model's logits). Each gets the threshold that accepts 99 % of the **val** crops;
the figure of merit is the share of the **OOD dev** set (``benchmarks.ood_set --split dev``,
generated images only; the evaluation set is never looked at) it then refuses, and the AUROC of
val vs OOD dev. Degenerate dev inputs (caught by the crop rule before any model) are left out,
so the comparison is between the model-side scores alone.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
import sys

import numpy as np

from convert import domain
from convert.temperature import fit_temperature
from edge_runtime.crop import crop_image
from edge_runtime.image_io import load_rgb
from edge_runtime.machine import describe

DIMS = (8, 16, 32, 64, 128, 256, 1280)


def ood_crops(folder: Path) -> tuple[np.ndarray, list[str]]:
    rows = list(csv.DictReader(open(folder / "index.csv")))
    x, names = [], []
    for r in rows:
        img, box = crop_image(load_rgb(folder / r["path"]))
        if not box.fallback:
            x.append(img)
            names.append(r["path"])
    return np.stack(x), names


def select(model_path: Path, manifest: Path, ood_dev: Path, data_root: str | None = None,
           fit_images: int = domain.DomainConfig.max_fit_images) -> dict:
    import keras

    from train.data.cache import load_crops

    model = keras.saving.load_model(model_path, compile=False)
    train = load_crops(manifest, "train", data_root=data_root, progress=False)
    val = load_crops(manifest, "val", data_root=data_root, progress=False)
    idx = domain._subset(len(train.y), fit_images)  # noqa: SLF001 - same subset as the pipeline
    f_tr, _ = domain.features_and_logits(model, train.x[idx])
    f_val, z_val = domain.features_and_logits(model, val.x)
    xo, names = ood_crops(ood_dev)
    f_o, z_o = domain.features_and_logits(model, xo)
    t = fit_temperature(z_val, np.asarray(val.y)).temperature
    cands: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "max_softmax": (domain.max_softmax(z_val / t), domain.max_softmax(z_o / t)),
        "energy": (domain.energy(z_val / t), domain.energy(z_o / t)),
    }
    for k in DIMS:
        fit = domain.fit_mahalanobis(f_tr, np.asarray(train.y)[idx], k)
        cands[f"mahalanobis_{min(k, f_tr.shape[1])}"] = (-fit.distances(f_val), -fit.distances(f_o))
    rows = {}
    for name, (s_in, s_out) in cands.items():
        thr = domain.accept_threshold(s_in, 0.99)
        rows[name] = {"val_accepted": float((s_in >= thr).mean()), "ood_dev_refused": float((s_out < thr).mean()),
                      "auroc": domain.auroc(s_in, s_out)}
    best = max(rows, key=lambda n: (rows[n]["ood_dev_refused"], rows[n]["auroc"]))
    return {"model": str(model_path), "manifest": str(manifest), "machine": describe(), "ood_dev": str(ood_dev),
            "n_val": int(len(val.y)), "n_ood_dev": int(len(xo)), "n_fit": int(len(idx)), "temperature": t,
            "candidates": rows, "best": best}


def markdown(r: dict) -> str:
    lines = [f"# Domain-check method selection: `{r['model']}`", "", f"Machine: {r['machine']}  ",
             f"In-domain: {r['n_val']} val crops of `{r['manifest']}`; out-of-domain: {r['n_ood_dev']} non-degenerate "
             f"images of the OOD **dev** set; Mahalanobis fitted on {r['n_fit']} train crops; threshold = accept 99 % of val.", "",
             "| method | val accepted % | OOD dev refused % | AUROC |", "|---|---:|---:|---:|"]
    for n, v in r["candidates"].items():
        b = "**" if n == r["best"] else ""
        lines.append(f"| {b}{n}{b} | {100 * v['val_accepted']:.1f} | {100 * v['ood_dev_refused']:.1f} | {v['auroc']:.4f} |")
    lines += ["", f"Best by OOD-dev refusal, then AUROC: **{r['best']}**."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.domain_select", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--ood-dev", required=True, type=Path)
    p.add_argument("--data", default=None)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    r = select(args.model, args.manifest, args.ood_dev, args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "method_selection.json").write_text(json.dumps(r, indent=1) + "\n")
    (args.out / "method_selection.md").write_text(markdown(r))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
