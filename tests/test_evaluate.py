"""train.evaluate / figures / report on synthetic data with a numpy stand-in model (no TF)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from train.evaluate import evaluate_split, predict_probs, write_predictions_csv
from train.figures import Examples, read_history, select_examples
from train.metrics import compute_metrics
from edge_runtime.machine import cpu_model
from train.report import machine_with_libraries, write_run_report


class BrightnessModel:
    """p_tumour = mean brightness / 255: a transparent 'model' whose answers we can predict."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, training=False):
        assert x.dtype == np.float32 and not training
        self.batches.append(len(x))
        p = x.mean(axis=(1, 2, 3)) / 255.0
        return np.stack([1 - p, p], axis=1)


@dataclass
class Crops:
    x: np.ndarray
    y: np.ndarray
    paths: list


def make_crops(n: int = 10, size: int = 32, seed: int = 0) -> Crops:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    level = np.where(y == 1, rng.uniform(100, 255, n), rng.uniform(0, 155, n))  # overlapping: some errors
    x = np.clip(level[:, None, None, None] + rng.normal(0, 3, (n, size, size, 3)), 0, 255).astype(np.uint8)
    return Crops(x, y, [f"{'yes' if t else 'no'}/img{i}.jpg" for i, t in enumerate(y)])


def test_predict_probs_batches_and_checks_shape():
    crops, model = make_crops(10), BrightnessModel()
    p = predict_probs(model, crops.x, batch_size=4)
    assert model.batches == [4, 4, 2]
    np.testing.assert_allclose(p[:, 1], crops.x.astype(np.float32).mean(axis=(1, 2, 3)) / 255, rtol=1e-5)
    with pytest.raises(ValueError):
        predict_probs(lambda x, training=False: np.ones((len(x), 3)), crops.x)


def test_evaluate_split_rows_match_metrics_and_csv(tmp_path):
    crops = make_crops(40)
    res = evaluate_split(BrightnessModel(), crops)
    p = crops.x.astype(np.float32).mean(axis=(1, 2, 3)) / 255
    assert res.metrics == compute_metrics(crops.y, p.astype(np.float64))
    assert 0 < res.metrics.errors < 40  # the synthetic classes overlap on purpose
    assert sum(not r.correct for r in res.rows) == res.metrics.errors
    assert all(r.correct == (r.label == r.predicted) for r in res.rows)
    out = write_predictions_csv(res, tmp_path / "predictions.csv")
    back = list(csv.DictReader(out.open()))
    assert [b["path"] for b in back] == crops.paths
    assert [float(b["p_tumour"]) for b in back] == pytest.approx([r.p_tumour for r in res.rows], abs=1e-6)
    assert compute_metrics([b["label"] == "yes" for b in back], [float(b["p_tumour"]) for b in back]).correct == \
        res.metrics.correct  # the CSV alone reproduces the headline number


def test_select_examples_wrong_first_then_both_classes():
    res = evaluate_split(BrightnessModel(), make_crops(60))
    idx = select_examples(res.rows, n_correct=6, n_wrong=3)
    wrong = [i for i in idx if not res.rows[i].correct]
    assert wrong == idx[: len(wrong)] and len(wrong) == min(3, res.metrics.errors)
    margins = [abs(res.rows[i].p_tumour - 0.5) for i in wrong]
    assert margins == sorted(margins, reverse=True)
    right = [res.rows[i] for i in idx[len(wrong):]]
    assert len(right) == 6 and {r.label for r in right} == {"no", "yes"} and all(r.correct for r in right)
    assert len(set(idx)) == len(idx)


