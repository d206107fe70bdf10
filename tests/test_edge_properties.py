"""Property tests: random arrays into the crop, random bytes into the decoder.

The only acceptable failure of the decoder is ImageDecodeError; the crop accepts any HxWx3
uint8 array and returns a valid box, and its mask stays bit-exact to OpenCV's.
"""

import io

from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import arrays
import numpy as np
from PIL import Image

from edge_runtime import crop as npc
from edge_runtime.config import CropConfig
from edge_runtime.image_io import ImageDecodeError, load_rgb
from train.data import crop_cv

CFG = CropConfig(size=32)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

images = st.tuples(st.integers(1, 48), st.integers(1, 48)).flatmap(
    lambda hw: arrays(np.uint8, (*hw, 3), elements=st.sampled_from([0, 10, 40, 46, 90, 200, 255]))
)


@FAST
@given(images)
def test_crop_of_any_array_is_valid_and_mask_exact(rgb):
    out, box = npc.crop_image(rgb, CFG)
    h, w = rgb.shape[:2]
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert 0 <= box.left < box.right <= w and 0 <= box.top < box.bottom <= h
    mask = npc.brain_mask(rgb, CFG)
    assert np.array_equal(mask, crop_cv.brain_mask(rgb, CFG) > 0)
    found = npc.find_box(rgb, CFG)  # the crop keeps this box; a degenerate input only gets the flag
    assert box.as_tuple() == found.as_tuple() and found.fallback == (not mask.any())
    assert box.fallback == (found.fallback or npc.degenerate(rgb, found, CFG) is not None)
    if not found.fallback:  # the box always holds foreground on each of its edges
        inner = mask[box.top : box.bottom, box.left : box.right]
        assert inner[0].any() and inner[-1].any() and inner[:, 0].any() and inner[:, -1].any()


blobs = st.tuples(st.integers(2, 20), st.integers(2, 20)).flatmap(
    lambda hw: arrays(np.bool_, hw)
)


@FAST
@given(blobs, st.integers(0, 2))
def test_box_equals_opencv_on_random_blob_masks(cells, passes):
    """Many similar regions, holes, near and exact ties: the hard cases for region choice."""
    rgb = np.repeat(np.kron(cells.astype(np.uint8) * 200, np.ones((3, 3), np.uint8))[:, :, None], 3, axis=2)
    cfg = CropConfig(size=32, erode_iterations=passes, dilate_iterations=passes)
    assert npc.find_box(rgb, cfg) == crop_cv.find_box(rgb, cfg)


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(buf, fmt)
    return buf.getvalue()


HEADERS = [b"", _encoded("PNG")[:16], _encoded("JPEG")[:20], b"GIF89a", b"BM", b"II*\x00"]


@FAST
@given(st.sampled_from(HEADERS), st.binary(max_size=400), st.sampled_from(["PNG", "JPEG", "BMP", None]), st.integers(0, 400))
def test_decoder_on_random_bytes_only_raises_documented_error(tmp_path, header, tail, fmt, cut):
    data = header + tail if fmt is None else (_encoded(fmt)[:cut] + tail)
    path = tmp_path / "fuzz.img"
    path.write_bytes(data)
    try:
        rgb = load_rgb(path, max_pixels=1_000_000)
    except ImageDecodeError as exc:
        assert exc.path == str(path) and exc.reason
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.size > 0
