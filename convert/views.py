"""Which slice views a model has been shown to judge, and a gate that refuses the others.

Why: on 242 normal slices of the second source that are independent of BR35H, labelled by view
(``reports/domain/views``), the BR35H-only model (float) is right on all 16 axial slices above
the ventricles but on 11 of 33 skull-base axial slices (orbits, sinuses, posterior fossa), 21 of
45 coronal and 3 of 97 sagittal ones; trained on both sources, skull-base axial normals are still
1 of 14 right. In those views the training data holds tumours (pituitary, posterior fossa, the
contrast-enhanced planes of the second source) and almost no normals, so "tumour" there says
"this view" as much as "this tumour". The Mahalanobis check cannot see it: such slices lie close
to the tumour class.

So the converted model also learns which view a slice shows (a linear probe on its pooled
features, fitted on hand-labelled slices: ``splits/views.csv``) and which views its **validation**
split shows it judges (at least ``min_normals`` normal and ``min_tumours`` tumour val crops of the
view, sensitivity and specificity >= ``target``). A slice whose probability of a supported view
is below the gate's threshold gets its domain score negated: below any threshold, so "unknown",
while its magnitude is still the Mahalanobis score, so a user who knowingly accepts every view
can read ``abs(domain_score)``. A refused real scan is a cost, reported as such.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Views a label may name. "unclear" rows are not fitted.
VIEWS = ("axial-skull-base", "axial-ventricles", "axial-above-ventricles", "sagittal", "coronal", "ct")
#: What the gate tells apart, in the probe's output order. Axial slices at and above the
#: ventricles are one view: a validation split holds a handful of normals above the ventricles
#: (4 of BR35H's 120), too few for any level finer than "skull base or not" to be supported.
GATE_VIEWS = ("axial-skull-base", "axial-supratentorial", "sagittal", "coronal", "ct")
LABEL_HEADER = ("source", "path", "sha256", "class", "view", "visible_lesion")


def gate_view(view: str) -> str:
    """The gate's view of a labelled view."""
    return "axial-supratentorial" if view in ("axial-ventricles", "axial-above-ventricles") else view


@dataclass(frozen=True)
class ViewConfig:
    """How the view gate is fitted; ``labels=None`` turns it off.

    Attributes:
        labels: CSV of hand-labelled slices (``LABEL_HEADER``), relative to the repository root.
        min_normals, min_tumours: val crops of a view needed before it can be supported.
        target: sensitivity and specificity on those val crops needed to support the view.
        l2: ridge penalty of the probe (on standardised features).
        steps: full-batch gradient steps of the probe.
        accept_supported: share of the labelled slices of supported views the gate must let
            through, each scored by a probe fitted without it (``folds``-fold cross-fitting);
            the threshold on P(supported view) is the highest that does so, and never below
            0.5. A higher threshold refuses more of the slices whose view the probe is unsure
            of, which is where skull-base slices pass for supratentorial ones.
        folds: cross-fitting folds.
    """

    labels: str | None = "splits/views.csv"
    min_normals: int = 10
    min_tumours: int = 10
    target: float = 0.90
    l2: float = 1e-2
    steps: int = 400
    accept_supported: float = 0.95
    folds: int = 5

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LabelledSlice:
    """One hand-labelled slice. ``visible_lesion`` ("1" or ""): a slice its source calls normal
    that shows a lesion to the labeller (label noise a false alarm may be right about)."""

    source: str
    path: str
    sha256: str
    class_name: str
    view: str
    visible_lesion: str = ""


def read_labels(path: str | Path) -> list[LabelledSlice]:
    """The labelled slices; a bad header or an unknown view names the file and line."""
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header != LABEL_HEADER:
            raise ValueError(f"{path}: header must be {','.join(LABEL_HEADER)}, got {','.join(header)}")
        out = []
        for lineno, rec in enumerate(reader, start=2):
            if not rec:
                continue
            if len(rec) != len(LABEL_HEADER):
                raise ValueError(f"{path}:{lineno}: expected {len(LABEL_HEADER)} fields, got {len(rec)}")
            row = LabelledSlice(*rec)
            if row.view not in (*VIEWS, "unclear"):
                raise ValueError(f"{path}:{lineno}: view must be one of {VIEWS} or 'unclear', got {row.view!r}")
            out.append(row)
    return out


