"""Training loop: BatchNorm really frozen, checkpoints, kill-and-resume, config guard."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def _driver(run_dir: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("CRASH_AT", None)
    if crash:
        env["CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "tests.helpers.train_driver", str(run_dir), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_base_batchnorm_identical_in_training_and_inference_mode():
    """Regression guard for the Keras 3 pitfall: with BN frozen, training=True changes nothing."""
    from train.model import ModelConfig, base_of, build_model, set_base_trainable
    from train.paths import imagenet_weights

    # Real ImageNet statistics (the 224 no-top file loads at any input size), so batch
    # statistics of 4 random images differ clearly from the moving ones.
    model = build_model(ModelConfig(head="slim", input_size=64), weights=imagenet_weights())
    set_base_trainable(model, True)
    base = base_of(model)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 64, 64, 3)).astype("float32")
    assert np.allclose(base(x, training=True), base(x, training=False), atol=1e-6)
    assert any(w.trainable for w in base.layers if w.weights)  # the convs do train
    # And the guard can fail: an unfrozen BN layer behaves differently in training mode.
    assert base.layers[2].name == "bn_Conv1"
    base.layers[2].trainable = True
    assert not np.allclose(base(x, training=True), base(x, training=False), atol=1e-4)


def test_kill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    ref = tmp_path / "ref"
    assert _driver(ref).returncode == 0
    run = tmp_path / "run"
    crashed = _driver(run, crash="2:2")  # killed at batch 2 of fine-tune epoch 2
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    state = json.loads((run / "state.json").read_text())
    assert (state["stage"], state["epoch"]) == ("finetune", 1)
    assert (run / state["checkpoint"]).exists() and not (run / "model.keras").exists()
    refused = _driver(run)  # without --resume an existing run is not overwritten
    assert refused.returncode != 0 and "already holds a run" in refused.stderr
    resumed = _driver(run, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    hist = _history(run)
    assert [(r["stage"], int(r["epoch"])) for r in hist] == [(r["stage"], int(r["epoch"])) for r in _history(ref)]
    assert [int(r["epoch"]) for r in hist if r["stage"] == "finetune"] == [1, 2, 3]
    np.testing.assert_allclose(np.load(run / "final_weights.npy"), np.load(ref / "final_weights.npy"), atol=1e-5)
    assert len(list(run.glob("checkpoint-*.keras"))) == 1  # older checkpoints are cleaned up


def test_finetune_schedule_warms_up_then_decays():
    import keras

    from train.optim import compile_model

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    compile_model(model, 3e-5, steps=100, warmup=10)
    lr = model.optimizer.learning_rate  # evaluated at the optimizer's current iteration
    sched = model.optimizer._learning_rate
    assert float(sched(0)) == 0.0
    assert abs(float(sched(10)) - 3e-5) < 1e-12
    assert float(sched(55)) < 3e-5 and abs(float(sched(100)) - 0.05 * 3e-5) < 1e-9
    assert float(lr) == 0.0


def test_mirrored_strategy_trains_on_one_cpu_replica(tmp_path):
    """``--distribute mirrored`` builds, trains and checkpoints under MirroredStrategy (1 replica here)."""
    from tests.helpers.train_driver import tiny_config, tiny_sets
    from train.fit import train_model

    train, val = tiny_sets()
    cfg = tiny_config(distribute="mirrored", finetune_epochs=1)
    model = train_model(cfg, train, val, tmp_path / "run", weights=None)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    assert config["strategy"] == "MirroredStrategy" and config["replicas"] == max(gpus, 1)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["stage"] == "done" and [r["stage"] for r in state["history"]][-1] == "finetune"
    assert model.predict(train.x[:2].astype("float32"), verbose=0).shape == (2, 2)


def test_augmented_batches_are_reproducible():
    """Same seed, same batches: a parallel map over the stateful augmentation layers was not."""
    from train.datasets import make_dataset
    from train.presets import AugmentConfig

    x = np.random.default_rng(0).integers(0, 255, (256, 16, 16, 3), dtype=np.uint8)
    y = np.arange(256) % 2
    flips = AugmentConfig(rotation=0, zoom=0, brightness=0, contrast=0)

    def batches(seed, augment):
        return np.concatenate([b[0].numpy() for b in make_dataset(x, y, 16, seed=seed, augment=augment)])

    a = batches(7, flips)
    assert np.array_equal(a, batches(7, flips))
    plain = batches(7, None)
    changed = (np.abs(a - plain).reshape(256, -1).max(1) > 0).sum()
    assert 64 < changed < 192  # about half the images flipped, so augmentation did run
