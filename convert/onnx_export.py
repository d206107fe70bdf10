"""ONNX via Keras' own exporter (TF backend -> tf2onnx) and an optional onnxruntime int8 twin
calibrated on the same train images as the TFLite int8, so the two runtimes compare like for like.

Why the int8 recipe is uint8 x uint8: onnxruntime's x86 integer kernels (MLAS) compute uint8 x
int8 products with ``VPMADDUBSW`` on CPUs without VNNI (AVX2; AVX-512 without VNNI uses the same
instruction), which adds two products into a **saturating int16**. Full-range int8 weights
(-127..127) times activations as uint8 (0..255) overflow it (255*127*2 > 32767), so the same file
scores differently on an AVX2-only CPU than on one with AVX-512 VNNI / AVX-VNNI (``VPDPBUSD``
accumulates in int32). Signed activations do not help: MLAS shifts them to uint8 before the same
kernel. Two recipes avoid the overflow: 7-bit int8 weights (``reduce_range``) keep pair sums below
2**15; uint8 weights take a kernel that widens to 16 bits and sums in int32. Both are then the
same on every level; uint8 x uint8 also tracks float32 far better on the released model
(reports/convert/onnx_int8_isa.md, ``python -m benchmarks.onnx_int8_isa``), so it ships.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from convert.config import DEFAULT_ONNX_RECIPE, OnnxInt8Recipe

Kernel = Literal["native", "exact", "qdq-float"]

#: onnxruntime session config entries per way of running an int8 graph on this CPU:
#: ``native``: the kernels MLAS picks for this CPU (saturating int16 pair sums without VNNI);
#: ``exact``: ``session.x64quantprecision`` = exact int32 accumulation on AVX2 as well (the
#: arithmetic VNNI CPUs do natively), slower; ``qdq-float``: ``session.disable_quant_qdq`` keeps
#: QuantizeLinear/DequantizeLinear pairs unfused, i.e. float maths on the quantized values.
KERNEL_SESSION_CONFIG: dict[str, dict[str, str]] = {
    "native": {},
    "exact": {"session.x64quantprecision": "1"},
    "qdq-float": {"session.disable_quant_qdq": "1"},
}


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


def quantize_onnx_int8(fp32: str | Path, out: str | Path, calibration: np.ndarray,
                       recipe: OnnxInt8Recipe = DEFAULT_ONNX_RECIPE, keep_float: tuple[str, ...] = ()) -> Path:
    """Static int8 per ``recipe`` with MinMax calibration (the TFLite converter's method).

    Nodes whose name contains one of ``keep_float`` (layer names) stay float: the domain check and
    the classifier tail, for the reasons given in ``convert.domain.tail_node_names``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    fp32, out = Path(fp32), Path(out)
    prepped = out.with_name(out.stem + ".prep.onnx")
    quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
    graph = onnx.load(str(prepped), load_external_data=False).graph
    name = graph.input[0].name
    exclude = [n.name for n in graph.node if any(k in n.name for k in keep_float)]
    if keep_float and not exclude:
        raise ValueError(f"{fp32}: no ONNX node named after {keep_float} to keep float")
    try:
        quantize_static(str(prepped), str(out), _Reader(name, calibration),
                        quant_format=getattr(QuantFormat, recipe.quant_format), per_channel=recipe.per_channel,
                        reduce_range=recipe.reduce_range, activation_type=types[recipe.activation_type],
                        weight_type=types[recipe.weight_type], calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=exclude or None)
    finally:
        prepped.unlink(missing_ok=True)
    return out


def session(path: str | Path, kernel: Kernel = "native", num_threads: int | None = None):
    """An onnxruntime CPU session running ``path`` with the ``kernel`` choice above."""
    import onnxruntime as ort

    if kernel not in KERNEL_SESSION_CONFIG:
        raise ValueError(f"kernel must be one of {sorted(KERNEL_SESSION_CONFIG)}, got {kernel!r}")
    opts = ort.SessionOptions()
    if num_threads:
        opts.intra_op_num_threads = num_threads
    for key, value in KERNEL_SESSION_CONFIG[kernel].items():
        opts.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def predict(sess, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Float probabilities of a session over raw RGB 0..255 NHWC images (the (N, 2) output;
    a model with a domain check has a second, (N, 1), output)."""
    name = sess.get_inputs()[0].name
    outs = sess.get_outputs()
    probs = next((o.name for o in outs if o.shape and o.shape[-1] == 2), outs[0].name)
    return np.concatenate([sess.run([probs], {name: x[s:s + batch_size].astype(np.float32)})[0]
                           for s in range(0, len(x), batch_size)]).astype(np.float32)
