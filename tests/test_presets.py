"""Recipe overrides (``python -m train --set KEY=VALUE``) and the backend-neutral batch pipeline."""

from dataclasses import replace

import numpy as np
import pytest

from train.presets import get_preset, parse_override


def test_override_casts_to_the_field_type():
    cfg = get_preset("cpu")
    assert parse_override("finetune_lr=2e-5", cfg) == {"finetune_lr": 2e-5}
    assert parse_override("seed = 7", cfg) == {"seed": 7}
    assert parse_override("cosine_decay=false", cfg) == {"cosine_decay": False}
    assert parse_override("finetune_from=block_13_expand", cfg) == {"finetune_from": "block_13_expand"}
    assert parse_override("finetune_from=None", cfg) == {"finetune_from": None}
    nested = parse_override("augment.zoom=0.05", cfg)
    changed = replace(cfg, **nested)
    assert changed.augment.zoom == 0.05 and changed.augment.rotation == cfg.augment.rotation
    assert replace(cfg, **parse_override("model.head=slim", cfg)).model.head == "slim"


@pytest.mark.parametrize("text, needle", [
    ("finetune_lr", "KEY=VALUE"),
    ("nope=1", "unknown field 'nope'"),
    ("augment.nope=1", "unknown field 'augment.nope'"),
    ("augment=1", "unknown field 'augment'"),
    ("a.b.c=1", "unknown field"),
    ("seed=abc", "seed=abc"),
    ("cosine_decay=maybe", "true or false"),
    ("seed=None", "cannot be None"),
])
def test_bad_override_names_the_problem(text, needle):
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        parse_override(text, get_preset("cpu"))


def test_cli_rejects_a_bad_override_before_loading_data(capsys):
    from train.__main__ import main

    assert main(["--manifest", "does-not-exist.csv", "--run", "unused", "--set", "finetune_lr=fast"]) == 2
    assert "finetune_lr=fast" in capsys.readouterr().err


def test_backend_neutral_batches_match_tf_data():
    """The PyDataset used on JAX/PyTorch yields the same batches, in the same order, as tf.data."""
    from train.datasets import array_batches_class, make_dataset, onehot

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (37, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 2, 37)
    ref = [(b[0].numpy(), b[1].numpy()) for b in make_dataset(x, y, 8, seed=5)]
    order = np.random.default_rng(5).permutation(len(x))
    neutral = array_batches_class()(x, onehot(y), order, 8, None)
    assert len(neutral) == len(ref) == 5
    for i, (xb, yb) in enumerate(ref):
        nx, ny = neutral[i]
        assert nx.dtype == np.float32 and np.array_equal(nx, xb) and np.array_equal(ny, yb)


def test_label_smoothing_sets_a_loss_floor():
    """With smoothing s a perfect, confident prediction still costs ~ the smoothed targets' entropy."""
    import keras

    from train.optim import compile_model

    inp = keras.Input((2,))
    model = keras.Model(inp, keras.layers.Softmax()(inp))
    x = np.array([[20.0, -20.0], [-20.0, 20.0]], "float32")
    y = np.eye(2, dtype="float32")
    compile_model(model, 1e-3)
    plain = model.evaluate(x, y, verbose=0)[0]
    compile_model(model, 1e-3, label_smoothing=0.2)
    smoothed = model.evaluate(x, y, verbose=0)[0]
    assert plain < 1e-3 and smoothed > 1.0  # targets 0.9/0.1 against ~1/0 predictions