def fitting_rows(labels: list[LabelledSlice], held_out_sha256: set[str]) -> list[LabelledSlice]:
    """Rows the probe may be fitted on: a view is named, the image is none of the manifest's
    val/test images (``held_out_sha256``), and it is not in Nickparvar's ``Testing/`` (kept
    clean for the external evaluations)."""
    return [r for r in labels if r.view != "unclear" and r.sha256 not in held_out_sha256
            and not (r.source == "nickparvar" and r.path.startswith("Testing/"))]


def write_fitting_manifest(rows: list[LabelledSlice], path: Path) -> Path:
    """The rows as a one-split manifest, so the crop loader (and its cache) reads them."""
    from train.data.manifest import ManifestRow, write_manifest
    from train.data.sources import SOURCES

    out = []
    for i, r in enumerate(rows):
        label = SOURCES[r.source].class_to_label.get(r.class_name)
        if label is None:
            raise ValueError(f"{r.source}:{r.path}: class {r.class_name!r} is not a class of {r.source}")
        out.append(ManifestRow(r.path, r.sha256, label, i, "train", r.source, r.class_name))
    return write_manifest(out, path)


@dataclass(frozen=True)
class Labelled:
    """Crops of the fitting rows and their views, in the same order."""

    x: np.ndarray
    views: list[str]


def load_labelled(cfg: ViewConfig, held_out_sha256: set[str], out_dir: Path, loader, data_root, crop) -> Labelled:
    """Crops of the labelled slices the probe may be fitted on (:func:`fitting_rows`), read with
    the conversion's own crop loader through a manifest written to ``out_dir``."""
    from train.paths import REPO_ROOT

    path = Path(cfg.labels)
    if not path.is_absolute() and not path.exists():
        path = REPO_ROOT / path
    rows = fitting_rows(read_labels(path), held_out_sha256)
    if not rows:
        raise ValueError(f"{path}: no labelled slice left to fit the view probe on")
    manifest = write_fitting_manifest(rows, Path(out_dir) / "views_manifest.csv")
    from train.paths import DataNotFoundError

    try:
        crops = loader(manifest, split="train", data_root=data_root, cfg=crop)
    except DataNotFoundError as exc:
        raise DataNotFoundError(f"the view gate's labelled slices ({path}) come from "
                                f"{', '.join(sorted({r.source for r in rows}))}: {exc} "
                                "(convert without --views to export without the gate)") from exc
    return Labelled(np.asarray(crops.x), [gate_view(r.view) for r in rows])


@dataclass(frozen=True)
class ViewProbe:
    """``softmax((f * scale + shift) @ weights + bias)`` over ``views``.

    The standardisation (``scale`` = 1 / spread, ``shift`` = -mean / spread) stays a separate
    elementwise step instead of being folded into the weights: folded, a feature with a tiny
    spread gets a huge weight, and a weight-quantizing export (dynamic range, int8 weights per
    output column) then rounds every other weight of that column to zero (measured: 7 % of test
    crops kept in domain instead of 96 %). It is also where a quantized artifact's own pooled
    features are matched back to the float ones (:meth:`recentred`)."""

    scale: np.ndarray  # (D,)
    shift: np.ndarray  # (D,)
    weights: np.ndarray  # (D, V)
    bias: np.ndarray  # (V,)
    views: tuple[str, ...]

    def proba(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, np.float64) * self.scale + self.shift) @ self.weights + self.bias
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.proba(features).argmax(1)

    def recentred(self, a: np.ndarray, b: np.ndarray) -> "ViewProbe":
        """The same probe for features ``q`` with ``f ~= a * q + b`` (per feature)."""
        return ViewProbe(self.scale * a, self.shift + self.scale * b, self.weights, self.bias, self.views)


