"""Score a shipped ``.tflite`` (with its contract) on in-domain and out-of-domain images.

    python -m benchmarks.domain_eval --model runs/X/convert/model_int8.tflite \\
        --manifest splits/br35h-paper.csv --ood /tmp/ood-eval --nickparvar ../shared/data/nickparvar \\
        --out reports/domain/dev-int8

Everything goes through the device runtime (``edge_runtime``): the manifest's test crops (the
crops the model was evaluated on, per ``source`` when the manifest has one) straight into the
interpreter; the Nickparvar ``Testing/`` images and the out-of-domain set (``benchmarks.ood_set``)
from their files, decoded and cropped as on a device, so the degenerate-input rule counts too.
Thresholds come from the model's contract; nothing here is fitted.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
import sys
import warnings

import numpy as np

from convert.domain import auroc
from edge_runtime.classifier import Classifier
from edge_runtime.machine import describe


def _crop_scores(clf: Classifier, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, dom = [], []
    for img in x:
        p, d = clf.model.run(img)
        probs.append(p)
        dom.append(np.nan if d is None else d)
    return np.asarray(probs), np.asarray(dom)


def _file_scores(clf: Classifier, paths: list[Path]) -> list[dict]:
    out = []
    for p in paths:
        try:
            pred = clf.classify(p)
        except Exception as exc:  # noqa: BLE001 - an undecodable file is a refusal, recorded with its reason
            out.append({"path": str(p), "error": str(exc), "in_domain": False, "domain_score": None})
            continue
        out.append({"path": str(p), "label": pred.label, "score": pred.score, "in_domain": pred.in_domain,
                    "domain_score": pred.domain_score, "no_brain_found": pred.no_brain_found})
    return out


def _calibration(recs: list[dict], y: np.ndarray, temperature: float) -> dict:
    """ECE of the model's (temperature-scaled) probabilities on all files and on the accepted ones,
    and of the unscaled ones (recovered as softmax(T log p)), in the runtime as deployed."""
    from convert.temperature import reliability, softmax

    ok = np.array([r.get("error") is None for r in recs])
    p_yes = np.array([r["score"] if r.get("error") is None else 0.5 for r in recs])
    probs = np.stack([1 - p_yes, p_yes], 1)
    before = softmax(temperature * np.log(np.clip(probs, 1e-300, None)))
    acc = np.array([bool(r["in_domain"]) for r in recs])
    out = {}
    for name, m in (("all", ok), ("accepted", ok & acc)):
        if m.any():
            out[name] = {"n": int(m.sum()), "ece_before": reliability(before[m], y[m]).ece,
                         "ece_after": reliability(probs[m], y[m]).ece,
                         "accuracy": float((probs[m].argmax(1) == y[m]).mean())}
    return out


def _effective(rec: dict) -> float:
    """The score the accept decision uses: a degenerate/undecodable input counts as -inf."""
    if rec.get("error") or rec.get("no_brain_found") or rec["domain_score"] is None:
        return -np.inf
    return float(rec["domain_score"])


def evaluate(model: Path, manifest: Path | None, ood: Path | None, nickparvar: Path | None,
             data_root: str | None = None, threads: int = 1) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a model without a contract cannot be scored here
        clf = Classifier(model, num_threads=threads)
    c = clf.contract
    thr = c.domain_threshold
    rep: dict = {"model": str(model), "machine": describe(), "graph_sha256": c.graph_sha256, "domain_threshold": thr,
                 "temperature": c.temperature, "in_domain": {}, "ood": {}, "nickparvar": {}}
    in_scores = []
    if manifest is not None:
        from train.data.cache import load_crops

        for split in ("val", "test"):
            crops = load_crops(manifest, split, data_root=data_root, progress=False)
            probs, dom = _crop_scores(clf, crops.x)
            sources = np.asarray(getattr(crops, "source", None) or ["br35h"] * len(dom))
            for s in sorted(set(sources.tolist())):
                m = sources == s
                rep["in_domain"][f"{s}/{split}"] = {"n": int(m.sum()), "accepted": float((dom[m] >= thr).mean()),
                                                    "accuracy": float((probs[m].argmax(1) == np.asarray(crops.y)[m]).mean())}
            if split == "test":
                in_scores = dom.tolist()
    if nickparvar is not None:
        recs, truth = [], []
        for cls_dir in sorted((nickparvar / "Testing").iterdir()):
            paths = sorted(cls_dir.glob("*.jpg"))
            r = _file_scores(clf, paths)
            recs += r
            tumour = cls_dir.name != "notumor"
            truth += [int(tumour)] * len(r)
            answered = [x for x in r if x["in_domain"]]
            rep["nickparvar"][cls_dir.name] = {
                "n": len(r), "accepted": float(np.mean([bool(x["in_domain"]) for x in r])),
                "accuracy_of_accepted": (float(np.mean([(x["label"] == "yes") == tumour for x in answered]))
                                         if answered else None)}
        rep["nickparvar_calibration"] = _calibration(recs, np.asarray(truth), c.temperature)
    if ood is not None:
        rows = list(csv.DictReader(open(ood / "index.csv")))
        recs = _file_scores(clf, [ood / r["path"] for r in rows])
        per = {}
        for row, rec in zip(rows, recs):
            rec["category"] = row["category"]
            per.setdefault(row["category"], []).append(rec)
        main_cats = [k for k in per if k != "phantom"]
        for k, rs in per.items():
            rep["ood"][k] = {"n": len(rs), "refused": float(np.mean([not r["in_domain"] for r in rs])),
                             "accepted": [Path(r["path"]).name for r in rs if r["in_domain"]]}
        allr = [r for k in main_cats for r in per[k]]
        rep["ood_overall"] = {"n": len(allr), "refused": float(np.mean([not r["in_domain"] for r in allr]))}
        if in_scores:
            eff = [_effective(r) for r in allr]
            raw = [r["domain_score"] for r in allr if r["domain_score"] is not None]
            rep["auroc"] = {"effective": auroc(np.asarray(in_scores), np.asarray(eff)),
                            "raw_domain_score": auroc(np.asarray(in_scores), np.asarray(raw)),
                            "in": "manifest test crops", "out": f"OOD eval set without phantom ({len(allr)})"}
        rep["ood_records"] = allr + per.get("phantom", [])
    return rep


def markdown(r: dict) -> str:
    lines = [f"# Domain check: `{r['model']}`", "", f"Machine: {r['machine']}  ",
             f"Domain threshold (from the model's contract): {r['domain_threshold']:.6g}; temperature {r['temperature']:.4g}", "",
             "| in-domain set | n | accepted % | accuracy % |", "|---|---:|---:|---:|"]
    for k, v in r["in_domain"].items():
        lines.append(f"| {k} (crops) | {v['n']} | {100 * v['accepted']:.2f} | {100 * v['accuracy']:.2f} |")
    for k, v in r["nickparvar"].items():
        acc = "-" if v["accuracy_of_accepted"] is None else f"{100 * v['accuracy_of_accepted']:.2f} (of accepted)"
        lines.append(f"| nickparvar Testing/{k} (files) | {v['n']} | {100 * v['accepted']:.2f} | {acc} |")
    for k, v in r.get("nickparvar_calibration", {}).items():
        lines.append(f"\nNickparvar Testing, {k} ({v['n']}): accuracy {100 * v['accuracy']:.2f} %, ECE "
                     f"{100 * v['ece_before']:.2f} % before / {100 * v['ece_after']:.2f} % after the temperature.")
    lines += ["", "| out-of-domain category | n | refused % | accepted items |", "|---|---:|---:|---|"]
    for k, v in r["ood"].items():
        lines.append(f"| {k} | {v['n']} | {100 * v['refused']:.2f} | {', '.join(v['accepted'][:8])} |")
    if "ood_overall" in r:
        lines.append(f"| **overall (without phantom)** | {r['ood_overall']['n']} | **{100 * r['ood_overall']['refused']:.2f}** | |")
    if "auroc" in r:
        a = r["auroc"]
        lines += ["", f"AUROC ({a['in']} vs {a['out']}): {a['effective']:.4f} with degenerate inputs counted as "
                  f"refused, {a['raw_domain_score']:.4f} on the raw domain score alone."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.domain_eval", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--manifest", type=Path)
    p.add_argument("--data", default=None)
    p.add_argument("--ood", type=Path, help="folder written by python -m benchmarks.ood_set")
    p.add_argument("--nickparvar", type=Path, help="the Nickparvar folder (Testing/ is used)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    rep = evaluate(args.model, args.manifest, args.ood, args.nickparvar, args.data, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "domain_eval.json").write_text(json.dumps(rep, indent=1, default=float) + "\n")
    (args.out / "domain_eval.md").write_text(markdown(rep))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
