"""What each scanner/sequence augmentation does on its own, measured cheaply on frozen features.

``python -m benchmarks.augment_levers --manifest splits/multi-grouped.csv --out reports/train/augment_levers``

The ``multi`` recipe augments with gamma, bias field, noise and lost resolution together
(``train.augment``); one fine-tune per lever costs about an hour on 2 cores. Here each lever
is applied on its own, at the recipe's strength and to every training crop, and the frozen
ImageNet base's pooled features of those augmented crops are added to the clean and mirrored
ones the ``multi`` head trains on (loss weights ``label_source``, the recipe's). Each row is
the mean and spread over ``--seeds`` head seeds. The figure to watch is specificity on the
Nickparvar normals that are independent of BR35H (no near-twin in BR35H): they are what other
sites' normals look like. Chosen on val (best worst-source balanced accuracy); test reported
once for every row. A frozen-base head is not a fine-tuned model: this says whether a lever
moves the features' usable content toward other sites, not what a fine-tune would score.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
import sys
import time

import numpy as np

from benchmarks.output import write_report
from edge_runtime.machine import machine_info

#: Lever name -> the AugmentConfig fields it sets (the multi recipe's strengths; lost resolution
#: applied to every crop instead of a quarter of them, so its copy differs from the clean one).
LEVERS = {"none": {}, "gamma": {"gamma": 0.3}, "bias_field": {"bias_field": 0.3}, "noise": {"noise": 8.0},
          "lowres": {"lowres": 1.0}, "all (multi recipe)": {"gamma": 0.3, "bias_field": 0.3, "noise": 8.0, "lowres": 0.25}}


def augmented(x: np.ndarray, fields: dict, seed: int, batch: int = 64) -> np.ndarray:
    """One augmented copy of ``x`` (uint8 crops), drawn with the training layer itself."""
    from train.augment import scanner_augment_class

    layer = scanner_augment_class()(**fields, seed=seed)
    out = [np.asarray(layer(x[i:i + batch].astype("float32"), training=True)) for i in range(0, len(x), batch)]
    return np.clip(np.rint(np.concatenate(out)), 0, 255).astype(np.uint8)


def _independent_normals(manifest: str, split: str) -> np.ndarray:
    from train.data.manifest import read_manifest

    rows = read_manifest(manifest)
    sources = defaultdict(set)
    for r in rows:
        sources[r.group].add(r.source)
    return np.array([r.source == "nickparvar" and r.label == "no" and len(sources[r.group]) == 1
                     for r in rows if r.split == split])


def run(manifest: str, epochs: int, seeds: int, data_root: str | None = None) -> dict:
    import keras

    from train.data.cache import load_crops
    from train.datasets import cached_features, onehot
    from train.metrics import metrics_by_group
    from train.model import ModelConfig, build_head, build_model, set_base_trainable
    from train.optim import compile_model
    from train.paths import imagenet_weights
    from train.presets import get_preset
    from train.sampling import sample_weights

    cfg = get_preset("multi")
    t0 = time.time()
    sets = {s: load_crops(manifest, s, data_root=data_root) for s in ("train", "val", "test")}
    model = build_model(ModelConfig(), weights=imagenet_weights())
    set_base_trainable(model, False)
    tr = sets["train"]
    clean = np.concatenate([cached_features(model, tr.x, False, "train"), cached_features(model, tr.x, True, "train")])
    feats = {s: cached_features(model, sets[s].x, False, s) for s in ("val", "test")}
    indep = {s: _independent_normals(manifest, s) for s in ("val", "test")}
    w = sample_weights(tr.y, tr.sources, cfg.balance)
    rows = []
    for name, fields in LEVERS.items():
        t = time.time()
        if fields:
            aug = cached_features(model, augmented(tr.x, fields, seed=1), False, "train-aug-" + name.split()[0])
            ftr, ytr, sw = np.concatenate([clean, aug]), np.concatenate([tr.y] * 3), np.concatenate([w] * 3)
        else:
            ftr, ytr, sw = clean, np.concatenate([tr.y] * 2), np.concatenate([w] * 2)
        sw = sw * len(ytr) / sw.sum()
        runs = []
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            head = build_head(cfg.model, feature_dim=ftr.shape[1])
            compile_model(head, cfg.head_lr)
            head.fit(ftr, onehot(ytr), sample_weight=sw, batch_size=cfg.head_batch, epochs=epochs, shuffle=True, verbose=0)
            r = {}
            for s in ("val", "test"):
                p = head.predict(feats[s], batch_size=256, verbose=0)[:, 1]
                per = metrics_by_group(sets[s].sources, sets[s].y, p, 0.5)
                r[s] = {m.name: {"sensitivity": m.sensitivity, "specificity": m.specificity} for m in per}
                r[s + "_worst_balanced"] = min((m.sensitivity + m.specificity) / 2 for m in per)
                r[s + "_independent_np_specificity"] = float((p[indep[s]] <= 0.5).mean())
            runs.append(r)
        row = {"lever": name, "fields": fields, "seconds": round(time.time() - t, 1), "runs": runs}
        for key in ("val_worst_balanced", "test_worst_balanced", "val_independent_np_specificity",
                    "test_independent_np_specificity"):
            v = np.array([r[key] for r in runs])
            row[key] = {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}
        rows.append(row)
        print(f"{name:<20} val worst-source balanced {100 * row['val_worst_balanced']['mean']:.2f}%  "
              f"independent NP normals val {100 * row['val_independent_np_specificity']['mean']:.1f}% "
              f"test {100 * row['test_independent_np_specificity']['mean']:.1f}%  ({row['seconds']:.0f}s)")
    chosen = max(range(len(rows)), key=lambda i: rows[i]["val_worst_balanced"]["mean"])
    return {"command": "python -m benchmarks.augment_levers " + " ".join(sys.argv[1:]), "manifest": manifest,
            "machine": machine_info(), "epochs": epochs, "seeds": seeds,
            "n": {s: len(v.y) for s, v in sets.items()},
            "independent_np_normals": {s: int(v.sum()) for s, v in indep.items()},
            "rows": rows, "chosen_on_val": chosen, "seconds": round(time.time() - t0, 1)}


def markdown(rep: dict) -> str:
    def f(d):
        return f"{100 * d['mean']:.1f} ({100 * d['min']:.1f}-{100 * d['max']:.1f})"

    n = rep["independent_np_normals"]
    lines = [f"# Augmentation levers on frozen features: `{rep['manifest']}`", "",
             f"Machine: {rep['machine'].get('cpu', '')}; command: `{rep['command']}`. Head of the `multi` recipe on "
             f"frozen-ImageNet features of the clean, mirrored and (each lever) augmented training crops, "
             f"{rep['epochs']} epochs, {rep['seeds']} head seeds (mean, min-max). Independent Nickparvar normals: "
             f"{n['val']} in val, {n['test']} in test. Chosen on val by mean worst-source balanced accuracy; "
             "test reported once for every row.", "",
             "| lever | val worst-source balanced % | val independent NP normals specificity % | "
             "test worst-source balanced % | test independent NP normals specificity % |",
             "|---|---:|---:|---:|---:|"]
    for i, r in enumerate(rep["rows"]):
        mark = " **(chosen)**" if i == rep["chosen_on_val"] else ""
        lines.append(f"| {r['lever']}{mark} | {f(r['val_worst_balanced'])} | {f(r['val_independent_np_specificity'])} | "
                     f"{f(r['test_worst_balanced'])} | {f(r['test_independent_np_specificity'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.augment_levers", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="splits/multi-grouped.csv")
    p.add_argument("--out", type=Path, default=Path("reports/train/augment_levers"))
    p.add_argument("--epochs", type=int, default=8, help="head epochs (the multi recipe's)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data", help="data root (default: the sources under ../shared/data)")
    a = p.parse_args(argv)
    print(write_report(run(a.manifest, a.epochs, a.seeds, a.data), a.out, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
