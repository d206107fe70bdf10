"""Rebuilding a Keras model from our ONNX export: same function, and a wrong graph is refused."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _random_bn(model, rng):
    from keras import layers

    for layer in model._flatten_layers():
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 2.0, n)])


def test_rebuilt_model_matches_the_onnx_export_and_keeps_the_architecture(tmp_path):
    from convert.onnx_export import export_onnx
    from convert.recover_keras import rebuild
    from train.model import ModelConfig, build_model

    cfg = ModelConfig(input_size=32)
    rng = np.random.default_rng(0)
    original = build_model(cfg, weights=None)
    _random_bn(original, rng)  # folded scales and shifts that are not the identity
    onnx_path = export_onnx(original, tmp_path / "m.onnx")
    rebuilt = rebuild(onnx_path, cfg)
    x = rng.integers(0, 256, (8, 32, 32, 3)).astype("float32")
    want, got = np.asarray(original(x)), np.asarray(rebuilt(x))
    assert np.abs(want - got).max() < 1e-4
    assert [l.name for l in rebuilt.layers] == [l.name for l in original.layers]


def test_a_graph_of_another_architecture_is_refused(tmp_path):
    from convert.onnx_export import export_onnx
    from convert.recover_keras import RecoveryError, rebuild
    from train.model import ModelConfig, build_model

    slim = build_model(ModelConfig(head="slim", input_size=32), weights=None)
    with pytest.raises(RecoveryError, match="head ops"):
        rebuild(export_onnx(slim, tmp_path / "slim.onnx"), ModelConfig(input_size=32))
