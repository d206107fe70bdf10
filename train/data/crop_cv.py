"""The paper's brain crop with OpenCV: the reference the numpy edge path is measured against.

gray -> Gaussian blur -> binary threshold -> erode x2 -> dilate x2 -> largest external
contour -> its extreme left/right/top/bottom points -> crop -> resize (Pillow, shared with the
edge runtime, see ``edge_runtime.image_io.crop_and_resize``).

Deviation from the popular notebooks, on purpose: they slice ``img[top:bottom, left:right]``
and so drop the bottom row and right column of the extreme points; we keep them (half-open box
``right = extreme_x + 1``). It also means a one-pixel region never yields an empty crop.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.config import CropBox, CropConfig
from edge_runtime.image_io import crop_and_resize


def brain_mask(rgb: np.ndarray, cfg: CropConfig) -> np.ndarray:
    """The binary mask (uint8, 0/255) the contour search runs on."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    k = cfg.blur_ksize
    blurred = cv2.GaussianBlur(gray, (k, k), 0)
    _, mask = cv2.threshold(blurred, cfg.threshold, 255, cv2.THRESH_BINARY)
    if cfg.erode_iterations:
        mask = cv2.erode(mask, None, iterations=cfg.erode_iterations)
    if cfg.dilate_iterations:
        mask = cv2.dilate(mask, None, iterations=cfg.dilate_iterations)
    return mask


def find_box(rgb: np.ndarray, cfg: CropConfig = CropConfig()) -> CropBox:
    """Crop box of the largest external contour; the whole image (flagged) if there is none."""
    import cv2

    h, w = rgb.shape[:2]
    mask = brain_mask(rgb, cfg)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return CropBox(0, 0, w, h, fallback=True)
    c = max(contours, key=cv2.contourArea)[:, 0, :]  # (N, 2) as (x, y)
    left, right = int(c[:, 0].min()), int(c[:, 0].max()) + 1
    top, bottom = int(c[:, 1].min()), int(c[:, 1].max()) + 1
    return CropBox(left, top, right, bottom)


def crop_image(rgb: np.ndarray, cfg: CropConfig = CropConfig()) -> tuple[np.ndarray, CropBox]:
    """``(size x size x 3 uint8, box)`` for one decoded RGB image."""
    box = find_box(rgb, cfg)
    return crop_and_resize(rgb, box, cfg.size, cfg.resample), box
