"""Automatic selective int8 (``convert.sensitivity``, ``--int8-keep-float K``) on a tiny conv net (seconds):
the ranking finds a conv made sensitive on purpose and agrees with brute force, its layers map to the
right TFLite ops, and the kept conv is float in the converted file while the rest is int8 with uint8 I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.convert_helpers import SIZE, fake_loader, write_tiny_manifest

pytestmark = pytest.mark.slow

SENSITIVE = "base/mid"


def tiny_model(seed: int = 0):
    """Raw 0..255 RGB -> Rescaling -> nested "base" (3x3 conv "first" -> BN -> ReLU -> 1x1 conv "mid" -> BN ->
    ReLU -> padded stride-2 3x3 depthwise "dw" -> BN -> ReLU -> 1x1 linear "proj" -> BN) -> GAP -> Dense softmax.

    Made sensitive on purpose: channel 0 of "first" is dead (its BN beta is -1e4, so the ReLU outputs 0), and
    "mid" has a weight of 60 on that input channel in every output channel. The float function does not
    see it, but it sets each channel's int8 grid step to 60/127 ~ 0.47 against live weights of std 0.3,
    so rounding "mid" changes the output far more than rounding any other conv.
    """
    import keras
    from keras import layers

    rng = np.random.default_rng(seed)
    bi = keras.Input((SIZE, SIZE, 3), name="base_in")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="first")(bi)
    x = layers.BatchNormalization(name="first_BN")(x)
    x = layers.ReLU(name="first_relu")(x)
    x = layers.Conv2D(8, 1, use_bias=False, name="mid")(x)
    x = layers.BatchNormalization(name="mid_BN")(x)
    x = layers.ReLU(name="mid_relu")(x)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False, name="dw")(x)
    x = layers.BatchNormalization(name="dw_BN")(x)
    x = layers.ReLU(name="dw_relu")(x)
    x = layers.Conv2D(6, 1, use_bias=False, name="proj")(x)
    x = layers.BatchNormalization(name="proj_BN")(x)
    base = keras.Model(bi, x, name="base")
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    y = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_pm1")(inp)
    y = layers.GlobalAveragePooling2D(name="pool")(base(y))
    out = layers.Dense(2, activation="softmax", name="classifier")(y)
    model = keras.Model(inp, out, name="tiny_sensitive")
    for layer in base.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            k = rng.normal(0, 0.3, layer.get_weights()[0].shape).astype(np.float32)
            if layer.name == "mid":
                k[:, :, 0, :] = 60.0
            layer.set_weights([k])
        elif isinstance(layer, layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            gamma, beta = rng.uniform(0.5, 2, n), rng.normal(0, 0.3, n)
            if layer.name == "first_BN":
                beta[0] = -1e4
            layer.set_weights([gamma, beta, rng.normal(0, 0.2, n), rng.uniform(0.2, 2, n)])
    model.get_layer("classifier").set_weights([rng.normal(0, 2, (6, 2)).astype(np.float32), np.zeros(2, np.float32)])
    return model


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)


def margins(model, x: np.ndarray) -> np.ndarray:
    from convert.sensitivity import logit_model

    z = np.asarray(logit_model(model).predict(x, verbose=0), np.float64)
    return z[:, 1] - z[:, 0]


@pytest.fixture(scope="module")
def ranked():
    from convert.sensitivity import rank_convs

    model = tiny_model()
    return model, rank_convs(model, images(20, 1), curve_k=4)


def test_dead_channel_outlier_leaves_the_float_function_alone():
    import keras

    model = tiny_model()
    base = model.get_layer("base")
    tap = keras.Model(base.inputs[0], base.get_layer("first_relu").output)
    assert not np.asarray(tap(model.get_layer("scale_to_pm1")(images(4, 0))))[..., 0].any()


def test_ranking_finds_the_sensitive_conv(ranked):
    model, r = ranked
    assert [s.path for s in r.scores][0] == SENSITIVE
    assert {s.path for s in r.scores} == {"base/first", "base/mid", "base/dw", "base/proj"}
    assert r.scores[0].mean_abs_margin_change > 5 * r.scores[1].mean_abs_margin_change
    assert r.refs["base/dw"].depthwise and not r.refs[SENSITIVE].depthwise
    assert r.images == 20 and r.seconds >= 0
    d = r.to_dict(top=2)
    assert [t["layer"] for t in d["top"]][0] == "mid" and len(d["top"]) == 2


def test_scores_equal_brute_force_and_model_is_untouched(ranked):
    """Each score = rounding that one conv in a fresh copy; the ranking restores every kernel
    (later layers are scored against an unrounded rest) and never touches the caller's model."""
    from convert.bias_correction import clone_with_weights, round_to_int8_grid

    model, r = ranked
    x = images(20, 1)
    before = model.get_weights()
    m0 = margins(model, x)
    for s in r.scores:
        copy = clone_with_weights(model)
        layer = copy.get_layer("base").get_layer(s.name)
        layer.set_weights([round_to_int8_grid(layer.get_weights()[0], s.depthwise)])
        d = margins(copy, x) - m0
        assert np.isclose(s.mean_abs_margin_change, np.abs(d).mean(), rtol=1e-3, atol=1e-4), s
        assert np.isclose(s.max_abs_margin_change, np.abs(d).max(), rtol=1e-3, atol=1e-4), s
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_curve_from_all_rounded_to_all_float(ranked):
    from convert.bias_correction import round_conv_weights

    model, r = ranked
    x = images(20, 1)
    full = np.abs(margins(round_conv_weights(model), x) - margins(model, x)).mean()
    assert [c["k"] for c in r.curve] == [0, 1, 2, 3, 4]
    assert np.isclose(r.curve[0]["mean_abs_margin_change"], full, rtol=1e-3, atol=1e-4)
    assert r.curve[1]["kept_float"] == ["mid"]
    assert r.curve[1]["mean_abs_margin_change"] < 0.3 * r.curve[0]["mean_abs_margin_change"]
    assert r.curve[4]["mean_abs_margin_change"] < 1e-4  # nothing rounded


