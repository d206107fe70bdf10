"""Cancel the mean shift that int8 weight rounding adds to each conv channel, in one pass.

Why: on some fine-tuned models the full-integer TFLite loses accuracy because rounding the
BatchNorm-folded conv kernels to their per-output-channel int8 grid moves each channel's *mean*
output, most of all in MobileNetV2's linear-bottleneck ``block_*_project`` convs (no ReLU after
them, so the shift passes straight on). Summed over the network this is a systematic logit-margin
shift, not noise, and not an activation-range/calibration problem (reports/convert/int8_findings.md).

What: the empirical bias correction of Nagel et al. 2019 ("Data-Free Quantization Through Weight
Equalization and Bias Correction", sec. 4.2). For every Conv2D / DepthwiseConv2D whose only consumer
is a BatchNormalization, the TFLite converter folds the BN into the kernel, ``W_f = W * g`` with
``g = gamma / sqrt(var + eps)`` per output channel, and rounds ``W_f`` symmetrically to int8 in
[-127, 127] with scale ``max|W_f| / 127`` per output channel (checked against the converted models'
int8 filters and scales, and onnxruntime's QInt8 per-channel weights: int8_findings.md). Per-channel
scaling commutes with that grid, so the rounding error is ``dW = Q(W) - W`` with ``Q`` on ``W``'s own
per-channel grid. With the **float** model's input activations ``a`` of the conv on the calibration
images, ``delta_c = mean over (N, H, W) of conv(a, dW)[..., c]`` is the expected shift of channel ``c``;
adding ``delta`` to the BN's moving mean cancels it (BN subtracts the mean). Only the BN's mean
moves (and with it the folded bias); the kernels stay as they are and are still rounded by the
converter, so the exported model is as fully integer as before.

Every ``delta`` is measured on the unmodified float model and all are applied once, at the end: each
layer cancels its own rounding shift given float inputs, and nothing is iterated, so it cannot
diverge the way the earlier multi-pass draft did. Because convolution is linear,
``mean_N conv(a, dW) = conv(mean_N a, dW)``: only the per-layer mean input activation is
accumulated over the calibration batches (small memory), then one exact ``keras.ops`` conv per layer
(same strides, padding and borders as the layer) gives ``delta``.

Limits: each layer's own shift is cancelled exactly (on the calibration images), but a ReLU passes
the *upstream* rounding error only where its input is positive, and that masking is invisible to
float-model statistics, so the whole-network shift shrinks rather than vanishes; activation
quantization is not touched. Dense layers (the head) are not corrected: rounding their weights alone
moves the logit margin by about 1 % of what the base convs do (int8_findings.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Collection, Iterator

import numpy as np

#: int8 symmetric weight grid of the TFLite (and onnxruntime QInt8) per-channel quantizer: [-127, 127].
QMAX = 127


@dataclass(frozen=True)
class LayerCorrection:
    """One corrected conv -> BN pair. ``delta`` is in the conv's output units (what is added to
    the BN moving mean); ``max_abs_shift_out`` is the same shift after the BN (``|g * delta|``),
    i.e. what the next layer would have seen without the correction."""

    container: str
    conv: str
    bn: str
    depthwise: bool
    channels: int
    mean_abs_delta: float
    max_abs_delta: float
    max_abs_shift_out: float

    def to_dict(self) -> dict:
        return asdict(self)


def _reduce_axes(depthwise: bool) -> tuple[int, ...]:
    """Keras kernels: Conv2D (kh, kw, in, out) -> per ``out``; DepthwiseConv2D (kh, kw, in, mult)
    -> per (in, mult) = per output channel (TFLite's depthwise filter is (1, kh, kw, in*mult))."""
    return (0, 1) if depthwise else (0, 1, 2)


def round_to_int8_grid(kernel: np.ndarray, depthwise: bool) -> np.ndarray:
    """``kernel`` snapped to its symmetric per-output-channel int8 grid (scale ``max|W| / 127``)."""
    w = np.asarray(kernel, np.float64)
    scale = np.abs(w).max(axis=_reduce_axes(depthwise), keepdims=True) / QMAX
    safe = np.where(scale > 0, scale, 1.0)
    return (np.clip(np.round(w / safe), -QMAX, QMAX) * scale).astype(np.asarray(kernel).dtype)


def _is_conv(layer) -> bool:
    from keras import layers

    return isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)) and not isinstance(layer, layers.Conv2DTranspose)