def fit_probe(features: np.ndarray, views: list[str], l2: float = 1e-2, steps: int = 400) -> ViewProbe:
    """Class-balanced multinomial logistic regression (full-batch gradient descent with Adam
    steps) on standardised features; ``views`` are :data:`GATE_VIEWS` names, those with no example
    are left out of the output."""
    unknown = set(views) - set(GATE_VIEWS)
    if unknown:
        raise ValueError(f"views must be gate views {GATE_VIEWS}, got {sorted(unknown)}")
    names = tuple(v for v in GATE_VIEWS if v in set(views))
    if len(names) < 2:
        raise ValueError(f"the view probe needs at least two views, got {names}")
    f = np.asarray(features, np.float64)
    y = np.array([names.index(v) for v in views])
    mu, sd = f.mean(0), f.std(0)
    # Features (nearly) constant on the labelled slices carry no view information; a floor on
    # the spread keeps them from being blown up by their own noise on other inputs.
    sd = np.maximum(sd, 1e-2 * float(np.median(sd)) + 1e-12)
    x = (f - mu) / sd
    n, d = x.shape
    k = len(names)
    counts = np.bincount(y, minlength=k)
    w_row = (n / (k * counts))[y]
    onehot = np.eye(k)[y]
    w, b = np.zeros((d, k)), np.zeros(k)
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    lr, b1, b2 = 0.05, 0.9, 0.999
    for t in range(1, steps + 1):
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) * w_row[:, None] / n
        grads = [x.T @ g + l2 * w, g.sum(0)]
        for i, (param, grad) in enumerate(zip((w, b), grads)):
            m[i] = b1 * m[i] + (1 - b1) * grad
            v[i] = b2 * v[i] + (1 - b2) * grad**2
            param -= lr * (m[i] / (1 - b1**t)) / (np.sqrt(v[i] / (1 - b2**t)) + 1e-8)
    return ViewProbe(scale=1.0 / sd, shift=-mu / sd, weights=w, bias=b, views=names)


def support_table(pred_view: np.ndarray, y: np.ndarray, y_pred: np.ndarray, views: tuple[str, ...],
                  cfg: ViewConfig) -> list[dict]:
    """Per view (as the probe sees val): counts, sensitivity, specificity, and whether supported."""
    rows = []
    for i, name in enumerate(views):
        m = pred_view == i
        pos, neg = m & (y == 1), m & (y == 0)
        sens = float((y_pred[pos] == 1).mean()) if pos.any() else None
        spec = float((y_pred[neg] == 0).mean()) if neg.any() else None
        ok = (int(neg.sum()) >= cfg.min_normals and int(pos.sum()) >= cfg.min_tumours
              and sens is not None and spec is not None and sens >= cfg.target and spec >= cfg.target)
        rows.append({"view": name, "val_normals": int(neg.sum()), "val_tumours": int(pos.sum()),
                     "val_sensitivity": sens, "val_specificity": spec, "supported": bool(ok)})
    return rows


def cross_fitted_proba(features: np.ndarray, views: list[str], cfg: ViewConfig, names: tuple[str, ...],
                       seed: int = 0) -> np.ndarray:
    """``(N, len(names))`` view probabilities, each row from a probe fitted without that row
    (a view missing from a fold's fitting rows gets probability 0)."""
    f = np.asarray(features, np.float64)
    folds = np.random.default_rng(seed).permutation(len(f)) % cfg.folds
    out = np.zeros((len(f), len(names)))
    for k in range(cfg.folds):
        fit_i, test_i = np.nonzero(folds != k)[0], np.nonzero(folds == k)[0]
        probe = fit_probe(f[fit_i], [views[i] for i in fit_i], cfg.l2, cfg.steps)
        out[np.ix_(test_i, [names.index(v) for v in probe.views])] = probe.proba(f[test_i])
    return out


