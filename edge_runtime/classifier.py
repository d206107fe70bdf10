"""The runtime's API: ``Classifier(model).classify(path)`` -> :class:`Prediction`.

One object holds the interpreter (threads fixed at construction) and the crop parameters;
each call decodes, crops in numpy, runs the model and times every stage, so latency numbers
from a device always say where the time went.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
import time

import numpy as np

from .config import LABELS, TUMOUR_INDEX, CropBox, CropConfig
from .crop import crop_image
from .default_model import default_model
from .image_io import DecodeConfig, load_image
from .interpreter import DEFAULT_THREADS, Backend, TFLiteModel
from .selftest import check_scores, self_test


class NonFiniteScoreError(ArithmeticError):
    """The model gave no valid probabilities for one image: that image gets an error, never
    a label (``argmax`` of NaN is 0, which would read as "no tumour")."""


@dataclass(frozen=True)
class Timings:
    """Milliseconds per stage of one prediction, and the interpreter threads they ran with."""

    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    num_threads: int

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.preprocess_ms + self.inference_ms


@dataclass(frozen=True)
class Prediction:
    """One image's answer. ``score`` is the probability of a tumour (``LABELS[1]``).

    ``box.fallback`` is True when no brain was found and the whole image was classified:
    such an answer deserves a human look.
    """

    path: str | None
    label: str
    score: float
    scores: tuple[float, float]
    box: CropBox
    timings: Timings = field(compare=False)

    @property
    def no_brain_found(self) -> bool:
        return self.box.fallback

    def to_record(self) -> dict:
        """Flat JSON-ready dict: the CLI's JSONL/CSV row."""
        return {
            "path": self.path,
            "label": self.label,
            "score": round(self.score, 6),
            "score_no": round(self.scores[0], 6),
            "score_yes": round(self.scores[1], 6),
            "box": list(self.box.as_tuple()),
            "no_brain_found": self.box.fallback,
            **{k: round(v, 3) for k, v in asdict(self.timings).items() if k.endswith("_ms")},
            "num_threads": self.timings.num_threads,
            "error": None,
        }


class Classifier:
    """Brain-tumour classifier over a TFLite model (float, int8 or uint8 input/output).

    Args:
        model: ``.tflite`` path; ``None`` = the released model (see :mod:`.default_model`).
        num_threads: interpreter threads, fixed for the object's life (recorded in ``info``).
        crop: the preprocessing contract; must be the one the model was trained with.
        backend: a specific :class:`~.interpreter.Backend`; default = first available.
        decode: decode limits and options; default: ``DecodeConfig(max_pixels=crop.max_pixels)``.

    Raises:
        ModelError: the model cannot be loaded, breaks the contract, or fails the self-test
            (non-finite or impossible scores on built-in inputs, see :mod:`.selftest`).
    """

    def __init__(self, model: str | Path | None = None, num_threads: int = DEFAULT_THREADS,
                 crop: CropConfig = CropConfig(), backend: Backend | None = None,
                 decode: DecodeConfig | None = None) -> None:
        self.crop = crop
        self.decode = decode or DecodeConfig(max_pixels=crop.max_pixels)
        self.model = TFLiteModel(model if model is not None else default_model(), num_threads, backend, crop.size)
        self_test(self.model, crop.size)

    @property
    def info(self) -> dict:
        return {**self.model.describe(), "crop_fingerprint": self.crop.fingerprint()}

    def classify_array(self, rgb: np.ndarray, path: str | None = None, decode_ms: float = 0.0) -> Prediction:
        """Classify an already decoded ``H x W x 3`` uint8 RGB image."""
        t0 = time.perf_counter()
        image, box = crop_image(rgb, self.crop)
        t1 = time.perf_counter()
        scores = self.model.scores(image)
        t2 = time.perf_counter()
        problem = check_scores(scores)
        if problem:
            raise NonFiniteScoreError(f"model output unusable for this image: {problem}")
        s = (float(scores[0]), float(scores[1]))
        return Prediction(
            path=path,
            label=LABELS[int(np.argmax(scores))],
            score=s[TUMOUR_INDEX],
            scores=s,
            box=box,
            timings=Timings(decode_ms, (t1 - t0) * 1e3, (t2 - t1) * 1e3, self.model.num_threads),
        )

    def classify(self, path: str | Path) -> Prediction:
        """Decode and classify one file; raises :class:`~.image_io.ImageDecodeError` on bad input.

        With draft decoding the crop is found on the reduced image; ``box`` is reported in the
        file's full-size pixel coordinates either way.
        """
        t0 = time.perf_counter()
        decoded = load_image(path, self.decode)
        pred = self.classify_array(decoded.rgb, str(path), (time.perf_counter() - t0) * 1e3)
        if decoded.scale == 1.0:
            return pred
        return replace(pred, box=_scale_box(pred.box, decoded.rgb.shape, decoded.size))


def _scale_box(box: CropBox, reduced_shape: tuple[int, ...], size: tuple[int, int]) -> CropBox:
    """A box on a reduced decode, mapped to full-size coordinates (clipped to the image)."""
    sx, sy = size[0] / reduced_shape[1], size[1] / reduced_shape[0]
    return CropBox(min(size[0], round(box.left * sx)), min(size[1], round(box.top * sy)),
                   min(size[0], round(box.right * sx)), min(size[1], round(box.bottom * sy)), box.fallback)
