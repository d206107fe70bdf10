"""Binary-classification statistics with honest uncertainty; numpy + stdlib only.

The device runtime evaluates labelled folders itself (``br35h-edge evaluate``), so the interval
and ranking code lives here, below ``train`` (which re-exports it from ``train.metrics``): one
implementation for the desktop reports and the Pi.

* Proportions (sensitivity, specificity, a tumour type's detection rate) get Wilson score
  intervals: tight, never outside [0, 1], sane at 0/n and n/n where Wald collapses to a point.
  Clopper-Pearson (exact, conservative) is here too for the headline accuracy.
* Balanced accuracy ``(sensitivity + specificity) / 2`` is a mean of two *independent*
  proportions (different images), so its interval is built from their two Wilson intervals by
  MOVER (Zou & Donner 2008): deterministic, asymmetric near 1 like its parts, no resampling.
* ROC-AUC gets DeLong's variance (the Mann-Whitney statistic's structural components) and a
  normal interval clipped to [0, 1]: deterministic, so a rerun reproduces the report exactly.
  With perfect separation the variance is 0 and the interval is the point [1, 1]; read the
  class counts beside it.
* A ratio whose denominator is zero is ``nan``; JSON writes it as ``null`` (:func:`json_safe`).
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

def ratio(num: float, den: float) -> float:
    """``num / den``; nan (never a made-up 0 or 1) when the denominator is zero."""
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



def json_safe(obj):
    """nan/inf -> None so the JSON is standard (strict parsers reject NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# -- intervals for the external-validation summary ------------------------------------------


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` with its Wilson 95 % interval; all nan when ``n == 0``."""

    k: int
    n: int
    value: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict:
        return json_safe({"k": self.k, "n": self.n, "value": self.value, "ci95": list(self.ci95)})


def proportion(k: int, n: int, confidence: float = 0.95) -> Proportion:
    if n == 0:
        return Proportion(0, 0, float("nan"), (float("nan"), float("nan")))
    return Proportion(int(k), int(n), k / n, wilson(int(k), int(n), confidence))


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its 95 % interval and the method that made the interval."""

    value: float
    ci95: tuple[float, float]
    method: str

    def to_dict(self) -> dict:
        return json_safe({"value": self.value, "ci95": list(self.ci95), "method": self.method})


def balanced_accuracy(sensitivity: Proportion, specificity: Proportion) -> Estimate:
    """Mean of the two class recalls, MOVER-Wilson interval (see the module docstring).

    ``L = t - sqrt((p1 - l1)^2 + (p2 - l2)^2) / 2``, ``U = t + sqrt((u1 - p1)^2 + (u2 - p2)^2) / 2``
    with ``t = (p1 + p2) / 2`` and ``(l_i, u_i)`` the Wilson limits of ``p_i``.
    """
    p1, p2 = sensitivity.value, specificity.value
    (l1, u1), (l2, u2) = sensitivity.ci95, specificity.ci95
    t = (p1 + p2) / 2.0
    if not (math.isfinite(t)):
        return Estimate(float("nan"), (float("nan"), float("nan")), "MOVER-Wilson")
    lo = t - math.sqrt((p1 - l1) ** 2 + (p2 - l2) ** 2) / 2.0
    hi = t + math.sqrt((u1 - p1) ** 2 + (u2 - p2) ** 2) / 2.0
    return Estimate(t, (max(0.0, lo), min(1.0, hi)), "MOVER-Wilson")


def delong(y_true: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """``(AUC, DeLong variance)``; variance nan with fewer than two images of a class.

    Structural components via mid-ranks: ``V10_i = (R_i - Rpos_i) / n_neg`` for positive ``i``
    (the share of negatives it outranks, ties 1/2) and ``V01_j = 1 - (R_j - Rneg_j) / n_pos``
    for negative ``j``; ``Var = s2(V10) / n_pos + s2(V01) / n_neg`` (sample variances).
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    r = _average_ranks(s)
    v10 = (r[y] - _average_ranks(s[y])) / n_neg
    v01 = 1.0 - (r[~y] - _average_ranks(s[~y])) / n_pos
    auc = float(v10.mean())
    if n_pos < 2 or n_neg < 2:
        return auc, float("nan")
    return auc, float(v10.var(ddof=1) / n_pos + v01.var(ddof=1) / n_neg)


def auc_ci(y_true: np.ndarray, score: np.ndarray, confidence: float = 0.95) -> Estimate:
    """ROC-AUC with DeLong's normal interval, clipped to [0, 1]."""
    auc, var = delong(y_true, score)
    if not math.isfinite(var):
        return Estimate(auc, (float("nan"), float("nan")), "DeLong")
    half = _normal_quantile(1.0 - (1.0 - confidence) / 2.0) * math.sqrt(var)
    return Estimate(auc, (max(0.0, auc - half), min(1.0, auc + half)), "DeLong")