def _depthwise(conv) -> bool:
    from keras import layers

    return isinstance(conv, layers.DepthwiseConv2D)


def conv_bn_pairs(container) -> list[tuple[object, object]]:
    """(conv, bn) pairs of one functional model (not its sub-models) whose BN the converter folds:
    a linear, ungrouped, channels-last conv whose single consumer is a channels-last BatchNormalization."""
    from keras import activations, layers

    pairs = []
    for conv in container.layers:
        if not _is_conv(conv) or len(conv._inbound_nodes) != 1 or len(conv._outbound_nodes) != 1:  # noqa: SLF001
            continue
        bn = conv._outbound_nodes[0].operation  # noqa: SLF001 - Keras 3 has no public graph walk
        if (isinstance(bn, layers.BatchNormalization) and bn.axis in (-1, 3) and conv.data_format == "channels_last"
                and conv.activation is activations.linear and getattr(conv, "groups", 1) == 1):
            pairs.append((conv, bn))
    return pairs


def _sub_models(container) -> list:
    import keras

    return [l for l in container.layers if isinstance(l, keras.Model) and len(l._inbound_nodes) == 1]  # noqa: SLF001


def _delta(conv, mean_input: np.ndarray, dw: np.ndarray) -> np.ndarray:
    """Exact per-channel mean of ``conv(a, dW)`` over N, H, W, from the batch-mean input ``a``."""
    from keras import ops

    x = ops.convert_to_tensor(mean_input[None].astype(np.float32))
    k = ops.convert_to_tensor(dw.astype(np.float32))
    if _depthwise(conv):
        y = ops.depthwise_conv(x, k, strides=conv.strides, padding=conv.padding, dilation_rate=conv.dilation_rate)
    else:
        y = ops.conv(x, k, strides=conv.strides, padding=conv.padding, dilation_rate=conv.dilation_rate)
    return np.asarray(ops.convert_to_numpy(y), np.float64).mean(axis=(0, 1, 2))


def _batches(x: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size].astype(np.float32)


