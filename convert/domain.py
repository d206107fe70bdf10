"""The in-model domain check: how far a crop's pooled features lie from the training data.

Method (Lee et al. 2018, "A simple unified framework for detecting out-of-distribution samples"):
class-conditional Gaussians with one shared covariance on the 1280-d pooled features of the
trained base. The distance of a feature vector ``f`` to class ``c`` is
``d_c = ||P^T (f - mu_c)||^2`` with ``P`` the whitening projection onto the ``dims`` leading
principal directions of the within-class covariance (the trailing ones are estimated from too few
images to be trusted and would dominate a full inverse); the check uses ``d = min_c d_c``.

Why it lives *in* the model: every runtime (LiteRT int8/fp16, ONNX, MediaPipe on Android) then
gets it from the same interpreter call, with no extra dependency. It is one Dense layer (the
projection ``z = P^T f``, shared by every class) and :class:`DomainScore` (subtract each class's
projected mean ``P^T mu_c``, square, sum, min over classes, then ``s = c / (c + d)``). Projecting
once and subtracting per class costs one 1280 x k product whatever the number of classes (an
earlier graph projected once per class: twice the weights read per call, +14.5 % ONNX
latency). The bounded, monotone transform keeps the score in (0, 1], higher = more like
training data, with ``c`` = the median in-domain validation distance
(so a typical in-domain crop scores ~0.5 and far-away inputs approach 0), which is a range any
output quantization can represent; the int8 export keeps this tail in float anyway
(:func:`tail_node_names`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from convert.views import ViewConfig, ViewGate

#: Names of the layers this module adds; the int8 export keeps them (and the classifier tail) float.
WHITEN = "domain_whiten"
SCORE = "domain_score"
VIEW = "domain_view"
GATED = "domain_gated"
LOGITS = "logits"
TEMPERATURE = "temperature"
PROBABILITY = "probability"
TAIL_LAYERS = (WHITEN, SCORE, VIEW, GATED, LOGITS, TEMPERATURE, PROBABILITY)


@dataclass(frozen=True)
class DomainConfig:
    """How the domain check is fitted.

    Attributes:
        dims: principal directions of the within-class covariance kept (whitened).
        shrinkage: added to every eigenvalue, as a fraction of the mean eigenvalue (stability).
        accept: share of in-domain **validation** crops the threshold accepts.
        max_fit_images: train crops whose features are used (evenly spaced subset; 2 CPU cores).
        views: the view gate (:mod:`convert.views`); off unless ``views.labels`` is set.
    """

    dims: int = 256
    shrinkage: float = 1e-3
    accept: float = 0.99
    max_fit_images: int = 1200
    views: ViewConfig = field(default_factory=lambda: ViewConfig(labels=None))

    def __post_init__(self) -> None:
        if self.dims < 1:
            raise ValueError(f"dims must be >= 1, got {self.dims}")
        if not 0.5 <= self.accept < 1.0:
            raise ValueError(f"accept must be in [0.5, 1), got {self.accept}")
        if self.shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0, got {self.shrinkage}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MahalanobisFit:
    """``means`` (C, D), ``projection`` (D, k): ``d_c(f) = ||(f - means[c]) @ projection||^2``."""

    means: np.ndarray
    projection: np.ndarray
    scale: float = 1.0  # c of s = c / (c + d); set by :func:`with_scale`

    def distances(self, features: np.ndarray) -> np.ndarray:
        """``min_c d_c`` per row, float64 (the reference the exported graph must match)."""
        f = np.asarray(features, np.float64)
        d = [(((f - m) @ self.projection) ** 2).sum(1) for m in self.means]
        return np.min(np.stack(d, 1), 1)

    def scores(self, features: np.ndarray) -> np.ndarray:
        return to_score(self.distances(features), self.scale)


def to_score(distance: np.ndarray, scale: float) -> np.ndarray:
    """``c / (c + d)``: (0, 1], decreasing in the distance."""
    return scale / (scale + np.asarray(distance, np.float64))


def fit_mahalanobis(features: np.ndarray, labels: np.ndarray, dims: int, shrinkage: float = 1e-3) -> MahalanobisFit:
    """Class means and the whitening projection of the shared (pooled within-class) covariance."""
    f = np.asarray(features, np.float64)
    y = np.asarray(labels).astype(int)
    classes = np.unique(y)
    if len(classes) < 1 or len(f) < 2:
        raise ValueError(f"need features of at least 2 images, got {len(f)}")
    means = np.stack([f[y == c].mean(0) for c in classes])
    centred = f - means[np.searchsorted(classes, y)]
    cov = centred.T @ centred / max(len(f) - len(classes), 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][: min(dims, f.shape[1])]
    ridge = shrinkage * float(vals.mean())
    projection = vecs[:, order] / np.sqrt(np.maximum(vals[order], 0) + ridge + 1e-12)
    return MahalanobisFit(means=means, projection=projection)


def with_scale(fit: MahalanobisFit, in_domain_features: np.ndarray) -> MahalanobisFit:
    """The same fit with ``scale`` = median distance of the given (validation) features."""
    return MahalanobisFit(fit.means, fit.projection, float(np.median(fit.distances(in_domain_features))))


def accept_threshold(in_domain_scores: np.ndarray, accept: float) -> float:
    """Largest score threshold that accepts at least ``accept`` of ``in_domain_scores`` (``s >= t``)."""
    s = np.sort(np.asarray(in_domain_scores, np.float64))
    k = int(np.floor((1.0 - accept) * len(s)))  # at most k crops may fall below
    return float(s[min(k, len(s) - 1)])


# --- alternatives the choice was measured against -------------------------------------------

def max_softmax(logits: np.ndarray) -> np.ndarray:
    """Hendrycks & Gimpel's baseline: the largest class probability (higher = in domain)."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return p.max(1)


