"""Scoring and the gate as pure functions (fast, no TF)."""

from __future__ import annotations

import numpy as np

from convert.config import GateConfig
from convert.evaluate import Metrics, score
from convert.gate import gate_failures


def test_score_counts_accuracy_agreement_and_confusion():
    y = np.array([0, 0, 1, 1])
    ref = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    art = np.array([[0.8, 0.2], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])  # flips image 1
    m = score(art, y, ref)
    assert (m.accuracy, m.agreement) == (0.75, 0.75)
    assert np.isclose(m.max_prob_diff, 0.2)
    assert m.confusion == [[1, 1], [0, 2]]


def metrics(acc: float) -> Metrics:
    return Metrics(n=300, accuracy=acc, agreement=acc, max_prob_diff=0.1, confusion=[[0, 0], [0, 0]])


def test_gate_passes_within_tolerance_and_fails_beyond_naming_the_artifact():
    assert gate_failures(0.99, {"a.tflite": metrics(0.986)}, GateConfig(tolerance=0.5)) == []
    fails = gate_failures(0.99, {"a.tflite": metrics(0.984), "b.onnx": metrics(0.99)}, GateConfig(tolerance=0.5))
    assert len(fails) == 1 and fails[0].startswith("a.tflite") and "98.40%" in fails[0]


def test_paper_bar_applies_only_on_the_paper_protocol():
    arts = {"int8": metrics(0.9867)}  # equal to Keras, but below 99.33 - 0.5
    assert gate_failures(0.9867, arts, GateConfig()) == []
    fails = gate_failures(0.9867, arts, GateConfig(paper_protocol=True))
    assert len(fails) == 1 and "paper" in fails[0] and "98.83%" in fails[0]
