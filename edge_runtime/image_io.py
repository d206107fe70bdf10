"""Decoding an image file into an RGB uint8 array, with errors that name the file and reason.

Training and the device both decode through this module, so a model sees the same pixels
on a Pi as it did on the desktop (OpenCV's and Pillow's JPEG decoders differ by a few grey
levels); the one deliberate difference is the device's reduced-size decode of large JPEGs
(``DecodeConfig.draft``, measured to change no label). Only the formats of :mod:`.formats` are decoded (recognised by their first bytes, not
their name), only within a memory budget computed from the header, and everything is normalised
to 8-bit RGB; anything else raises :class:`ImageDecodeError`, never a bare Pillow exception.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
import stat
import struct
import warnings

import numpy as np
from PIL import Image

from .budget import estimate_bytes, mib
from .config import CropBox
from .formats import ALLOWED_FORMATS, HEAD_BYTES, describe_unknown, sniff

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class ImageDecodeError(ValueError):
    """An input file could not be turned into an RGB image; ``reason`` says why.

    ``kind`` lets a watcher tell what may change on a later attempt: ``"io"`` (the file could
    not be read; ``errno`` set, e.g. a permission not yet granted), ``"corrupt"`` (bad or
    incomplete data: a file still being written looks like this), ``"refused"`` (format, size
    or memory limits) or ``"invalid"`` (anything else about the content).
    """

    def __init__(self, path: str | Path, reason: str, kind: str = "invalid", errno: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.kind = kind
        self.errno = errno
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


@dataclass(frozen=True)
class DecodeConfig:
    """Limits and options of the decode stage.

    Attributes:
        max_pixels: refuse images with more pixels than this (header check).
        memory_budget_mb: refuse an image whose estimated decode + crop working set
            (:func:`.budget.estimate_bytes`, from the header) exceeds this. 320 MiB leaves room
            for Python, numpy, the interpreter and the model on a 1 GB Raspberry Pi.
        draft: JPEG only: let libjpeg decode at 1/2, 1/4 or 1/8 size (DCT scaling) when the
            reduced image still has at least ``draft_min_side`` pixels on its shorter side: a
            7000 px JPEG then needs 1/64 of the memory. The crop is resized to 224 px anyway, so
            this changes no answer measured (``reports/edge/draft_parity*.md``: identical labels
            on validation and test, box within 3 px); :func:`load_rgb`, which training uses,
            never drafts.
        draft_min_side: shorter side the reduced image must keep (2 x the 224 px model input,
            so the crop is still downscaled, never upscaled, by the final resize).
    """

    max_pixels: int = 50_000_000
    memory_budget_mb: int = 320
    draft: bool = True
    draft_min_side: int = 448

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.memory_budget_mb < 1 or self.draft_min_side < 1:
            raise ValueError(f"decode limits must be positive, got {self}")


@dataclass(frozen=True)
class Decoded:
    """A decoded image: ``rgb`` at ``scale`` (1 = full size; 2, 4, 8 = JPEG draft decode) of
    the file's ``size`` (width, height)."""

    rgb: np.ndarray
    size: tuple[int, int]
    scale: float = 1.0


def _draft_scale(width: int, height: int, cfg: DecodeConfig) -> int:
    """Largest libjpeg reduction (8, 4, 2) keeping ``draft_min_side`` px on the shorter side."""
    for s in (8, 4, 2):
        if min(width, height) // s >= cfg.draft_min_side:
            return s
    return 1


def _open_checked(p: Path, fmt: str, cfg: DecodeConfig):
    """Open with Pillow restricted to ``fmt``; refuse by header before any pixel is decoded."""
    img = Image.open(p, formats=[fmt])
    w, h = img.size
    if w < 1 or h < 1:
        img.close()
        raise ImageDecodeError(p, f"image has no pixels ({w}x{h})")
    if w * h > cfg.max_pixels:
        img.close()
        raise ImageDecodeError(p, f"image is {w}x{h} = {w * h} pixels, above the limit of {cfg.max_pixels}",
                               "refused")
    return img