def energy(logits: np.ndarray) -> np.ndarray:
    """Liu et al. 2020: ``logsumexp(logits)`` (negative free energy; higher = in domain)."""
    m = logits.max(1, keepdims=True)
    return (m + np.log(np.exp(logits - m).sum(1, keepdims=True)))[:, 0]


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """P(score of a random in-domain item > score of a random out-of-domain item), ties half."""
    a = np.asarray(in_scores, np.float64)
    b = np.asarray(out_scores, np.float64)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    allv = np.concatenate([a, b])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties
    i = 0
    while i < len(sorted_v):
        j = i
        while j + 1 < len(sorted_v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b)))


# --- Keras graph ----------------------------------------------------------------------------

def domain_score_layer():
    """:class:`DomainScore`, defined lazily so importing this module does not import Keras."""
    import keras

    @keras.saving.register_keras_serializable(package="br35h")
    class DomainScore(keras.layers.Layer):
        """``(N, k)`` projected features -> ``(N, 1)`` score ``c / (c + min_c ||z - m_c||^2)``,
        with the projected class means ``m_c`` (``(C, k)``) held as a non-trainable weight."""

        def __init__(self, classes: int, dims: int, scale: float, **kwargs):
            super().__init__(**kwargs)
            self.classes, self.dims, self.scale = int(classes), int(dims), float(scale)

        def build(self, input_shape):
            self.centres = self.add_weight(shape=(self.classes, self.dims), initializer="zeros",
                                           trainable=False, name="centres")

        def call(self, z):
            from keras import ops

            diff = ops.expand_dims(z, 1) - ops.expand_dims(ops.convert_to_tensor(self.centres), 0)
            d = ops.min(ops.sum(ops.square(diff), axis=-1), axis=-1, keepdims=True)
            return self.scale / (d + self.scale)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 1)

        def get_config(self):
            return {**super().get_config(), "classes": self.classes, "dims": self.dims, "scale": self.scale}

    return DomainScore


def classifier_logits_model(model):
    """``image -> (pooled features, logits)`` of a model built by ``train.model.build_model``
    (pooled features = layer ``pool``; the last layer, ``classifier``, a softmax Dense, either in
    the head sub-model or at the top level, as in the tests' tiny models)."""
    import keras

    from train.model import head_of

    feats = model.get_layer("pool").output
    names = [l.name for l in model.layers]
    if "classifier" in names:
        cls = model.get_layer("classifier")
        h = cls.input
    else:
        head = head_of(model)
        cls = head.get_layer("classifier")
        h = keras.Model(head.inputs, cls.input, name="head_body")(feats)
    kernel, bias = cls.get_weights()
    dense = keras.layers.Dense(kernel.shape[1], name=LOGITS)
    logits = dense(h)
    dense.set_weights([kernel, bias])
    return keras.Model(model.input, [feats, logits], name="features_logits")


