"""A model must answer sanely on a known input before it may answer on a patient's scan.

A corrupted float model can load without complaint and then return NaN for every image (4 KiB
of 0xFF in the middle of the fp16 weights does exactly that); ``argmax`` of NaNs is 0, so every
scan would silently become "no tumour". At load, the model is run on built-in deterministic
inputs and refused unless both class scores are finite probabilities. This does not prove the
weights are the released ones (that is what the model's checksum is for); it catches the
failures that make every answer meaningless.
"""

from __future__ import annotations

import numpy as np

from .interpreter import ModelError, TFLiteModel

#: How far a score may stray outside [0, 1], and the two scores' sum from 1, before the model is
#: refused: an int8 softmax output is quantized in steps of 1/256, so exact values are not expected.
TOLERANCE = 0.05


def self_test_inputs(size: int) -> list[np.ndarray]:
    """Deterministic ``size x size`` RGB uint8 inputs: an MRI-like ellipse with a brighter blob
    and a horizontal ramp (no randomness, so every device checks the same pixels)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    ellipse = ((yy - 0.5) / 0.42) ** 2 + ((xx - 0.5) / 0.36) ** 2 <= 1
    blob = ((yy - 0.4) ** 2 + (xx - 0.6) ** 2) <= 0.08**2
    slice_ = np.where(blob, 230, np.where(ellipse, 110 + 40 * xx, 0)).astype(np.uint8)
    ramp = (xx * 255).astype(np.uint8)
    return [np.repeat(g[:, :, None], 3, axis=2) for g in (slice_, ramp)]


def check_scores(scores: np.ndarray) -> str | None:
    """Why ``scores`` are not two finite class probabilities, or ``None`` when they are."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(s)):
        return f"non-finite score {s.tolist()}"
    if s.min() < -TOLERANCE or s.max() > 1 + TOLERANCE or abs(s.sum() - 1) > TOLERANCE:
        return f"scores {s.round(4).tolist()} are not probabilities"
    return None


def self_test(model: TFLiteModel, size: int) -> None:
    """Raise :class:`ModelError` unless the model gives valid scores on every built-in input."""
    for i, image in enumerate(self_test_inputs(size)):
        try:
            problem = check_scores(model.scores(image))
        except (RuntimeError, ValueError) as exc:
            problem = f"inference failed ({exc})"
        if problem:
            raise ModelError(model.path, f"refused: self-test input {i} gives {problem}; "
                                         "the model file is probably corrupt")
