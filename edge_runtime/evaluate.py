"""Evaluating a model on a labelled folder: the summary both ``br35h-edge evaluate`` and the
desktop's ``python -m convert.external`` write, and the device command itself.

A model validated on one dataset says little about someone else's scanner. A user with their
own labelled scans (``yes/``/``no/`` or tumour-type folders, see :mod:`.labels`) runs this on the
device that will serve them and gets sensitivity, specificity, balanced accuracy and ROC-AUC with
95 % intervals (:mod:`.metrics`), the detection rate per tumour type and the score histogram of
each class, so a threshold problem (scores piled just above 0.5) is told apart from a model that
is simply wrong.

A model with a domain check answers ``unknown`` for some images (:mod:`.unknown`). The headline
metrics still score every image by its P(tumour) (what the scores say); beside them an
"answered" section gives the coverage (share of images answered, overall and per folder, with
the refusals counted by reason) and sensitivity/specificity on the answered images only (what a
user who trusts only the answers gets). Both are needed: a model can look better answered-only
simply by refusing the hard cases, and coverage is what that costs.

The threshold is the model's (0.5, chosen on BR35H validation data): a user's test folder is
reported on, never tuned on. A file that cannot be decoded is listed with its reason and left out
of the metrics; the other images are still scored (exit status 1 says some failed).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
from pathlib import Path
import shlex
import sys
from typing import Callable, Sequence

import numpy as np

from .metrics import auc_ci, balanced_accuracy, json_safe, proportion
from .unknown import REASONS

#: Tumour types in the order reports list them; other folder names follow alphabetically.
CLASS_ORDER = ("yes", "glioma", "meningioma", "pituitary", "tumor", "tumour", "no", "notumor", "no_tumor", "normal")


@dataclass(frozen=True)
class ScoredImage:
    """One evaluated image: true ``label`` (yes/no), the folder it came from, P(tumour).

    ``in_domain``: the model's domain verdict (False = the model answered ``unknown``; None =
    no domain check) and ``unknown_reason`` its reason (:mod:`.unknown`); both None for callers
    that know nothing of a domain check."""

    path: str
    label: str
    original_class: str
    score: float
    in_domain: bool | None = None
    unknown_reason: str | None = None


@dataclass(frozen=True)
class EvaluationConfig:
    """``threshold``: tumour when ``score > threshold`` (the model's, never tuned on the data
    evaluated); ``histogram_bins``: equal-width bins of the score histogram on [0, 1]."""

    threshold: float = 0.5
    histogram_bins: int = 10


def class_key(name: str) -> tuple[int, str]:
    """Sort key: tumour classes first (``CLASS_ORDER``), then normals, then other names."""
    return (CLASS_ORDER.index(name), name) if name in CLASS_ORDER else (len(CLASS_ORDER), name)


def summarise(images: Sequence[ScoredImage], cfg: EvaluationConfig = EvaluationConfig()) -> dict:
    """The metrics of a labelled, scored set as a JSON-ready dict (nan written as null)."""
    if not images:
        raise ValueError("nothing to summarise: no image was scored")
    y = np.array([im.label == "yes" for im in images])
    s = np.array([im.score for im in images], dtype=np.float64)
    if not np.isfinite(s).all():
        raise ValueError("a score is nan or inf")
    pred = s > cfg.threshold
    tp, fn = int((pred & y).sum()), int((~pred & y).sum())
    tn, fp = int((~pred & ~y).sum()), int((pred & ~y).sum())
    sens, spec = proportion(tp, tp + fn), proportion(tn, tn + fp)
    per_original = {}
    for cls in sorted({im.original_class for im in images}, key=class_key):
        idx = [i for i, im in enumerate(images) if im.original_class == cls]
        label = images[idx[0]].label
        hits = int((pred[idx] == (label == "yes")).sum())
        per_original[cls] = {"label": label, "n": len(idx), "correct": proportion(hits, len(idx)).to_dict()}
    edges = np.linspace(0.0, 1.0, cfg.histogram_bins + 1)
    answered = _answered(images, y, pred) if any(im.in_domain is not None for im in images) else None
    return json_safe({
        "n": len(images), "n_yes": int(y.sum()), "n_no": int((~y).sum()), "threshold": cfg.threshold,
        "confusion": {"tp": tp, "fn": fn, "tn": tn, "fp": fp},
        "sensitivity": sens.to_dict(),
        "specificity": spec.to_dict(),
        "ppv": proportion(tp, tp + fp).to_dict(),
        "npv": proportion(tn, tn + fn).to_dict(),
        "accuracy": proportion(tp + tn, len(images)).to_dict(),
        "balanced_accuracy": balanced_accuracy(sens, spec).to_dict(),
        "roc_auc": auc_ci(y, s).to_dict(),
        "per_original_class": per_original,
        "score_histogram": {"edges": edges.tolist(),
                            "yes": np.histogram(s[y], edges)[0].tolist(),
                            "no": np.histogram(s[~y], edges)[0].tolist()},
        **({"answered": answered} if answered is not None else {}),
    })


#: Refusals whose reason the caller did not give.
OTHER_REASON = "unspecified"


def _refusals(images: Sequence[ScoredImage]) -> dict[str, int]:
    """Refused images per reason: every known reason (0 included), then any other."""
    out = dict.fromkeys(REASONS, 0)
    for im in images:
        if im.in_domain is False:
            key = im.unknown_reason if im.unknown_reason in REASONS else OTHER_REASON
            out[key] = out.get(key, 0) + 1
    return out


def _answered(images: Sequence[ScoredImage], y: np.ndarray, pred: np.ndarray) -> dict:
    """Coverage and the answered-only metrics. Answered = ``in_domain`` is not False: an image
    without a domain verdict got a real label, and only False makes the label ``unknown``."""
    ok = np.array([im.in_domain is not False for im in images])
    tp, fn = int((pred & y & ok).sum()), int((~pred & y & ok).sum())
    tn, fp = int((~pred & ~y & ok).sum()), int((pred & ~y & ok).sum())
    sens, spec = proportion(tp, tp + fn), proportion(tn, tn + fp)
    per_original = {}
    for cls in sorted({im.original_class for im in images}, key=class_key):
        idx = [i for i, im in enumerate(images) if im.original_class == cls]
        per_original[cls] = {"label": images[idx[0]].label, "n": len(idx),
                             "answered": proportion(int(ok[idx].sum()), len(idx)).to_dict(),
                             "refused": _refusals([images[i] for i in idx])}
    return {
        "n": len(images), "n_answered": int(ok.sum()),
        "coverage": proportion(int(ok.sum()), len(images)).to_dict(),
        "coverage_yes": proportion(int((ok & y).sum()), int(y.sum())).to_dict(),
        "coverage_no": proportion(int((ok & ~y).sum()), int((~y).sum())).to_dict(),
        "refused": _refusals(images),
        "per_original_class": per_original,
        "confusion": {"tp": tp, "fn": fn, "tn": tn, "fp": fp},
        "sensitivity": sens.to_dict(),
        "specificity": spec.to_dict(),
        "balanced_accuracy": balanced_accuracy(sens, spec).to_dict(),
    }


def _pct(d: dict) -> str:
    """``93.1 % (91.2-94.6)`` from a ``{value, ci95}`` dict; ``n/a`` when undefined."""
    if d["value"] is None:
        return "n/a"
    lo, hi = d["ci95"]
    ci = f" ({100 * lo:.1f}-{100 * hi:.1f})" if lo is not None else ""
    return f"{100 * d['value']:.1f} %{ci}"


def _frac(d: dict) -> str:
    return f"{d['k']}/{d['n']}"


def markdown_summary(m: dict) -> list[str]:
    """Markdown lines for a :func:`summarise` dict (tables of metrics, tumour types, histogram)."""
    c = m["confusion"]
    lines = [
        f"{m['n']} images ({m['n_yes']} tumour, {m['n_no']} no tumour); tumour when P(tumour) > {m['threshold']}. "
        f"Confusion: TP {c['tp']}, FN {c['fn']}, TN {c['tn']}, FP {c['fp']}.",
        "",
        "| metric | value (95 % CI) | count | interval |",
        "|---|---|---|---|",
        f"| sensitivity (recall of yes) | {_pct(m['sensitivity'])} | {_frac(m['sensitivity'])} | Wilson |",
        f"| specificity (recall of no) | {_pct(m['specificity'])} | {_frac(m['specificity'])} | Wilson |",
        f"| precision of yes (PPV) | {_pct(m['ppv'])} | {_frac(m['ppv'])} | Wilson |",
        f"| precision of no (NPV) | {_pct(m['npv'])} | {_frac(m['npv'])} | Wilson |",
        f"| balanced accuracy | {_pct(m['balanced_accuracy'])} | | {m['balanced_accuracy']['method']} |",
        f"| accuracy | {_pct(m['accuracy'])} | {_frac(m['accuracy'])} | Wilson |",
        f"| ROC-AUC | {_pct(m['roc_auc'])} | | {m['roc_auc']['method']} |",
        "",
        "Per original class (folder): share classified as its label (tumour types: sensitivity; "
        "normal folders: specificity).",
        "",
        "| class | label | images | classified correctly (95 % CI) | count |",
        "|---|---|---|---|---|",
    ]
    for cls, d in m["per_original_class"].items():
        lines.append(f"| {cls} | {d['label']} | {d['n']} | {_pct(d['correct'])} | {_frac(d['correct'])} |")
    h = m["score_histogram"]
    edges = h["edges"]
    lines += ["", "Score histogram (P(tumour), images per bin):", "",
              "| bin | " + " | ".join(f"{a:.1f}-{b:.1f}" for a, b in zip(edges[:-1], edges[1:])) + " |",
              "|---|" + "---|" * (len(edges) - 1),
              "| yes | " + " | ".join(map(str, h["yes"])) + " |",
              "| no | " + " | ".join(map(str, h["no"])) + " |"]
    if "answered" in m:
        lines += [""] + markdown_answered(m["answered"])
    return lines


def markdown_answered(a: dict) -> list[str]:
    """Markdown lines for the ``answered`` section: coverage per class with the refusals by
    reason, then the answered-only metrics."""
    reasons = list(a["refused"])
    lines = [f"Answered by the model's domain check: {_pct(a['coverage'])} ({_frac(a['coverage'])}); "
             "the metrics above score every image, those below only the answered ones.", "",
             "| class | label | images | answered (95 % CI) | " + " | ".join(f"refused: {r.replace('_', ' ')}"
                                                                       for r in reasons) + " |",
             "|---|---|---|---|" + "---|" * len(reasons)]
    for cls, d in a["per_original_class"].items():
        lines.append(f"| {cls} | {d['label']} | {d['n']} | {_pct(d['answered'])} {_frac(d['answered'])} | "
                     + " | ".join(str(d["refused"].get(r, 0)) for r in reasons) + " |")
    lines.append(f"| all | | {a['n']} | {_pct(a['coverage'])} {_frac(a['coverage'])} | "
                 + " | ".join(str(a["refused"][r]) for r in reasons) + " |")
    lines += ["", "| answered images only | value (95 % CI) | count |", "|---|---|---|",
              f"| sensitivity | {_pct(a['sensitivity'])} | {_frac(a['sensitivity'])} |",
              f"| specificity | {_pct(a['specificity'])} | {_frac(a['specificity'])} |",
              f"| balanced accuracy | {_pct(a['balanced_accuracy'])} | |"]
    return lines


# -- the device command ---------------------------------------------------------------------


def score_tree(classifier, items, on_record: Callable[[dict], None] | None = None
               ) -> tuple[list[ScoredImage], list[tuple[str, str]]]:
    """Classify every :class:`~.labels.LabelledPath`; returns ``(scored, [(path, reason), ...])``."""
    from .records import classify_record

    scored, failures = [], []
    for it in items:
        rec = classify_record(classifier, it.path)
        if on_record is not None:
            on_record(rec)
        if rec["error"]:
            failures.append((str(it.path), rec["error"]))
        else:
            scored.append(ScoredImage(str(it.path), it.label, it.original_class, float(rec["score"]),
                                      rec.get("in_domain"), rec.get("unknown_reason")))
    return scored, failures


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    """The ``evaluate`` subcommand; ``common`` supplies --model, --threads, --backend."""
    e = sub.add_parser("evaluate", parents=[common],
                       help="metrics with 95 %% CIs on a labelled folder tree (yes/no or tumour-type folders)")
    e.add_argument("folder", type=Path, help="folder tree; labels come from folder names (see edge_runtime/labels.py)")
    e.add_argument("--json", type=Path, help="write the full report as JSON here")
    e.add_argument("--md", type=Path, help="write the Markdown report here")
    e.add_argument("--skip-unlabelled", action="store_true",
                   help="skip (and count) images in no labelling folder instead of stopping with an error")


def _command_line(args: argparse.Namespace) -> str:
    """The command as it can be rerun (flags that change results only)."""
    parts = ["br35h-edge", "evaluate", str(args.folder)]
    if args.model:
        parts += ["--model", str(args.model)]
    if args.skip_unlabelled:
        parts.append("--skip-unlabelled")
    return shlex.join(parts)


def build_report(tree, scored, failures, model_info: dict, command: str,
                 cfg: EvaluationConfig = EvaluationConfig()) -> dict:
    import hashlib

    from .machine import machine_info

    digest = hashlib.sha256(Path(model_info["model"]).read_bytes()).hexdigest()
    return {
        "tool": "br35h-edge evaluate", "command": command, "data": str(tree.root), "model": model_info,
        "model_sha256": digest,
        "machine": machine_info(), "images_found": len(tree.items) + len(tree.unlabelled),
        "per_class_found": tree.counts(), "unlabelled_skipped": len(tree.unlabelled),
        "failures": [{"path": p, "reason": r} for p, r in failures],
        "metrics": summarise(scored, cfg) if scored else None,
    }


def markdown_report(r: dict) -> str:
    from .machine import describe

    model = r["model"]
    lines = [f"# External evaluation on `{r['data']}`", "",
             f"Command: `{r['command']}`  ", f"Model: `{model.get('model')}` (sha256 `{r['model_sha256']}`; "
             f"{model.get('backend')}, {model.get('num_threads')} threads)  ", f"Machine: {describe(r['machine'])}", "",
             f"Images found: {r['images_found']}; unlabelled and skipped: {r['unlabelled_skipped']}; "
             f"failed to decode: {len(r['failures'])}.", ""]
    lines += markdown_summary(r["metrics"]) if r["metrics"] else ["No image could be scored."]
    if r["failures"]:
        lines += ["", "Files that failed (left out of the metrics):", ""]
        lines += [f"- `{f['path']}`: {f['reason']}" for f in r["failures"]]
    return "\n".join(lines) + "\n"


def command(args: argparse.Namespace, classifier) -> int:
    """``br35h-edge evaluate DIR``: print the Markdown report, write ``--json``/``--md``."""
    from .labels import label_tree

    tree = label_tree(args.folder, skip_unlabelled=args.skip_unlabelled)
    print(f"{len(tree.items)} labelled images under {tree.root} ({tree.counts()}); "
          f"{len(tree.unlabelled)} unlabelled skipped", file=sys.stderr)
    done = 0

    def progress(rec: dict) -> None:
        nonlocal done
        done += 1
        if done % 250 == 0 or done == len(tree.items):
            print(f"  {done}/{len(tree.items)} images", file=sys.stderr)

    scored, failures = score_tree(classifier, tree.items, progress)
    report = build_report(tree, scored, failures, classifier.info, _command_line(args))
    md = markdown_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.md:
        Path(args.md).write_text(md)
    print(md)
    for path, reason in failures:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    return 1 if failures or not scored else 0
