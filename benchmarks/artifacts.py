"""Which artifacts a folder holds and how each one is run on a single 224x224 crop.

Every runtime gets the same input (a raw 0..255 uint8 RGB crop) and returns two float class
probabilities, so latency and accuracy compare runtimes and precisions, not glue code.
Runtimes are imported only when an artifact needs them: on a Pi only LiteRT exists.
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]

#: Name fragment -> precision label; checked in order (``model_int8.onnx`` is int8, ``model.onnx`` float32).
_PRECISIONS = (("int8", "int8"), ("fp16", "float16"), ("dynamic", "dynamic-range"), ("fp32", "float32"))
_RUNTIMES = {".tflite": ("litert", "ai_edge_litert"), ".onnx": ("onnxruntime", "onnxruntime"), ".keras": ("keras", "keras")}


@dataclass(frozen=True)
class Artifact:
    """One model file and the runtime that executes it."""

    path: Path
    runtime: str  # litert | onnxruntime | keras
    precision: str  # float32 | float16 | dynamic-range | int8

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        """Short id used in test ids and report rows, e.g. ``litert-int8``."""
        return f"{self.runtime}-{self.precision}"

    @property
    def size_kib(self) -> float:
        return self.path.stat().st_size / 1024


def classify(path: Path) -> Artifact:
    """Runtime from the suffix, precision from the name (default float32)."""
    runtime = _RUNTIMES[path.suffix][0]
    precision = next((p for frag, p in _PRECISIONS if frag in path.stem), "float32")
    return Artifact(path, runtime, precision)


def runtime_available(runtime: str) -> bool:
    module = {r: m for r, m in _RUNTIMES.values()}[runtime]
    return importlib.util.find_spec(module) is not None


def discover(folder: Path) -> list[Artifact]:
    """Every ``.tflite`` / ``.onnx`` directly in ``folder`` (not the Android bundle's copy), sorted."""
    found = [classify(p) for p in sorted(folder.iterdir()) if p.suffix in (".tflite", ".onnx")]
    return sorted(found, key=lambda a: (a.runtime, ("float32", "float16", "dynamic-range", "int8").index(a.precision)))


def open_runner(artifact: Artifact, threads: int | None) -> Runner:
    """``crop -> probabilities`` for one artifact; ``threads`` None = the runtime's default (Keras)."""
    if artifact.runtime == "litert":
        from edge_runtime.interpreter import TFLiteModel

        return TFLiteModel(artifact.path, num_threads=threads or 1).scores
    if artifact.runtime == "onnxruntime":
        from convert.runtimes import OnnxRunner

        onnx = OnnxRunner(artifact.path, num_threads=threads)
        return lambda crop: onnx.predict(crop[None])[0]
    if artifact.runtime == "keras":
        import keras

        model = keras.saving.load_model(artifact.path, compile=False)
        return lambda crop: np.asarray(model.predict(crop[None].astype(np.float32), verbose=0))[0]
    raise ValueError(f"{artifact.path}: unknown runtime {artifact.runtime!r}")


def predict_many(artifact: Artifact, x: np.ndarray, threads: int | None) -> np.ndarray:
    """Probabilities ``(N, 2)`` for crops ``x``; Keras in batches of 32 (per-image ``predict`` is
    dominated by its per-call overhead), every other runtime one image at a time as on a device."""
    if artifact.runtime == "keras":
        import keras

        model = keras.saving.load_model(artifact.path, compile=False)
        return np.asarray(model.predict(x.astype(np.float32), batch_size=32, verbose=0), np.float32)
    run = open_runner(artifact, threads)
    return np.stack([run(crop) for crop in x]).astype(np.float32)
