"""Decoding an image file into an RGB uint8 array, with errors that name the file and reason.

Training and the device both decode through this function, so a model sees the same pixels
on a Pi as it did on the desktop (OpenCV's and Pillow's JPEG decoders differ by a few grey
levels). Everything Pillow can open is accepted and normalised to 8-bit RGB; anything else
raises :class:`ImageDecodeError`, never a bare Pillow exception.
"""

from __future__ import annotations

from pathlib import Path
import warnings

import numpy as np
from PIL import Image

from .config import CropBox

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class ImageDecodeError(ValueError):
    """An input file could not be turned into an RGB image; ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _to_rgb(img: Image.Image, path: str | Path) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit medical exports: stretch the used range to 0..255 rather than
        # clipping (clipping turns a 12-bit MRI into an almost white picture).
        arr = np.asarray(img, dtype=np.float64)
        if arr.ndim != 2:
            raise ImageDecodeError(path, f"unsupported {mode} image with shape {arr.shape}")
        finite = np.isfinite(arr)
        if not finite.any():
            raise ImageDecodeError(path, "image holds no finite pixel values")
        lo, hi = float(arr[finite].min()), float(arr[finite].max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        gray = np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Transparent pixels become black, the background of an MRI slice.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def load_rgb(path: str | Path, max_pixels: int = 50_000_000) -> np.ndarray:
    """Decode ``path`` into an ``(H, W, 3)`` uint8 RGB array.

    Raises:
        ImageDecodeError: empty, missing, not an image, truncated, larger than
            ``max_pixels``, or an unsupported pixel format.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ImageDecodeError(p, f"cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageDecodeError(p, "file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageDecodeError(
                        p, f"image is {w}x{h} = {w * h} pixels, above the limit of {max_pixels}"
                    )
                if w < 1 or h < 1:
                    raise ImageDecodeError(p, f"image has no pixels ({w}x{h})")
                img.load()
                return _to_rgb(img, p)
    except ImageDecodeError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise ImageDecodeError(p, "not an image Pillow can identify") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(p, f"image too large to decode safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated").
        raise ImageDecodeError(p, f"corrupt or truncated image data ({exc})") from exc


def crop_and_resize(rgb: np.ndarray, box: CropBox, size: int, resample: str = "bicubic") -> np.ndarray:
    """Cut ``box`` out of ``rgb`` and resize it to ``size x size`` RGB uint8 with Pillow.

    One function for both the training path and the device path: the resize is the largest
    source of pixel differences between otherwise identical pipelines.
    """
    region = rgb[box.top : box.bottom, box.left : box.right]
    if region.size == 0:
        raise ValueError(f"empty crop box {box.as_tuple()} for image of shape {rgb.shape}")
    out = Image.fromarray(np.ascontiguousarray(region)).resize((size, size), _RESAMPLE[resample])
    return np.asarray(out, dtype=np.uint8)
