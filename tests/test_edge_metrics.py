"""Intervals of the external-validation summary, against values computed by hand."""

from itertools import product
import json
import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from edge_runtime.evaluate import EvaluationConfig, ScoredImage, summarise
from edge_runtime.metrics import auc_ci, balanced_accuracy, delong, proportion, roc_auc, wilson


def test_wilson_8_of_10_textbook():
    # z = 1.96: centre (0.8 + z^2/20) / (1 + z^2/10) = 0.71674, half-width 0.22658
    assert wilson(8, 10) == pytest.approx((0.49016, 0.94332), abs=1e-4)
    assert proportion(0, 0).value != proportion(0, 0).value  # nan, not 0 or 1
    assert proportion(0, 0).to_dict() == {"k": 0, "n": 0, "value": None, "ci95": [None, None]}


def test_balanced_accuracy_mover_by_hand():
    # sens 8/10 Wilson (0.49016, 0.94332), spec 9/10 Wilson (0.59585, 0.98212)
    # L = 0.85 - sqrt(0.30984^2 + 0.30415^2) / 2 = 0.63291; U = 0.85 + sqrt(0.14332^2 + 0.08212^2) / 2 = 0.93259
    est = balanced_accuracy(proportion(8, 10), proportion(9, 10))
    assert est.value == pytest.approx(0.85)
    assert est.ci95 == pytest.approx((0.63291, 0.93259), abs=1e-4)
    perfect = balanced_accuracy(proportion(10, 10), proportion(10, 10))
    assert perfect.value == 1.0 and perfect.ci95[1] == 1.0 and 0.6 < perfect.ci95[0] < 1.0


def test_delong_by_hand():
    # positives 0.9 0.8 0.4, negatives 0.7 0.4 0.1: V10 = (1, 1, 1/2), V01 = (2/3, 5/6, 1)
    # AUC = 5/6; Var = s2(V10)/3 + s2(V01)/3 = (1/12)/3 + (1/36)/3 = 1/27
    y = np.array([1, 1, 1, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.4, 0.7, 0.4, 0.1])
    auc, var = delong(y, s)
    assert auc == pytest.approx(5 / 6) and var == pytest.approx(1 / 27)
    est = auc_ci(y, s)
    assert est.ci95 == pytest.approx((5 / 6 - 1.959964 * math.sqrt(1 / 27), 1.0), abs=1e-5)
    one_class = auc_ci(np.ones(4), np.arange(4.0))
    assert math.isnan(one_class.value) and all(math.isnan(v) for v in one_class.ci95)


def brute_delong(y, s):
    pos, neg = s[y == 1], s[y == 0]
    psi = np.array([[1.0 if a > b else 0.5 if a == b else 0.0 for b in neg] for a in pos])
    v10, v01 = psi.mean(1), psi.mean(0)
    return psi.mean(), v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=4, max_size=40))
def test_delong_matches_the_pairwise_definition_with_ties(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], float)
    if min((y == 1).sum(), (y == 0).sum()) < 2:
        return
    auc, var = delong(y, s)
    b_auc, b_var = brute_delong(y, s)
    assert auc == pytest.approx(b_auc) and auc == pytest.approx(roc_auc(y, s))
    assert var == pytest.approx(b_var, abs=1e-12)


def test_summarise_counts_per_class_and_histogram():
    rows = [("glioma", "yes", 0.95), ("glioma", "yes", 0.30), ("pituitary", "yes", 0.70),
            ("notumor", "no", 0.10), ("notumor", "no", 0.55), ("no", "no", 0.05)]
    m = summarise([ScoredImage(f"{c}/{i}.jpg", lab, c, s) for i, (c, lab, s) in enumerate(rows)],
                  EvaluationConfig(threshold=0.5, histogram_bins=4))
    assert m["confusion"] == {"tp": 2, "fn": 1, "tn": 2, "fp": 1}
    assert (m["sensitivity"]["k"], m["sensitivity"]["n"]) == (2, 3)
    assert m["sensitivity"]["ci95"] == pytest.approx(list(wilson(2, 3)))
    assert (m["specificity"]["k"], m["specificity"]["n"]) == (2, 3)
    assert list(m["per_original_class"]) == ["glioma", "pituitary", "no", "notumor"]
    assert m["per_original_class"]["glioma"]["correct"]["k"] == 1
    assert m["per_original_class"]["notumor"]["correct"]["value"] == 0.5
    # positives 0.95 0.30 0.70 vs negatives 0.10 0.55 0.05: 8 of 9 pairs ordered (0.30 < 0.55)
    assert m["roc_auc"]["value"] == pytest.approx(8 / 9)
    assert m["score_histogram"] == {"edges": [0.0, 0.25, 0.5, 0.75, 1.0], "yes": [0, 1, 1, 1], "no": [2, 0, 1, 0]}
    json.dumps(m, allow_nan=False)  # strict JSON: no NaN anywhere


def test_summarise_refuses_empty_and_nan():
    with pytest.raises(ValueError, match="nothing"):
        summarise([])
    with pytest.raises(ValueError, match="nan"):
        summarise([ScoredImage("a", "yes", "yes", float("nan"))])
