"""``python -m train.evaluate --run`` end to end: a saved tiny Keras model, a manifest, crops
served by a stand-in for the crop cache (no BR35H needed)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.conftest import synthetic_mri

pytestmark = pytest.mark.slow
SIZE = 96


def test_cli_writes_report_for_saved_run(tmp_path, monkeypatch, capsys):
    import keras

    from train import evaluate
    from train.data import cache
    from train.data.manifest import ManifestRow, write_manifest
    from train.model import ModelConfig, build_model
    from train.report import sha256_file

    keras.utils.set_random_seed(0)
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    build_model(ModelConfig(head="slim", input_size=SIZE), weights=None).save(run / "model.keras")
    n = 6
    y = np.arange(n) % 2
    crops = cache.CropSet(
        x=np.stack([synthetic_mri((SIZE, SIZE), seed=i, tumour=bool(t)) for i, t in enumerate(y)]),
        y=y.astype(np.int64), paths=[f"{'yes' if t else 'no'}/s{i}.jpg" for i, t in enumerate(y)],
        boxes=np.zeros((n, 4), np.int32), fallback=np.zeros(n, bool))
    manifest = write_manifest([ManifestRow(p, "0" * 64, p.split("/")[0], i, "test") for i, p in enumerate(crops.paths)],
                              tmp_path / "manifest.csv")
    (run / "config.json").write_text(json.dumps({"preset": "tiny", "manifest": str(manifest)}))
    calls = []
    monkeypatch.setattr(cache, "load_crops", lambda m, split=None, **kw: calls.append((str(m), split)) or crops)

    assert evaluate.main(["--run", str(run), "--examples", "2"]) == 0
    assert calls == [(str(manifest), "test")]  # manifest taken from config.json
    out = run  # the test split's report is the run's report
    rep = json.loads((out / "report.json").read_text())
    assert rep["weights"]["sha256"] == sha256_file(run / "model.keras") and rep["preset"] == "tiny"
    assert rep["metrics"]["n"] == n and "curves" not in rep["figures"]  # no history.csv in this run
    assert (out / rep["figures"]["predictions"]).is_file()
    preds = list(csv.DictReader((out / "predictions.csv").open()))
    p_model = keras.saving.load_model(run / "model.keras")(crops.x.astype(np.float32)).numpy()[:, 1]
    np.testing.assert_allclose([float(r["p_tumour"]) for r in preds], p_model, atol=1e-5)
    assert "report:" in capsys.readouterr().out


def test_cli_rejects_run_without_manifest(tmp_path):
    from train import evaluate

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="manifest"):
        evaluate.main(["--run", str(tmp_path)])
