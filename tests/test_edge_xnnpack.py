"""int8 through XNNPACK equals the interpreter's own kernels and the reference kernels.

XNNPACK picks its microkernels by instruction set (SSE, AVX2, AVX-512 VNNI, NEON dotprod, ...),
all accumulating int8 products exactly in int32; the reference kernels use no SIMD at all. So if
XNNPACK matches the reference here, the int8 model's answers do not depend on the x86 (or ARM)
level, which is what this checks, on the committed tiny models (no TensorFlow needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_runtime.interpreter import RESOLVERS, TFLiteModel

ASSETS = Path(__file__).parent / "assets"


def _inputs() -> list[np.ndarray]:
    """Flat grays, a ramp and random images: inputs whose tiny-model scores differ."""
    rng = np.random.default_rng(0)
    flat = [np.full((224, 224, 3), v, np.uint8) for v in (0, 64, 128, 200, 255)]
    ramp = np.repeat(np.linspace(0, 255, 224, dtype=np.uint8)[None, :, None], 224, 0).repeat(3, 2)
    noisy = [(rng.random((224, 224, 3)) ** p * 255).astype(np.uint8) for p in (1, 2, 3)]
    return [*flat, ramp, *noisy]


def _raw_outputs(path: Path, resolver: str) -> np.ndarray:
    """The output tensor as stored (int8/uint8 steps for integer models), one row per input."""
    m = TFLiteModel(path, num_threads=1, resolver=resolver)
    rows = []
    for image in _inputs():
        m._interp.set_tensor(m._in["index"], m._quantize(image))  # noqa: SLF001 - the raw integer output is the point
        m._interp.invoke()
        rows.append(m._interp.get_tensor(m._out["index"]).reshape(-1).astype(np.float64))
    return np.array(rows)


@pytest.mark.parametrize("name", ["tiny_int8.tflite", "tiny_uint8.tflite"])
def test_int8_xnnpack_on_and_off_and_reference_agree(name):
    path = ASSETS / name
    out = {r: _raw_outputs(path, r) for r in RESOLVERS}
    assert len({tuple(row) for row in out["reference"]}) >= 3, "inputs must move the scores, or the test proves nothing"
    for resolver in ("xnnpack", "builtin"):
        # at most one output step apart (rounding of the last requantization), same class everywhere
        assert np.abs(out[resolver] - out["reference"]).max() <= 1, resolver
        assert (out[resolver].argmax(1) == out["reference"].argmax(1)).all(), resolver


def test_float_model_xnnpack_matches_reference_closely():
    out = {r: _raw_outputs(ASSETS / "tiny_float32.tflite", r) for r in ("xnnpack", "reference")}
    np.testing.assert_allclose(out["xnnpack"], out["reference"], atol=1e-4)


def test_resolver_is_reported_and_checked():
    m = TFLiteModel(ASSETS / "tiny_int8.tflite", num_threads=1, resolver="builtin")
    assert m.describe()["resolver"] == "builtin"
    with pytest.raises(ValueError, match="resolver must be one of"):
        TFLiteModel(ASSETS / "tiny_int8.tflite", resolver="gpu")
