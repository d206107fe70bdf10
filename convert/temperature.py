"""Temperature scaling (Guo et al. 2017) and the numbers that say whether scores mean what they say.

One scalar ``T`` divides the logits before the softmax; fitted by minimising the negative
log-likelihood on the **validation** split, it changes no decision (argmax is unchanged) but
makes a score of 0.9 right about 90 % of the time. It is folded into the exported graph
(``convert.domain.build_checked_model``), so every runtime gets calibrated probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Search range of T; a fit that lands on a bound is reported as such (see :class:`TemperatureFit`).
T_MIN, T_MAX = 0.05, 20.0


@dataclass(frozen=True)
class TemperatureFit:
    """``at_bound``: the NLL kept falling to the edge of the range, which happens when the
    validation split has (almost) no errors: T is then not identified by the data, and the fit
    falls back to ``T = 1`` (no change) rather than sharpening already saturated scores."""

    temperature: float
    nll_before: float
    nll_after: float
    at_bound: bool

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "nll_before": self.nll_before, "nll_after": self.nll_after,
                "at_bound": self.at_bound}


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    z = np.asarray(logits, np.float64) / temperature
    m = z.max(1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(len(y)), np.asarray(y, int)]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> TemperatureFit:
    """Grid over log T (1201 points) then a golden-section refinement; deterministic, numpy only."""
    if len(logits) == 0:
        raise ValueError("cannot fit a temperature on zero validation images")
    grid = np.exp(np.linspace(np.log(T_MIN), np.log(T_MAX), 1201))
    losses = np.array([nll(logits, y, t) for t in grid])
    i = int(np.argmin(losses))
    before = nll(logits, y, 1.0)
    if i in (0, len(grid) - 1):
        return TemperatureFit(1.0, before, before, at_bound=True)
    lo, hi = np.log(grid[i - 1]), np.log(grid[i + 1])
    g = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if nll(logits, y, np.exp(a)) < nll(logits, y, np.exp(b)):
            hi = b
        else:
            lo = a
    t = float(np.exp((lo + hi) / 2))
    return TemperatureFit(t, before, nll(logits, y, t), at_bound=False)


@dataclass(frozen=True)
class Reliability:
    """Equal-width confidence bins of the predicted class: count, mean confidence, accuracy."""

    edges: list[float]
    count: list[int]
    confidence: list[float | None]
    accuracy: list[float | None]
    ece: float

    def to_dict(self) -> dict:
        return {"ece": self.ece, "edges": self.edges, "count": self.count, "confidence": self.confidence,
                "accuracy": self.accuracy}


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> Reliability:
    """Expected calibration error (Naeini et al. 2015; top-label, ``bins`` equal-width bins over
    [0.5, 1] for two classes) and the reliability-diagram table."""
    probs = np.asarray(probs, np.float64)
    conf, pred = probs.max(1), probs.argmax(1)
    correct = pred == np.asarray(y, int)
    lo = 1.0 / probs.shape[1]
    edges = np.linspace(lo, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count, cmean, acc, ece = [], [], [], 0.0
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        count.append(n)
        cmean.append(float(conf[sel].mean()) if n else None)
        acc.append(float(correct[sel].mean()) if n else None)
        if n:
            ece += n / len(conf) * abs(float(conf[sel].mean()) - float(correct[sel].mean()))
    return Reliability([float(e) for e in edges], count, cmean, acc, float(ece))


def operating_points(p_yes: np.ndarray, y: np.ndarray, default: float = 0.5, target: float = 0.99) -> dict:
    """Thresholds on P(tumour) chosen on validation: ``sensitivity`` is the highest threshold whose
    sensitivity is >= ``target``; ``specificity`` the lowest whose specificity is >= ``target``.
    Each carries the validation sensitivity/specificity it achieves (decide "tumour" when ``p >= t``)."""
    p = np.asarray(p_yes, np.float64)
    y = np.asarray(y, int)
    pos, neg = np.sort(p[y == 1]), np.sort(p[y == 0])

    def rates(t: float) -> dict:
        return {"threshold": float(t),
                "val_sensitivity": float((pos >= t).mean()) if len(pos) else None,
                "val_specificity": float((neg < t).mean()) if len(neg) else None}

    points = {"default": rates(default)}
    if len(pos):
        k = int(np.floor((1 - target) * len(pos)))  # this many positives may fall below
        points["sensitivity"] = rates(pos[min(k, len(pos) - 1)])
    if len(neg):
        k = int(np.ceil(target * len(neg))) - 1  # this many negatives must stay below
        t = neg[min(k, len(neg) - 1)]
        points["specificity"] = rates(float(np.nextafter(t, np.inf)))
    return points
