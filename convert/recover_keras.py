"""Rebuild a trainable Keras model from one of our own ONNX exports.

Why: a release ships TFLite and ONNX, not the ``model.keras`` it came from (run folders are
not committed). To fine-tune a released model further, or to add outputs to it (a domain
check, a temperature), the float graph must become a Keras model again. The ONNX export is
exact float32, so nothing is lost: every BatchNorm was folded by the exporter into its conv
(weights and bias) or left as a per-channel ``Mul``/``Add`` pair, and the head's Dense and
BatchNorm layers appear as ``MatMul``/``Add`` and ``Mul``/``Add``.

The rebuilt model has the architecture of :func:`train.model.build_model`; each conv gets the
folded kernel and its BatchNorm becomes ``y = x + shift`` (gamma 1, mean 0, variance 1 - eps),
so inference is the same function and a fine-tune with frozen BatchNorm trains the same
parameters. :func:`recover` checks the result against onnxruntime on given images and
refuses a rebuild that differs by more than ``atol``.

    python -m convert.recover_keras --onnx models/br35h-mobilenetv2.onnx --out runs/paper-recovered/model.keras
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
import sys

import numpy as np


@dataclass(frozen=True)
class Affine:
    """One conv (or Dense) of the ONNX graph with the per-channel scale and shift after it."""

    kernel: np.ndarray
    shift: np.ndarray


class RecoveryError(ValueError):
    """The ONNX graph does not have the layout our exporter produces; the message says where."""


def _const(graph_inits: dict, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    return numpy_helper.to_array(graph_inits[name]) if name in graph_inits else None


def trace(onnx_path: str | Path) -> tuple[list[Affine], list[tuple[str, np.ndarray]]]:
    """Convs in graph order with their folded affine, and the head's constants in order.

    Returns ``(convs, head)``: ``convs[i]`` is the i-th ``Conv`` with its following constant
    ``Mul``/``Add`` folded in; ``head`` is ``[(op, constant), ...]`` for every constant
    ``Mul``/``Add``/``MatMul`` after global pooling.
    """
    import onnx

    model = onnx.load(str(onnx_path))
    inits = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    convs: list[Affine] = []
    head: list[tuple[str, np.ndarray]] = []
    pooled = False
    for node in model.graph.node:
        if node.op_type == "GlobalAveragePool":
            pooled = True
        if pooled and node.op_type in ("Mul", "Add", "MatMul"):
            c = _const(inits, node.input[1])
            if c is not None:
                head.append((node.op_type, c))
            continue
        if node.op_type != "Conv":
            continue
        w = _const(inits, node.input[1])
        if w is None:
            raise RecoveryError(f"{onnx_path}: conv {node.name} has a non-constant kernel")
        out_ch = w.shape[0]
        scale = np.ones(out_ch, np.float32)
        shift = _const(inits, node.input[2]).reshape(-1) if len(node.input) > 2 else np.zeros(out_ch, np.float32)
        out = node.output[0]
        for op in ("Mul", "Add"):  # an unfolded BatchNorm: x * scale + shift
            nxt = consumers.get(out, [])
            if len(nxt) == 1 and nxt[0].op_type == op and _const(inits, nxt[0].input[1]) is not None:
                c = _const(inits, nxt[0].input[1]).reshape(-1)
                if op == "Mul":
                    scale, shift = scale * c, shift * c
                else:
                    shift = shift + c
                out = nxt[0].output[0]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group == 1:
            kernel = (w * scale[:, None, None, None]).transpose(2, 3, 1, 0)  # OIHW -> HWIO
        else:  # depthwise: (C, 1, kh, kw) -> (kh, kw, C, 1)
            kernel = (w * scale[:, None, None, None]).transpose(2, 3, 0, 1)
        convs.append(Affine(kernel.astype(np.float32), shift.astype(np.float32)))
    return convs, head


def rebuild(onnx_path: str | Path, model_cfg=None):
    """A :func:`train.model.build_model` Keras model carrying the ONNX file's weights."""
    from keras import layers

    from train.model import ModelConfig, base_of, build_model, head_of

    cfg = model_cfg or ModelConfig()
    if cfg.head != "paper":
        raise RecoveryError("only the paper head is supported")
    convs, head = trace(onnx_path)
    model = build_model(cfg, weights=None)
    base = base_of(model)
    pairs, pending = [], None
    for layer in base.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            pending = layer
        elif isinstance(layer, layers.BatchNormalization) and pending is not None:
            pairs.append((pending, layer))
            pending = None
    if len(pairs) != len(convs):
        raise RecoveryError(f"{onnx_path}: {len(convs)} convs in the graph, {len(pairs)} conv+BN pairs in the model")
    for (conv, bn), aff in zip(pairs, convs):
        if tuple(conv.kernel.shape) != aff.kernel.shape:
            raise RecoveryError(f"{onnx_path}: {conv.name} expects {tuple(conv.kernel.shape)}, graph has {aff.kernel.shape}")
        conv.set_weights([aff.kernel])
        _identity_bn(bn, aff.shift)
    h = head_of(model)
    steps = _head_steps(head)
    kinds = [k for k, _, _ in steps]
    expected = ["bn", "dense", "dense", "bn", "dense", "dense"]
    if kinds != expected:
        raise RecoveryError(f"{onnx_path}: head ops {[op for op, _ in head]} read as {kinds}, expected {expected}")
    names = ["head_bn1", "head_fc2048", "head_fc1024", "head_bn2", "head_fc512", "classifier"]
    for name, (kind, first, shift) in zip(names, steps):
        layer = h.get_layer(name)
        if kind == "bn":
            _identity_bn(layer, shift if shift is not None else np.zeros(first.size, np.float32), first.reshape(-1))
        else:
            layer.set_weights([first, shift if shift is not None else np.zeros(first.shape[1], np.float32)])
    return model


