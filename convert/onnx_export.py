"""ONNX via Keras' own exporter (TF backend -> tf2onnx) and an optional onnxruntime int8 twin
calibrated on the same train images as the TFLite int8, so the two runtimes compare like for like."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def export_onnx(model, path: str | Path) -> Path:
    """``model.export(format="onnx")``; Keras refuses a model that was never called, so call it once."""
    path = Path(path)
    shape = (1, *model.input_shape[1:])
    model(np.zeros(shape, np.float32))
    model.export(str(path), format="onnx", verbose=False)
    return path


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an in-memory array, one image per step."""

    def __init__(self, name: str, x: np.ndarray):
        self._it = iter([{name: img[None].astype(np.float32)} for img in x])

    def get_next(self):
        return next(self._it, None)


def quantize_onnx_int8(fp32: str | Path, out: str | Path, calibration: np.ndarray, keep_float: tuple[str, ...] = ()) -> Path:
    """Static QDQ int8, per-channel weights, MinMax calibration (the TFLite converter's method).

    Nodes whose name contains one of ``keep_float`` (layer names) stay float: the domain check and
    the classifier tail, for the reasons given in ``convert.domain.tail_node_names``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, out = Path(fp32), Path(out)
    prepped = out.with_name(out.stem + ".prep.onnx")
    quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
    graph = onnx.load(str(prepped), load_external_data=False).graph
    name = graph.input[0].name
    exclude = [n.name for n in graph.node if any(k in n.name for k in keep_float)]
    if keep_float and not exclude:
        raise ValueError(f"{fp32}: no ONNX node named after {keep_float} to keep float")
    try:
        quantize_static(str(prepped), str(out), _Reader(name, calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude or None)
    finally:
        prepped.unlink(missing_ok=True)
    return out