def build_checked_model(model, fit: MahalanobisFit, temperature: float, gate: ViewGate | None = None):
    """``image -> [probability (N, 2), domain_score (N, 1)]``: the trained network with the
    temperature folded in (``softmax(logits / T)``) and the domain check as a second output;
    with ``gate``, the score is negated wherever the slice's view is not one the model was
    validated on (:mod:`convert.views`).

    Output order is part of the contract: index 0 is the class probabilities, 1 the domain
    score. The TFLite converter may list them the other way round; ``convert.metadata.pack_graph``
    puts them back in this order (MediaPipe numbers its heads by position), and the runtimes tell
    them apart by shape anyway.
    """
    import keras
    from keras import layers

    from convert.views import gate_layer, gate_weights

    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    fl = classifier_logits_model(model)
    feats, logits = fl.outputs
    probs = layers.Softmax(name=PROBABILITY)(layers.Rescaling(1.0 / temperature, name=TEMPERATURE)(logits))
    c, d = fit.means.shape[0], fit.projection.shape[1]
    whiten = layers.Dense(d, use_bias=False, name=WHITEN)
    z = whiten(feats)
    whiten.set_weights([fit.projection.astype(np.float32)])
    score_layer = domain_score_layer()(c, d, fit.scale, name=SCORE)
    score = score_layer(z)
    score_layer.set_weights([(fit.means @ fit.projection).astype(np.float32)])
    if gate is not None:
        view = gate_layer()(fit.means.shape[1], len(gate.probe.views), gate.threshold, name=VIEW)
        g = view(feats)
        view.set_weights(gate_weights(gate))
        score = layers.Multiply(name=GATED)([score, g])
    return keras.Model(fl.input, [probs, score], name=model.name + "_checked")


def tail_node_names(tflite: bytes) -> list[str]:
    """Output names of the ops a calibrated TFLite model computes for :data:`TAIL_LAYERS`.

    The int8 export keeps them float (selective quantization): an int8 tensor's range comes from
    in-domain calibration images only, so an int8 distance would clip exactly where out-of-domain
    inputs lie, and an int8 softmax can only say 0, 1/256, ... 255/256. Cost: one 1280 x k and
    one 512 x 2 float matrix product per image.
    """
    from convert.sensitivity import _ops  # noqa: PLC2701 - the one op iterator of this package

    names = []
    for _, op, g, _ in _ops(tflite):
        outputs = set(g.OutputsAsNumpy().tolist())
        name = g.Tensors(op.Outputs(0)).Name().decode()
        # The ops writing the model's outputs (the softmax, the score's division) carry the
        # signature's output names, not their layer's: they are matched by being outputs.
        if op.Outputs(0) in outputs or any(f"/{layer}" in name or name.startswith(layer) for layer in TAIL_LAYERS):
            names.append(name)
    return names


@dataclass(frozen=True)
class Attached:
    """The two-output model and what was fitted for it (``info`` goes into the report)."""

    model: object
    fit: MahalanobisFit
    temperature: float
    info: dict
    gate: ViewGate | None = None
    labelled_features: np.ndarray | None = None  # float pooled features of the gate's labelled slices

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The exported graph's domain score, in numpy."""
        s = self.fit.scores(features)
        return s if self.gate is None else s * self.gate.sign(features)


