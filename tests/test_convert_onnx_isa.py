"""The ONNX int8 artifact gives the same answers on every x86 level (tiny model, seconds).

onnxruntime's x86 kernels without VNNI add uint8 x int8 products in saturating int16 pairs; the
``exact`` kernel option (``session.x64quantprecision``) accumulates exactly in int32, as VNNI CPUs
do. The shipped recipe must not care which runs; the old full-range recipe does on AVX2-only CPUs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.convert_helpers import brightness_model, fake_loader, write_tiny_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    from convert import onnx_export

    tmp = tmp_path_factory.mktemp("onnx_isa")
    manifest = write_tiny_manifest(tmp / "tiny.csv")
    load = fake_loader(False)
    train, test = load(manifest, split="train"), load(manifest, split="test")
    model = brightness_model(False)
    fp32 = onnx_export.export_onnx(model, tmp / "model.onnx")
    return {"tmp": tmp, "fp32": fp32, "calib": train.x[:16].astype(np.float32),
            "x": test.x.astype(np.float32), "y": np.asarray(test.y)}


def _probs(tiny: dict, recipe, kernel: str) -> np.ndarray:
    from convert import onnx_export

    path = tiny["tmp"] / f"int8_{recipe.activation_type}_{recipe.weight_type}_{recipe.reduce_range}.onnx"
    if not path.exists():
        onnx_export.quantize_onnx_int8(tiny["fp32"], path, tiny["calib"], recipe)
    return onnx_export.predict(onnx_export.session(path, kernel), tiny["x"])


def test_shipped_recipe_is_the_same_with_saturating_and_exact_kernels(tiny):
    from convert.config import DEFAULT_ONNX_RECIPE

    assert (DEFAULT_ONNX_RECIPE.activation_type, DEFAULT_ONNX_RECIPE.weight_type) == ("uint8", "uint8")
    native, exact = _probs(tiny, DEFAULT_ONNX_RECIPE, "native"), _probs(tiny, DEFAULT_ONNX_RECIPE, "exact")
    np.testing.assert_allclose(native, exact, atol=1e-6)
    assert (native.argmax(1) == tiny["y"]).all()


def test_reduce_range_recipe_is_also_the_same_on_both_kernels(tiny):
    from convert.config import REDUCE_RANGE_ONNX_RECIPE

    native, exact = _probs(tiny, REDUCE_RANGE_ONNX_RECIPE, "native"), _probs(tiny, REDUCE_RANGE_ONNX_RECIPE, "exact")
    np.testing.assert_allclose(native, exact, atol=1e-6)


def test_full_range_recipe_saturates_without_vnni(tiny):
    """The cause, shown where it exists: only a CPU with AVX2 and no VNNI runs the saturating kernel."""
    from convert.config import FULL_RANGE_ONNX_RECIPE
    from edge_runtime.machine import machine_info

    features = set(machine_info()["vector_features"])
    if "avx2" not in features or features & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        pytest.skip(f"needs an x86 CPU with AVX2 and no VNNI (this one: {sorted(features) or 'unknown'})")
    native, exact = _probs(tiny, FULL_RANGE_ONNX_RECIPE, "native"), _probs(tiny, FULL_RANGE_ONNX_RECIPE, "exact")
    assert (exact.argmax(1) == tiny["y"]).all()
    assert np.abs(native - exact).max() > 0.1


def test_unknown_kernel_is_refused(tiny):
    from convert import onnx_export

    with pytest.raises(ValueError, match="kernel must be one of"):
        onnx_export.session(tiny["fp32"], "vnni")
