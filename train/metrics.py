"""Binary test-set metrics with honest uncertainty; numpy + stdlib only (no TF, no scipy).

Conventions (the paper's tables are ambiguous, so we fix them here):

* Classes follow ``LABELS = ("no", "yes")``; "positive" means tumour (``TUMOUR_INDEX = 1``).
* ``p_tumour`` is the softmax probability of the tumour class. The predicted class is tumour
  when ``p_tumour > threshold`` (strict): at 0.5 this equals ``argmax`` of the two-way softmax,
  which picks "no" on an exact tie.
* The confusion matrix is ``[[TN, FP], [FN, TP]]``: rows = true class, columns = predicted
  class, both in ``LABELS`` order (no, yes).
* A ratio whose denominator is zero (e.g. recall with no tumour images) is ``nan``, never a
  crash and never a made-up 0 or 1; JSON output writes it as ``null``.
* Accuracy gets a 95 % interval. With 596/600 the normal-approximation (Wald) interval is
  badly off near 100 % (it can exceed 1), so the headline is the exact Clopper-Pearson
  interval; Wilson is given alongside as the usual tighter approximation.

The intervals and ranking functions live in :mod:`edge_runtime.metrics` (the device evaluates
labelled folders too) and are re-exported here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge_runtime.config import LABELS
from edge_runtime.metrics import (  # noqa: F401  (re-exported: the interval code lives on the device side)
    binom_cdf, clopper_pearson, json_safe, ratio, roc_auc, roc_curve, wilson)

# -- the summary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryMetrics:
    """Everything the report states about one split; ``to_dict`` is its JSON form."""

    n: int
    n_positive: int
    n_negative: int
    threshold: float
    correct: int
    errors: int
    accuracy: float
    accuracy_ci95: tuple[float, float]  # Clopper-Pearson (exact)
    accuracy_ci95_wilson: tuple[float, float]
    precision: float
    recall: float  # = sensitivity = TP / (TP + FN)
    specificity: float  # TN / (TN + FP)
    f1: float
    roc_auc: float
    confusion: tuple[tuple[int, int], tuple[int, int]]  # [[TN, FP], [FN, TP]]
    roc_fpr: tuple[float, ...]
    roc_tpr: tuple[float, ...]

    @property
    def sensitivity(self) -> float:
        return self.recall

    @property
    def one_error_points(self) -> float:
        """How much accuracy (in %) a single image moves: 0.17 points with 600 images."""
        return 100.0 / self.n

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sensitivity"] = self.recall
        d["confusion_layout"] = f"rows = true, cols = predicted, order {list(LABELS)}: [[TN, FP], [FN, TP]]"
        return json_safe(d)


def compute_metrics(y_true, p_tumour, threshold: float = 0.5) -> BinaryMetrics:
    """Metrics of ``p_tumour > threshold`` against ``y_true`` (0 = no, 1 = yes)."""
    y = np.asarray(y_true)
    p = np.asarray(p_tumour, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape or len(y) == 0:
        raise ValueError(f"need equal-length non-empty 1-D arrays, got {y.shape} and {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 (no) and 1 (yes)")
    if not np.isfinite(p).all():
        raise ValueError("p_tumour contains nan or inf")
    y = y.astype(bool)
    pred = p > threshold
    tp = int((pred & y).sum())
    tn = int((~pred & ~y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    n, correct = len(y), tp + tn
    fpr, tpr, _ = roc_curve(y, p)
    return BinaryMetrics(
        n=n,
        n_positive=tp + fn,
        n_negative=tn + fp,
        threshold=float(threshold),
        correct=correct,
        errors=n - correct,
        accuracy=correct / n,
        accuracy_ci95=clopper_pearson(correct, n),
        accuracy_ci95_wilson=wilson(correct, n),
        precision=ratio(tp, tp + fp),
        recall=ratio(tp, tp + fn),
        specificity=ratio(tn, tn + fp),
        f1=ratio(2 * tp, 2 * tp + fp + fn),
        roc_auc=roc_auc(y, p),
        confusion=((tn, fp), (fn, tp)),
        roc_fpr=tuple(float(v) for v in fpr),
        roc_tpr=tuple(float(v) for v in tpr),
    )


# -- per subset (e.g. per source of a multi-source test split) -----------------------------


def _interval(k: int, n: int) -> tuple[float, float] | None:
    return clopper_pearson(k, n) if n else None


@dataclass(frozen=True)
class SubsetMetrics:
    """One subset's accuracy, sensitivity and specificity, each with its exact 95 % interval
    (None when the subset has no image of the class it needs), and ROC-AUC.

    Sources differ in size by an order of magnitude, so a per-source number means little
    without its interval: 60/60 correct is 94.0-100 %, 600/600 is 99.4-100 %.
    """

    name: str
    n: int
    n_positive: int
    n_negative: int
    correct: int
    accuracy: float
    accuracy_ci95: tuple[float, float]
    sensitivity: float
    sensitivity_ci95: tuple[float, float] | None
    specificity: float
    specificity_ci95: tuple[float, float] | None
    roc_auc: float

    def to_dict(self) -> dict:
        return json_safe(asdict(self))


def subset_metrics(name: str, y_true, p_tumour, threshold: float = 0.5) -> SubsetMetrics:
    m = compute_metrics(y_true, p_tumour, threshold)
    (tn, fp), (fn, tp) = m.confusion
    return SubsetMetrics(
        name=name, n=m.n, n_positive=m.n_positive, n_negative=m.n_negative, correct=m.correct,
        accuracy=m.accuracy, accuracy_ci95=m.accuracy_ci95,
        sensitivity=m.recall, sensitivity_ci95=_interval(tp, tp + fn),
        specificity=m.specificity, specificity_ci95=_interval(tn, tn + fp),
        roc_auc=m.roc_auc,
    )


def metrics_by_group(groups, y_true, p_tumour, threshold: float = 0.5) -> tuple[SubsetMetrics, ...]:
    """:func:`subset_metrics` of each group (e.g. each source), in order of first appearance."""
    g = np.asarray(groups)
    y, p = np.asarray(y_true), np.asarray(p_tumour, dtype=np.float64)
    if not (len(g) == len(y) == len(p)):
        raise ValueError(f"need one group per image, got {len(g)} groups for {len(y)} images")
    return tuple(subset_metrics(str(name), y[g == name], p[g == name], threshold) for name in dict.fromkeys(g.tolist()))