def _head_steps(head: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """Group the head's constant ops into layers: ``MatMul [+ Add]`` is a Dense, ``Mul [+ Add]`` a
    BatchNorm. The exporter drops an ``Add`` whose constant is all zeros (an untrained bias)."""
    steps, i = [], 0
    while i < len(head):
        op, c = head[i]
        if op not in ("MatMul", "Mul"):
            raise RecoveryError(f"unexpected {op} in the head")
        shift = None
        if i + 1 < len(head) and head[i + 1][0] == "Add":
            shift, i = head[i + 1][1].reshape(-1), i + 1
        steps.append(("dense" if op == "MatMul" else "bn", c, shift))
        i += 1
    return steps


def _identity_bn(bn, shift: np.ndarray, scale: np.ndarray | None = None) -> None:
    """BatchNorm computing ``x * scale + shift`` in inference mode."""
    n = shift.shape[0]
    gamma = np.ones(n, np.float32) if scale is None else scale.astype(np.float32)
    values = {"gamma": gamma, "beta": shift.astype(np.float32), "moving_mean": np.zeros(n, np.float32),
              "moving_variance": np.full(n, 1.0 - bn.epsilon, np.float32)}
    bn.set_weights([values[w.name.split("/")[-1].split(":")[0]] for w in bn.weights])


def recover(onnx_path: str | Path, out: str | Path, check_images: np.ndarray, atol: float = 1e-4) -> dict:
    """Rebuild, compare with onnxruntime on ``check_images`` (N, 224, 224, 3 uint8), save.

    Raises :class:`RecoveryError` (and writes nothing) when the largest probability difference
    exceeds ``atol``.
    """
    import onnxruntime as ort

    model = rebuild(onnx_path)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = check_images.astype(np.float32)
    ref = np.concatenate([sess.run(None, {name: x[i : i + 32]})[0] for i in range(0, len(x), 32)])
    got = np.concatenate([np.asarray(model.predict_on_batch(x[i : i + 32])) for i in range(0, len(x), 32)])
    diff = float(np.abs(ref - got).max())
    same = int((ref.argmax(1) == got.argmax(1)).sum())
    if diff > atol:
        raise RecoveryError(f"{onnx_path}: rebuilt model differs from onnxruntime by {diff:.2e} > {atol:.0e}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return {"onnx": str(onnx_path), "keras": str(out), "images": len(x), "max_abs_diff": diff, "same_class": same}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m convert.recover_keras", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="the .keras file to write")
    p.add_argument("--manifest", default="splits/br35h-paper.csv", help="crops to check the rebuild on")
    p.add_argument("--data", default=None, help="BR35H root (default: $BR35H_DATA or ../shared/data/br35h)")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--check", type=int, default=200, help="how many crops to compare (default 200)")
    p.add_argument("--atol", type=float, default=1e-4)
    a = p.parse_args(argv)
    from train.data.cache import load_crops

    crops = load_crops(a.manifest, a.split, data_root=a.data)
    try:
        res = recover(a.onnx, a.out, crops.x[: a.check], a.atol)
    except RecoveryError as exc:
        print(f"recover_keras: {exc}", file=sys.stderr)
        return 1
    print(f"{res['keras']}: {res['same_class']}/{res['images']} same class as onnxruntime, "
          f"largest probability difference {res['max_abs_diff']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