def write_history(path: Path) -> None:
    rows = [("head", e, 0.6 - 0.05 * e, 0.8 + 0.02 * e, 0.62 - 0.04 * e, 0.79 + 0.02 * e, 1e-3, 2.0) for e in range(1, 4)]
    rows += [("finetune", e, 0.3 - 0.03 * e, 0.9 + 0.01 * e, 0.35 - 0.02 * e, 0.9 + 0.01 * e, 1e-5, 10.0) for e in range(1, 4)]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("stage", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"))
        w.writerows(rows)


def test_report_names_its_inputs_and_embeds_small_figures(tmp_path):
    from train.data.manifest import ManifestRow, manifest_digest, read_manifest, write_manifest

    crops = make_crops(30)
    res = evaluate_split(BrightnessModel(), crops)
    manifest = write_manifest([ManifestRow(p, "0" * 64, p.split("/")[0], i, "test") for i, p in enumerate(crops.paths)],
                              tmp_path / "manifest.csv")
    weights = tmp_path / "model.keras"
    weights.write_bytes(b"not really a model")
    write_history(tmp_path / "history.csv")
    idx = select_examples(res.rows, 4, 4)
    ex = Examples(crops.x[idx], np.tile(np.linspace(0, 1, 32, dtype=np.float32), (len(idx), 32, 1)),
                  tuple(res.rows[i] for i in idx))
    md = write_run_report(tmp_path / "eval", res, tmp_path / "history.csv", {"train": {"preset": "quick"}},
                          manifest, weights, examples=ex)
    rep = json.loads((md.parent / "report.json").read_text())
    assert rep["weights"]["sha256"] == hashlib.sha256(b"not really a model").hexdigest()
    assert rep["manifest"]["digest"] == manifest_digest(read_manifest(manifest))
    assert rep["preset"] == "quick"
    assert rep["training"] == {"epochs": 6, "seconds": 36.0}
    assert rep["metrics"]["correct"] == res.metrics.correct
    assert len(rep["errors"]) == res.metrics.errors
    assert set(rep["figures"]) == {"curves", "confusion", "metrics", "roc", "predictions"}
    text = md.read_text()
    for rel in rep["figures"].values():
        png = md.parent / rel
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 500_000
        assert f"]({rel})" in text
    assert f"({res.metrics.correct}/{res.metrics.n})" in text and rep["manifest"]["digest"] in text
    assert rep["weights"]["sha256"] in text and "99.33 %" in text


def test_read_history_parses_numbers_and_missing(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("stage,epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\nhead,1,0.5,0.8,,,0.001,3\n")
    (row,) = read_history(p)
    assert row["stage"] == "head" and row["loss"] == 0.5 and np.isnan(row["val_loss"])


def test_machine_info_names_cpu_and_libraries():
    info = machine_with_libraries()
    assert info["cpu"] and info["cores"] >= 1 and info["libraries"]["numpy"] == np.__version__


def test_cpu_model_prefers_model_name_then_board():
    x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 17\nmodel name\t: AMD EPYC 9654\n"
    pi = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    assert cpu_model(x86) == "AMD EPYC 9654"
    assert cpu_model(pi) == "Raspberry Pi 4 Model B Rev 1.4"
    assert cpu_model("") is None


def _write_multi_manifest(path: Path, crops: Crops, sources: list[str]) -> Path:
    from train.data.manifest import ManifestRow, write_manifest

    cls = {("nickparvar", "yes"): "glioma", ("nickparvar", "no"): "notumor"}
    rows = [ManifestRow(p, "0" * 64, p.split("/")[0], i, "test", s, cls.get((s, p.split("/")[0]), ""))
            for i, (p, s) in enumerate(zip(crops.paths, sources))]
    return write_manifest(rows, path)


@dataclass
class SourcedCrops(Crops):
    sources: list


def test_multi_source_report_has_a_table_per_source(tmp_path):
    """Per source: n, accuracy / sensitivity / specificity with exact intervals, ROC-AUC, in both files."""
    from train.evaluate import evaluate_run
    from train.metrics import clopper_pearson, roc_auc

    base = make_crops(40, seed=3)
    sources = ["br35h"] * 24 + ["nickparvar"] * 16
    crops = SourcedCrops(base.x, base.y, base.paths, sources)
    manifest = _write_multi_manifest(tmp_path / "multi.csv", crops, sources)
    run = tmp_path / "run"
    run.mkdir()
    md = evaluate_run(run, manifest, "test", model=BrightnessModel(), images=crops, n_examples=0)
    rep = json.loads((run / "report.json").read_text())
    p = crops.x.astype(np.float32).mean(axis=(1, 2, 3)).astype(np.float64) / 255
    assert [s["name"] for s in rep["by_source"]] == ["br35h", "nickparvar"]
    text = md.read_text()
    assert "## Per source" in text
    for s in rep["by_source"]:
        sel = np.array(sources) == s["name"]
        y, pred = crops.y[sel], p[sel] > 0.5
        tp, tn = int((pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())
        assert (s["n"], s["n_positive"], s["correct"]) == (sel.sum(), (y == 1).sum(), tp + tn)
        assert s["accuracy_ci95"] == pytest.approx(clopper_pearson(tp + tn, int(sel.sum())))
        assert s["sensitivity"] == pytest.approx(tp / (y == 1).sum())
        assert s["sensitivity_ci95"] == pytest.approx(clopper_pearson(tp, int((y == 1).sum())))
        assert s["specificity_ci95"] == pytest.approx(clopper_pearson(tn, int((y == 0).sum())))
        assert s["roc_auc"] == pytest.approx(roc_auc(y, p[sel]))
        lo, hi = s["accuracy_ci95"]
        assert f"| {s['name']} | {s['n']} (" in text and f"| {s['correct']}/{s['n']} = {100 * s['accuracy']:.2f} % ({100 * lo:.2f}–{100 * hi:.2f}) |" in text
    assert sum(s["n"] for s in rep["by_source"]) == rep["metrics"]["n"]
    back = list(csv.DictReader((run / "predictions.csv").open()))
    assert [b["source"] for b in back] == sources  # the per-source numbers can be recomputed from the CSV


def test_br35h_only_report_has_no_source_table(tmp_path):
    from train.data.manifest import ManifestRow, write_manifest
    from train.evaluate import evaluate_run

    base = make_crops(12)
    crops = SourcedCrops(base.x, base.y, base.paths, ["br35h"] * 12)  # what CropSet carries for a 5-column manifest
    manifest = write_manifest([ManifestRow(p, "0" * 64, p.split("/")[0], i, "test") for i, p in enumerate(crops.paths)],
                              tmp_path / "m.csv")
    md = evaluate_run(tmp_path, manifest, "test", model=BrightnessModel(), images=crops, n_examples=0)
    assert "by_source" not in json.loads((tmp_path / "report.json").read_text()) and "Per source" not in md.read_text()
    assert (tmp_path / "predictions.csv").read_text().splitlines()[0] == "path,label,p_tumour,predicted,correct"


def test_subset_without_a_class_has_no_interval_for_it():
    from train.metrics import metrics_by_group

    (only,) = metrics_by_group(["a"] * 3, [1, 1, 1], [0.9, 0.2, 0.8])
    assert only.specificity_ci95 is None and only.sensitivity_ci95 is not None
    d = only.to_dict()
    assert d["specificity"] is None and d["roc_auc"] is None and d["correct"] == 2
