"""Preprocessing contract shared by training and the edge runtime.

Both sides import this module (``train`` may import ``edge_runtime``, never the reverse), so
the crop a model was trained with and the crop a device applies cannot drift apart. Every
field has the value the paper's notebooks use; change one and the preprocessing cache key,
the Android manifest and the model card change with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import hashlib
import json

#: Class order of every model this project produces: index 0 = no tumour, index 1 = tumour.
LABELS: tuple[str, str] = ("no", "yes")
#: Index of the tumour class; ``score`` everywhere means the probability of this class.
TUMOUR_INDEX = 1


#: Fields added after models, caches and contracts were made, with the default that reproduces
#: the earlier behaviour: left out of ``to_dict`` (and so of the fingerprint) at that default, so
#: every existing fingerprint, cache key and embedded contract stays valid.
_LATER_FIELDS = {"analysis_min_side": 0}


@dataclass(frozen=True)
class CropConfig:
    """The paper's brain crop: gray -> blur -> threshold -> open-ish morphology -> extremes.

    Attributes:
        blur_ksize: side of the Gaussian kernel (sigma derived from it as OpenCV does for
            ``sigma=0``: ``0.3 * ((k - 1) * 0.5 - 1) + 0.8``).
        threshold: a pixel is foreground when its blurred gray value is **strictly** greater
            (OpenCV ``THRESH_BINARY``).
        erode_iterations / dilate_iterations: passes of a 3x3 square structuring element.
        size: output side in pixels (square, RGB).
        resample: Pillow resampling filter name used for the final resize by *both* paths.
            Bicubic with Pillow's built-in antialiasing: BR35H images are up to ~1900 px wide
            and OpenCV's INTER_CUBIC aliases badly on such downscales.
        max_pixels: decoding refuses images above this many pixels instead of exhausting
            memory (a 4-core Pi has 1-8 GiB).
        analysis_min_side: 0 (the default, what training does): the mask and region search
            run at full size. ``n > 0``: they run on the gray image reduced by the largest
            integer factor ``f`` (box average, ``Image.reduce``) that keeps ``n`` px on its
            shorter side, and the box is scaled back by ``f``; the crop and resize still use
            the full-size pixels. Cuts the mask and search work by ``f^2`` on large images,
            but another region can win on the reduced mask (boxes moved by up to 370 px on
            test, ``reports/edge/prep_parity.md``) although no answer changed: not the training
            crop, so only a contract of a model trained with it should set it.
    """

    blur_ksize: int = 5
    threshold: int = 45
    erode_iterations: int = 2
    dilate_iterations: int = 2
    size: int = 224
    resample: str = "bicubic"
    max_pixels: int = 50_000_000
    analysis_min_side: int = 0

    def __post_init__(self) -> None:
        if self.blur_ksize < 1 or self.blur_ksize % 2 == 0:
            raise ValueError(f"blur_ksize must be odd and positive, got {self.blur_ksize}")
        if not 0 <= self.threshold <= 255:
            raise ValueError(f"threshold must be in [0, 255], got {self.threshold}")
        if self.erode_iterations < 0 or self.dilate_iterations < 0:
            raise ValueError("erode/dilate iterations must be >= 0")
        if self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        if self.resample not in ("nearest", "bilinear", "bicubic", "lanczos"):
            raise ValueError(f"unknown resample filter {self.resample!r}")
        if self.analysis_min_side < 0:
            raise ValueError(f"analysis_min_side must be >= 0, got {self.analysis_min_side}")

    @property
    def blur_sigma(self) -> float:
        """Gaussian sigma OpenCV derives from the kernel size when asked for ``sigma=0``."""
        return 0.3 * ((self.blur_ksize - 1) * 0.5 - 1) + 0.8

    def to_dict(self) -> dict:
        """The fields, less those added later while at their default (see :data:`_LATER_FIELDS`)."""
        d = asdict(self)
        for name, default in _LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d

    def fingerprint(self) -> str:
        """Short stable hash of the parameters, used in cache keys and manifests."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class CropBox:
    """Half-open pixel box ``[left, right) x [top, bottom)`` in the decoded image.

    ``fallback`` is True when no brain region was found and the whole image was used.
    """

    left: int
    top: int
    right: int
    bottom: int
    fallback: bool = False

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)
