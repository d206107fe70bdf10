"""Subprocess driver for the kill-and-resume test: trains a tiny model on synthetic crops.

``CRASH_AT=E:B`` SIGKILLs the process at batch B of the E-th live-image epoch (1-based),
which is what a power cut or an OOM kill does to a real run.
"""

import os
import signal
import sys
from dataclasses import replace

import keras
import numpy as np

from tests.conftest import synthetic_mri
from train.fit import train_model
from train.model import ModelConfig
from train.presets import get_preset


class _Set:
    def __init__(self, x, y):
        self.x, self.y = x, y


def tiny_sets(n: int = 16, size: int = 32):
    xs, ys = [], []
    for i in range(n):
        tumour = i % 2 == 1
        from PIL import Image

        img = synthetic_mri((size + 10, size + 6), seed=i, tumour=tumour)
        xs.append(np.asarray(Image.fromarray(img).resize((size, size))))
        ys.append(int(tumour))
    x, y = np.stack(xs), np.array(ys)
    return _Set(x[: n - 4], y[: n - 4]), _Set(x[n - 4 :], y[n - 4 :])


class CrashAt(keras.callbacks.Callback):
    calls = 0

    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.epoch, self.batch = epoch, batch

    def on_train_begin(self, logs=None):
        CrashAt.calls += 1

    def on_train_batch_end(self, batch, logs=None):
        if CrashAt.calls == self.epoch and batch + 1 == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


def tiny_config(**kw):
    cfg = get_preset("smoke", model=ModelConfig(head="slim", input_size=32), finetune_epochs=3, finetune_batch=4)
    return replace(cfg, **kw)


if __name__ == "__main__":
    run_dir, resume = sys.argv[1], "--resume" in sys.argv
    train, val = tiny_sets()
    callbacks = []
    if os.environ.get("CRASH_AT"):
        e, b = map(int, os.environ["CRASH_AT"].split(":"))
        callbacks.append(CrashAt(e, b))
    model = train_model(tiny_config(), train, val, run_dir, weights=None, resume=resume, callbacks=callbacks)
    np.save(os.path.join(run_dir, "final_weights.npy"), np.concatenate([w.ravel() for w in model.get_weights()]))
