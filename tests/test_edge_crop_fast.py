"""The crop's fast paths give the same pixels and boxes as the step-by-step reference path."""

import numpy as np
import pytest

from edge_runtime import crop as npc
from edge_runtime.config import CropBox, CropConfig
from edge_runtime.image_io import crop_and_resize, crop_and_resize_gray
from tests.conftest import synthetic_mri

CFG = CropConfig()


def _reference_crop(rgb: np.ndarray, cfg: CropConfig = CFG):
    """The crop as composed before the fast paths: full gray, rounded blur, RGB resize."""
    mask = npc.gaussian_blur(npc.to_gray(rgb), cfg.blur_ksize, cfg.blur_sigma) > cfg.threshold
    mask = npc._box_filter(npc._box_filter(mask, cfg.erode_iterations, True), cfg.dilate_iterations, False)
    box = npc.box_of_mask(mask, cfg)
    if not box.fallback and npc.degenerate(rgb, box, cfg) is not None:
        box = CropBox(*box.as_tuple(), fallback=True)
    return crop_and_resize(rgb, box, cfg.size, cfg.resample), box


@pytest.mark.parametrize("where", [(0, 0, 0), (0, 0, 1), (5, 7, 2), (-1, -1, 1), (-1, -1, 2)])
def test_gray_channel_rejects_any_unequal_pixel(where):
    rgb = synthetic_mri((40, 30), seed=1)
    assert npc.gray_channel(rgb) is not None and np.array_equal(npc.gray_channel(rgb), npc.to_gray(rgb))
    y, x, c = where
    rgb[y, x, c] ^= 1
    assert npc.gray_channel(rgb) is None


def test_gray_channel_of_a_non_contiguous_view():
    rgb = synthetic_mri((60, 50), seed=2)[::2, ::3]
    assert np.array_equal(npc.gray_channel(rgb), npc.to_gray(rgb))


@pytest.mark.parametrize("resample", ["nearest", "bilinear", "bicubic", "lanczos"])
@pytest.mark.parametrize("box", [(0, 0, 90, 70), (3, 5, 61, 40), (10, 2, 11, 3)])
def test_gray_resize_is_the_rgb_resize(resample, box):
    gray = np.random.default_rng(3).integers(0, 256, (70, 90), dtype=np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    for size in (32, 224):  # a downscale and an upscale
        b = CropBox(*box)
        assert np.array_equal(crop_and_resize_gray(gray, b, size, resample), crop_and_resize(rgb, b, size, resample))


@pytest.mark.parametrize("k", [1, 3, 5, 7, 9])
@pytest.mark.parametrize("t", [0, 45, 254, 255])
def test_blur_above_is_the_rounded_blur_thresholded(k, t):
    gray = np.random.default_rng(k + t).integers(0, 256, (33, 47), dtype=np.uint8)
    gray[:5] = t  # values at the threshold, where rounding decides
    sigma = CropConfig(blur_ksize=k).blur_sigma
    assert np.array_equal(npc.blur_above(gray, k, sigma, t), npc.gaussian_blur(gray, k, sigma) > t)


@pytest.mark.parametrize("size", [(64, 48), (180, 150), (300, 420), (640, 600)])
@pytest.mark.parametrize("colour", [False, True])
def test_crop_image_equals_the_reference_composition(size, colour):
    rgb = synthetic_mri(size, seed=size[0], tumour=True)
    if colour:
        rgb[..., 2] = np.clip(rgb[..., 2].astype(int) + 9, 0, 255)  # a tinted scan takes the RGB path
        assert npc.gray_channel(rgb) is None
    out, box = npc.crop_image(rgb)
    ref_out, ref_box = _reference_crop(rgb)
    assert box == ref_box and np.array_equal(out, ref_out)
