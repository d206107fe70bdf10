"""Which convs should stay float in the int8 model? Rank them by what rounding their weights does.

Why: on some fine-tuned models the full-integer TFLite flips a few *confident* predictions, and the
cause is the int8 rounding of the weights of a few convs (MobileNetV2's linear-bottleneck
``block_*_project`` convs on the models measured), not activation ranges or calibration
(reports/convert/int8_findings.md). Keeping those one or two convs in float restores float
behaviour at a small cost; this module finds them without hand-picked, model-specific names.

How (all in Keras, on **train-split calibration images** only):

1. For every Conv2D / DepthwiseConv2D of the model (nested sub-models included), snap only that
   layer's kernel to the converter's symmetric per-output-channel int8 grid
   (``bias_correction.round_to_int8_grid``; the converter folds a following BatchNorm into the
   kernel, and that per-channel scaling commutes with the grid, so rounding the unfolded kernel is
   exact), run the images, and compare the logit margin ``z_yes - z_no`` (the classifier's softmax
   swapped for linear on a private copy) with the float model's. Score = mean |margin change|;
   max |margin change| and max |P change| are recorded too.
2. The curve: all convs rounded except the top K, for K = 0..``curve_k``: how much of the whole
   weight-rounding error the K most sensitive convs carry (a check that single-layer scores add up).
3. :func:`tflite_nodes` maps the chosen layers to the op names of a converted (or calibrated)
   TFLite model, which ``mlir_quantize``'s ``denylisted_nodes`` (``tflite_export.selective_int8``)
   takes: the output tensor name of the CONV_2D / DEPTHWISE_CONV_2D op, e.g.
   ``.../mobilenetv2_1.00_224_1/block_13_project_BN_1/batchnorm/add_1;.../block_13_project_1/convolution;...``.
   An op belongs to a layer when one of its ``;``-separated name parts has the layer's container
   and the layer (or its folded BatchNorm) as ``/``-components (TF appends ``_<n>`` to each name
   scope when exporting), and its filter has the layer's kernel shape.

Only weight rounding is simulated (activations stay float): that is the diagnosed cause, and it
makes each score one cheap forward pass. Cost: (convs + curve_k + 2) forward passes over the image
subset; 52 convs x 128 images of MobileNetV2 at 224 px is a few minutes on two loaded CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import re
import time
from typing import Callable, Sequence

import numpy as np

from convert.bias_correction import _walk, clone_with_weights, conv_bn_pairs, round_to_int8_grid

#: Forward-pass batch of the Keras simulation.
BATCH = 32


@dataclass(frozen=True)
class ConvRef:
    """One conv of the Keras model: ``path`` = sub-model names and layer name joined by ``/``
    (``mobilenetv2_1.00_224/block_13_project``); ``bn`` = the BatchNorm the converter folds into it."""

    path: str
    depthwise: bool
    kernel_shape: tuple[int, ...]
    bn: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def containers(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")[:-1])

    def tflite_filter_shape(self) -> tuple[int, ...]:
        """Conv2D (kh, kw, in, out) -> TFLite (out, kh, kw, in); DepthwiseConv2D (kh, kw, in, mult) -> (1, kh, kw, in*mult)."""
        kh, kw, cin, cout = self.kernel_shape
        return (1, kh, kw, cin * cout) if self.depthwise else (cout, kh, kw, cin)


@dataclass(frozen=True)
class LayerScore:
    """Effect of rounding one conv's weights alone, over the ranking images (changes vs float)."""

    path: str
    depthwise: bool
    mean_abs_margin_change: float
    max_abs_margin_change: float
    mean_margin_change: float
    max_abs_prob_change: float

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def to_dict(self) -> dict:
        return {"layer": self.name, **asdict(self)}


@dataclass(frozen=True)
class Ranking:
    """Convs sorted most sensitive first, plus the all-but-top-K curve (K = 0, 1, ...)."""

    scores: tuple[LayerScore, ...]
    refs: dict[str, ConvRef]
    images: int
    seconds: float
    float_margin_abs_median: float
    curve: tuple[dict, ...] = field(default=())

    def top(self, k: int) -> list[ConvRef]:
        return [self.refs[s.path] for s in self.scores[:k]]

    def to_dict(self, top: int = 10) -> dict:
        return {"metric": "mean |logit margin change| when only this conv's weights are on the int8 grid",
                "images": self.images, "seconds": self.seconds, "convs": len(self.scores),
                "float_margin_abs_median": self.float_margin_abs_median,
                "top": [s.to_dict() for s in self.scores[:top]], "curve": list(self.curve)}


