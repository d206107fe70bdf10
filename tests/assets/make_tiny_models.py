"""Build the tiny TFLite models the edge runtime tests run on, so those tests need no TensorFlow.

They follow the project's model contract (input (1, 224, 224, 3) raw RGB 0..255, a Rescaling
layer inside, 2-way softmax in ``LABELS`` order) but are a few conv layers, untrained apart
from a fixed seed, each file well under 200 KB:

- ``tiny_float32.tflite``  float in / float out
- ``tiny_int8.tflite``     full int8, int8 in / int8 out (what the released model is)
- ``tiny_uint8.tflite``    full integer, uint8 in / uint8 out (older Coral-style exports)
- ``tiny_wrong_shape.tflite``  float, input (1, 96, 96, 3): must be refused by the runtime

Regenerate (needs the ``train`` or ``convert`` extra, i.e. TensorFlow; ~30 s):

    .venv/bin/python tests/assets/make_tiny_models.py            # writes next to this file
    .venv/bin/python tests/assets/make_tiny_models.py --out DIR
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build(size: int, seed: int = 0):
    """Few-conv classifier on raw 0..255 RGB; the bias makes the two classes score differently."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), batch_size=1, name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=4, activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs)


def representative(size: int, n: int = 16):
    """Calibration images: synthetic MRI-like slices so the int8 ranges cover real inputs."""
    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(n):
        yy, xx = np.mgrid[0:size, 0:size]
        inside = ((yy - size / 2) / (size * 0.4)) ** 2 + ((xx - size / 2) / (size * 0.35)) ** 2 <= 1
        img = np.where(inside, rng.uniform(60, 200), 0) + rng.normal(0, 20, (size, size))
        rgb = np.repeat(np.clip(img, 0, 255)[None, :, :, None], 3, axis=3).astype(np.float32)
        yield [rgb if i % 2 else rgb[:, ::-1]]


def convert(model, size: int, io_type=None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if io_type is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: representative(size)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    return converter.convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    import tensorflow as tf

    args.out.mkdir(parents=True, exist_ok=True)
    model = build(224)
    variants = {
        "tiny_float32.tflite": convert(model, 224),
        "tiny_int8.tflite": convert(model, 224, tf.int8),
        "tiny_uint8.tflite": convert(model, 224, tf.uint8),
        "tiny_wrong_shape.tflite": convert(build(96), 96),
    }
    for name, blob in variants.items():
        if len(blob) > 200_000:
            raise SystemExit(f"{name} is {len(blob)} bytes, above the 200 KB budget for test assets")
        (args.out / name).write_bytes(blob)
        print(f"{args.out / name}: {len(blob)} bytes")


if __name__ == "__main__":
    main()
