"""The paper's figures as small PNGs: curves (Fig. 6), confusion matrix (Fig. 7), metric bars
(Fig. 8), ROC, and a prediction grid with Grad-CAM (Fig. 9).

Every function takes plain data (no model, no TF) and a path, and returns the path, so the
figures can be redrawn from ``history.csv`` and ``predictions.csv`` alone. Agg backend: no
display is needed on a CI runner or a headless Pi.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_runtime.config import LABELS
from train.metrics import BinaryMetrics

DPI = 100
CLASS_NAMES = ("no tumour", "tumour")  # display names for LABELS order


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, palette: bool = False) -> Path:
    """``palette``: re-save with 256 adaptive colours; photo grids shrink ~3x, stay readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    if palette:
        from PIL import Image

        with Image.open(path) as im:
            q = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        q.save(path, optimize=True)
    return path


# -- training curves ------------------------------------------------------------------------


def read_history(path: str | Path) -> list[dict]:
    """``history.csv`` rows with numeric fields as floats (missing -> nan), ``stage`` as str."""
    rows = []
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            row = {"stage": rec.get("stage", "")}
            for k, v in rec.items():
                if k != "stage":
                    row[k] = float(v) if v not in (None, "") else math.nan
            rows.append(row)
    return rows


def plot_history(history: list[dict], path: str | Path) -> Path:
    """Loss and accuracy, train vs validation, over all epochs; stage changes marked."""
    plt = _plt()
    if not history:
        raise ValueError("history is empty")
    x = np.arange(1, len(history) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        for k, style, name in ((key, "-o", "train"), (f"val_{key}", "-s", "validation")):
            ax.plot(x, [r.get(k, math.nan) for r in history], style, ms=3, label=name)
        stages = [r["stage"] for r in history]
        starts = [0] + [i for i in range(1, len(stages)) if stages[i] != stages[i - 1]]
        for i, s in enumerate(starts):
            if i:
                ax.axvline(s + 0.5, color="grey", ls="--", lw=1)
            ax.annotate(stages[s], (s + 1, 1.0), xycoords=("data", "axes fraction"), va="top", fontsize=8,
                        color="grey")
        ax.set(title=title, xlabel="epoch (all stages)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="center right")
    return _save(fig, path)


# -- test-set summaries ---------------------------------------------------------------------


def plot_confusion(m: BinaryMetrics, path: str | Path) -> Path:
    plt = _plt()
    cm = np.array(m.confusion)
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=14,
                color="white" if v > cm.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=CLASS_NAMES, yticklabels=CLASS_NAMES,
           xlabel="predicted", ylabel="true", title=f"Confusion matrix (n={m.n})")
    return _save(fig, path)


def metric_values(m: BinaryMetrics) -> dict[str, float]:
    return {"accuracy": m.accuracy, "precision": m.precision, "recall": m.recall,
            "specificity": m.specificity, "F1": m.f1, "ROC-AUC": m.roc_auc}


def plot_metric_bars(m: BinaryMetrics, path: str | Path) -> Path:
    """One bar per metric with its value printed; accuracy carries its exact 95 % CI."""
    plt = _plt()
    vals = metric_values(m)
    names = list(vals)
    heights = [0.0 if math.isnan(v) else v for v in vals.values()]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    bars = ax.bar(names, heights, color="#4C72B0")
    lo, hi = m.accuracy_ci95
    ax.errorbar([0], [m.accuracy], yerr=[[m.accuracy - lo], [hi - m.accuracy]], color="black", capsize=5)
    for b, v in zip(bars, vals.values()):
        ax.text(b.get_x() + b.get_width() / 2, 0.5, "n/a" if math.isnan(v) else f"{v:.4f}",
                ha="center", va="center", rotation=90, color="white", fontsize=10)
    ax.set(ylim=(0, 1.05), title=f"Test metrics (n={m.n}; bar on accuracy: 95 % Clopper-Pearson)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_roc(m: BinaryMetrics, path: str | Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4))
    auc = "n/a" if math.isnan(m.roc_auc) else f"{m.roc_auc:.4f}"
    ax.plot(m.roc_fpr, m.roc_tpr, lw=2, label=f"model (AUC = {auc})")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="chance")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="false positive rate (1 - specificity)",
           ylabel="true positive rate (recall)", title="ROC curve (tumour = positive)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


# -- prediction grid ------------------------------------------------------------------------


@dataclass(frozen=True)
class Examples:
    """Images chosen for the grid, their Grad-CAM maps and their prediction rows (aligned)."""

    images: np.ndarray  # (K, S, S, 3) uint8
    heatmaps: np.ndarray  # (K, S, S) in [0, 1]
    rows: tuple  # K PredictionRow


def select_examples(rows: Sequence, n_correct: int = 8, n_wrong: int = 8) -> list[int]:
    """Indices: the most confident errors first (up to ``n_wrong``), then correct images spread
    evenly over both classes' p_tumour range, so the grid is deterministic and representative."""
    wrong = sorted((i for i, r in enumerate(rows) if not r.correct), key=lambda i: -abs(rows[i].p_tumour - 0.5))
    chosen = wrong[:n_wrong]
    per_class = [n_correct // 2 + n_correct % 2, n_correct // 2]
    for label, k in zip(LABELS, per_class):
        ok = sorted((i for i, r in enumerate(rows) if r.correct and r.label == label), key=lambda i: rows[i].p_tumour)
        if ok and k:
            chosen += [ok[j] for j in np.unique(np.linspace(0, len(ok) - 1, min(k, len(ok))).round().astype(int))]
    return chosen


def plot_prediction_grid(ex: Examples, path: str | Path, cols: int = 4) -> Path:
    """Each cell: the crop with its Grad-CAM overlay; caption file, true/pred, p_tumour (red = wrong)."""
    from train.gradcam import overlay

    plt = _plt()
    k = len(ex.rows)
    if k == 0:
        raise ValueError("no examples to draw")
    rows_n = -(-k // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(2.3 * cols, 2.6 * rows_n), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, hm, r in zip(axes.flat, ex.images, ex.heatmaps, ex.rows):
        ax.imshow(overlay(img, hm, alpha=0.4))
        ax.set_title(f"{Path(r.path).name}\ntrue {r.label} / pred {r.predicted}\np_tumour={r.p_tumour:.3f}",
                     fontsize=7, color="black" if r.correct else "red")
    fig.suptitle("Predictions with Grad-CAM of the predicted class (red caption = error)", fontsize=9)
    return _save(fig, path, palette=True)