def gate_threshold(p_supported: np.ndarray, accept: float) -> float:
    """Highest threshold on P(supported view) that lets ``accept`` of ``p_supported`` (the
    cross-fitted probabilities of slices labelled with a supported view) through; at least 0.5."""
    p = np.sort(np.asarray(p_supported, np.float64))
    if not len(p):
        return 0.5
    k = int(np.floor((1.0 - accept) * len(p)))
    return float(max(0.5, p[min(k, len(p) - 1)]))


@dataclass(frozen=True)
class ViewGate:
    """``gate``: 1 where P(supported view) >= ``threshold``, else 0; ``sign``: the factor the
    domain score is multiplied by (+1 or -1)."""

    probe: ViewProbe
    supported: tuple[bool, ...]
    threshold: float = 0.5

    def supported_probability(self, features: np.ndarray) -> np.ndarray:
        return self.probe.proba(features) @ np.asarray(self.supported, np.float64)

    def gate(self, features: np.ndarray) -> np.ndarray:
        return (self.supported_probability(features) >= self.threshold).astype(np.float64)

    def sign(self, features: np.ndarray) -> np.ndarray:
        return 2.0 * self.gate(features) - 1.0


def gate_layer():
    """:class:`DomainViewGate`, defined lazily so importing this module does not import Keras."""
    import keras

    @keras.saving.register_keras_serializable(package="br35h")
    class DomainViewGate(keras.layers.Layer):
        """``(N, D)`` pooled features -> ``(N, 1)``: +1 if P(supported view) >= threshold, else -1."""

        def __init__(self, features: int, views: int, threshold: float = 0.5, **kwargs):
            super().__init__(**kwargs)
            self.features, self.views, self.threshold = int(features), int(views), float(threshold)

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(self.features,), initializer="ones", trainable=False, name="scale")
            self.shift = self.add_weight(shape=(self.features,), initializer="zeros", trainable=False, name="shift")
            self.kernel = self.add_weight(shape=(self.features, self.views), initializer="zeros",
                                          trainable=False, name="kernel")
            self.bias = self.add_weight(shape=(self.views,), initializer="zeros", trainable=False, name="bias")
            self.mask = self.add_weight(shape=(self.views, 1), initializer="zeros", trainable=False, name="mask")

        def call(self, f):
            from keras import ops

            x = f * ops.convert_to_tensor(self.scale) + ops.convert_to_tensor(self.shift)
            p = ops.softmax(ops.matmul(x, self.kernel) + self.bias, axis=-1)
            return 2.0 * ops.cast(ops.greater_equal(ops.matmul(p, self.mask), self.threshold), "float32") - 1.0

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 1)

        def get_config(self):
            return {**super().get_config(), "features": self.features, "views": self.views,
                    "threshold": self.threshold}

    return DomainViewGate


def gate_weights(gate: ViewGate) -> list[np.ndarray]:
    p = gate.probe
    return [p.scale.astype(np.float32), p.shift.astype(np.float32), p.weights.astype(np.float32),
            p.bias.astype(np.float32), np.asarray(gate.supported, np.float32)[:, None]]


def affine_match(q: np.ndarray, f: np.ndarray, max_slope: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, the least-squares ``f ~= a * q + b`` (``a`` clipped to [0, max_slope]): how a
    quantized artifact's pooled features ``q`` map back to the float ones ``f`` on the same crops.
    A noisy feature gets a small slope, so it counts less."""
    q = np.asarray(q, np.float64)
    f = np.asarray(f, np.float64)
    qc, fc = q - q.mean(0), f - f.mean(0)
    var = (qc**2).mean(0)
    a = np.where(var > 1e-12, (qc * fc).mean(0) / np.maximum(var, 1e-12), 0.0)
    a = np.clip(a, 0.0, max_slope)
    return a, f.mean(0) - a * q.mean(0)
