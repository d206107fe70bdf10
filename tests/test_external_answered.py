"""``python -m convert.external`` with a model's domain check: each image's ``in_domain`` and
``unknown_reason`` decided as on the device, the "answered" section, and its absence for an
artifact without a contract. Synthetic images only: no dataset needed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from convert.external import artifact_contract, main, open_scorer, score_items
from edge_runtime.classifier import Classifier
from edge_runtime.contract import load_contract
from edge_runtime.labels import LabelledPath
from edge_runtime.unknown import DomainRule
from tests.conftest import synthetic_mri
from tests.test_edge_domain import _photo

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "tests" / "assets"
DOMAIN_MODEL = ASSETS / "tiny_domain_int8.tflite"
PLAIN_MODEL = ASSETS / "tiny_int8.tflite"


@pytest.fixture
def tree(tmp_path) -> Path:
    """glioma: two slices and a photo; notumor: two slices and a black frame (no brain)."""
    root = tmp_path / "data"
    for cls in ("glioma", "notumor"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(synthetic_mri((200, 180), seed=10 * i + len(cls), tumour=cls == "glioma")).save(
                root / cls / f"s{i}.png")
    Image.fromarray(_photo(2)).save(root / "glioma" / "photo.png")
    Image.new("RGB", (200, 200)).save(root / "notumor" / "black.png")
    return root


def _items(root: Path) -> list[LabelledPath]:
    return [LabelledPath(p, "yes" if p.parent.name == "glioma" else "no", p.parent.name)
            for p in sorted(root.rglob("*.png"))]


def test_score_items_applies_the_device_rule_to_the_domain_output(tree):
    items = _items(tree)  # glioma/photo, glioma/s0, glioma/s1, notumor/black, notumor/s0, notumor/s1
    domain = np.array([0.05, -0.3, 0.5, 0.9, 0.2, -0.01], np.float32)

    def outputs(x):
        n = len(x)
        return np.tile([[0.3, 0.7]], (n, 1)).astype(np.float32), domain[:n]

    rows = score_items(items, tree, outputs, rule=DomainRule(0.2, view_gate=True))
    got = {r.rel: (r.in_domain, r.unknown_reason) for r in rows}
    assert got == {"glioma/photo.png": (False, "out_of_domain"), "glioma/s0.png": (False, "view_not_supported"),
                   "glioma/s1.png": (True, None), "notumor/black.png": (False, "no_brain_found"),
                   "notumor/s0.png": (True, None), "notumor/s1.png": (False, "view_not_supported")}
    assert rows[0].domain_score == pytest.approx(0.05)
    # without a rule (no contract) nothing is decided, not even for the black frame
    assert all(r.in_domain is None and r.unknown_reason is None for r in score_items(items, tree, outputs))
    with pytest.raises(ValueError, match="no domain output"):
        score_items(items, tree, lambda x: (outputs(x)[0], None), rule=DomainRule(0.2))


def test_contract_artifact_reports_coverage_like_the_device(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--model", str(DOMAIN_MODEL), "--data", str(tree), "--out", str(out), "--threads", "1"]) == 0
    r = json.loads((out / "report.json").read_text())
    contract = load_contract(DOMAIN_MODEL)
    assert r["domain_check"] == {"threshold": contract.domain_threshold, "view_gate": False}
    a = r["metrics"]["answered"]
    rows = {row["path"]: row for row in csv.DictReader((out / "predictions.csv").open())}
    assert rows["notumor/black.png"]["unknown_reason"] == "no_brain_found" and rows["notumor/black.png"]["in_domain"] == "0"
    assert rows["glioma/photo.png"]["unknown_reason"] == "out_of_domain"
    assert a["n_answered"] == sum(row["in_domain"] == "1" for row in rows.values())
    assert a["refused"]["no_brain_found"] == 1 and a["refused"]["out_of_domain"] >= 1
    # the same verdict the device runtime gives on the same files (away from the threshold's edge)
    clf = Classifier(DOMAIN_MODEL, num_threads=1)
    compared = 0
    for rel, row in rows.items():
        pred = clf.classify(tree / rel)
        if pred.no_brain_found or abs(pred.domain_score - contract.domain_threshold) > 1e-3:
            assert (row["in_domain"] == "1", row["unknown_reason"] or None) == (pred.in_domain, pred.unknown_reason), rel
            compared += 1
    assert compared >= 5
    md = (out / "report.md").read_text()
    assert "Domain check from the artifact's contract" in md and "| answered images only |" in md


def test_artifact_without_a_contract_has_no_answered_section(tree, tmp_path):
    out = tmp_path / "plain"
    assert main(["--model", str(PLAIN_MODEL), "--data", str(tree), "--out", str(out), "--threads", "1"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["domain_check"] is None and "answered" not in r["metrics"]
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert all(row["in_domain"] == "" and row["unknown_reason"] == "" for row in rows)
    assert "answered images only" not in (out / "report.md").read_text()


def test_altered_artifact_is_refused_with_its_name(tree, tmp_path, capsys):
    bad = tmp_path / "bad.tflite"
    data = bytearray(DOMAIN_MODEL.read_bytes())
    data[len(data) // 4] ^= 0xFF  # inside the flatbuffer; the contract still names the old graph
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bad.tflite"):
        artifact_contract(bad)
    assert main(["--model", str(bad), "--data", str(tree), "--out", str(tmp_path / "o")]) == 2
    assert "bad.tflite" in capsys.readouterr().err


def test_onnx_contract_is_read_with_the_runtime_parser():
    onnx_model = REPO / "models" / "br35h-mobilenetv2.onnx"
    if not onnx_model.is_file():
        pytest.skip("shipped ONNX model not present")
    from convert.contract import read_onnx

    contract = artifact_contract(onnx_model)
    assert contract is not None and contract.domain_threshold == read_onnx(onnx_model)["domain"]["threshold"]
    assert open_scorer(onnx_model, 1).rule == DomainRule(contract.domain_threshold, contract.view_gate)
