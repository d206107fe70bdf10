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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import math

import numpy as np

from edge_runtime.config import LABELS


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


# -- binomial intervals --------------------------------------------------------------------


def binom_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``, summed in log space (exact to float rounding)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    i = np.arange(k + 1, dtype=np.float64)
    log_comb = np.array([math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) for j in range(k + 1)])
    log_pmf = log_comb + i * math.log(p) + (n - i) * math.log1p(-p)
    top = log_pmf.max()
    return float(min(1.0, math.exp(top) * np.exp(log_pmf - top).sum()))


def _bisect(f, target: float, iters: int = 100) -> float:
    """Root of an increasing ``f`` on [0, 1] with ``f(p) = target``."""
    lo, hi = 0.0, 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval: the p's where each binomial tail still carries ``alpha/2``.

    Lower bound solves ``P(X >= k | p) = alpha/2``, upper solves ``P(X <= k | p) = alpha/2``
    (bisection on the binomial CDF; equivalent to the beta-quantile form).
    """
    if not 0 <= k <= n or n == 0:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    a = (1.0 - confidence) / 2.0
    lower = 0.0 if k == 0 else _bisect(lambda p: 1.0 - binom_cdf(k - 1, n, p), a)
    upper = 1.0 if k == n else _bisect(lambda p: -binom_cdf(k, n, p), -a)
    return lower, upper


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (z from the normal quantile, computed by bisection on erf)."""
    if not 0 <= k <= n or n == 0:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = _normal_quantile(1.0 - (1.0 - confidence) / 2.0)
    phat = k / n
    den = 1.0 + z * z / n
    centre = (phat + z * z / (2 * n)) / den
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _normal_quantile(q: float) -> float:
    cdf = lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))  # noqa: E731
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
    return 0.5 * (lo + hi)


# -- ranking metrics -----------------------------------------------------------------------


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their mean rank (what Mann-Whitney needs)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """P(score of a random positive > a random negative), ties counting 1/2; nan if one class."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _average_ranks(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``, one point per distinct score, from (0, 0) to (1, 1).

    Point i counts ``score >= thresholds[i]`` as positive; the first threshold is ``+inf``.
    A rate with no examples of its class is nan throughout.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.r_[0, np.cumsum(y)[last]]
    fp = np.r_[0, np.cumsum(~y)[last]]
    n_pos, n_neg = tp[-1], fp[-1]
    tpr = tp / n_pos if n_pos else np.full(len(tp), np.nan)
    fpr = fp / n_neg if n_neg else np.full(len(fp), np.nan)
    return fpr.astype(np.float64), tpr.astype(np.float64), np.r_[np.inf, s[last]]


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
        return _json_safe(d)


def _json_safe(obj):
    """nan/inf -> None so the JSON is standard (strict parsers reject NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


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
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        roc_auc=roc_auc(y, p),
        confusion=((tn, fp), (fn, tp)),
        roc_fpr=tuple(float(v) for v in fpr),
        roc_tpr=tuple(float(v) for v in tpr),
    )
