"""The paper's brain crop in numpy only, integer-exact to OpenCV where it is cheap.

Same steps as ``train/data/crop_cv.py`` (the reference; ``python -m benchmarks.parity`` measures the
two against each other on all of BR35H):

- gray: OpenCV's fixed-point ``COLOR_RGB2GRAY``, ``(9798 R + 19235 G + 3735 B + 2^14) >> 15``
  (the 15-bit table OpenCV's SIMD path uses; the 14-bit one differs on ~1 pixel in 10^5);
- blur: ``GaussianBlur(k, sigma=0)`` on uint8 uses, for k <= 7, binomial taps ([1 4 6 4 1]/16
  for k=5) in fixed point with round-half-up and ``BORDER_REFLECT_101``: bit-exact in integers;
- threshold: strictly greater than ``cfg.threshold``;
- erode / dilate: n passes of a 3x3 square = one (2n+1)-square min / max filter, pixels
  outside the image ignored (OpenCV's default border value for morphology);
- largest region: what ``findContours(RETR_EXTERNAL)`` + ``max(contourArea)`` picks, see
  :func:`find_box`. Everything after the mask works on row runs, not pixels: labelling is a
  vectorised hook-and-compress union over runs that touch in adjacent rows;
- box: extreme points, half-open.

``CropConfig.analysis_min_side > 0`` runs the mask and search on a reduced gray image instead
(:func:`box_of_gray`): not the training crop, an opt-in measured by ``benchmarks/prep_parity.py``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .config import CropBox, CropConfig
from .image_io import crop_and_resize, crop_and_resize_gray

# OpenCV's small-kernel table for sigma <= 0 (getGaussianKernel): binomial, exact in fixed point.
_BINOMIAL = {1: (1,), 3: (1, 2, 1), 5: (1, 4, 6, 4, 1), 7: (1, 6, 15, 20, 15, 6, 1)}
_GRAY_WEIGHTS = np.array([9798, 19235, 3735], np.float32)  # OpenCV's R, G, B weights << 15


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxW from uint8 HxWx3, bit-exact to ``cv2.COLOR_RGB2GRAY``.

    float32 is exact here (every partial sum < 2^24) and its matmul is ~4x faster than uint32.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    return ((rgb.astype(np.float32) @ _GRAY_WEIGHTS + 16384.0) * (1.0 / 32768.0)).astype(np.uint8)


def gray_channel(rgb: np.ndarray) -> np.ndarray | None:
    """Channel 0 when R = G = B at every pixel (then it *is* :func:`to_gray`'s result), else None.

    OpenCV's weights sum to 2^15, so a grey pixel maps to itself. Most MRI slices are stored as
    RGB with equal channels; the check XORs each byte with the next along a row and keeps the
    (R^G, G^B) bytes of each pixel: contiguous passes, ~4x cheaper than the weighted sum.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    if h == 0 or w == 0 or not rgb.flags.c_contiguous:
        return rgb[:, :, 0] if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(
            rgb[:, :, 1], rgb[:, :, 2]) else None
    rows = rgb.reshape(h, 3 * w)
    diff = np.bitwise_xor(rows[:, 1:], rows[:, :-1])
    diff &= np.tile(np.array([255, 255, 0], np.uint8), w)[:-1]  # ignore B ^ next pixel's R
    return None if diff.any() else rgb[:, :, 0]


def gray_of(rgb: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(to_gray(rgb), True when all channels are equal)``; the gray is a view in that case."""
    g = gray_channel(rgb)
    return (to_gray(rgb), False) if g is None else (g, True)


def _gaussian_taps(k: int, sigma: float) -> np.ndarray:
    """Integer taps: OpenCV's binomial table for k <= 7, else the float kernel scaled to 2^8."""
    if k in _BINOMIAL:
        return np.array(_BINOMIAL[k], np.int64)
    x = np.arange(k) - (k - 1) / 2
    w = np.exp(-(x**2) / (2 * sigma**2))
    return np.maximum(np.round(w / w.sum() * 256), 1).astype(np.int64)  # approximate beyond 7


def _reflect101(n: int, r: int) -> np.ndarray:
    """Source indices of ``[-r, n + r)`` under BORDER_REFLECT_101 (``dcb|abcd|cba``), any ``n``.

    Fancy indexing with these is ~10x faster than ``np.pad(mode="reflect")`` on small images.
    """
    i = np.arange(-r, n + r)
    if n == 1:
        return np.zeros_like(i)
    j = np.abs(i) % (2 * n - 2)
    return np.where(j >= n, 2 * n - 2 - j, j)


def _blur_sum(gray: np.ndarray, k: int, sigma: float) -> tuple[np.ndarray, int, type]:
    """The separable integer Gaussian's unnormalised sum (reflect-101 borders), its norm and dtype."""
    taps = _gaussian_taps(k, sigma)
    norm = int(taps.sum()) ** 2
    dtype = np.uint16 if 255 * norm + norm // 2 < 2**16 else np.int64  # k=5: 255 * 256 + 128 fits
    h, w = gray.shape
    padded = gray[_reflect101(h, k // 2)][:, _reflect101(w, k // 2)].astype(dtype)
    rows = padded[:, :w] * dtype(taps[0])
    for i in range(1, k):
        rows += padded[:, i : i + w] * dtype(taps[i])
    acc = rows[:h] * dtype(taps[0])
    for i in range(1, k):
        acc += rows[i : i + h] * dtype(taps[i])
    return acc, norm, dtype


def gaussian_blur(gray: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """Separable integer Gaussian with reflect-101 borders, rounded half up."""
    if k == 1:
        return gray.copy()
    acc, norm, dtype = _blur_sum(gray, k, sigma)
    acc += dtype(norm // 2)
    shift = norm.bit_length() - 1
    acc = acc >> dtype(shift) if norm == 1 << shift else acc // dtype(norm)  # k <= 7: a shift
    return acc.astype(np.uint8)


def _box_filter(mask: np.ndarray, radius: int, erode: bool) -> np.ndarray:
    """Square min (erode) or max (dilate) filter on a bool mask; outside pixels are ignored.

    Shifted in-place AND/OR of overlapping slices: an out-of-image neighbour simply never
    takes part, which is OpenCV's default morphology border.
    """
    op = np.logical_and if erode else np.logical_or
    out = mask
    for axis in (0, 1):
        src, out = out, out.copy()
        for d in range(1, radius + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(None, -d), slice(d, None)
            op(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            op(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
    return out


def blur_above(gray: np.ndarray, k: int, sigma: float, threshold: int) -> np.ndarray:
    """``gaussian_blur(gray, k, sigma) > threshold`` without rounding and narrowing the blur.

    The rounded value ``(acc + norm // 2) // norm`` exceeds ``t`` exactly when
    ``acc >= (t + 1) * norm - norm // 2``: one comparison on the accumulator instead of three
    passes (add, shift, cast) and a comparison.
    """
    if k == 1:
        return gray > threshold
    acc, norm, _ = _blur_sum(gray, k, sigma)
    return acc >= (threshold + 1) * norm - norm // 2


def mask_of_gray(gray: np.ndarray, cfg: CropConfig = CropConfig()) -> np.ndarray:
    """:func:`brain_mask` of an image whose gray version is ``gray``."""
    mask = blur_above(gray, cfg.blur_ksize, cfg.blur_sigma, cfg.threshold)
    mask = _box_filter(mask, cfg.erode_iterations, erode=True)
    return _box_filter(mask, cfg.dilate_iterations, erode=False)


def brain_mask(rgb: np.ndarray, cfg: CropConfig = CropConfig()) -> np.ndarray:
    """Bool mask the region search runs on (True = brain), equal to the OpenCV reference's."""
    return mask_of_gray(gray_of(rgb)[0], cfg)


# --- row runs ------------------------------------------------------------------------------
# A set of pixels is (rows, starts, ends): one entry per horizontal run, ends exclusive,
# sorted in raster order. Connectivity, hole filling and areas are computed on these.


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True in a 2-D bool mask."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)  # +1 at a run start, -1 one past its end: they alternate
    edges = np.flatnonzero(d)
    rows, starts = np.divmod(edges[0::2], w + 1)
    return rows, starts, edges[1::2] % (w + 1)


def _complement(rows, starts, ends, height: int, width: int):
    """Runs of the pixels *not* covered, in a ``height x width`` grid; empty gaps dropped."""
    all_rows = np.arange(height)
    gap_rows = np.concatenate([all_rows, rows])
    gap_starts = np.concatenate([np.zeros(height, np.int64), ends])
    gap_ends = np.concatenate([starts, np.full(height, width, np.int64)])
    # Gap k of a row starts at the end of run k-1 (or 0) and ends at the start of run k (or width).
    o1 = np.argsort(gap_rows * (width + 1) + gap_starts, kind="stable")
    o2 = np.argsort(np.concatenate([rows, all_rows]) * (width + 1) + gap_ends, kind="stable")
    r, s, e = gap_rows[o1], gap_starts[o1], gap_ends[o2]
    keep = e > s
    return r[keep], s[keep], e[keep]


def _components(rows, starts, ends, width: int, diagonal: bool) -> np.ndarray:
    """Component label (smallest run index) of every run; 8- or 4-connectivity across rows."""
    n = len(rows)
    if n == 0:
        return np.zeros(0, np.int64)
    stride = width + 2
    s_key, e_key = rows * stride + starts, rows * stride + ends
    slack = 1 if diagonal else 0
    # The next row's runs overlapping run i (widened by one for diagonal steps) are a slice.
    lo = np.searchsorted(e_key, (rows + 1) * stride + starts - slack, side="right")
    hi = np.searchsorted(s_key, (rows + 1) * stride + ends + slack, side="left")
    count = np.maximum(hi - lo, 0)
    src = np.repeat(np.arange(n), count)
    dst = np.repeat(lo - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
    label = np.arange(n)
    while True:  # hook larger roots under smaller ones, then compress paths fully
        lu, lv = label[src], label[dst]
        differ = lu != lv
        if not differ.any():
            return label
        np.minimum.at(label, np.maximum(lu[differ], lv[differ]), np.minimum(lu[differ], lv[differ]))
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped


def _paint(rows, starts, ends, shape: tuple[int, int]) -> np.ndarray:
    """Bool mask with the given runs set (inverse of :func:`_runs`)."""
    mask = np.zeros(shape, bool)
    lengths = ends - starts
    cols = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths - starts, lengths)
    mask[np.repeat(rows, lengths), cols] = True
    return mask


def _outer_border(outside: np.ndarray, rows, starts, ends, label_index, n_labels: int) -> np.ndarray:
    """Per region: pixels 4-adjacent to the outside background (``outside`` is framed)."""
    touch = outside[:-2, 1:-1] | outside[2:, 1:-1] | outside[1:-1, :-2] | outside[1:-1, 2:]
    r, c = np.nonzero(touch & ~outside[1:-1, 1:-1])
    stride = outside.shape[1] + 1
    run = np.searchsorted(rows * stride + starts, (r + 1) * stride + (c + 1), side="right") - 1
    return np.bincount(label_index[run], minlength=n_labels).astype(np.float64)


def _dominant_region_box(rows, starts, ends, width: int) -> CropBox | None:
    """Box of the largest 8-connected region when no other could outrank it, else None.

    After a dilation (>= 1 pass; the caller checks) every region is a union of squares of
    side >= 3, so its contour area is at least ~0.44 of its pixel count (0.64 for 5x5); a
    region whose whole bounding box is under half the largest region's pixels can neither
    enclose it nor out-area it, whatever its holes.
    """
    label = _components(rows, starts, ends, width, diagonal=True)
    _, index = np.unique(label, return_inverse=True)
    n = int(index.max()) + 1
    pixels = np.bincount(index, weights=ends - starts)
    top, left = np.full(n, rows.max()), np.full(n, width)
    bottom, right = np.zeros(n, rows.dtype), np.zeros(n, ends.dtype)
    np.minimum.at(top, index, rows)
    np.minimum.at(left, index, starts)
    np.maximum.at(bottom, index, rows + 1)
    np.maximum.at(right, index, ends)
    best = int(np.argmax(pixels))
    box_area = (bottom - top) * (right - left)
    box_area[best] = 0
    if box_area.max() >= 0.5 * pixels[best]:
        return None
    return CropBox(int(left[best]), int(top[best]), int(right[best]), int(bottom[best]))


def analysis_factor(height: int, width: int, cfg: CropConfig = CropConfig()) -> int:
    """Integer reduction the mask and region search run at (1 = full size, the training crop)."""
    if cfg.analysis_min_side <= 0:
        return 1
    return max(1, min(height, width) // cfg.analysis_min_side)


def box_of_gray(gray: np.ndarray, cfg: CropConfig = CropConfig()) -> CropBox:
    """The crop box from the gray image, at the size ``cfg.analysis_min_side`` asks for.

    Reduced by ``f``, a box ``[l, r)`` covers full-size pixels ``[l f, r f)``, clipped to the
    image (the last block of ``Image.reduce`` may be partial).
    """
    h, w = gray.shape
    f = analysis_factor(h, w, cfg)
    if f == 1:
        return box_of_mask(mask_of_gray(gray, cfg), cfg)
    small = np.asarray(Image.fromarray(np.ascontiguousarray(gray)).reduce(f))
    b = box_of_mask(mask_of_gray(small, cfg), cfg)
    if b.fallback:
        return CropBox(0, 0, w, h, fallback=True)
    return CropBox(b.left * f, b.top * f, min(w, b.right * f), min(h, b.bottom * f))


def find_box(rgb: np.ndarray, cfg: CropConfig = CropConfig()) -> CropBox:
    """Box of the region with the largest outer contour; whole image, ``fallback=True``, if none.

    ``findContours(RETR_EXTERNAL)`` sees a skull ring and the brain inside its hole as one
    contour enclosing both, so regions are the 8-connected components of the mask with its
    holes filled. ``contourArea`` of the polygon through the border pixels' centres is, by
    Pick's theorem, ``filled - B/2 - 1`` with B the outer-border pixels: regions are ranked by
    filled pixel count and, only when a runner-up is within a factor 2, by that exact area.
    A clearly dominant region (most slices) skips all of that, see :func:`_dominant_region_box`.
    """
    return box_of_gray(gray_of(rgb)[0], cfg)


def box_of_mask(mask: np.ndarray, cfg: CropConfig = CropConfig()) -> CropBox:
    """:func:`find_box`'s region search on an already computed :func:`brain_mask`."""
    h, w = mask.shape
    rows, starts, ends = _runs(mask)
    if len(rows) == 0:
        return CropBox(0, 0, w, h, fallback=True)
    box = _dominant_region_box(rows, starts, ends, w) if cfg.dilate_iterations >= 1 else None
    if box is not None:
        return box
    # Framed coordinates (one background pixel around the image) so the outside is one region.
    bg = _complement(rows + 1, starts + 1, ends + 1, h + 2, w + 2)
    bg_label = _components(*bg, w + 2, diagonal=False)
    out_sel = bg_label == bg_label[0]  # run 0 is the frame's top row
    outside = tuple(a[out_sel] for a in bg)
    filled = _complement(*outside, h + 2, w + 2)
    label = _components(*filled, w + 2, diagonal=True)
    ids, index = np.unique(label, return_inverse=True)
    area = np.bincount(index, weights=filled[2] - filled[1])
    if np.count_nonzero(area >= 0.5 * area.max()) > 1:
        area = area - 0.5 * _outer_border(_paint(*outside, (h + 2, w + 2)), *filled, index, len(ids))
    # Exact ties go to the region met last in raster order, as ``findContours`` lists
    # contours last-found first and ``max`` keeps the first maximum.
    sel = index == len(area) - 1 - int(np.argmax(area[::-1]))
    r, s, e = (a[sel] - 1 for a in filled)
    return CropBox(int(s.min()), int(r.min()), int(e.max()), int(r.max()) + 1)


#: Smallest image side (pixels) that can hold a brain slice worth classifying: below it the crop
#: would be an upscaled handful of pixels. The smallest BR35H / Nickparvar side is far above.
MIN_SIDE = 32
#: A crop box spanning the whole frame (the mask touches all four borders, or covers everything)
#: is degenerate when the frame is also flat: gray standard deviation under this many levels. Flat
#: and full: all-white, constant grey above the threshold, a mask over everything. Not the mask
#: share alone: 13 BR35H FLAIR scans (and Nickparvar ones) have a grey background above the
#: threshold, so their mask covers > 97 % of the frame; their gray std is >= 39.
FLAT_STD = 8.0


def degenerate(rgb: np.ndarray, box: CropBox, cfg: CropConfig = CropConfig(),
               gray: np.ndarray | None = None) -> str | None:
    """Why an image holds no brain to classify even though :func:`find_box` returned a box, else None.

    The rule (checked in this order): no mask at all (``box.fallback``: all-black, dark images);
    an image side under :data:`MIN_SIDE` (1x1, 2x2, 1x500 ...); a box spanning the whole frame
    on a flat image (gray std < :data:`FLAT_STD`: all-white, flat grey, a mask over everything).
    The std is computed only when the box is the whole frame, so the common case costs nothing
    (``gray``, when given, is ``to_gray(rgb)`` already computed).
    Measured on all 3000 BR35H and 7019 Nickparvar images: never true (smallest side 150 px;
    smallest gray std of a whole-frame box 39), so crop boxes and parity with training are
    untouched; this only adds the flag.
    """
    h, w = rgb.shape[:2]
    if box.fallback:
        return "no brain region found"
    if min(h, w) < MIN_SIDE:
        return f"image {w}x{h} is smaller than {MIN_SIDE} px on a side"
    if box.as_tuple() == (0, 0, w, h):
        std = float((to_gray(rgb) if gray is None else gray).std())
        if std < FLAT_STD:
            return f"the crop is the whole frame and the image is flat (gray std {std:.1f} < {FLAT_STD:g})"
    return None


def crop_image(rgb: np.ndarray, cfg: CropConfig = CropConfig()) -> tuple[np.ndarray, CropBox]:
    """``(size x size x 3 uint8, box)`` for one decoded RGB image, like the training crop.

    A :func:`degenerate` input keeps its box (the pixels classified are the training crop's) but
    is flagged ``fallback=True`` ("no brain found"), so it is never reported as in domain.

    The gray image is computed once for the mask, the degenerate check and, when the three
    channels are equal (most slices), a one-channel resize: the same pixels, less work.
    """
    gray, is_gray = gray_of(rgb)
    box = box_of_gray(gray, cfg)
    if not box.fallback and degenerate(rgb, box, cfg, gray) is not None:
        box = CropBox(*box.as_tuple(), fallback=True)
    if is_gray:
        return crop_and_resize_gray(gray, box, cfg.size, cfg.resample), box
    return crop_and_resize(rgb, box, cfg.size, cfg.resample), box
