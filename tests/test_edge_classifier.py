"""Classifier API on the tiny committed models: float, int8 and uint8 I/O, quantization read from
the interpreter, model errors named and explained."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime.classifier import Classifier, Prediction
from edge_runtime.config import LABELS
from edge_runtime.default_model import MODEL_ENV, ModelNotFoundError, default_model
from edge_runtime.interpreter import ModelError, TFLiteModel, find_backend
from tests.conftest import synthetic_mri

ASSETS = Path(__file__).parent / "assets"
MODELS = {k: ASSETS / f"tiny_{k}.tflite" for k in ("float32", "int8", "uint8")}


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "slice.png"
    Image.fromarray(synthetic_mri((200, 170), seed=4, tumour=True)).save(path)
    return path


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_prediction_contract(kind, image_file):
    clf = Classifier(MODELS[kind], num_threads=1)
    pred = clf.classify(image_file)
    assert isinstance(pred, Prediction)
    assert pred.label == LABELS[int(np.argmax(pred.scores))]
    assert pred.score == pred.scores[1]
    assert abs(sum(pred.scores) - 1) < 0.02  # softmax (quantized output: within a few steps)
    assert not pred.no_brain_found and pred.box.width < 170
    assert pred.timings.decode_ms > 0 and pred.timings.inference_ms > 0 and pred.timings.preprocess_ms > 0
    rec = pred.to_record()
    assert {"path", "label", "score", "error"} <= rec.keys() and rec["error"] is None
    assert clf.info["num_threads"] == 1 and clf.info["backend"] == "ai-edge-litert"
    assert pred.timings.num_threads == 1 and rec["num_threads"] == 1


def test_quantization_parameters_come_from_the_model():
    int8, uint8 = TFLiteModel(MODELS["int8"], 1), TFLiteModel(MODELS["uint8"], 1)
    assert int8.input_dtype == np.int8 and uint8.input_dtype == np.uint8
    # Same raw pixel must land on the same real value through each model's own parameters.
    x = np.full((224, 224, 3), 200, np.uint8)
    for m in (int8, uint8):
        q = m._quantize(x).astype(np.float64)
        assert np.allclose((q - m.input_quant.zero_point) * m.input_quant.scale, 200, atol=m.input_quant.scale)
    assert int8.input_quant.zero_point != uint8.input_quant.zero_point  # so nothing is hard-coded


def test_quantized_models_agree_with_float(image_file):
    ref = Classifier(MODELS["float32"], 1).classify(image_file).score
    for kind in ("int8", "uint8"):
        assert abs(Classifier(MODELS[kind], 1).classify(image_file).score - ref) < 0.05


def test_threads_are_explicit_and_validated():
    assert TFLiteModel(MODELS["int8"], 3).describe()["num_threads"] == 3
    with pytest.raises(ValueError, match="num_threads"):
        TFLiteModel(MODELS["int8"], 0)


def test_missing_model(tmp_path):
    with pytest.raises(ModelError, match="not found") as exc:
        Classifier(tmp_path / "nope.tflite")
    assert exc.value.path.endswith("nope.tflite")


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer at all" * 10, None], ids=["empty", "garbage", "truncated"])
def test_corrupt_model(tmp_path, content):
    path = tmp_path / "bad.tflite"
    path.write_bytes(MODELS["int8"].read_bytes()[:1500] if content is None else content)
    with pytest.raises(ModelError, match="bad.tflite: not a valid TFLite model"):
        Classifier(path)


def test_wrong_input_shape_is_refused():
    with pytest.raises(ModelError, match=r"input shape \(1, 96, 96, 3\) does not match \(1, 224, 224, 3\)"):
        Classifier(ASSETS / "tiny_wrong_shape.tflite")


def test_default_model_error_names_where_it_looked(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setattr("edge_runtime.default_model.candidates", lambda: [Path("/nowhere/m.tflite")])
    with pytest.raises(ModelNotFoundError, match="--model.*/nowhere/m.tflite"):
        Classifier()


def test_default_model_from_environment(monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(MODELS["int8"]))
    assert default_model() == MODELS["int8"]
    monkeypatch.setenv(MODEL_ENV, "/nowhere/x.tflite")
    with pytest.raises(ModelNotFoundError, match="/nowhere/x.tflite"):
        default_model()


def test_backend_choice():
    assert find_backend().name == "ai-edge-litert"
    with pytest.raises(ValueError, match="unknown backend"):
        find_backend("onnx")
