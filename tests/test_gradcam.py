"""Grad-CAM on a tiny random MobileNetV2 (96 px -> 3x3 conv map): graph split, range, classes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import synthetic_mri

pytestmark = pytest.mark.slow
SIZE = 96


@pytest.fixture(scope="module")
def tiny():
    import keras

    from train.model import ModelConfig, build_model, feature_extractor, head_of

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(head="slim", input_size=SIZE), weights=None)
    images = np.stack([synthetic_mri((SIZE, SIZE), seed=i, tumour=i % 2 == 1) for i in range(4)]).astype(np.float32)
    # A random-init MobileNetV2's activations decay to ~1e-11, so every softmax is 0.5; rescale
    # the classifier so the logits are O(1) and the predicted class is well defined.
    feats = feature_extractor(model)(images).numpy()
    cls = head_of(model).get_layer("classifier")
    rng = np.random.default_rng(0)
    cls.kernel.assign(rng.normal(size=cls.kernel.shape) / (feats.std() * np.sqrt(feats.shape[1])))
    probs = model(images).numpy()
    assert np.abs(probs[:, 1] - 0.5).min() > 1e-3
    return model, images


def test_split_reproduces_the_model(tiny):
    import tensorflow as tf

    from train.gradcam import split_model

    model, x = tiny
    front, tail = split_model(model)
    a = front(tf.constant(x))
    assert tuple(a.shape) == (4, 3, 3, 1280)  # out_relu of the base
    np.testing.assert_allclose(tf.nn.softmax(tail(a)).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-6)


def test_heatmaps_shape_range_and_class_dependence(tiny):
    from train.gradcam import gradcam

    model, x = tiny
    maps, cls = gradcam(model, x)
    assert maps.shape == (4, SIZE, SIZE) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    np.testing.assert_array_equal(cls, model(x).numpy().argmax(1))  # default: the predicted class
    # Two classes: the margin for "no" is minus the one for "yes", so the channel weights flip
    # sign and the two maps must have disjoint support; at least one shows real structure.
    m0, _ = gradcam(model, x, class_index=0, upsample=False)
    m1, _ = gradcam(model, x, class_index=1, upsample=False)
    assert np.all(m0 * m1 == 0)
    assert any(m.max() == 1.0 and m.min() < 1.0 for m in np.concatenate([m0, m1]))
    assert not np.array_equal(m0, m1)


def test_overlay_is_rgb_uint8_and_tracks_heat():
    from train.gradcam import overlay

    img = np.full((40, 60, 3), 128, np.uint8)
    hm = np.zeros((4, 6), np.float32)
    hm[:2, :3] = 1.0  # hot top-left quarter
    out = overlay(img, hm, alpha=0.5)
    assert out.shape == img.shape and out.dtype == np.uint8
    # jet: 0 -> dark blue, 1 -> dark red; the hot corner is redder than the cold one
    assert out[2, 2, 0] > out[-3, -3, 0] and out[-3, -3, 2] > out[2, 2, 2]
    with pytest.raises(ValueError):
        overlay(img[..., 0], hm)
