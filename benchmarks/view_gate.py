"""What the view gate does for one trained model: its val support table, and, per hand-labelled
view, how many slices the model calls wrongly before the gate and how many it answers after.

``python -m benchmarks.view_gate --model runs/X/model.keras --manifest splits/br35h-paper.csv --out reports/domain/views/paper``

The probe and the support rule are the conversion's own (``convert.views``, called with the same
arguments as ``python -m convert ... --views splits/views.csv``). Every labelled slice is scored
with a probe that never saw it: slices the conversion may fit on are predicted by the
conversion's own cross-fitting (which also sets the gate's threshold), the others (the
manifest's val/test images, Nickparvar ``Testing/``) by the probe fitted on all fitting rows. A slice in the model's own training split is marked: its diagnosis
is not an independent test, its view prediction still is.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

from benchmarks.output import write_report
from edge_runtime.machine import machine_info


def _crops(rows, loader, data_root):
    from convert.views import write_fitting_manifest

    with tempfile.TemporaryDirectory() as tmp:
        man = write_fitting_manifest(rows, Path(tmp) / "labelled.csv")
        return loader(man, split="train", data_root=data_root)


def run(model_path: Path, manifest: Path, labels: Path, data_root=None) -> dict:
    import keras

    from convert.domain import features_and_logits
    from convert.views import (ViewConfig, ViewGate, cross_fitted_proba, fit_probe, fitting_rows, gate_threshold, gate_view,
                               read_labels, support_table)
    from train.data.cache import load_crops
    from train.data.manifest import read_manifest

    t0 = time.time()
    cfg = ViewConfig(labels=str(labels))
    model = keras.saving.load_model(model_path, compile=False)
    rows = read_manifest(manifest)
    split_of = {r.sha256: r.split for r in rows}
    held_out = {r.sha256 for r in rows if r.split in ("val", "test")}
    labelled = [r for r in read_labels(labels) if r.view != "unclear"]
    fit_ok = {id(r) for r in fitting_rows(labelled, held_out)}
    f_lab, z_lab = features_and_logits(model, _crops(labelled, load_crops, data_root).x)
    val = load_crops(manifest, split="val", data_root=data_root)
    f_val, z_val = features_and_logits(model, val.x)
    views = [gate_view(r.view) for r in labelled]
    fit_idx = np.array([i for i, r in enumerate(labelled) if id(r) in fit_ok])
    rest = np.array([i for i, r in enumerate(labelled) if id(r) not in fit_ok], int)
    full = fit_probe(f_lab[fit_idx], [views[i] for i in fit_idx], cfg.l2, cfg.steps)
    table = support_table(full.predict(f_val), np.asarray(val.y), z_val.argmax(1), full.views, cfg)
    supported = tuple(r["supported"] for r in table)
    # Every labelled slice scored by a probe that never saw it: cross-fitting over the fitting
    # rows (exactly as the conversion chooses the gate's threshold), the full probe for the rest.
    proba = np.zeros((len(labelled), len(full.views)))
    proba[fit_idx] = cross_fitted_proba(f_lab[fit_idx], [views[i] for i in fit_idx], cfg, full.views)
    if len(rest):
        proba[rest] = full.proba(f_lab[rest])
    p_sup = proba @ np.asarray(supported, np.float64)
    pred = proba.argmax(1)
    is_sup = np.array([supported[full.views.index(views[i])] for i in fit_idx])
    threshold = gate_threshold(p_sup[fit_idx][is_sup], cfg.accept_supported)
    gate = ViewGate(full, supported, threshold)
    answered = p_sup >= threshold
    said_yes = z_lab.argmax(1) == 1
    cells: dict[tuple, dict] = defaultdict(lambda: {"n": 0, "wrong_before": 0, "unknown": 0, "wrong_after": 0,
                                                    "wrong_after_visible_lesion": 0})
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for i, r in enumerate(labelled):
        tumour = r.class_name not in ("no", "notumor")
        role = "trained on" if split_of.get(r.sha256) == "train" else "not trained on"
        c = cells[(r.source, "tumour" if tumour else "normal", r.view, role)]
        wrong = bool(said_yes[i]) != tumour
        c["n"] += 1
        c["wrong_before"] += int(wrong)
        c["unknown"] += int(not answered[i])
        c["wrong_after"] += int(wrong and answered[i])
        c["wrong_after_visible_lesion"] += int(wrong and answered[i] and r.visible_lesion == "1")
        confusion[r.view][full.views[pred[i]]] += 1
    probe_acc = float(np.mean([full.views[pred[i]] == v for i, v in enumerate(views)]))
    totals = {}
    for truth in ("normal", "tumour"):
        for role in ("trained on", "not trained on"):
            cs = [c for k, c in cells.items() if k[1] == truth and k[3] == role]
            if cs:
                totals[f"{truth}, {role}"] = {f: sum(c[f] for c in cs) for f in cs[0]}
    return {"command": "python -m benchmarks.view_gate " + " ".join(sys.argv[1:]), "model": str(model_path),
            "manifest": str(manifest), "labels": str(labels), "machine": machine_info(), "rule": cfg.to_dict(),
            "fitting_slices": int(len(fit_idx)), "labelled_slices": len(labelled),
            "probe_cross_fitted_accuracy": probe_acc, "confusion": {k: dict(v) for k, v in confusion.items()},
            "val_support": table, "gate_threshold": threshold, "val_refused_by_view": float(1 - gate.gate(f_val).mean()),
            "cells": [{"source": k[0], "truth": k[1], "view": k[2], "model": k[3], **v} for k, v in sorted(cells.items())],
            "totals": totals,
            "seconds": round(time.time() - t0, 1)}


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "-"


def markdown(rep: dict) -> str:
    sup = ", ".join(r["view"] for r in rep["val_support"] if r["supported"]) or "none"
    lines = [f"# View gate: `{rep['model']}` on `{rep['manifest']}`", "",
             f"Command: `{rep['command']}`. Machine: {rep['machine'].get('cpu', '')}. Labels: `{rep['labels']}` "
             f"({rep['labelled_slices']} slices with a view, {rep['fitting_slices']} usable for fitting). Rule: a view is "
             f"supported when the val split has >= {rep['rule']['min_normals']} normals and >= {rep['rule']['min_tumours']} "
             f"tumours the probe puts there and the model's sensitivity and specificity on them are >= "
             f"{100 * rep['rule']['target']:.0f} %.", "",
             f"**Supported views: {sup}.** Gate threshold on P(supported view): {rep['gate_threshold']:.3f}. "
             f"Val crops refused by view: {100 * rep['val_refused_by_view']:.1f} %. "
             f"Probe accuracy on the labelled slices, each predicted by a probe that never saw it: "
             f"{100 * rep['probe_cross_fitted_accuracy']:.1f} %.", "",
             "| view (val, as the probe sees it) | normals | tumours | sensitivity | specificity | supported |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rep["val_support"]:
        f = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
        lines.append(f"| {r['view']} | {r['val_normals']} | {r['val_tumours']} | {f(r['val_sensitivity'])} | "
                     f"{f(r['val_specificity'])} | {'yes' if r['supported'] else 'no'} |")
    lines += ["", "Labelled slices by their hand-labelled view: wrong answers before the gate, answers the gate "
              "turns into \"unknown\", wrong answers left after it (of which the labeller sees a lesion on a slice "
              "its source calls normal). \"trained on\": the slice is in this model's training split (its diagnosis "
              "is not a test).", "",
              "| source | truth | view | model | n | wrong before | unknown after | wrong after (lesion visible) |",
              "|---|---|---|---|---:|---:|---:|---:|"]
    for c in rep["cells"]:
        lines.append(f"| {c['source']} | {c['truth']} | {c['view']} | {c['model']} | {c['n']} | "
                     f"{_pct(c['wrong_before'], c['n'])} | {_pct(c['unknown'], c['n'])} | "
                     f"{_pct(c['wrong_after'], c['n'])} ({c['wrong_after_visible_lesion']}) |")
    for name, c in rep["totals"].items():
        lines.append(f"| **all** | {name.split(', ')[0]} | all | {name.split(', ')[1]} | {c['n']} | "
                     f"{_pct(c['wrong_before'], c['n'])} | {_pct(c['unknown'], c['n'])} | "
                     f"{_pct(c['wrong_after'], c['n'])} ({c['wrong_after_visible_lesion']}) |")
    lines += ["", "Probe confusion (rows: hand label, columns: cross-fitted prediction):", "",
              "| label \\ predicted | " + " | ".join(rep["val_support"][i]["view"] for i in range(len(rep["val_support"]))) + " |",
              "|---|" + "---:|" * len(rep["val_support"])]
    for v, row in rep["confusion"].items():
        lines.append(f"| {v} | " + " | ".join(str(row.get(r["view"], 0)) for r in rep["val_support"]) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.view_gate", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="the trained .keras model")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--labels", type=Path, default=Path("splits/views.csv"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", help="data root (default: the sources under ../shared/data)")
    a = p.parse_args(argv)
    print(write_report(run(a.model, a.manifest, a.labels, a.data), a.out, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
