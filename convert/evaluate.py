"""Score an artifact against the labels *and* against the Keras model it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Metrics:
    """accuracy on the test split; agreement = share of images whose top class equals Keras';
    max_prob_diff = largest absolute probability change vs Keras over all images and classes;
    confusion[true][pred] in LABELS order."""

    n: int
    accuracy: float
    agreement: float
    max_prob_diff: float
    confusion: list[list[int]]

    def to_dict(self) -> dict:
        return asdict(self)


def score(probs: np.ndarray, y: np.ndarray, reference: np.ndarray) -> Metrics:
    if probs.shape != reference.shape or len(probs) != len(y):
        raise ValueError(f"shape mismatch: probs {probs.shape}, reference {reference.shape}, labels {y.shape}")
    pred = probs.argmax(1)
    k = probs.shape[1]
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (y.astype(int), pred), 1)
    return Metrics(
        n=int(len(y)),
        accuracy=float((pred == y).mean()),
        agreement=float((pred == reference.argmax(1)).mean()),
        max_prob_diff=float(np.abs(probs - reference).max()),
        confusion=confusion.tolist(),
    )
