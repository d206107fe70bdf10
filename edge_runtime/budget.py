"""Memory a decode + crop will need, estimated from the image header before any pixel is read.

A small file can hold a huge image (a 95 KB 16-bit PNG of 7000x7000 px peaks at 1.75 GB), and
on a 1 GB Raspberry Pi running out of memory kills the whole process, not just one file. The
header gives width, height and pixel mode, which bound the working set: Pillow's own buffer,
the conversion to 8-bit RGB, and the numpy crop (float32 grey, blur and morphology buffers on
the full image). The per-pixel costs below were measured with ``python -m benchmarks.decode_memory``
(peak RSS growth per pixel on a 16 MP image, report `reports/edge/decode_memory.md`)
and rounded up: the estimate stays 1-8 bytes per pixel above the measurement.
"""

from __future__ import annotations

#: Bytes per pixel Pillow stores for a mode (RGB is padded to 4 bytes in Pillow's core).
_STORAGE = {"1": 1, "L": 1, "P": 1, "LA": 4, "PA": 4, "RGB": 4, "RGBA": 4, "RGBX": 4, "CMYK": 4, "YCbCr": 4,
            "LAB": 4, "HSV": 4, "I": 4, "F": 4, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: Extra bytes per pixel for turning that mode into an RGB uint8 numpy array (16/32-bit: a
#: float64 copy, its finite mask and the scaled copy; others: Pillow's converted copy + numpy).
_CONVERT_HIGH_DEPTH = 8 + 1 + 8 + 1 + 3
_CONVERT_OTHER = 4 + 3
#: Bytes per pixel of the numpy crop on the full decoded RGB image (measured peak, rounded up).
_CROP = 16


def estimate_bytes(width: int, height: int, mode: str) -> int:
    """Peak bytes to decode a ``width x height`` image in Pillow ``mode`` and crop it."""
    pixels = int(width) * int(height)
    high_depth = mode in ("I", "F") or mode.startswith("I;16")
    convert = _CONVERT_HIGH_DEPTH if high_depth else _CONVERT_OTHER
    return pixels * (_STORAGE.get(mode, 4) + convert + _CROP)


def mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.0f} MiB"