def conv_refs(model) -> list[ConvRef]:
    """Every Conv2D / DepthwiseConv2D of ``model`` and its sub-models, in graph order."""
    from keras import layers

    folded = {}
    for path, layer in [("", model), *_walk(model)]:
        if hasattr(layer, "layers"):
            prefix = f"{path}/" if path else ""
            folded.update({f"{prefix}{c.name}": bn.name for c, bn in conv_bn_pairs(layer)})
    refs = []
    for path, layer in _walk(model):
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)) and not isinstance(layer, layers.Conv2DTranspose):
            refs.append(ConvRef(path, isinstance(layer, layers.DepthwiseConv2D), tuple(layer.kernel.shape),
                                folded.get(path)))
    return refs


def logit_model(model):
    """A private copy whose final softmax is linear: outputs logits. Supports a softmax set as a
    layer's ``activation`` (Dense, Activation), which is what ``train.model.build_model`` builds."""
    import keras

    copy = clone_with_weights(model)
    soft = [l for _, l in _walk(copy) if getattr(l, "activation", None) is keras.activations.softmax]
    if not soft:
        raise ValueError(f"{model.name}: no layer with a softmax activation to read logits from")
    soft[-1].activation = keras.activations.linear
    return copy


def _layer(model, path: str):
    layer = model
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer


def _margins(model, x: np.ndarray) -> np.ndarray:
    z = np.asarray(model.predict(x, batch_size=BATCH, verbose=0), np.float64)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"expected (N, 2) logits, got {z.shape}")
    return z[:, 1] - z[:, 0]


def _prob_yes(margin: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(margin, -60, 60)))


def subset(x: np.ndarray, n: int) -> np.ndarray:
    """``n`` evenly spaced images of ``x`` (calibration arrays are in manifest order, so this spans the classes)."""
    if n >= len(x):
        return x
    return x[np.unique(np.linspace(0, len(x) - 1, n).round().astype(int))]


def rank_convs(model, images: np.ndarray, curve_k: int = 4,
               log: Callable[[str], None] | None = None) -> Ranking:
    """Score every conv of ``model`` by the logit-margin change when only its kernel is rounded to
    the int8 grid (module docstring). ``images``: train-split calibration images, raw 0..255 float32."""
    if len(images) == 0:
        raise ValueError("sensitivity ranking needs calibration images")
    t0 = time.perf_counter()
    x = np.asarray(images, np.float32)
    work = logit_model(model)
    refs = conv_refs(work)
    if not refs:  # nothing to keep float: an empty ranking, the int8 model stays fully integer
        if log:
            log(f"sensitivity: {model.name} has no Conv2D/DepthwiseConv2D layers to rank")
        return Ranking((), {}, len(x), round(time.perf_counter() - t0, 1), 0.0, ())
    layers_ = {r.path: _layer(work, r.path) for r in refs}
    original = {p: np.asarray(l.kernel) for p, l in layers_.items()}
    rounded = {r.path: round_to_int8_grid(original[r.path], r.depthwise) for r in refs}
    m0 = _margins(work, x)
    p0 = _prob_yes(m0)

    def stats(m: np.ndarray) -> tuple[float, float, float, float]:
        d = m - m0
        return (float(np.abs(d).mean()), float(np.abs(d).max()), float(d.mean()),
                float(np.abs(_prob_yes(m) - p0).max()))

    scores = []
    for i, r in enumerate(refs):
        layers_[r.path].kernel.assign(rounded[r.path])
        try:
            scores.append(LayerScore(r.path, r.depthwise, *stats(_margins(work, x))))
        finally:
            layers_[r.path].kernel.assign(original[r.path])
        if log and (i + 1) % 10 == 0:
            log(f"sensitivity: {i + 1}/{len(refs)} convs ({time.perf_counter() - t0:.0f} s)")
    scores.sort(key=lambda s: -s.mean_abs_margin_change)

    curve = []
    for k in range(min(curve_k, len(refs)) + 1):
        keep = {s.path for s in scores[:k]}
        for p, l in layers_.items():
            l.kernel.assign(original[p] if p in keep else rounded[p])
        m = _margins(work, x)
        mean_abs, max_abs, mean, max_dp = stats(m)
        curve.append({"k": k, "kept_float": [s.name for s in scores[:k]], "mean_abs_margin_change": mean_abs,
                      "max_abs_margin_change": max_abs, "mean_margin_change": mean, "max_abs_prob_change": max_dp,
                      "flips": int((np.sign(m) != np.sign(m0)).sum())})
    for p, l in layers_.items():
        l.kernel.assign(original[p])
    ranking = Ranking(tuple(scores), {r.path: r for r in refs}, len(x), round(time.perf_counter() - t0, 1),
                      float(np.median(np.abs(m0))), tuple(curve))
    if log:
        log(f"sensitivity: {len(refs)} convs on {len(x)} calibration images in {ranking.seconds} s; most sensitive: "
            + ", ".join(f"{s.name} {s.mean_abs_margin_change:.3g}" for s in scores[:3]))
    return ranking


