"""``unknown_reason``: why the runtime answered ``unknown`` (no brain, view gate, out of domain).

Runs on ``tests/assets/tiny_domain_int8.tflite`` (a tiny model with a domain output and an
embedded contract). A view-gated copy is made by rewriting only its ``contract.json``: the graph
bytes, and so the graph hash the contract records, stay the same.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
import zipfile

import numpy as np
from PIL import Image
import pytest

from edge_runtime import cli
from edge_runtime.classifier import Classifier
from edge_runtime.contract import CONTRACT_FILE, ContractError, graph_part, load_contract
from edge_runtime.records import CSV_FIELDS, format_table_row
from edge_runtime.unknown import NO_BRAIN_FOUND, OUT_OF_DOMAIN, VIEW_NOT_SUPPORTED, DomainRule, verdict
from edge_runtime.watch import WatchConfig, watch
from tests.conftest import synthetic_mri
from tests.test_edge_domain import _photo

DOMAIN_MODEL = Path(__file__).parent / "assets" / "tiny_domain_int8.tflite"
VIEW_GATE = {"refused_when": "domain_score < 0", "views": ["axial-skull-base", "axial-supratentorial", "sagittal"],
             "supported": ["axial-supratentorial"], "val_support": []}


def with_contract_change(src: Path, dst: Path, change) -> Path:
    """``src`` with its ``contract.json`` edited by ``change(dict)``; the graph is untouched."""
    data = src.read_bytes()
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    contract = json.loads(files[CONTRACT_FILE])
    change(contract)
    files[CONTRACT_FILE] = json.dumps(contract).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    dst.write_bytes(graph_part(data) + buf.getvalue())  # the zip follows the flatbuffer, as the converter writes it
    return dst


@pytest.fixture(scope="module")
def gated_model(tmp_path_factory) -> Path:
    return with_contract_change(DOMAIN_MODEL, tmp_path_factory.mktemp("gate") / "gated.tflite",
                                lambda c: c["domain"].update(view_gate=VIEW_GATE))


@pytest.fixture(scope="module")
def gated(gated_model) -> Classifier:
    return Classifier(gated_model, num_threads=1)


def _with_domain_score(clf: Classifier, monkeypatch, score: float) -> None:
    """Make the model's domain output ``score`` (the class scores stay the model's own)."""
    run = clf.model.run
    monkeypatch.setattr(clf.model, "run", lambda image: (run(image)[0], score))


def test_contract_reads_the_view_gate(gated_model):
    assert load_contract(gated_model).view_gate is True
    assert load_contract(DOMAIN_MODEL).view_gate is False  # older models have no gate


@pytest.mark.parametrize("gate", [{"views": ["sagittal"]}, {"refused_when": "domain_score == 0"}])
def test_view_gate_without_the_refusal_rule_this_runtime_reads_is_an_unreadable_contract(tmp_path, gate):
    bad = with_contract_change(DOMAIN_MODEL, tmp_path / "bad.tflite", lambda c: c["domain"].update(view_gate=gate))
    with pytest.raises(ContractError, match="refused_when"):
        load_contract(bad)


def test_negative_domain_score_with_a_view_gate_is_view_not_supported(gated, monkeypatch):
    _with_domain_score(gated, monkeypatch, -0.5)
    pred = gated.classify_array(synthetic_mri(seed=3), "slice.png")
    assert not pred.no_brain_found
    assert pred.in_domain is False and pred.label == "unknown" and pred.unknown_reason == VIEW_NOT_SUPPORTED
    rec = pred.to_record()
    assert rec["unknown_reason"] == "view_not_supported"
    assert "view not supported" in format_table_row({**rec, "path": "slice.png"})


def test_accepting_all_views_judges_a_gated_slice_by_its_magnitude(gated_model, monkeypatch):
    clf = Classifier(gated_model, num_threads=1, accept_all_views=True)
    assert clf.info["contract"]["view_gate"] is True and clf.info["contract"]["accept_all_views"] is True
    t = clf.contract.domain_threshold
    _with_domain_score(clf, monkeypatch, -2 * t)
    assert clf.classify_array(synthetic_mri(seed=3)).in_domain is True
    _with_domain_score(clf, monkeypatch, -t / 2)
    assert clf.classify_array(synthetic_mri(seed=3)).unknown_reason == OUT_OF_DOMAIN


def test_low_positive_domain_score_is_out_of_domain(gated, monkeypatch):
    _with_domain_score(gated, monkeypatch, gated.contract.domain_threshold / 2)
    pred = gated.classify_array(synthetic_mri(seed=3), "slice.png")
    assert pred.label == "unknown" and pred.unknown_reason == OUT_OF_DOMAIN


def test_accepted_score_is_a_real_answer_without_a_reason(gated, monkeypatch):
    _with_domain_score(gated, monkeypatch, gated.contract.domain_threshold)
    pred = gated.classify_array(synthetic_mri(seed=3), "slice.png")
    assert pred.in_domain is True and pred.label in ("yes", "no") and pred.unknown_reason is None


def test_negative_score_without_a_view_gate_is_out_of_domain(monkeypatch):
    clf = Classifier(DOMAIN_MODEL, num_threads=1)
    _with_domain_score(clf, monkeypatch, -0.5)
    assert clf.classify_array(synthetic_mri(seed=3)).unknown_reason == OUT_OF_DOMAIN


def test_no_brain_found_wins_over_the_domain_score(gated, monkeypatch):
    _with_domain_score(gated, monkeypatch, -0.5)
    pred = gated.classify_array(np.zeros((200, 200, 3), np.uint8))
    assert pred.no_brain_found and pred.label == "unknown" and pred.unknown_reason == NO_BRAIN_FOUND


def test_verdict_rule():
    rule = DomainRule(threshold=0.2, view_gate=True)
    assert verdict(False, 0.25, rule) == (True, None)
    assert verdict(False, 0.2, rule) == (True, None)  # the threshold itself is accepted
    assert verdict(False, 0.1, rule) == (False, OUT_OF_DOMAIN)
    assert verdict(False, -0.25, rule) == (False, VIEW_NOT_SUPPORTED)
    assert verdict(False, -0.25, DomainRule(0.2)) == (False, OUT_OF_DOMAIN)
    assert verdict(False, -0.25, DomainRule(0.2, True, accept_all_views=True)) == (True, None)
    assert verdict(False, -0.1, DomainRule(0.2, True, accept_all_views=True)) == (False, OUT_OF_DOMAIN)
    assert verdict(True, 0.9, rule) == (False, NO_BRAIN_FOUND)
    assert verdict(True, None, None) == (False, NO_BRAIN_FOUND)  # degenerate input, no contract
    assert verdict(False, 0.0, None) == (None, None)
    assert verdict(False, None, rule) == (None, None)


def _inputs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_photo(1)).save(folder / "photo.png")
    Image.new("RGB", (64, 64), (255, 255, 255)).save(folder / "white.png")
    Image.fromarray(synthetic_mri((200, 180), seed=5)).save(folder / "slice.png")
    return sorted(folder.glob("*.png"))


def test_csv_and_jsonl_rows_carry_the_reason(tmp_path, capsys):
    files = [str(p) for p in _inputs(tmp_path / "in")]
    assert "unknown_reason" in CSV_FIELDS
    assert cli.main(["predict", "--model", str(DOMAIN_MODEL), "--threads", "1", "--csv", "-o",
                     str(tmp_path / "out.csv"), *files]) == 0
    assert cli.main(["predict", "--model", str(DOMAIN_MODEL), "--threads", "1", "--jsonl", "-o",
                     str(tmp_path / "out.jsonl"), *files]) == 0
    err = capsys.readouterr().err
    rows = {Path(r["path"]).name: r for r in csv.DictReader((tmp_path / "out.csv").open())}
    jrows = {Path(r["path"]).name: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert rows["white.png"]["unknown_reason"] == jrows["white.png"]["unknown_reason"] == "no_brain_found"
    assert jrows["photo.png"]["unknown_reason"] == "out_of_domain" and jrows["photo.png"]["label"] == "unknown"
    for name, r in jrows.items():  # a reason exactly when the label is not an answer
        assert (r["unknown_reason"] is None) == (r["label"] != "unknown"), name
        assert rows[name]["unknown_reason"] == (r["unknown_reason"] or "")
    counts = {k: sum(r["unknown_reason"] == k for r in jrows.values()) for k in (NO_BRAIN_FOUND, OUT_OF_DOMAIN)}
    assert f"no_brain_found {counts[NO_BRAIN_FOUND]}, view_not_supported 0, out_of_domain {counts[OUT_OF_DOMAIN]}" in err


def test_watch_log_rows_carry_the_reason(tmp_path):
    folder = tmp_path / "in"
    _inputs(folder)
    for log in (tmp_path / "log.jsonl", tmp_path / "log.csv"):
        assert watch(Classifier(DOMAIN_MODEL, num_threads=1), WatchConfig(folder, log), once=True).appended == 3
    jrows = {Path(r["path"]).name: r for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines())}
    crows = {Path(r["path"]).name: r for r in csv.DictReader((tmp_path / "log.csv").open())}
    assert jrows["white.png"]["unknown_reason"] == crows["white.png"]["unknown_reason"] == "no_brain_found"
    assert jrows["photo.png"]["unknown_reason"] == crows["photo.png"]["unknown_reason"] == "out_of_domain"
