"""Grad-CAM (Selvaraju et al. 2017) for models built by :func:`train.model.build_model`.

The classic recipe ``keras.Model(model.input, [model.get_layer("out_relu").output, ...])``
fails here: ``out_relu`` lives inside the nested MobileNetV2 sub-model, and in Keras 3 an inner
layer's symbolic output belongs to the sub-model's own graph, not the outer one. So we split
the outer model where the base ends instead: ``front`` (scaling + base) gives the last conv
activations ``A`` (= ``out_relu``, the base's output), ``tail`` (pooling + head) maps ``A`` to
*logits*, and the tape watches ``A`` between the two.

Why logits and not the softmax: a model at 99 % accuracy is often so confident that the
softmax saturates in float32 and its gradient is exactly zero, leaving a blank map. We
rebuild the logits from the classifier's kernel and score class ``c`` by its margin
``z_c - mean(z_other)`` (for two classes: the log-odds), which is softmax-invariant.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from train.model import base_of, head_of


def split_model(model) -> tuple[Callable, Callable]:
    """``(front, tail)`` with ``softmax(tail(front(x))) == model(x)`` for build_model models."""
    import tensorflow as tf

    base, head = base_of(model), head_of(model)
    layers = [l for l in model.layers if l.__class__.__name__ != "InputLayer"]
    i_base, i_head = layers.index(base), layers.index(head)
    if i_head != len(layers) - 1:
        raise ValueError(f"{model.name}: the head must be the last layer for Grad-CAM")
    cls = head.layers[-1]
    if getattr(cls, "activation", None) is None or cls.activation.__name__ != "softmax":
        raise ValueError(f"{head.name}: last layer must be a softmax Dense to recover logits")
    import keras

    penult = keras.Model(head.input, cls.input)

    def front(x):
        for layer in layers[: i_base + 1]:
            x = layer(x, training=False)
        return x

    def tail(a):
        for layer in layers[i_base + 1 : i_head]:
            a = layer(a, training=False)
        h = penult(a, training=False)
        return tf.matmul(h, cls.kernel) + cls.bias

    return front, tail


def _margin(logits, class_index):
    """``z_c - mean_{j != c} z_j`` per row."""
    import tensorflow as tf

    k = logits.shape[-1]
    onehot = tf.one_hot(class_index, k, dtype=logits.dtype)
    z_c = tf.reduce_sum(logits * onehot, axis=-1)
    return z_c - (tf.reduce_sum(logits, axis=-1) - z_c) / (k - 1)


def gradcam(model, images: np.ndarray, class_index=None, batch_size: int = 16, upsample: bool = True):
    """Heatmaps in [0, 1] of where ``model`` found evidence for ``class_index``.

    ``images``: (N, S, S, 3) raw RGB 0..255. ``class_index``: None (each image's predicted
    class), an int, or an (N,) array. Returns ``(heatmaps, class_index)``: heatmaps (N, S, S)
    float32 (or at conv resolution when ``upsample=False``), each divided by its max; a map with
    no positive evidence anywhere is all zeros rather than noise blown up by normalization.
    """
    import tensorflow as tf

    front, tail = split_model(model)
    x_all = np.asarray(images)
    if x_all.ndim != 4 or x_all.shape[-1] != 3:
        raise ValueError(f"images must be (N, S, S, 3), got {x_all.shape}")
    targets = None if class_index is None else np.broadcast_to(np.asarray(class_index, np.int32), (len(x_all),))
    maps, classes = [], []
    for s in range(0, len(x_all), batch_size):
        x = tf.convert_to_tensor(x_all[s : s + batch_size], dtype=tf.float32)
        a = front(x)
        with tf.GradientTape() as tape:
            tape.watch(a)
            logits = tail(a)
            if targets is None:
                c = tf.argmax(logits, axis=-1, output_type=tf.int32)
            else:
                c = tf.constant(targets[s : s + batch_size])
            score = _margin(logits, c)
        grads = tape.gradient(score, a)  # each image's score depends only on its own A
        weights = tf.reduce_mean(grads, axis=(1, 2))  # (n, channels): global-average-pooled grads
        cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", a, weights))
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        cam = tf.where(peak > 0, cam / tf.where(peak > 0, peak, 1.0), 0.0)
        if upsample:
            cam = tf.image.resize(cam[..., None], x.shape[1:3], method="bilinear")[..., 0]
        maps.append(np.clip(cam.numpy(), 0.0, 1.0).astype(np.float32))
        classes.append(c.numpy())
    return np.concatenate(maps), np.concatenate(classes).astype(np.int64)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heatmap (any size; resized bilinearly) over an RGB uint8 image -> uint8."""
    import matplotlib
    from PIL import Image

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3), got {img.shape}")
    h, w = img.shape[:2]
    hm = np.asarray(Image.fromarray(np.asarray(heatmap, np.float32), mode="F").resize((w, h), Image.BILINEAR))
    colour = matplotlib.colormaps[cmap](np.clip(hm, 0, 1))[..., :3] * 255.0
    out = (1.0 - alpha) * img.astype(np.float32) + alpha * colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