def test_layers_map_to_their_own_tflite_ops(ranked, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from convert import calibration, tflite_export
    from convert.sensitivity import tflite_nodes

    model, r = ranked
    saved = tflite_export.export_saved_model(model, tmp_path / "sm")
    flat = tflite_export.convert(saved, "int8", calibration.representative_dataset(images(8, 2)))
    nodes = tflite_nodes(flat, list(r.refs.values()))
    assert len(set(nodes.values())) == 4
    it = Interpreter(model_content=flat)
    by_out = {it.get_tensor_details()[op["outputs"][0]]["name"]: op["op_name"] for op in it._get_ops_details()}
    for path, name in nodes.items():
        assert by_out[name] == ("DEPTHWISE_CONV_2D" if path == "base/dw" else "CONV_2D")
        assert f"/{path.rsplit('/', 1)[1]}_" in name


def test_names_that_prefix_each_other_do_not_collide():
    """``block_1_project`` must not claim ``block_13_project``'s op (and a layer's scope may carry ``_<n>``)."""
    from convert.sensitivity import ConvRef, _belongs

    op13 = "m_1/mobilenetv2_1.00_224_1/block_13_project_BN_1/batchnorm/add_1;m_1/mobilenetv2_1.00_224_1/block_13_project_1/convolution"
    b1 = ConvRef("mobilenetv2_1.00_224/block_1_project", False, (1, 1, 96, 24), "block_1_project_BN")
    b13 = ConvRef("mobilenetv2_1.00_224/block_13_project", False, (1, 1, 576, 160), "block_13_project_BN")
    other = ConvRef("other_base/block_13_project", False, (1, 1, 576, 160), "block_13_project_BN")
    assert _belongs(op13, b13) and not _belongs(op13, b1) and not _belongs(op13, other)


def run_cli(tmp: Path, *extra: str) -> tuple[int, Path]:
    from convert import __main__ as cli, pipeline

    model_path = tmp / "model.keras"
    tiny_model().save(model_path)
    manifest = write_tiny_manifest(tmp / "tiny.csv")
    out = tmp / "convert"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "default_loader", lambda: fake_loader(False))
        rc = cli.main(["--model", str(model_path), "--manifest", str(manifest), "--out", str(out),
                       "--calibration-size", "16", "--no-onnx-int8", *extra])
    return rc, out


