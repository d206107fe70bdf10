"""Keras 3 model -> SavedModel -> TFLite variants (the path that works with Keras 3:
``model.export`` then ``TFLiteConverter.from_saved_model``; ``from_keras_model`` does not).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Sequence

from convert.config import QuantizationConfig

Variant = Literal["fp32", "fp16", "dynamic", "int8"]
VARIANTS: tuple[Variant, ...] = ("fp32", "fp16", "dynamic", "int8")


def export_saved_model(model, path: str | Path) -> Path:
    """Inference-mode SavedModel with a ``serve`` signature (batch dimension left dynamic)."""
    path = Path(path)
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path


#: The options that keep ops of the int8 model float; no other variant has int8 ops to keep.
FLOAT_OP_OPTIONS = ("keep_float", "denylisted_ops", "denylisted_nodes", "float_tail")


def keeps_float_ops(qcfg: QuantizationConfig, keep_float_layers: Sequence = ()) -> bool:
    """Whether the int8 model keeps some ops float (then it is not fully integer): the one place
    this is decided. ``keep_float_layers`` are the ranked convs ``qcfg.keep_float`` resolved to;
    a ranking that found no conv leaves the model fully integer."""
    return bool(keep_float_layers or qcfg.denylisted_ops or qcfg.denylisted_nodes or qcfg.float_tail)


def make_converter(saved_model: str | Path, variant: Variant, representative: Callable | None = None,
                   qcfg: QuantizationConfig = QuantizationConfig(), keep_float_layers: Sequence = ()):
    """A configured ``TFLiteConverter`` (also what the quantization debugger needs)."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if variant == "fp32":
        return conv
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        if representative is None:
            raise ValueError("int8 conversion needs a representative dataset (train-split calibration images)")
        conv.representative_dataset = representative
        io = {"uint8": tf.uint8, "int8": tf.int8}[qcfg.io_type]
        conv.inference_input_type = io
        conv.inference_output_type = io
        if keeps_float_ops(qcfg, keep_float_layers):  # those ops run in float between (de)quantize ops
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        else:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif variant != "dynamic":
        raise ValueError(f"unknown TFLite variant {variant!r}; choose from {VARIANTS}")
    return conv


def convert(saved_model: str | Path, variant: Variant, representative: Callable | None = None,
            qcfg: QuantizationConfig = QuantizationConfig()) -> bytes:
    """Serialized ``.tflite`` for one variant. Options the variant cannot honour are refused
    (ValueError naming variant and option): the float-op options on a non-int8 variant, and
    ``keep_float`` here at all, since it needs the convs ranked on the Keras model first
    (:func:`convert_int8` takes them)."""
    if variant == "int8":
        return convert_int8(saved_model, representative, qcfg)[0]
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; choose from {VARIANTS}")
    for option in FLOAT_OP_OPTIONS:
        if getattr(qcfg, option):
            raise ValueError(f"{variant} TFLite cannot honour {option}={getattr(qcfg, option)!r}: "
                             "only the int8 TFLite has integer ops to keep float")
    return make_converter(saved_model, variant).convert()


def convert_int8(saved_model: str | Path, representative: Callable | None, qcfg: QuantizationConfig,
                 keep_float_layers: Sequence | None = None) -> tuple[bytes, dict[str, str]]:
    """The int8 ``.tflite`` and ``{layer path: op name}`` of the kept convs (empty when none).

    ``keep_float_layers``: the convs ``qcfg.keep_float`` resolved to (``convert.sensitivity``
    ranking on the Keras model); ``None`` with ``qcfg.keep_float`` > 0 is refused, as this function
    cannot rank a SavedModel. Full integer unless :func:`keeps_float_ops`."""
    if qcfg.keep_float and keep_float_layers is None:
        raise ValueError(f"int8 TFLite cannot honour keep_float={qcfg.keep_float} without the ranked convs: pass "
                         "keep_float_layers=convert.sensitivity.rank_convs(model, images).top(K), "
                         "or convert through convert.pipeline")
    layers = tuple(keep_float_layers or ())
    conv = make_converter(saved_model, "int8", representative, qcfg, layers)
    if keeps_float_ops(qcfg, layers):
        return selective_int8(conv, qcfg, layers)
    return conv.convert(), {}


def selective_int8(conv, qcfg: QuantizationConfig, keep_float_layers: Sequence = ()) -> tuple[bytes, dict[str, str]]:
    """Full-integer except the denylisted ops/nodes and the ops of ``keep_float_layers``, which run in
    float between (de)quantize ops; returns the model and ``{layer path: op name}`` of the kept convs.

    Same route as ``QuantizationDebugger.get_nondebug_quantized_model`` (calibrate, then
    ``mlir_quantize`` with denylists), but that method drops the integer I/O types, so the
    (private) quantizer is called directly and the I/O retyped as the converter itself does.
    The kept layers' op names are read from the calibrated model (``sensitivity.tflite_nodes``),
    so they are exactly the names the quantizer matches.
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tfl_convert, util

    from convert.sensitivity import tflite_nodes

    conv._experimental_calibrate_only = True  # noqa: SLF001 - the debugger's own switch
    calibrated = conv.convert()
    kept = tflite_nodes(calibrated, keep_float_layers) if keep_float_layers else {}
    tail = []
    if qcfg.float_tail:
        from convert.domain import tail_node_names

        tail = tail_node_names(calibrated)
        if not tail:
            raise ValueError("float_tail: no classifier/domain tail ops found in the calibrated model")
    nodes = list(dict.fromkeys([*qcfg.denylisted_nodes, *kept.values(), *tail]))
    io = {"uint8": tf.uint8, "int8": tf.int8}[qcfg.io_type]
    quantized = tfl_convert.mlir_quantize(
        calibrated, fully_quantize=False,
        denylisted_ops=list(qcfg.denylisted_ops) or None, denylisted_nodes=nodes or None)
    return bytes(util.modify_model_io_type(quantized, io, tf.float32 if qcfg.float_tail else io)), kept
