"""Slim BR35H tumour classifier for edge devices: numpy + Pillow + a TFLite interpreter.

Never imports TensorFlow, OpenCV, ``train`` or ``convert`` (tests/test_edge_isolation.py).
"""

from .config import LABELS, TUMOUR_INDEX, CropBox, CropConfig
from .image_io import ImageDecodeError, crop_and_resize, load_rgb

__all__ = ["LABELS", "TUMOUR_INDEX", "CropBox", "CropConfig", "ImageDecodeError", "crop_and_resize", "load_rgb"]
__version__ = "0.1.0"
