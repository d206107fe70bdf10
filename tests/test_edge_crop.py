"""numpy crop vs the OpenCV reference: each step bit-exact, boxes equal on hard synthetic cases."""

import cv2
import numpy as np
import pytest

from edge_runtime import crop as npc
from edge_runtime.config import CropConfig
from edge_runtime.image_io import load_rgb
from tests.conftest import synthetic_mri
from train.data import crop_cv


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def test_gray_is_bit_exact_on_random_colours():
    rgb = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    assert np.array_equal(npc.to_gray(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (2, 3), (5, 5), (37, 61), (256, 200)])
def test_blur_is_bit_exact(shape):
    gray = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(npc.gaussian_blur(gray, 5, CropConfig().blur_sigma), cv2.GaussianBlur(gray, (5, 5), 0))


@pytest.mark.parametrize("seed", range(4))
def test_mask_is_bit_exact(seed):
    rgb = synthetic_mri((120 + 13 * seed, 90 + 7 * seed), seed=seed, tumour=seed % 2 == 1)
    rgb[::7, ::5] = 0  # speckle so morphology at borders and holes matters
    assert np.array_equal(npc.brain_mask(rgb), crop_cv.brain_mask(rgb, CropConfig()) > 0)


def _ring(h=200, w=180):
    """Skull ring enclosing a larger-by-pixels brain blob: OpenCV's external contour is the ring."""
    g = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    g[(r > 80) & (r < 86)] = 200
    g[r < 60] = 150
    return _rgb(g)


def _two_blobs_near_tie():
    """A compact square vs a ragged comb with more pixels but less contour area."""
    g = np.zeros((160, 260), np.uint8)
    g[20:120, 10:110] = 200  # 100x100 square
    for c in range(130, 250, 12):  # comb: teeth joined by a spine, ~pixel-heavy, thin
        g[10:150, c : c + 7] = 200
    g[140:150, 130:250] = 200
    return _rgb(g)


@pytest.mark.parametrize(
    "make",
    [_ring, _two_blobs_near_tie, lambda: synthetic_mri((180, 150), seed=5), lambda: _rgb(np.full((40, 30), 200, np.uint8))],
    ids=["ring", "near-tie", "mri", "all-bright"],
)
def test_box_matches_opencv(make):
    rgb = make()
    assert npc.find_box(rgb) == crop_cv.find_box(rgb)


def test_exact_tie_goes_where_opencv_puts_it():
    g = np.zeros((60, 80), np.uint8)
    g[5:20, 5:20] = g[30:45, 50:65] = 200  # two identical squares
    assert npc.find_box(_rgb(g)) == crop_cv.find_box(_rgb(g))


def test_black_image_is_flagged_fallback_with_whole_image():
    out, box = npc.crop_image(np.zeros((50, 70, 3), np.uint8))
    assert box.fallback and box.as_tuple() == (0, 0, 70, 50)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8


def test_one_pixel_image():
    out, box = npc.crop_image(np.full((1, 1, 3), 200, np.uint8))
    assert box.as_tuple() == (0, 0, 1, 1) and out.shape == (224, 224, 3)


def test_components_label_diagonal_touch_as_one_region():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # 8-connected staircase
    mask[4, 4:6] = True  # separate
    rows, starts, ends = npc._runs(mask)
    eight = npc._components(rows, starts, ends, 6, diagonal=True)
    four = npc._components(rows, starts, ends, 6, diagonal=False)
    assert len(set(eight.tolist())) == 2 and len(set(four.tolist())) == 4


def test_real_slice_boxes_match(br35h_root):
    paths = sorted((br35h_root / "yes").glob("*.jpg"))[:8] + sorted((br35h_root / "no").glob("*.jpg"))[:8]
    for p in paths:
        rgb = load_rgb(p)
        assert npc.find_box(rgb) == crop_cv.find_box(rgb), p