def _subset(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n else np.zeros(0, int)


def features_and_logits(model, x: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and logits of ``model`` (one built by ``train.model.build_model``)."""
    fl = classifier_logits_model(model)
    f, z = fl.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)
    return np.asarray(f, np.float64), np.asarray(z, np.float64)


def attach(model, train, val, cfg: DomainConfig = DomainConfig(), log=print, labelled=None) -> Attached:
    """Fit the domain check on ``train`` features (at most ``cfg.max_fit_images``, evenly spaced),
    its scale and the temperature on ``val``, and return the two-output model.

    ``labelled`` (crops with a ``views`` list, see :mod:`convert.views`) adds the view gate: the
    probe is fitted on them, the supported views are read off ``val``.

    Checks that the built graph reproduces the numpy reference on validation crops (a wrong
    weight layout would otherwise only show as a silently useless check).
    """
    from convert.temperature import fit_temperature

    if val is None or len(val.y) == 0:
        raise ValueError("the domain check and the temperature are chosen on the validation split, "
                         "but the manifest has no val rows")
    idx = _subset(len(train.y), cfg.max_fit_images)
    f_tr, _ = features_and_logits(model, train.x[idx])
    f_val, z_val = features_and_logits(model, val.x)
    fit = with_scale(fit_mahalanobis(f_tr, np.asarray(train.y)[idx], cfg.dims, cfg.shrinkage), f_val)
    temp = fit_temperature(z_val, np.asarray(val.y))
    log(f"domain check: Mahalanobis, {fit.projection.shape[1]} whitened dims, fitted on {len(idx)} train crops; "
        f"scale {fit.scale:.4g}; temperature {temp.temperature:.4g}"
        + (" (at the search bound: T not identified by val, kept 1)" if temp.at_bound else ""))
    gate, view_info, f_lab = None, None, None
    if labelled is not None:
        f_lab, _ = features_and_logits(model, labelled.x)
        gate, view_info = _fit_gate(f_lab, list(labelled.views), f_val, z_val, np.asarray(val.y), cfg.views, log)
    checked = build_checked_model(model, fit, temp.temperature, gate)
    att = Attached(checked, fit, temp.temperature, {}, gate)
    _check_graph(checked, np.asarray(val.x), f_val, att)
    val_scores = att.scores(f_val)
    info = {"method": "mahalanobis", "config": cfg.to_dict(), "fit_images": int(len(idx)),
            "scale": fit.scale, "dims": int(fit.projection.shape[1]),
            "temperature": temp.to_dict(),
            "val_score_quantiles": {q: float(np.quantile(val_scores, q)) for q in (0.01, 0.05, 0.5)},
            "views": view_info}
    return Attached(checked, fit, temp.temperature, info, gate, f_lab)


def _fit_gate(f_lab, views, f_val, z_val, y_val, cfg: ViewConfig, log) -> tuple[ViewGate, dict]:
    from convert.views import cross_fitted_proba, fit_probe, gate_threshold, support_table

    probe = fit_probe(f_lab, views, cfg.l2, cfg.steps)
    table = support_table(probe.predict(f_val), y_val, z_val.argmax(1), probe.views, cfg)
    supported = tuple(r["supported"] for r in table)
    if not any(supported):
        raise ValueError("view gate: no view meets the support rule on the val split "
                         f"({cfg.min_normals} normals, {cfg.min_tumours} tumours, sensitivity and specificity "
                         f">= {cfg.target}): {table}")
    cf = cross_fitted_proba(f_lab, views, cfg, probe.views)
    label_idx = np.array([probe.views.index(v) for v in views])
    cf_acc = float((cf.argmax(1) == label_idx).mean())
    p_sup = cf @ np.asarray(supported, np.float64)
    is_sup = np.asarray(supported)[label_idx]
    threshold = gate_threshold(p_sup[is_sup], cfg.accept_supported)
    gate = ViewGate(probe, supported, threshold)
    refused = float(1.0 - gate.gate(f_val).mean())
    info = {"labelled_slices": len(views), "probe_cross_fitted_accuracy": cf_acc, "views": list(probe.views),
            "support": table, "threshold": threshold,
            "cross_fitted_supported_accepted": float((p_sup[is_sup] >= threshold).mean()) if is_sup.any() else None,
            "cross_fitted_unsupported_refused": float((p_sup[~is_sup] < threshold).mean()) if (~is_sup).any() else None,
            "val_refused": refused}
    log(f"view gate: probe on {len(views)} labelled slices (cross-fitted accuracy {100 * cf_acc:.1f}%); "
        f"supported: {', '.join(r['view'] for r in table if r['supported'])}; threshold {threshold:.3f} on "
        f"P(supported) (cross-fitted: {100 * info['cross_fitted_supported_accepted']:.1f}% of supported-view slices "
        f"accepted, {100 * (info['cross_fitted_unsupported_refused'] or 0):.1f}% of the others refused); "
        f"val crops refused by view {100 * refused:.2f}%")
    return gate, info


def _check_graph(checked, x_val: np.ndarray, f_val: np.ndarray, att: Attached) -> None:
    """The built graph equals the numpy reference on up to 16 val crops (a gate decision within
    1e-3 of its threshold may round either way and is not compared)."""
    k = min(16, len(x_val))
    _, score = checked.predict(np.asarray(x_val[:k], np.float32), verbose=0)
    want = att.scores(f_val[:k])
    ok = np.ones(k, bool)
    if att.gate is not None:
        ok = np.abs(att.gate.supported_probability(f_val[:k]) - att.gate.threshold) > 1e-3
    if not np.allclose(score[ok, 0], want[ok], rtol=1e-3, atol=1e-5):
        raise RuntimeError(f"domain graph disagrees with its numpy reference: {score[:4, 0]} vs {want[:4]}")
