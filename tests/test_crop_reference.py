"""The OpenCV reference crop: box on synthetic images, fallback, and a slice of real BR35H."""

import numpy as np
import pytest

from edge_runtime.config import CropConfig
from edge_runtime.image_io import load_rgb
from tests.conftest import synthetic_mri
from train.data.crop_cv import crop_image, find_box


def test_box_encloses_bright_region_exactly():
    img = np.zeros((100, 120, 3), np.uint8)
    img[20:61, 30:91] = 200  # rows 20..60, cols 30..90 inclusive
    box = find_box(img)
    assert not box.fallback
    # Blur spreads the edge by ~1 px, erode/dilate restores it: allow 1 px.
    assert abs(box.left - 30) <= 1 and abs(box.right - 91) <= 1
    assert abs(box.top - 20) <= 1 and abs(box.bottom - 61) <= 1


def test_largest_region_wins():
    img = np.zeros((100, 100, 3), np.uint8)
    img[5:15, 5:15] = 255  # small
    img[40:95, 30:90] = 255  # large
    box = find_box(img)
    assert box.top >= 35 and box.left >= 25


def test_black_image_falls_back_to_whole_image():
    out, box = crop_image(np.zeros((50, 70, 3), np.uint8))
    assert box.fallback and box.as_tuple() == (0, 0, 70, 50)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8


def test_synthetic_mri_crop_is_tight():
    img = synthetic_mri((200, 160), seed=3)
    _, box = crop_image(img, CropConfig(size=64))
    assert 0 < box.left < 60 and 100 < box.right < 160
    assert box.width < 160 and box.height < 200


def test_real_slice_crops(br35h_root):
    paths = sorted((br35h_root / "yes").glob("*.jpg"))[:10] + sorted((br35h_root / "no").glob("*.jpg"))[:10]
    for p in paths:
        out, box = crop_image(load_rgb(p))
        assert out.shape == (224, 224, 3)
        assert not box.fallback, p
        assert box.width > 20 and box.height > 20, (p, box)