def load_image(path: str | Path, cfg: DecodeConfig = DecodeConfig()) -> Decoded:
    """Decode ``path`` (allowed formats only, within the memory budget) into RGB uint8.

    Raises:
        ImageDecodeError: missing, not a regular file, empty, not an allowed format, truncated,
            above ``max_pixels`` or the memory budget, or an unsupported pixel format.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise ImageDecodeError(p, f"cannot read file ({exc.strerror or exc})", "io", exc.errno) from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageDecodeError(p, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageDecodeError(p, "not a regular file")
    if st.st_size == 0:
        raise ImageDecodeError(p, "file is empty")
    try:
        with open(p, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        raise ImageDecodeError(p, f"cannot read file ({exc.strerror or exc})", "io", exc.errno) from exc
    fmt = sniff(head)
    if fmt is None:
        allowed = ", ".join(ALLOWED_FORMATS.values())
        raise ImageDecodeError(p, f"not an image in an accepted format ({allowed}); "
                                  f"file starts with {describe_unknown(head)}", "refused")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open_checked(p, fmt, cfg) as img:
                size = img.size
                scale = _draft_scale(*size, cfg) if cfg.draft and fmt == "JPEG" else 1
                if scale > 1:
                    img.draft(img.mode, (size[0] // scale, size[1] // scale))
                need = estimate_bytes(img.size[0], img.size[1], img.mode)
                if need > cfg.memory_budget_mb * 2**20:
                    raise ImageDecodeError(
                        p, f"image is {size[0]}x{size[1]} {img.mode}: decoding needs about {mib(need)}, "
                           f"above the memory budget of {cfg.memory_budget_mb} MiB", "refused")
                img.load()
                rgb = _to_rgb(img, p)
                return Decoded(rgb, size, size[0] / rgb.shape[1])
    except ImageDecodeError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise ImageDecodeError(p, f"corrupt or truncated image data (not a valid {ALLOWED_FORMATS[fmt]} file)",
                               "corrupt") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(p, f"image too large to decode safely ({exc})", "refused") from exc
    except MemoryError as exc:
        raise ImageDecodeError(p, "out of memory while decoding", "refused") from exc
    except OSError as exc:
        if exc.errno is not None:  # the OS failed to read the file, not the decoder
            raise ImageDecodeError(p, f"cannot read file ({exc.strerror or exc})", "io", exc.errno) from exc
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated").
        raise ImageDecodeError(p, f"corrupt or truncated image data ({exc})", "corrupt") from exc
    except (SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageDecodeError(p, f"corrupt or truncated image data ({exc})", "corrupt") from exc


def load_rgb(path: str | Path, max_pixels: int = 50_000_000, cfg: DecodeConfig | None = None) -> np.ndarray:
    """Decode ``path`` into an ``(H, W, 3)`` uint8 RGB array at full size (what training sees).

    Raises:
        ImageDecodeError: see :func:`load_image`.
    """
    cfg = replace(cfg or DecodeConfig(), max_pixels=max_pixels, draft=False)
    return load_image(path, cfg).rgb


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


def crop_and_resize_gray(gray: np.ndarray, box: CropBox, size: int, resample: str = "bicubic") -> np.ndarray:
    """:func:`crop_and_resize` of an image whose three channels all equal ``gray``, bit for bit.

    Pillow resamples every channel with the same fixed-point coefficients and rounding, so one
    8-bit channel resized and repeated is the RGB result, at about half the cost (Pillow holds
    RGB as 4 bytes a pixel). Most MRI slices are stored as RGB with R = G = B.
    """
    region = gray[box.top : box.bottom, box.left : box.right]
    if region.size == 0:
        raise ValueError(f"empty crop box {box.as_tuple()} for image of shape {gray.shape}")
    out = np.asarray(Image.fromarray(np.ascontiguousarray(region)).resize((size, size), _RESAMPLE[resample]))
    rgb = np.empty((size, size, 3), np.uint8)
    rgb[...] = out[:, :, None]
    return rgb
