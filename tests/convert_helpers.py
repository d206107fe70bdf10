"""Tiny stand-ins for the conversion tests: a manifest, a crop loader and two Keras models of the
real contract (raw 0..255 RGB in, 2-way softmax out), small enough to convert in seconds."""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
from pathlib import Path

import numpy as np

from train.data.manifest import ManifestRow, write_manifest

SIZE = 32


def write_tiny_manifest(path: Path, n_train: int = 24, n_test: int = 16) -> Path:
    rows = []
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            label = ("no", "yes")[i % 2]
            p = f"{label}/{split}{i}.jpg"
            rows.append(ManifestRow(p, hashlib.sha256(p.encode()).hexdigest(), label, len(rows) // 2, split))
    return write_manifest(rows, path)


@dataclass
class FakeCrops:
    x: np.ndarray
    y: np.ndarray
    paths: list[str]


def _image(path: str, subtle: bool) -> np.ndarray:
    """``subtle``: a flat 200-gray image whose 64 marked pixels are 201 (yes) or 199 (no), i.e.
    classes that differ by 0.06 in mean brightness, far below one int8 step of a pooled activation."""
    rng = np.random.default_rng(int(hashlib.sha256(path.encode()).hexdigest()[:8], 16))
    yes = path.startswith("yes/")
    if subtle:
        img = np.full((SIZE, SIZE, 3), 200, np.uint8)
        idx = rng.choice(SIZE * SIZE, 64, replace=False)
        img.reshape(-1, 3)[idx] = 201 if yes else 199
        return img
    base = 170 if yes else 70
    img = np.clip(rng.normal(base, 25, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    img[0, 0], img[-1, -1] = 0, 255  # full pixel range, as MRI crops have
    return img


def fake_loader(subtle: bool = False):
    """Same call signature as ``train.data.cache.load_crops``; images derived from the path."""
    from train.data.manifest import read_manifest

    def load(manifest_path, split=None, data_root=None, cfg=None, cache_root=None, progress=True) -> FakeCrops:
        rows = [r for r in read_manifest(manifest_path) if split is None or r.split == split]
        return FakeCrops(np.stack([_image(r.path, subtle) for r in rows]), np.array([r.y for r in rows]),
                         [r.path for r in rows])

    return load


def brightness_model(subtle: bool = False):
    """Hand-set classifier: P(yes) rises with mean brightness. ``subtle`` puts the decision
    boundary between the two subtle classes with a huge gain: exact in float, lost in int8."""
    import keras
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_pm1")(inp)
    if not subtle:
        x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x + 1.0)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(2, activation="softmax", name="classifier")(x)
    model = keras.Model(inp, out, name="tiny_subtle" if subtle else "tiny_brightness")
    if subtle:
        gain, centre = 2e4, 200 / 127.5 - 1.0
        w = np.zeros((3, 2), np.float32)
        w[:, 0], w[:, 1] = -gain / 3, gain / 3
        model.get_layer("classifier").set_weights([w, np.array([gain * centre, -gain * centre], np.float32)])
    else:
        k = np.zeros((3, 3, 3, 4), np.float32)
        k[:, :, :, 0] = 1 / 27
        k[:, :, :, 1:] = np.random.default_rng(0).normal(0, 0.05, (3, 3, 3, 3))
        model.get_layer("conv").set_weights([k, np.zeros(4, np.float32)])
        w = np.zeros((4, 2), np.float32)
        w[0] = (-8.0, 8.0)
        model.get_layer("classifier").set_weights([w, np.array([8.0, -8.0], np.float32)])  # boundary at ~127 gray
    return model