def test_keep_float_converts_end_to_end_with_the_kept_conv_float(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    rc, out = run_cli(tmp_path, "--int8-keep-float", "1")
    report = json.loads((out / "conversion_report.json").read_text())
    sel = report["int8_float_layers"]
    assert report["config"]["quant"]["keep_float"] == 1
    assert [k["layer"] for k in sel["kept"]] == [SENSITIVE] and sel["fully_integer"] is False
    assert sel["ranking"]["top"][0]["path"] == SENSITIVE and sel["ranking"]["images"] == 16
    assert [f["op"] for f in sel["float_ops"]] == ["CONV_2D"] and sel["float_ops"][0]["output"] == sel["kept"][0]["node"]
    md = (out / "conversion_report.md").read_text()
    assert "not fully integer" in md and "`mid`" in md

    it = Interpreter(model_path=str(out / "model_int8.tflite"))
    assert it.get_input_details()[0]["dtype"] == np.uint8 and it.get_output_details()[0]["dtype"] == np.uint8
    tensors = it.get_tensor_details()
    convs = [op for op in it._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convs) == 4
    for op in convs:
        kept = tensors[op["outputs"][0]]["name"] == sel["kept"][0]["node"]
        filt, res = tensors[op["inputs"][1]]["dtype"], tensors[op["outputs"][0]]["dtype"]
        assert (filt, res) == ((np.float32, np.float32) if kept else (np.int8, np.int8)), tensors[op["outputs"][0]]["name"]
    # the mixed model still agrees with Keras on the test images (the gate compares accuracies)
    assert report["artifacts"]["model_int8.tflite"]["metrics"]["agreement"] == 1.0
    assert rc in (0, 1)


def test_cli_flag_parses_and_defaults_to_full_integer():
    from convert.__main__ import config_from, parse_args
    from convert.config import KEEP_FLOAT_DEFAULT, QuantizationConfig
    from convert.tflite_export import keeps_float_ops

    base = ["--model", "m.keras", "--manifest", "x.csv", "--out", "o"]
    assert config_from(parse_args(base)).quant.keep_float == KEEP_FLOAT_DEFAULT
    q = config_from(parse_args([*base, "--int8-keep-float", "2"])).quant
    assert q.keep_float == 2 and keeps_float_ops(q, [SENSITIVE])
    assert not keeps_float_ops(q, [])  # the ranking found no conv: the plain full-integer recipe
    assert keeps_float_ops(QuantizationConfig(float_tail=True)) and not keeps_float_ops(QuantizationConfig())
    with pytest.raises(ValueError):
        QuantizationConfig(keep_float=-1)


def test_debug_int8_names_its_worst_tensor_candidates_apart_from_int8_keep_float(capsys):
    """The debug tool keeps the N tensors with the largest debugger error float; ``python -m convert
    --int8-keep-float K`` keeps the K convs most sensitive to weight rounding: two flags, two names."""
    from convert.debug_int8 import parse_args

    base = ["--model", "m.keras", "--manifest", "x.csv", "--out", "o"]
    a = parse_args([*base, "--keep-worst-tensors", "2,5", "--calibration-seed", "3", "--calibration-sizes", "50"])
    assert (a.keep_worst_tensors, a.calibration_seed, a.calibration_sizes) == ("2,5", 3, "50")
    with pytest.raises(SystemExit):
        parse_args([*base, "--keep-float", "1"])
    assert "--keep-float" in capsys.readouterr().err


def test_bias_correction_skips_the_convs_kept_float():
    """A kept-float conv's weights are not rounded, so its BatchNorm must not get a rounding correction."""
    from convert.bias_correction import correct_weight_rounding_bias

    model = tiny_model()
    corrected, stats = correct_weight_rounding_bias(model, images(8, 3), skip_convs=[SENSITIVE])
    assert "mid" not in {s.conv for s in stats} and {"first", "dw", "proj"} <= {s.conv for s in stats}
    bn = lambda m, name: np.asarray(m.get_layer("base").get_layer(name).moving_mean)  # noqa: E731
    assert np.array_equal(bn(corrected, "mid_BN"), bn(model, "mid_BN"))
    assert not np.array_equal(bn(corrected, "proj_BN"), bn(model, "proj_BN"))


def test_a_model_without_convs_ranks_empty_and_stays_fully_integer():
    from convert.report import _float_layers_lines
    from convert.sensitivity import rank_convs
    from tests.convert_helpers import brightness_model

    r = rank_convs(brightness_model(subtle=True), images(4, 0))
    assert r.scores == () and r.top(2) == []
    lines = _float_layers_lines({"keep_float": 2, "ranking": r.to_dict(), "fully_integer": True, "float_ops": []})
    assert "**fully integer**" in lines[0] and "found no conv to keep" in lines[0]
