"""Each artifact in its real runtime: LiteRT's interpreter for ``.tflite``, onnxruntime for ``.onnx``.

All take the same thing the Keras model takes (raw RGB 0..255, NHWC) and return float
probabilities, so every artifact is scored by the same code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TFLiteModel:
    """``.tflite`` via ``ai_edge_litert``; integer I/O is (de)quantized with the tensor's own params."""

    def __init__(self, model: str | Path | bytes, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        content = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        self.interpreter = Interpreter(model_content=bytes(content), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self.input["dtype"])
        if not np.issubdtype(dtype, np.integer):
            return x.astype(dtype)
        scale, zp = self.input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x.astype(np.float32) / scale + zp), info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if not np.issubdtype(y.dtype, np.integer):
            return y.astype(np.float32)
        scale, zp = self.output["quantization"]
        return (y.astype(np.float32) - zp) * scale

    def predict(self, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
        it, out = self.interpreter, []
        for start in range(0, len(x), batch_size):
            xb = self._quantize(x[start:start + batch_size])
            if xb.shape[0] != self._batch:
                it.resize_tensor_input(self.input["index"], list(xb.shape))
                it.allocate_tensors()
                self._batch = xb.shape[0]
            it.set_tensor(self.input["index"], xb)
            it.invoke()
            out.append(self._dequantize(it.get_tensor(self.output["index"])))
        return np.concatenate(out)


class OnnxModel:
    """``.onnx`` via onnxruntime on CPU."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
        out = [self.session.run(None, {self.input_name: x[s:s + batch_size].astype(np.float32)})[0]
               for s in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32)


def open_artifact(path: str | Path, num_threads: int | None = None):
    """The runtime for a file, chosen by its suffix."""
    path = Path(path)
    if path.suffix == ".tflite":
        return TFLiteModel(path, num_threads)
    if path.suffix == ".onnx":
        return OnnxModel(path, num_threads)
    raise ValueError(f"{path}: unknown artifact type (expected .tflite or .onnx)")


def keras_predict(model, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    return np.asarray(model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0), dtype=np.float32)
