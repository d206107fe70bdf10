"""Which training images an epoch sees: the whole set shuffled, or a stratified weighted draw.

Why a draw: with a second source the training set is lopsided (thousands of extra tumour
slices, a few hundred independent normals). Showing every image every epoch would both
triple the cost of a fine-tune epoch on a 2-core CPU and let the tumour class dominate the
gradient. A fixed-size draw per epoch, weighted so each label (and, optionally, each source
within a label) carries an equal share, keeps the epoch cost constant and the classes
balanced; the draw derives from the epoch seed, so resume stays exact.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

BALANCE_MODES = ("none", "label", "label_source")


def sample_weights(y: np.ndarray, sources: Sequence[str] | None, mode: str) -> np.ndarray:
    """Per-image probability of being drawn (sums to 1).

    ``none``: uniform. ``label``: each class carries an equal share, uniform within it.
    ``label_source``: each class an equal share, split equally between the sources present in
    that class, uniform within each (label, source) cell.
    """
    if mode not in BALANCE_MODES:
        raise ValueError(f"balance must be one of {BALANCE_MODES}, got {mode!r}")
    y = np.asarray(y)
    n = len(y)
    if n == 0:
        raise ValueError("cannot draw from an empty training set")
    if mode == "none":
        return np.full(n, 1.0 / n)
    src = np.asarray(sources if sources is not None and mode == "label_source" else [""] * n, dtype=object)
    if len(src) != n:
        raise ValueError(f"{len(src)} sources for {n} images")
    w = np.zeros(n)
    labels = np.unique(y)
    for label in labels:
        in_label = y == label
        cells = np.unique(src[in_label])
        for cell in cells:
            m = in_label & (src == cell)
            w[m] = 1.0 / (len(labels) * len(cells) * m.sum())
    return w / w.sum()


def epoch_order(n: int, seed: int, samples: int = 0, weights: np.ndarray | None = None) -> np.ndarray:
    """Indices of one epoch: a permutation of all ``n`` (``samples == 0``), else ``samples``
    draws by ``weights`` (without replacement while the weighted pool allows it)."""
    rng = np.random.default_rng(seed)
    if samples <= 0:
        return rng.permutation(n)
    p = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=float)
    if len(p) != n:
        raise ValueError(f"{len(p)} weights for {n} images")
    # Without replacement only when enough images carry weight; otherwise repeats are the point.
    replace = samples > np.count_nonzero(p)
    return rng.choice(n, size=samples, replace=replace, p=p)
