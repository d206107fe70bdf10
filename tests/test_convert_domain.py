"""The domain check, temperature scaling and contract writing on the conversion side.

Numbers first (numpy only, milliseconds), then the Keras graph and one end-to-end conversion of
a tiny model with a val split (slow: about a minute).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import zipfile

import numpy as np
import pytest

from convert import domain, temperature


def test_temperature_is_recovered_from_data_it_generated():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, (6000, 2))
    p = temperature.softmax(z, 2.5)
    y = (rng.random(6000) < p[:, 1]).astype(int)
    fit = temperature.fit_temperature(z, y)
    assert not fit.at_bound and abs(fit.temperature - 2.5) < 0.25
    assert fit.nll_after < fit.nll_before


def test_temperature_without_errors_is_not_identified_and_stays_one():
    z = np.array([[5.0, -5.0], [-4.0, 4.0]] * 20)
    y = np.array([0, 1] * 20)
    fit = temperature.fit_temperature(z, y)
    assert fit.at_bound and fit.temperature == 1.0


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, (20000, 2))
    y = (rng.random(20000) < temperature.softmax(z)[:, 1]).astype(int)
    good = temperature.reliability(temperature.softmax(z), y)
    bad = temperature.reliability(temperature.softmax(z, 0.3), y)
    assert good.ece < 0.02 < 0.05 < bad.ece
    assert sum(good.count) == 20000


def test_operating_points_meet_their_targets_on_the_data_they_were_chosen_on():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 500)
    p = np.clip(np.where(y == 1, rng.beta(5, 2, 1000), rng.beta(2, 5, 1000)), 0, 1)
    pts = temperature.operating_points(p, y)
    sens, spec = pts["sensitivity"]["threshold"], pts["specificity"]["threshold"]
    assert (p[y == 1] >= sens).mean() >= 0.99 and (p[y == 0] < spec).mean() >= 0.99
    assert sens < 0.5 < spec and pts["default"]["threshold"] == 0.5


def test_accept_threshold_accepts_the_target_share():
    s = np.random.default_rng(3).normal(size=240)
    t = domain.accept_threshold(s, 0.99)
    assert (s >= t).mean() >= 0.99 and (s >= np.nextafter(t, np.inf)).mean() < 0.995


def test_auroc_equals_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 30).astype(float)
    brute = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
    assert domain.auroc(a, b) == pytest.approx(brute)


def test_full_rank_mahalanobis_equals_the_inverse_covariance_form():
    rng = np.random.default_rng(5)
    f = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    y = np.repeat([0, 1], 200)
    f[y == 1] += 3.0
    fit = domain.fit_mahalanobis(f, y, dims=6, shrinkage=0.0)
    means = np.stack([f[y == c].mean(0) for c in (0, 1)])
    centred = f - means[y]
    prec = np.linalg.inv(centred.T @ centred / (len(f) - 2))
    q = rng.normal(size=(10, 6))
    want = np.min([np.einsum("ij,jk,ik->i", q - m, prec, q - m) for m in means], axis=0)
    assert np.allclose(fit.distances(q), want, rtol=1e-6)
    assert np.all(domain.to_score(fit.distances(q), 2.0) <= 1.0)


def test_domain_config_rejects_nonsense():
    with pytest.raises(ValueError, match="accept"):
        domain.DomainConfig(accept=1.0)
    with pytest.raises(ValueError, match="dims"):
        domain.DomainConfig(dims=0)


# --- Keras graph and conversion -------------------------------------------------------------

@pytest.mark.slow
def test_checked_model_graph_matches_the_numpy_reference():
    from tests.convert_helpers import brightness_model, fake_loader, write_tiny_manifest

    model = brightness_model()
    load = fake_loader()
    man = write_tiny_manifest(Path(__import__("tempfile").mkdtemp()) / "m.csv", n_train=40, n_test=16)
    tr, te = load(man, "train"), load(man, "test")
    att = domain.attach(model, tr, te, domain.DomainConfig(dims=3), log=lambda s: None)
    probs, score = att.model.predict(te.x.astype(np.float32), verbose=0)
    f, z = domain.features_and_logits(model, te.x)
    assert np.allclose(score[:, 0], att.fit.scores(f), rtol=1e-4, atol=1e-6)
    assert np.allclose(probs, temperature.softmax(z, att.temperature), atol=1e-5)
    assert np.array_equal(probs.argmax(1), model.predict(te.x.astype(np.float32), verbose=0).argmax(1))



def test_checked_model_projects_once_whatever_the_classes_and_survives_saving(tmp_path):
    """The projection is read once per call (one (D, k) kernel, not one per class), and the
    per-class centres travel with a saved model."""
    import keras

    from tests.convert_helpers import brightness_model, fake_loader, write_tiny_manifest

    model = brightness_model()
    load = fake_loader()
    man = write_tiny_manifest(tmp_path / "m.csv", n_train=40, n_test=16)
    tr, te = load(man, "train"), load(man, "test")
    att = domain.attach(model, tr, te, domain.DomainConfig(dims=3), log=lambda s: None)
    (kernel,) = att.model.get_layer(domain.WHITEN).get_weights()
    assert kernel.shape == att.fit.projection.shape
    (centres,) = att.model.get_layer(domain.SCORE).get_weights()
    assert np.allclose(centres, att.fit.means @ att.fit.projection, atol=1e-5)
    att.model.save(tmp_path / "checked.keras")
    again = keras.saving.load_model(tmp_path / "checked.keras")
    x = te.x.astype(np.float32)
    assert np.allclose(again.predict(x, verbose=0)[1], att.model.predict(x, verbose=0)[1], rtol=1e-6)

def _manifest_with_val(path: Path) -> Path:
    from train.data.manifest import ManifestRow, write_manifest

    rows = []
    for split, n in (("train", 32), ("val", 16), ("test", 16)):
        for i in range(n):
            label = ("no", "yes")[i % 2]
            p = f"{label}/{split}{i}.jpg"
            rows.append(ManifestRow(p, hashlib.sha256(p.encode()).hexdigest(), label, len(rows) // 2, split))
    return write_manifest(rows, path)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    from convert import __main__ as cli, pipeline
    from tests.convert_helpers import brightness_model, fake_loader

    tmp = tmp_path_factory.mktemp("domain_convert")
    brightness_model().save(tmp / "model.keras")
    man = _manifest_with_val(tmp / "tiny-paper.csv")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "default_loader", lambda: fake_loader(False))
        rc = cli.main(["--model", str(tmp / "model.keras"), "--manifest", str(man), "--out", str(tmp / "out"),
                       "--calibration-size", "16", "--no-onnx-int8", "--paper-protocol", "no", "--domain-dims", "3"])
    assert rc == 0, (tmp / "out" / "conversion_report.md").read_text()
    return tmp / "out"


@pytest.mark.slow
def test_every_tflite_carries_a_verified_contract_and_the_domain_output(converted):
    from edge_runtime.contract import load_contract
    from edge_runtime.interpreter import TFLiteModel

    report = json.loads((converted / "conversion_report.json").read_text())
    assert report["domain"]["method"] == "mahalanobis" and report["domain"]["dims"] == 3
    for name in ("model_fp32.tflite", "model_fp16.tflite", "model_dynamic.tflite", "model_int8.tflite"):
        c = load_contract(converted / name)
        assert c is not None and c.domain_threshold is not None, name
        assert c.domain_threshold == report["artifacts"][name]["contract"]["domain"]["threshold"]
        m = TFLiteModel(converted / name, 1, size=32)
        assert m.has_domain_output
        probs, dom = m.run(np.full((32, 32, 3), 120, np.uint8))
        assert probs.shape == (2,) and 0 < dom <= 1


@pytest.mark.slow
def test_int8_keeps_the_tail_float_with_uint8_input(converted):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(converted / "model_int8.tflite"))
    assert it.get_input_details()[0]["dtype"] == np.uint8
    outs = it.get_output_details()
    assert [tuple(o["shape"]) for o in outs] == [(1, 2), (1, 1)]  # probabilities first (MediaPipe head 0)
    assert all(o["dtype"] == np.float32 for o in outs)
    # the ops writing the outputs compute in float (no int8 softmax with 1/256 steps, no int8 score
    # clipped to in-domain ranges followed by a dequantize)
    from convert.sensitivity import _ops

    data = (converted / "model_int8.tflite").read_bytes()
    writers = {}
    for code, op, g, tfl in _ops(data):
        if op.Outputs(0) in set(g.OutputsAsNumpy().tolist()):
            names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
            writers[names[code]] = g.Tensors(op.Outputs(0)).Type() == tfl.TensorType.FLOAT32
    assert writers == {"SOFTMAX": True, "DIV": True}, writers


@pytest.mark.slow
def test_onnx_carries_the_contract_and_refuses_a_changed_graph(converted, tmp_path):
    import onnx

    from convert import contract

    c = contract.read_onnx(converted / "model.onnx")
    assert c is not None and c["domain"]["threshold"] > 0
    m = onnx.load(str(converted / "model.onnx"))
    m.graph.name = m.graph.name + "_changed"
    onnx.save(m, str(tmp_path / "changed.onnx"))
    with pytest.raises(ValueError, match="differs"):
        contract.read_onnx(tmp_path / "changed.onnx")


@pytest.mark.slow
def test_android_bundle_says_how_to_read_the_domain_output(converted):
    manifest = json.loads((converted / "android" / "model.json").read_text())
    assert manifest["domain"]["output_index"] == 1 and manifest["domain"]["category"] == "in_domain"
    assert set(manifest["operating_points"]) == {"default", "sensitivity", "specificity"}
    assert len(manifest["tensors"]["outputs"]) == 2
    note = (converted / "android" / "INTEGRATION.md").read_text()
    assert "domain_score" in note and f"{manifest['domain']['threshold']:.6g}" in note
    with zipfile.ZipFile(converted / "android" / "model.tflite") as z:
        assert "contract.json" in z.namelist()


def test_domain_threshold_accepts_the_target_share_of_every_source():
    """A pooled quantile lets the big source set the bar; per source, the smaller one keeps 99 %."""
    from convert.contract import build
    from convert.config import BundleInfo
    from edge_runtime.config import LABELS, CropConfig

    rng = np.random.default_rng(0)
    big, small = rng.uniform(0.6, 1.0, 900), rng.uniform(0.3, 1.0, 100)
    scores = np.concatenate([big, small])
    sources = ["a"] * 900 + ["b"] * 100
    pooled = build(LABELS, CropConfig(), BundleInfo(), 1.0, None, None, scores, 0.99)["domain"]
    per = build(LABELS, CropConfig(), BundleInfo(), 1.0, None, None, scores, 0.99, val_sources=sources)["domain"]
    assert (small >= pooled["threshold"]).mean() < 0.99  # the pooled bar refuses more of source b
    assert per["val_accepted_per_source"]["b"] >= 0.99 and per["val_accepted_per_source"]["a"] >= 0.99
    assert per["threshold"] <= pooled["threshold"]