def _mean_inputs(container, x: np.ndarray, batch_size: int, pairs: list,
                 subs: list) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Means over the images (float64) of each conv's input, and each sub-model's input per image
    (what that sub-model is visited with), from one forward pass of ``container`` in batches."""
    import keras

    if len(container.inputs) != 1:
        raise ValueError(f"{container.name}: bias correction supports single-input models only")
    sub_in = [s._inbound_nodes[0].input_tensors[0] for s in subs]  # noqa: SLF001 - its input in this graph
    taps = keras.Model(container.inputs[0], [c.input for c, _ in pairs] + sub_in)
    sums: list[np.ndarray] | None = None
    sub_inputs: list[list[np.ndarray]] = [[] for _ in subs]
    for xb in _batches(x, batch_size):
        outs = taps(xb, training=False)
        outs = [np.asarray(keras.ops.convert_to_numpy(o)) for o in (outs if isinstance(outs, (list, tuple))
                                                                     else [outs])]
        conv_outs, sub_outs = outs[:len(pairs)], outs[len(pairs):]
        batch_sums = [o.sum(axis=0, dtype=np.float64) for o in conv_outs]
        sums = batch_sums if sums is None else [s + b for s, b in zip(sums, batch_sums)]
        for acc, o in zip(sub_inputs, sub_outs):
            acc.append(o)
    means = [s / len(x) for s in (sums or [])]
    return means, [np.concatenate(a) for a in sub_inputs]


def clone_with_weights(model):
    """An independent copy (new layers and variables) with the same weights; the original is untouched."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def correct_weight_rounding_bias(model, calib_x: np.ndarray, batch_size: int = 8,
                                 log: Callable[[str], None] | None = None,
                                 skip_convs: Collection[str] = ()) -> tuple[object, list[LayerCorrection]]:
    """A copy of ``model`` whose BN moving means cancel the int8 weight-rounding shift of the conv
    before them (module docstring), plus per-layer statistics. ``calib_x``: the int8 calibration
    images (train split), preprocessed like inference input. Use the copy only for the int8 export.
    ``skip_convs``: conv paths (``sub_model/layer``) left uncorrected, e.g. convs the int8 model
    keeps in float (``convert.sensitivity``), whose weights are not rounded."""
    if len(calib_x) == 0:
        raise ValueError("bias correction needs calibration images")
    corrected = clone_with_weights(model)
    stats: list[LayerCorrection] = []
    updates: list[tuple[object, np.ndarray]] = []

    def visit(container, feed_x: np.ndarray) -> None:
        pairs, subs = conv_bn_pairs(container), _sub_models(container)
        if not pairs and not subs:
            return
        means, sub_x = _mean_inputs(container, feed_x, batch_size, pairs, subs)
        for (conv, bn), a in zip(pairs, means):
            if skip_convs and _bn_path(model, conv) in skip_convs:
                continue
            w = np.asarray(conv.get_weights()[0])
            dw = round_to_int8_grid(w, _depthwise(conv)).astype(np.float64) - w
            delta = _delta(conv, a, dw)
            var = np.asarray(bn.moving_variance, np.float64)
            gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones_like(var)
            g = gamma / np.sqrt(var + bn.epsilon)
            updates.append((bn, delta))
            stats.append(LayerCorrection(container.name, conv.name, bn.name, _depthwise(conv), int(delta.size),
                                         float(np.abs(delta).mean()), float(np.abs(delta).max()),
                                         float(np.abs(g * delta).max())))
        for sub, x in zip(subs, sub_x):
            visit(sub, x)

    # Measured on the float original (its activations), applied to the copy's BN of the same name.
    visit(model, np.asarray(calib_x, np.float32))
    by_path = _bn_paths(corrected)
    for bn, delta in updates:
        target = by_path[_bn_path(model, bn)]
        target.moving_mean.assign((np.asarray(target.moving_mean, np.float64) + delta).astype(np.float32))
    if log:
        top = sorted(stats, key=lambda s: -s.max_abs_shift_out)[:3]
        log(f"bias correction: {len(stats)} conv->BN pairs; largest shifts after BN: "
            + ", ".join(f"{s.conv} {s.max_abs_shift_out:.3g}" for s in top))
    return corrected, stats


def _walk(container, prefix: str = "") -> Iterator[tuple[str, object]]:
    import keras

    for layer in container.layers:
        path = f"{prefix}{layer.name}"
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer, path + "/")


def _bn_paths(model) -> dict[str, object]:
    from keras import layers

    return {p: l for p, l in _walk(model) if isinstance(l, layers.BatchNormalization)}


def _bn_path(model, bn) -> str:
    return next(p for p, l in _walk(model) if l is bn)


def round_conv_weights(model):
    """Simulation: a copy whose folded convs' kernels are snapped to the int8 grid, all else float
    (activations included). Isolates the weight-rounding effect; used by tests and the study."""
    copy = clone_with_weights(model)

    def visit(container) -> None:
        for conv, _ in conv_bn_pairs(container):
            w = conv.get_weights()
            conv.set_weights([round_to_int8_grid(w[0], _depthwise(conv)), *w[1:]])
        for sub in _sub_models(container):
            visit(sub)

    visit(copy)
    return copy
