"""train.metrics against hand-computed cases, brute force and independent tail sums."""

from __future__ import annotations

from fractions import Fraction
import json
import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from train.metrics import binom_cdf, clopper_pearson, compute_metrics, roc_auc, roc_curve, wilson


def exact_tail_le(k: int, n: int, p: float) -> float:
    """P(X <= k) with exact integer binomial coefficients and rational arithmetic."""
    q = Fraction(p)
    return float(sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1)))


def test_hand_computed_case():
    # TN=3, FP=1, FN=2, TP=4 at threshold 0.5
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.5, 0.9, 0.3, 0.4, 0.6, 0.7, 0.8, 0.95])
    m = compute_metrics(y, p)
    assert m.confusion == ((3, 1), (2, 4))
    assert (m.correct, m.errors, m.n) == (7, 3, 10)
    assert m.accuracy == pytest.approx(0.7)
    assert m.precision == pytest.approx(4 / 5)
    assert m.recall == m.sensitivity == pytest.approx(4 / 6)
    assert m.specificity == pytest.approx(3 / 4)
    assert m.f1 == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    # p == 0.5 exactly is "no" (argmax picks index 0 on a tie)
    assert compute_metrics([0], [0.5]).confusion == ((1, 0), (0, 0))
    assert m.one_error_points == pytest.approx(10.0)


def test_no_positives_gives_nan_not_crash_and_json_null():
    m = compute_metrics([0, 0, 0], [0.1, 0.7, 0.2])
    assert math.isnan(m.recall) and math.isnan(m.roc_auc)
    assert m.specificity == pytest.approx(2 / 3)
    assert m.precision == 0.0  # one tumour prediction, wrong
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert d["recall"] is None and d["specificity"] == pytest.approx(2 / 3)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        compute_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        compute_metrics([0, 1], [0.1])
    with pytest.raises(ValueError):
        compute_metrics([0, 1], [0.1, float("nan")])


def brute_auc(y, s) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=30))
def test_auc_matches_pairwise_count_with_ties(pairs):
    y = np.array([a for a, _ in pairs])
    s = np.array([b / 6 for _, b in pairs])  # few distinct values: many ties
    if y.min() == y.max():
        assert math.isnan(roc_auc(y, s))
    else:
        assert roc_auc(y, s) == pytest.approx(brute_auc(y, s))
        fpr, tpr, thr = roc_curve(y, s)
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s))  # trapezoids = tie-aware AUC
        assert len(thr) == len(np.unique(s)) + 1 and thr[0] == np.inf


@pytest.mark.parametrize("k,n,p", [(3, 10, 0.3), (0, 5, 0.2), (590, 600, 0.98), (7, 7, 0.4)])
def test_binom_cdf_matches_exact_sum(k, n, p):
    assert binom_cdf(k, n, p) == pytest.approx(exact_tail_le(k, n, p), rel=1e-9, abs=1e-15)


def test_clopper_pearson_596_of_600_hits_the_tails():
    lo, hi = clopper_pearson(596, 600)
    # the bounds are where each tail carries exactly 2.5 %, checked with exact arithmetic
    assert 1 - exact_tail_le(595, 600, lo) == pytest.approx(0.025, rel=1e-6)
    assert exact_tail_le(596, 600, hi) == pytest.approx(0.025, rel=1e-6)
    assert 0.982 < lo < 0.985 and 0.997 < hi < 0.999  # about [98.30 %, 99.82 %]
    wl, wh = wilson(596, 600)
    assert wl < 596 / 600 < wh and wh - wl < hi - lo  # Wilson: narrower, still contains the estimate


def test_clopper_pearson_closed_forms_at_the_edges():
    n = 50
    assert clopper_pearson(0, n) == (0.0, pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9))
    assert clopper_pearson(n, n) == (pytest.approx(0.025 ** (1 / n), rel=1e-9), 1.0)
    with pytest.raises(ValueError):
        clopper_pearson(5, 4)


def test_wilson_textbook_value():
    # Agresti & Coull example form: z = 1.959964; formula evaluated independently here
    k, n, z = 8, 20, 1.959963984540054
    ph = k / n
    c = (ph + z * z / (2 * n)) / (1 + z * z / n)
    h = z / (1 + z * z / n) * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n))
    assert wilson(k, n) == (pytest.approx(c - h, rel=1e-9), pytest.approx(c + h, rel=1e-9))
