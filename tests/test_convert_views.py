"""The view gate (convert.views): labels, probe, support rule, graph and contract threshold.

Numbers on synthetic features (milliseconds), then the Keras graph of a tiny model (seconds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convert import contract, domain, views
from convert.config import BundleInfo
from edge_runtime.config import LABELS, CropConfig

REPO = Path(__file__).resolve().parent.parent


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_committed_labels_read_and_name_only_known_views():
    rows = views.read_labels(REPO / "splits" / "views.csv")
    assert len(rows) > 400
    assert {r.view for r in rows} <= {*views.VIEWS, "unclear"}
    assert {r.source for r in rows} == {"br35h", "nickparvar"}
    assert len({(r.source, r.path) for r in rows}) == len(rows)


def test_bad_label_files_name_the_file_and_line(tmp_path):
    bad_header = _write(tmp_path / "a.csv", ["source,path,view", "br35h,no/no1.jpg,sagittal"])
    with pytest.raises(ValueError, match="a.csv: header"):
        views.read_labels(bad_header)
    bad_view = _write(tmp_path / "b.csv", [",".join(views.LABEL_HEADER), "br35h,no/no1.jpg,abc,no,oblique,"])
    with pytest.raises(ValueError, match=r"b.csv:2: view must be one of"):
        views.read_labels(bad_view)


def test_fitting_rows_leave_out_unclear_held_out_and_external_test_images():
    rows = [views.LabelledSlice("br35h", "no/a.jpg", "h1", "no", "axial-ventricles"),
            views.LabelledSlice("br35h", "no/b.jpg", "h2", "no", "unclear"),
            views.LabelledSlice("br35h", "yes/c.jpg", "h3", "yes", "sagittal"),
            views.LabelledSlice("nickparvar", "Testing/notumor/d.jpg", "h4", "notumor", "coronal"),
            views.LabelledSlice("nickparvar", "Training/notumor/e.jpg", "h5", "notumor", "coronal")]
    kept = views.fitting_rows(rows, held_out_sha256={"h3"})
    assert [r.sha256 for r in kept] == ["h1", "h5"]


def _clusters(n_per: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (3, 20)) + 10  # far from 0, unscaled: the folded standardisation matters
    names = ["axial-supratentorial", "sagittal", "coronal"]
    f = np.concatenate([c + rng.normal(0, 1, (n_per, 20)) * (i + 1) for i, c in enumerate(centres)])
    return f, [names[i] for i in range(3) for _ in range(n_per)]


def test_probe_learns_separable_views_and_orders_outputs_like_VIEWS():
    f, v = _clusters(60, 0)
    probe = views.fit_probe(f, v)
    assert probe.views == ("axial-supratentorial", "sagittal", "coronal")
    f2 = f + np.random.default_rng(1).normal(0, 0.3, f.shape)  # same centres, jittered
    acc = (np.array(probe.views)[probe.predict(f2)] == np.array(v)).mean()
    assert acc > 0.95
    assert np.allclose(probe.proba(f2).sum(1), 1.0)


def test_probe_needs_two_gate_views():
    with pytest.raises(ValueError, match="at least two views"):
        views.fit_probe(np.zeros((4, 3)), ["sagittal"] * 4)
    with pytest.raises(ValueError, match="gate views"):
        views.fit_probe(np.zeros((4, 3)), ["sagittal", "axial-ventricles"] * 2)
    assert views.gate_view("axial-above-ventricles") == views.gate_view("axial-ventricles") == "axial-supratentorial"


def test_support_needs_enough_val_crops_of_both_classes_and_the_target():
    cfg = views.ViewConfig(min_normals=10, min_tumours=10, target=0.9)
    names = ("axial-supratentorial", "sagittal", "coronal")
    pv, y, yp = [], [], []
    # view 0: 20 normals, 20 tumours, 1 error each -> 95 %: supported
    pv += [0] * 40; y += [0] * 20 + [1] * 20; yp += [0] * 19 + [1] + [1] * 19 + [0]
    # view 1: only 5 normals, all right -> too few normals
    pv += [1] * 25; y += [0] * 5 + [1] * 20; yp += [0] * 5 + [1] * 20
    # view 2: 20 normals with 4 false alarms -> specificity 80 %
    pv += [2] * 40; y += [0] * 20 + [1] * 20; yp += [0] * 16 + [1] * 4 + [1] * 20
    table = views.support_table(np.array(pv), np.array(y), np.array(yp), names, cfg)
    assert [r["supported"] for r in table] == [True, False, False]
    assert table[2]["val_specificity"] == pytest.approx(0.8) and table[1]["val_normals"] == 5


def test_gate_opens_only_where_supported_views_are_more_probable():
    f, v = _clusters(40, 2)
    probe = views.fit_probe(f, v)
    gate = views.ViewGate(probe, (True, False, False))
    g = gate.gate(f)
    assert g[:40].mean() > 0.95 and g[40:].mean() < 0.05


def _gated_model():
    from tests.convert_helpers import brightness_model, fake_loader, write_tiny_manifest

    model = brightness_model()
    load = fake_loader()
    man = write_tiny_manifest(Path(__import__("tempfile").mkdtemp()) / "m.csv", n_train=40, n_test=24)
    tr, te = load(man, "train"), load(man, "test")
    f_te, _ = domain.features_and_logits(model, te.x)
    fit = domain.with_scale(domain.fit_mahalanobis(domain.features_and_logits(model, tr.x)[0], tr.y, 3), f_te)
    # A probe that calls bright crops (the tiny model's tumours) "sagittal", an unsupported view.
    probe = views.fit_probe(f_te, ["sagittal" if y else "axial-supratentorial" for y in te.y])
    gate = views.ViewGate(probe, tuple(v != "sagittal" for v in probe.views))
    return model, fit, gate, te, f_te


def test_gated_graph_equals_its_numpy_reference_and_negates_refused_views():
    model, fit, gate, te, f_te = _gated_model()
    checked = domain.build_checked_model(model, fit, 1.5, gate)
    _, score = checked.predict(te.x.astype(np.float32), verbose=0)
    want = fit.scores(f_te) * gate.sign(f_te)
    assert np.allclose(score[:, 0], want, rtol=1e-4, atol=1e-6)
    assert (score[te.y == 1, 0] < 0).all() and (score[te.y == 0, 0] > 0).all()
    assert np.allclose(np.abs(score[:, 0]), fit.scores(f_te), rtol=1e-4, atol=1e-6)


def test_contract_threshold_is_chosen_on_crops_the_view_gate_lets_through():
    rng = np.random.default_rng(5)
    scores = np.concatenate([rng.uniform(0.2, 1.0, 200), -rng.uniform(0.2, 1.0, 40)])
    y = np.arange(240) % 2
    probs = np.stack([1 - y * 0.9, y * 0.9 + 0.05], 1)
    c = contract.build(LABELS, CropConfig(), BundleInfo(), 1.0, probs, y, scores, 0.99,
                       view_gate={"views": ["axial-supratentorial", "sagittal"], "supported": ["axial-supratentorial"]})
    t = c["domain"]["threshold"]
    assert t > 0 and (scores[:200] >= t).mean() >= 0.99
    assert c["domain"]["val_refused_by_view"] == pytest.approx(40 / 240)
    assert c["domain"]["view_gate"]["supported"] == ["axial-supratentorial"]
    with pytest.raises(ValueError, match="every val crop"):
        contract.build(LABELS, CropConfig(), BundleInfo(), 1.0, probs, y, -np.ones(240), 0.99)


def test_attach_refuses_a_gate_that_supports_no_view():
    from tests.convert_helpers import brightness_model, fake_loader, write_tiny_manifest

    model = brightness_model()
    load = fake_loader()
    man = write_tiny_manifest(Path(__import__("tempfile").mkdtemp()) / "m.csv", n_train=40, n_test=24)
    tr, te = load(man, "train"), load(man, "test")
    # Views that coincide with the label: every view holds one class only, none can be supported.
    lab = views.Labelled(tr.x, ["sagittal" if y else "axial-supratentorial" for y in tr.y])
    with pytest.raises(ValueError, match="no view meets the support rule"):
        domain.attach(model, tr, te, domain.DomainConfig(dims=3, views=views.ViewConfig(min_normals=2, min_tumours=2)),
                      log=lambda s: None, labelled=lab)


def test_gate_threshold_lets_the_target_share_through_and_never_drops_below_half():
    p = np.linspace(0.0, 1.0, 101)
    t = views.gate_threshold(p[50:], 0.9)  # 51 supported-view slices with P 0.5 .. 1.0
    assert (p[50:] >= t).mean() >= 0.9 and (p[50:] >= np.nextafter(t, 2)).mean() < 0.9
    assert views.gate_threshold(np.array([0.1, 0.2, 0.9]), 0.95) == 0.5
    assert views.gate_threshold(np.array([]), 0.95) == 0.5


def test_cross_fitted_probabilities_come_from_probes_that_never_saw_the_row():
    f, v = _clusters(30, 3)
    # One mislabelled row: a probe fitted with it could memorise it, a cross-fitted one cannot.
    v = list(v)
    v[0] = "coronal"
    names = ("axial-supratentorial", "sagittal", "coronal")
    cf = views.cross_fitted_proba(f, v, views.ViewConfig(folds=5), names)
    assert cf.shape == (90, 3) and np.allclose(cf.sum(1), 1.0)
    assert names[cf[0].argmax()] == "axial-supratentorial"
    assert (np.array(names)[cf.argmax(1)][1:] == np.array(v[1:])).mean() > 0.95


def test_android_note_tells_an_app_what_a_negative_domain_score_means():
    from convert.android import integration_note

    dom = {"threshold": 0.04, "accept_target": 0.99,
           "view_gate": {"refused_when": "domain_score < 0", "supported": ["axial-supratentorial"],
                         "views": list(views.GATE_VIEWS)}}
    note = integration_note(BundleInfo(), CropConfig(), dom)
    assert "*negative* `domain_score`" in note and "axial-supratentorial" in note
    assert "negative" not in integration_note(BundleInfo(), CropConfig(), {**dom, "view_gate": None})


def test_probe_weights_survive_per_column_int8_rounding_despite_a_nearly_constant_feature():
    """What a weight-quantizing export does to the probe's kernel: a feature with a tiny spread
    must not get a weight that rounds every other weight of its column to zero."""
    f, v = _clusters(60, 4)
    f[:, 0] = 5.0 + 1e-7 * np.random.default_rng(0).normal(size=len(f))  # nearly constant
    probe = views.fit_probe(f, v)
    w = probe.weights
    step = np.abs(w).max(0) / 127.0
    wq = np.round(w / step) * step
    rounded = views.ViewProbe(probe.scale, probe.shift, wq, probe.bias, probe.views)
    assert (rounded.predict(f) == probe.predict(f)).mean() > 0.95


@pytest.mark.slow
def test_conversion_with_views_ships_the_gate_in_every_artifact(tmp_path):
    """The whole path: labelled slices through the conversion's loader, the gate in the graph of
    every exported format (the int8 keeps it float), each quantized format's probe matched to its
    own features, its contract entry, and a runtime that reads a negative score as a view refusal."""
    import hashlib

    from convert import pipeline
    from convert.config import ConvertConfig
    from edge_runtime.contract import load_contract
    from edge_runtime.interpreter import TFLiteModel
    from tests.convert_helpers import brightness_model, fake_loader
    from tests.test_convert_domain import _manifest_with_val

    man = _manifest_with_val(tmp_path / "tiny.csv")
    lines = [",".join(views.LABEL_HEADER)]
    for i in range(48):  # views unrelated to the label: each view holds both classes
        label = ("no", "yes")[i % 2]
        path = f"{label}/lab{i}.jpg"
        view = ("axial-ventricles", "sagittal")[(i // 2) % 2]
        lines.append(f"br35h,{path},{hashlib.sha256(path.encode()).hexdigest()},{label},{view},")
    labels = _write(tmp_path / "views.csv", lines)
    from convert.config import QuantizationConfig

    cfg = ConvertConfig(onnx_int8=False, quant=QuantizationConfig(calibration_size=16),
                        domain=domain.DomainConfig(dims=3, views=views.ViewConfig(str(labels), min_normals=2,
                                                                                   min_tumours=2)))
    res = pipeline.run(brightness_model(), man, tmp_path / "out", cfg, loader=fake_loader(False), log=lambda s: None)
    gate = res.report["domain"]["views"]
    assert gate["labelled_slices"] == 48 and gate["views"] == ["axial-supratentorial", "sagittal"]
    assert any(r["supported"] for r in gate["support"])
    rec = gate["recentred"]
    assert set(rec) == {"model_dynamic.tflite", "model_int8.tflite"}
    for name, r in rec.items():  # the re-export quantizes the base exactly as the first one did
        assert r["base_features_max_change_between_exports"] < 1e-6, name
        assert r["gate_agreement_with_float_after"] >= r["gate_agreement_with_float_before"] - 0.05, name
    for name in ("model_fp32.tflite", "model_fp16.tflite", "model_dynamic.tflite", "model_int8.tflite"):
        c = load_contract(tmp_path / "out" / name)
        assert c.view_gate, name
        assert c.raw["domain"]["view_gate"]["supported"] == [r["view"] for r in gate["support"] if r["supported"]]
        _, dom = TFLiteModel(tmp_path / "out" / name, 1, size=32).run(np.full((32, 32, 3), 120, np.uint8))
        assert -1 <= dom <= 1 and dom != 0, name


def test_a_recentred_probe_on_distorted_features_decides_like_the_original_on_clean_ones():
    f, v = _clusters(60, 6)
    probe = views.fit_probe(f, v)
    rng = np.random.default_rng(7)
    a_true, b_true = rng.uniform(0.5, 1.5, f.shape[1]), rng.normal(0, 6, f.shape[1])
    q = (f - b_true) / a_true + rng.normal(0, 0.05, f.shape)  # what a quantized base might emit
    a, b = views.affine_match(q, f)
    assert (probe.predict(q) == probe.predict(f)).mean() < 0.9  # the distortion matters
    assert (probe.recentred(a, b).predict(q) == probe.predict(f)).mean() > 0.97


def test_a_missing_source_of_the_labels_says_the_view_gate_needs_it(tmp_path):
    from train.paths import DataNotFoundError

    labels = _write(tmp_path / "v.csv", [",".join(views.LABEL_HEADER),
                                         "nickparvar,Training/notumor/a.jpg,h1,notumor,sagittal,"])

    def loader(*a, **k):
        raise DataNotFoundError("source 'nickparvar' not found in /nowhere")

    with pytest.raises(DataNotFoundError, match=r"view gate's labelled slices .*nickparvar.*without --views"):
        views.load_labelled(views.ViewConfig(str(labels)), set(), tmp_path, loader, None, CropConfig())
