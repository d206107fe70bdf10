"""Weight-rounding bias correction (``convert.bias_correction``) on a tiny conv+BN net with seeded
random weights (seconds, no real data): the int8 grid, the cancelled per-channel shift, an untouched
float model, and the ``--bias-correction`` flag through ``python -m convert``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.convert_helpers import SIZE, fake_loader, write_tiny_manifest

pytestmark = pytest.mark.slow


def tiny_model(seed: int = 0):
    """Raw 0..255 RGB in, 2-way softmax out, like the real model: Rescaling -> nested "base"
    (conv -> BN -> ReLU -> pad -> stride-2 depthwise -> BN -> ReLU -> 1x1 linear projection -> BN,
    a MobileNetV2 block in miniature) -> GAP -> Dense. Every weight and BN statistic is seeded."""
    import keras
    from keras import layers

    rng = np.random.default_rng(seed)
    bi = keras.Input((SIZE, SIZE, 3), name="base_in")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="expand")(bi)
    x = layers.BatchNormalization(name="expand_BN")(x)
    x = layers.ReLU(name="expand_relu")(x)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False, name="depthwise")(x)
    x = layers.BatchNormalization(name="depthwise_BN")(x)
    x = layers.ReLU(name="depthwise_relu")(x)
    x = layers.Conv2D(6, 1, use_bias=False, name="project")(x)
    x = layers.BatchNormalization(name="project_BN")(x)
    base = keras.Model(bi, x, name="base")
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    y = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_pm1")(inp)
    y = layers.GlobalAveragePooling2D(name="pool")(base(y))
    out = layers.Dense(2, activation="softmax", name="classifier")(y)
    model = keras.Model(inp, out, name="tiny_conv_bn")
    for layer in base.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            k = layer.get_weights()[0]
            layer.set_weights([rng.normal(0, 0.3, k.shape).astype(np.float32)])
        elif isinstance(layer, layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.3, n), rng.normal(0, 0.2, n),
                               rng.uniform(0.2, 2, n)])
    model.get_layer("classifier").set_weights([rng.normal(0, 1, (6, 2)).astype(np.float32), np.zeros(2, np.float32)])
    return model


def images(n: int, seed: int) -> np.ndarray:
    """Random pixels with a non-zero mean after the scaling (as MRI crops have), so the first conv shifts too."""
    return np.random.default_rng(seed).uniform(64, 255, (n, SIZE, SIZE, 3)).astype(np.float32)


def base_out(model, x: np.ndarray) -> np.ndarray:
    """The nested base's output (after the linear projection's BN): where the shift would pass on."""
    return np.asarray(model.get_layer("base")(model.get_layer("scale_to_pm1")(x)))


def test_grid_is_symmetric_per_output_channel():
    from convert.bias_correction import round_to_int8_grid

    rng = np.random.default_rng(0)
    conv = rng.normal(0, 1, (3, 3, 4, 5)).astype(np.float32)
    conv[..., 2] = 0.0  # a dead channel stays zero
    q = round_to_int8_grid(conv, depthwise=False)
    scale = np.abs(conv).max(axis=(0, 1, 2)) / 127
    live = scale > 0
    steps = q[..., live] / scale[live]
    assert np.allclose(steps, np.round(steps), atol=1e-3) and np.abs(steps).max() <= 127 + 1e-3
    assert np.allclose(np.abs(q[..., live]).max(axis=(0, 1, 2)), np.abs(conv[..., live]).max(axis=(0, 1, 2)))
    assert not q[..., 2].any() and np.abs(q - conv).max() <= scale.max() / 2 + 1e-6
    dw = rng.normal(0, 1, (3, 3, 4, 2)).astype(np.float32)  # (kh, kw, in, mult): per (in, mult) channel
    dw[:, :, 1, 0] *= 100  # one loud channel must not coarsen the others' grid
    qd = round_to_int8_grid(dw, depthwise=True)
    assert np.abs(qd - dw)[:, :, 0].max() <= np.abs(dw[:, :, 0]).max() / 254 + 1e-6


def tap(model, layer: str, x: np.ndarray) -> np.ndarray:
    """Output of one layer of the nested base."""
    import keras

    base = model.get_layer("base")
    return np.asarray(keras.Model(base.inputs[0], base.get_layer(layer).output)(model.get_layer("scale_to_pm1")(x)))


def channel_shift(model, other, layer: str, x: np.ndarray) -> float:
    """Largest per-channel mean (over N, H, W) output difference at ``layer``."""
    return float(np.abs((tap(other, layer, x) - tap(model, layer, x)).mean(axis=(0, 1, 2))).max())


@pytest.fixture(scope="module")
def corrected_tiny():
    from convert.bias_correction import correct_weight_rounding_bias

    model, calib = tiny_model(), images(48, 1)
    corrected, stats = correct_weight_rounding_bias(model, calib, batch_size=7)  # 7: a ragged last batch
    return model, calib, corrected, stats


def test_each_layer_cancels_its_own_rounding_shift(corrected_tiny):
    """Per layer the correction is exact: only that conv rounded, only its BN mean moved -> the
    per-channel mean shift at the BN output vanishes on the calibration images, and mostly on others."""
    from convert.bias_correction import clone_with_weights, round_to_int8_grid

    model, calib, corrected, stats = corrected_tiny
    assert [(s.conv, s.bn, s.depthwise) for s in stats] == [
        ("expand", "expand_BN", False), ("depthwise", "depthwise_BN", True), ("project", "project_BN", False)]
    assert all(s.max_abs_delta > 0 and s.channels == (6 if s.conv == "project" else 8) for s in stats)
    held_out = images(48, 2)
    for s in stats:
        rounded = clone_with_weights(model)
        conv, bn = rounded.get_layer("base").get_layer(s.conv), rounded.get_layer("base").get_layer(s.bn)
        conv.set_weights([round_to_int8_grid(conv.get_weights()[0], s.depthwise)])
        before = [channel_shift(model, rounded, s.bn, x) for x in (calib, held_out)]
        bn.moving_mean.assign(np.asarray(corrected.get_layer("base").get_layer(s.bn).moving_mean))
        after = [channel_shift(model, rounded, s.bn, x) for x in (calib, held_out)]
        assert before[0] > 1e-6 and after[0] < 0.01 * before[0], (s.conv, before, after)
        assert after[1] < 0.1 * before[1], (s.conv, before, after)


def test_whole_network_shift_is_much_smaller(corrected_tiny):
    """All convs rounded at once: the shift at the linear bottleneck's output drops several-fold. Not
    to zero: a ReLU passes the upstream rounding error only where its input is positive, and that
    first-order masking is invisible to statistics of the float model (the one-pass trade-off)."""
    from convert.bias_correction import round_conv_weights

    model, calib, corrected, _ = corrected_tiny
    rounded, rounded_corrected = round_conv_weights(model), round_conv_weights(corrected)
    for x, max_ratio in ((calib, 0.35), (images(48, 2), 0.5)):
        before = channel_shift(model, rounded, "project_BN", x)
        after = channel_shift(model, rounded_corrected, "project_BN", x)
        assert before > 1e-4 and after < max_ratio * before, (before, after)


def test_float_model_is_untouched_and_only_bn_means_move():
    from keras import layers

    from convert.bias_correction import correct_weight_rounding_bias

    model, x = tiny_model(), images(16, 1)
    weights, probs = [w.copy() for w in model.get_weights()], np.asarray(model(x))
    corrected, _ = correct_weight_rounding_bias(model, x)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert np.array_equal(np.asarray(model(x)), probs)
    base, cbase = model.get_layer("base"), corrected.get_layer("base")
    for layer in base.layers:
        mine = cbase.get_layer(layer.name)
        for v, cv in zip(layer.weights, mine.weights):
            same = np.array_equal(np.asarray(v), np.asarray(cv))
            moving_mean = isinstance(layer, layers.BatchNormalization) and v.name == "moving_mean"
            assert same != moving_mean, (layer.name, v.name)


def test_only_foldable_pairs_are_corrected():
    import keras
    from keras import layers

    from convert.bias_correction import conv_bn_pairs

    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, activation="relu", name="conv_relu")(inp)  # BN after the ReLU: not foldable
    x = layers.BatchNormalization(name="bn_a")(x)
    x = layers.Conv2D(4, 1, name="conv_pool")(x)  # no BN after it
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Conv2D(4, 1, name="conv_bn")(x)
    x = layers.BatchNormalization(name="bn_b")(x)
    pairs = conv_bn_pairs(keras.Model(inp, x))
    assert [(c.name, b.name) for c, b in pairs] == [("conv_bn", "bn_b")]


def test_cli_flag_defaults_and_parsing():
    from convert import __main__ as cli
    from convert.config import BIAS_CORRECTION_DEFAULT

    base = ["--model", "m.keras", "--manifest", "x.csv", "--out", "o"]
    assert cli.config_from(cli.parse_args(base)).quant.bias_correction is BIAS_CORRECTION_DEFAULT
    assert cli.config_from(cli.parse_args(base + ["--bias-correction"])).quant.bias_correction is True
    assert cli.config_from(cli.parse_args(base + ["--no-bias-correction"])).quant.bias_correction is False


def test_convert_with_bias_correction_end_to_end(tmp_path: Path):
    """``python -m convert --bias-correction``: int8 artifacts from the corrected copy, still full
    integer; float artifacts equal the original model; the report says the correction was applied."""
    from ai_edge_litert.interpreter import Interpreter
    import keras

    from convert import __main__ as cli, calibration, pipeline
    from convert.bias_correction import correct_weight_rounding_bias
    from convert.config import QuantizationConfig
    from convert.runtimes import TFLiteRunner
    from train.data.manifest import read_manifest

    model_path = tmp_path / "model.keras"
    tiny_model().save(model_path)
    manifest = write_tiny_manifest(tmp_path / "tiny.csv")
    out = tmp_path / "convert"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "default_loader", lambda: fake_loader(False))
        rc = cli.main(["--model", str(model_path), "--manifest", str(manifest), "--out", str(out),
                       "--calibration-size", "16", "--tolerance", "100", "--paper-protocol", "no", "--bias-correction"])
    assert rc == 0
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["config"]["quant"]["bias_correction"] is True
    bc = report["bias_correction"]
    assert bc["applied"] is True and bc["layers"] == 3 and bc["calibration_images"] == 16
    assert "bias correction: **applied**" in (out / "conversion_report.md").read_text()
    assert set(report["artifacts"]) >= {"model_int8.tflite", "model_int8.onnx", "model_fp32.tflite"}

    it = Interpreter(model_path=str(out / "model_int8.tflite"))
    assert [d["name"] for d in it.get_tensor_details() if d["dtype"] == np.float32] == []

    # The float artifacts are the original model's, not the corrected copy's (which differs measurably).
    model = keras.saving.load_model(model_path, compile=False)
    chosen = calibration.select_calibration(read_manifest(manifest), QuantizationConfig(calibration_size=16))
    train = fake_loader(False)(manifest, split="train")
    corrected, _ = correct_weight_rounding_bias(model, calibration.pick_arrays(train.x, train.paths, chosen))
    x = fake_loader(False)(manifest, split="test").x.astype(np.float32)
    ref, ref_corrected = np.asarray(model(x)), np.asarray(corrected(x))
    fp32_err = np.abs(TFLiteRunner(out / "model_fp32.tflite").predict(x) - ref).max()
    assert fp32_err < 1e-5 < np.abs(ref_corrected - ref).max() / 10, (fp32_err, np.abs(ref_corrected - ref).max())