# --- Keras layer -> TFLite op name ------------------------------------------------------------

def _ops(tflite: bytes):
    """``(builtin code, op, subgraph, schema module)`` for every op of subgraph 0."""
    from ai_edge_litert import schema_py_generated as tfl

    m = tfl.Model.GetRootAs(tflite, 0)
    g = m.Subgraphs(0)
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        oc = m.OperatorCodes(op.OpcodeIndex())
        yield max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), op, g, tfl


def _conv_ops(tflite: bytes) -> list[tuple[str, tuple[int, ...]]]:
    """(output tensor name, filter shape) of every CONV_2D / DEPTHWISE_CONV_2D op in subgraph 0."""
    out = []
    for code, op, g, tfl in _ops(tflite):
        if code in (tfl.BuiltinOperator.CONV_2D, tfl.BuiltinOperator.DEPTHWISE_CONV_2D):
            name = g.Tensors(op.Outputs(0)).Name().decode()
            out.append((name, tuple(int(v) for v in g.Tensors(op.Inputs(1)).ShapeAsNumpy())))
    return out


def _scope(name: str) -> re.Pattern:
    """A name scope as TF writes it on export: the name, optionally with ``_<n>`` appended."""
    return re.compile(rf"{re.escape(name)}(?:_\d+)?")


def _in_order(patterns: Sequence[re.Pattern], comps: Sequence[str]) -> bool:
    """Each pattern matches some component, in this order (other components may lie between)."""
    it = iter(comps)
    return all(any(p.fullmatch(c) for c in it) for p in patterns)


def _belongs(op_name: str, ref: ConvRef) -> bool:
    """Some ``;``-part of ``op_name`` has the layer (or its folded BN) as a component, preceded by
    the layer's sub-model names in order."""
    wanted = [_scope(n) for n in (ref.name, ref.bn) if n]
    parents = [_scope(n) for n in ref.containers]
    for part in op_name.split(";"):
        comps = part.split("/")
        for i, c in enumerate(comps):
            if any(w.fullmatch(c) for w in wanted) and _in_order(parents, comps[:i]):
                return True
    return False


def tflite_nodes(tflite: bytes, refs: Sequence[ConvRef]) -> dict[str, str]:
    """``{layer path: op output name}`` for ``refs`` in a converted or calibrated TFLite model;
    every ref must match exactly one conv op (by name scopes and filter shape), else ValueError."""
    ops = _conv_ops(tflite)
    found = {}
    for ref in refs:
        hits = [n for n, shape in ops if shape == ref.tflite_filter_shape() and _belongs(n, ref)]
        if len(hits) != 1:
            raise ValueError(f"{ref.path}: {len(hits)} TFLite conv ops match (expected 1); "
                             f"op names: {[n[:120] for n, _ in ops][:5]}...")
        found[ref.path] = hits[0]
    if len(set(found.values())) != len(found):
        raise ValueError(f"two layers map to the same TFLite op: {found}")
    return found


def float_ops(tflite: bytes) -> list[dict]:
    """Ops of a (selectively) quantized model that compute in float32: (op, output name)."""
    out, names = [], None
    for code, op, g, tfl in _ops(tflite):
        names = names or {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
        t = g.Tensors(op.Outputs(0))
        if t.Type() == tfl.TensorType.FLOAT32 and names.get(code) != "DEQUANTIZE":
            out.append({"op": names.get(code, str(code)), "output": t.Name().decode()})
    return out
