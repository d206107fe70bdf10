"""The threshold rule of the imbalance comparison picks the cut with the best balanced accuracy."""

import numpy as np

from benchmarks.imbalance_levers import best_threshold


def test_best_threshold_separates_when_it_can_and_balances_when_it_cannot():
    y = np.array([0, 0, 0, 1, 1])
    assert 0.3 < best_threshold(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9])) < 0.8
    # skewed scores: a 0.5 cut calls every normal a tumour; the chosen cut does not
    p = np.array([0.90, 0.92, 0.94, 0.97, 0.99])
    t = best_threshold(y, p)
    assert 0.94 <= t < 0.97
    assert ((p > t) == (y == 1)).all()
