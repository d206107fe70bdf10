"""Slim BR35H tumour classifier for edge devices: numpy + Pillow + a TFLite interpreter.

Never imports TensorFlow, OpenCV, ``train`` or ``convert`` (tests/test_edge_isolation.py).

    from edge_runtime import Classifier
    pred = Classifier("br35h-mobilenetv2-int8.tflite", num_threads=4).classify("scan.jpg")
    pred.label, pred.score, pred.in_domain, pred.domain_score, pred.unknown_reason, pred.box, pred.timings
"""

from .classifier import UNKNOWN, Classifier, NoContractWarning, Prediction, Timings
from .contract import Contract, ContractError, load_contract
from .config import LABELS, TUMOUR_INDEX, CropBox, CropConfig
from .image_io import DecodeConfig, ImageDecodeError, crop_and_resize, load_rgb
from .interpreter import ModelError

__all__ = [
    "LABELS", "TUMOUR_INDEX", "UNKNOWN", "Classifier", "Contract", "ContractError", "CropBox", "CropConfig",
    "DecodeConfig", "ImageDecodeError", "ModelError", "NoContractWarning", "Prediction", "Timings", "crop_and_resize",
    "load_contract", "load_rgb",
]
__version__ = "0.1.0"
