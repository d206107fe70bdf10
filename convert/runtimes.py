"""Each artifact in its real runtime: LiteRT's interpreter for ``.tflite``, onnxruntime for ``.onnx``.

All take the same thing the Keras model takes (raw RGB 0..255, NHWC) and return float
probabilities, so every artifact is scored by the same code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TFLiteRunner:
    """``.tflite`` via ``ai_edge_litert``; integer I/O is (de)quantized with the tensor's own params.

    Not ``edge_runtime.interpreter.TFLiteModel``: that one is the deployed runtime (a file on disk,
    one image per invoke, the shipped contract checked at load); this one scores models during
    conversion, from bytes not yet written, in batches of any size with the runtime's default threads.
    """

    def __init__(self, model: str | Path | bytes, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        content = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        self.interpreter = Interpreter(model_content=bytes(content), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output, self.domain_output = _pick_outputs(self.interpreter.get_output_details(), lambda d: d["shape"])
        self._batch = int(self.input["shape"][0])

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self.input["dtype"])
        if not np.issubdtype(dtype, np.integer):
            return x.astype(dtype)
        scale, zp = self.input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x.astype(np.float32) / scale + zp), info.min, info.max).astype(dtype)

    @staticmethod
    def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
        if not np.issubdtype(y.dtype, np.integer):
            return y.astype(np.float32)
        scale, zp = detail["quantization"]
        return (y.astype(np.float32) - zp) * scale

    def predict(self, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
        return self.predict_outputs(x, batch_size)[0]

    def predict_outputs(self, x: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities (N, 2) and the domain score (N,) (None for a model without one)."""
        it, out, dom = self.interpreter, [], []
        for start in range(0, len(x), batch_size):
            xb = self._quantize(x[start:start + batch_size])
            if xb.shape[0] != self._batch:
                it.resize_tensor_input(self.input["index"], list(xb.shape))
                it.allocate_tensors()
                self._batch = xb.shape[0]
            it.set_tensor(self.input["index"], xb)
            it.invoke()
            out.append(self._dequantize(it.get_tensor(self.output["index"]), self.output))
            if self.domain_output is not None:
                d = self.domain_output
                dom.append(self._dequantize(it.get_tensor(d["index"]), d).reshape(-1))
        return np.concatenate(out), (np.concatenate(dom) if dom else None)


class OnnxRunner:
    """``.onnx`` via onnxruntime on CPU."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        outs = list(enumerate(self.session.get_outputs()))
        probs, dom = _pick_outputs(outs, lambda o: o[1].shape)
        self._probs, self._dom = probs[0], (dom[0] if dom is not None else None)

    def predict(self, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
        return self.predict_outputs(x, batch_size)[0]

    def predict_outputs(self, x: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray | None]:
        out, dom = [], []
        for s in range(0, len(x), batch_size):
            res = self.session.run(None, {self.input_name: x[s:s + batch_size].astype(np.float32)})
            out.append(res[self._probs])
            if self._dom is not None:
                dom.append(np.asarray(res[self._dom]).reshape(-1))
        return np.concatenate(out).astype(np.float32), (np.concatenate(dom).astype(np.float32) if dom else None)


def open_artifact(path: str | Path, num_threads: int | None = None):
    """The runtime for a file, chosen by its suffix."""
    path = Path(path)
    if path.suffix == ".tflite":
        return TFLiteRunner(path, num_threads)
    if path.suffix == ".onnx":
        return OnnxRunner(path, num_threads)
    raise ValueError(f"{path}: unknown artifact type (expected .tflite or .onnx)")


def keras_predict(model, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    return keras_outputs(model, x, batch_size)[0]


def keras_outputs(model, x: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities and, for a model carrying the domain check, its score (else None)."""
    out = model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0)
    if isinstance(out, (list, tuple)):
        return np.asarray(out[0], np.float32), np.asarray(out[1], np.float32).reshape(-1)
    return np.asarray(out, np.float32), None


def _pick_outputs(outputs: list, shape_of) -> tuple:
    """(the 2-class probability output, the 1-wide domain output or None), chosen by shape.

    By shape, not position: converters are free to reorder outputs, and the two differ in width."""
    def width(o) -> int | None:
        shape = shape_of(o)
        last = shape[-1] if len(shape) else None
        return int(last) if isinstance(last, (int, np.integer)) else None

    probs = [o for o in outputs if width(o) == 2]
    dom = [o for o in outputs if width(o) == 1]
    if len(probs) != 1 or len(outputs) > 2 or (len(outputs) == 2 and len(dom) != 1):
        raise ValueError(f"expected a 2-class output and optionally a 1-wide domain output, got "
                         f"{[tuple(shape_of(o)) for o in outputs]}")
    return probs[0], (dom[0] if dom else None)
