"""What each way of handling the class/source imbalance does, measured cheaply on frozen features.

``python -m benchmarks.imbalance_levers --manifest splits/multi-grouped.csv --out reports/train/imbalance_levers``

A multi-source training set is lopsided (thousands of extra tumour slices, a few hundred
independent normals), and a full fine-tune per choice costs an hour on 2 cores. The head stage
of every recipe trains on cached features of the frozen ImageNet base in seconds, so the levers
are compared there: the same head, the same epochs, only the loss weights
(``train.sampling.sample_weights``: none / label / label_source) and the decision threshold
(argmax, or the one that maximises balanced accuracy on the pooled **val** split) change. The
choice is made on val (best worst-source balanced accuracy); test is reported once, for every
row, so the cost of each choice is visible. A frozen-base head is not the fine-tuned model: this
ranks the levers, it does not predict the shipped numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import numpy as np

from benchmarks.output import write_report
from edge_runtime.machine import machine_info

BALANCES = ("none", "label", "label_source")


def _balanced(m) -> float:
    return (m.sensitivity + m.specificity) / 2


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold (midpoint between adjacent scores) with the highest balanced accuracy."""
    order = np.unique(p)
    cuts = np.concatenate([[0.0], (order[:-1] + order[1:]) / 2, [1.0]])
    pos, neg = y == 1, y == 0
    sens = np.array([(p[pos] > c).mean() for c in cuts])
    spec = np.array([(p[neg] <= c).mean() for c in cuts])
    return float(cuts[int(np.argmax(sens + spec))])


def run(manifest: str, out: Path, epochs: int, seed: int, data_root: str | None = None) -> dict:
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
    ftr = np.concatenate([cached_features(model, tr.x, False, "train"), cached_features(model, tr.x, True, "train")])
    ytr = np.concatenate([tr.y, tr.y])
    feats = {s: cached_features(model, sets[s].x, False, s) for s in ("val", "test")}
    print(f"features ready in {time.time() - t0:.0f}s")
    rows = []
    for balance in BALANCES:
        w = sample_weights(tr.y, tr.sources, balance)
        sw = np.concatenate([w, w]) * len(ytr) / 2
        keras.utils.set_random_seed(seed)
        head = build_head(cfg.model, feature_dim=ftr.shape[1])
        compile_model(head, cfg.head_lr)
        head.fit(ftr, onehot(ytr), sample_weight=sw, batch_size=cfg.head_batch, epochs=epochs, shuffle=True, verbose=0)
        probs = {s: head.predict(feats[s], batch_size=256, verbose=0)[:, 1] for s in feats}
        yv = np.asarray(sets["val"].y)
        for rule, thr in (("argmax", 0.5), ("val-balanced", best_threshold(yv, probs["val"]))):
            row = {"balance": balance, "threshold_rule": rule, "threshold": round(thr, 6)}
            for s in ("val", "test"):
                per = metrics_by_group(sets[s].sources, sets[s].y, probs[s], thr)
                row[s] = {m.name: {"n": m.n, "sensitivity": m.sensitivity, "specificity": m.specificity,
                                   "specificity_ci95": m.specificity_ci95, "sensitivity_ci95": m.sensitivity_ci95,
                                   "balanced": _balanced(m), "roc_auc": m.roc_auc} for m in per}
                row[s + "_worst_balanced"] = min(v["balanced"] for v in row[s].values())
            rows.append(row)
            print(f"{balance:<13} {rule:<13} thr {thr:.3f}  val worst-source balanced {100 * row['val_worst_balanced']:.2f}%")
    chosen = max(range(len(rows)), key=lambda i: rows[i]["val_worst_balanced"])
    return {"command": "python -m benchmarks.imbalance_levers " + " ".join(sys.argv[1:]), "manifest": manifest,
            "machine": machine_info(), "epochs": epochs, "seed": seed, "head_lr": cfg.head_lr,
            "head_batch": cfg.head_batch, "n": {s: len(v.y) for s, v in sets.items()}, "rows": rows,
            "chosen_on_val": chosen, "seconds": round(time.time() - t0, 1)}


def _pct(v) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}"


def markdown(rep: dict) -> str:
    sources = list(rep["rows"][0]["val"])
    lines = [f"# Imbalance levers on frozen features: `{rep['manifest']}`", "",
             f"Machine: {rep['machine'].get('cpu', '')}; command: `{rep['command']}`. "
             f"Head of the `multi` recipe on cached frozen-ImageNet features (train + mirrored), {rep['epochs']} "
             f"epochs, seed {rep['seed']}; train/val/test {rep['n']['train']}/{rep['n']['val']}/{rep['n']['test']}. "
             "Chosen on val by the best worst-source balanced accuracy; test reported once for every row.", "",
             "| balance | threshold | " + " | ".join(f"val {s} sens / spec" for s in sources) + " | val worst balanced | "
             + " | ".join(f"test {s} sens / spec (95 % CI of spec)" for s in sources) + " | test worst balanced |",
             "|---|---|" + "---:|" * (2 * len(sources) + 2)]
    for i, r in enumerate(rep["rows"]):
        mark = " **(chosen)**" if i == rep["chosen_on_val"] else ""
        val = " | ".join(f"{_pct(r['val'][s]['sensitivity'])} / {_pct(r['val'][s]['specificity'])}" for s in sources)
        test = " | ".join(
            f"{_pct(r['test'][s]['sensitivity'])} / {_pct(r['test'][s]['specificity'])}"
            + (f" ({_pct(r['test'][s]['specificity_ci95'][0])}-{_pct(r['test'][s]['specificity_ci95'][1])})"
               if r['test'][s]['specificity_ci95'] else "") for s in sources)
        lines.append(f"| {r['balance']}{mark} | {r['threshold_rule']} ({r['threshold']:.3f}) | {val} | "
                     f"{_pct(r['val_worst_balanced'])} | {test} | {_pct(r['test_worst_balanced'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.imbalance_levers", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="splits/multi-grouped.csv")
    p.add_argument("--out", type=Path, default=Path("reports/train/imbalance_levers"))
    p.add_argument("--epochs", type=int, default=8, help="head epochs (the multi recipe's)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data", help="BR35H folder (default: $BR35H_DATA or ../shared/data/br35h)")
    a = p.parse_args(argv)
    print(write_report(run(a.manifest, a.out, a.epochs, a.seed, a.data), a.out, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
