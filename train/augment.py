"""Scanner and sequence variation as augmentation: gamma, bias field, noise, lost resolution.

Why: BR35H's slices come from a narrow set of scanners and windowings, so a model trained on
them can key on intensity habits rather than anatomy (other collections' normals were called
"tumour" at full confidence). These transforms imitate what differs between sites without
moving anatomy: a windowing curve (gamma), a smooth multiplicative coil inhomogeneity (bias
field), acquisition noise, and thicker slices / smaller matrices (down- then up-sampling).
Backend-neutral Keras ops with a seed generator, so ``tf.data`` and ``PyDataset`` draw alike.
"""

from __future__ import annotations

import functools


@functools.cache
def scanner_augment_class():
    """Defined on first use so importing this module does not import Keras."""
    import keras
    from keras import ops

    class ScannerAugment(keras.layers.Layer):
        """Per-image random intensity transforms on 0..255 RGB batches.

        Args:
            gamma: log-gamma half-range; each image gets ``x ** exp(U(-gamma, gamma))`` on 0..1.
            bias_field: half-range of a 4x4 log-field upsampled bilinearly to the image.
            noise: largest Gaussian noise std (0..255 units); each image draws its std in [0, noise].
            lowres: probability that an image is halved and upsampled again (bilinear).
        """

        def __init__(self, gamma=0.0, bias_field=0.0, noise=0.0, lowres=0.0, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.gamma, self.bias_field, self.noise, self.lowres = gamma, bias_field, noise, lowres
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, x, training=True):
            if not training:
                return x
            shape = ops.shape(x)
            n, h, w = shape[0], x.shape[1], x.shape[2]
            x01 = ops.clip(x / 255.0, 0.0, 1.0)
            if self.gamma:
                g = ops.exp(keras.random.uniform((n, 1, 1, 1), -self.gamma, self.gamma, seed=self.seed_generator))
                x01 = ops.power(x01, g)
            if self.bias_field:
                coarse = keras.random.uniform((n, 4, 4, 1), -self.bias_field, self.bias_field, seed=self.seed_generator)
                x01 = x01 * ops.exp(ops.image.resize(coarse, (h, w), interpolation="bilinear"))
            if self.lowres:
                small = ops.image.resize(x01, (h // 2, w // 2), interpolation="bilinear", antialias=True)
                blurred = ops.image.resize(small, (h, w), interpolation="bilinear")
                pick = keras.random.uniform((n, 1, 1, 1), seed=self.seed_generator) < self.lowres
                x01 = ops.where(pick, blurred, x01)
            if self.noise:
                std = keras.random.uniform((n, 1, 1, 1), 0.0, self.noise / 255.0, seed=self.seed_generator)
                x01 = x01 + std * keras.random.normal(ops.shape(x01), seed=self.seed_generator)
            return ops.clip(x01, 0.0, 1.0) * 255.0

        def get_config(self):
            return {**super().get_config(), "gamma": self.gamma, "bias_field": self.bias_field,
                    "noise": self.noise, "lowres": self.lowres}

    return ScannerAugment
