"""Accuracy under tolerance: every artifact on the protocol's test split, through the device path
(decode -> numpy crop -> runtime), asserted against the paper and against its float32 sibling.

The grouped split is reported beside it, not asserted: a model trained on the paper split has
seen most grouped-test images or their near-duplicates (the paper split puts near-duplicates on
both sides), so its grouped figure is given on all grouped-test images and on those whose whole
near-duplicate group is outside the paper split's train/val. The grouped-trained model's own
number is in ``reports/train/cpu-grouped``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks.artifacts import Artifact, discover, predict_many
from benchmarks.images import load_samples, split_rows
from train.data.manifest import read_manifest
from train.metrics import compute_metrics

_PROBS: dict[Path, np.ndarray] = {}


@pytest.fixture(scope="session")
def eval_sets(pytestconfig: pytest.Config, data_root: Path) -> dict:
    """Crops of every image any reported split needs (decoded once) and each split's indices."""
    paper, grouped = pytestconfig.getoption("--manifest"), pytestconfig.getoption("--grouped-manifest")
    trained_groups = {r.group for r in read_manifest(paper) if r.split in ("train", "val")}
    splits = {"paper_test": split_rows(paper)}
    if grouped.is_file():
        splits["grouped_test"] = split_rows(grouped)
        splits["grouped_test_unseen"] = [r for r in splits["grouped_test"] if r.group not in trained_groups]
    rows = list({r.path: r for rs in splits.values() for r in rs}.values())
    samples = load_samples(rows, data_root)
    index = {r.path: i for i, r in enumerate(rows)}
    return {"x": np.stack([s.crop for s in samples]), "y": np.array([s.y for s in samples]),
            "splits": {k: np.array([index[r.path] for r in rs], int) for k, rs in splits.items() if rs}}


def _probs(artifact: Artifact, eval_sets: dict) -> np.ndarray:
    if artifact.path not in _PROBS:
        _PROBS[artifact.path] = predict_many(artifact, eval_sets["x"], os.cpu_count())
    return _PROBS[artifact.path]


def _float32_sibling(artifact: Artifact) -> Artifact | None:
    """The float32 file of the same runtime in the same folder (LiteRT int8 -> LiteRT float32)."""
    if artifact.runtime == "keras":
        return None
    return next((a for a in discover(artifact.path.parent) if a.runtime == artifact.runtime and a.precision == "float32"), None)


def test_accuracy(artifact: Artifact, eval_sets: dict, accuracy_log: list, pytestconfig: pytest.Config) -> None:
    expected, tol = pytestconfig.getoption("--expected-accuracy"), pytestconfig.getoption("--tolerance")
    p = _probs(artifact, eval_sets)
    record = {"artifact": artifact.name, "runtime": artifact.runtime, "precision": artifact.precision,
              "size_kib": artifact.size_kib, "splits": {}}
    for split, idx in eval_sets["splits"].items():
        m = compute_metrics(eval_sets["y"][idx], p[idx, 1])
        record["splits"][split] = {"n": m.n, "correct": m.correct, "accuracy": 100 * m.accuracy,
                                   "ci95": [100 * v for v in m.accuracy_ci95], "confusion": m.confusion}
    ref = _float32_sibling(artifact)
    paper = eval_sets["splits"]["paper_test"]
    if ref is not None and ref != artifact:
        q = _probs(ref, eval_sets)
        ref_acc = 100 * compute_metrics(eval_sets["y"][paper], q[paper, 1]).accuracy
        record["float32_reference"] = {"artifact": ref.name, "accuracy": ref_acc,
                                       "agreement": 100 * float(np.mean(p[paper].argmax(1) == q[paper].argmax(1)))}
    accuracy_log.append(record)

    acc = record["splits"]["paper_test"]["accuracy"]
    assert acc >= expected - tol, f"{artifact.name}: {acc:.2f} % < {expected} % - {tol} points"
    if "float32_reference" in record:
        ref_acc = record["float32_reference"]["accuracy"]
        assert abs(acc - ref_acc) <= tol, f"{artifact.name}: {acc:.2f} % vs {ref.name} {ref_acc:.2f} %, over {tol} points"
