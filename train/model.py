"""The paper's fine-tuned MobileNetV2 and an edge-friendly slim variant.

Layout: raw RGB 0..255 in -> Rescaling to MobileNetV2's [-1, 1] -> MobileNetV2 (no top) ->
GlobalAveragePooling -> head -> 2-way softmax in ``LABELS`` order. The scaling lives inside
the model so every exported artifact (Keras, TFLite, ONNX) takes the same raw pixels.

The head is its own sub-model taking the pooled 1280-d features, so stage 1 of training can
fit it on cached features of the frozen base and drop it into the full model unchanged.

Paper head activations the paper leaves unstated: we use ReLU on all three Dense layers
(2048 is stated as ReLU; 1024 and 512 get ReLU too, otherwise the stack collapses into one
linear map) and softmax on the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge_runtime.config import LABELS

HeadName = Literal["paper", "slim"]
FEATURE_DIM = 1280  # MobileNetV2 alpha=1.0 pooled features


@dataclass(frozen=True)
class ModelConfig:
    """What defines the architecture (not the training recipe)."""

    head: HeadName = "paper"
    input_size: int = 224
    alpha: float = 1.0
    dropout: float = 0.5
    slim_dropout: float = 0.2


def build_head(cfg: ModelConfig = ModelConfig(), feature_dim: int = FEATURE_DIM):
    """The classifier on pooled features: ``(N, feature_dim) -> (N, 2)`` softmax."""
    import keras
    from keras import layers

    inp = keras.Input((feature_dim,), name="features")
    if cfg.head == "paper":
        x = layers.BatchNormalization(name="head_bn1")(inp)
        x = layers.Dense(2048, activation="relu", name="head_fc2048")(x)
        x = layers.Dense(1024, activation="relu", name="head_fc1024")(x)
        x = layers.BatchNormalization(name="head_bn2")(x)
        x = layers.Dense(512, activation="relu", name="head_fc512")(x)
        x = layers.Dropout(cfg.dropout, name="head_dropout")(x)
        x = layers.Flatten(name="head_flatten")(x)  # a no-op on vectors; kept to mirror the paper
    elif cfg.head == "slim":
        x = layers.Dropout(cfg.slim_dropout, name="head_dropout")(inp)
    else:
        raise ValueError(f"unknown head {cfg.head!r}; choose 'paper' or 'slim'")
    out = layers.Dense(len(LABELS), activation="softmax", name="classifier")(x)
    return keras.Model(inp, out, name=f"head_{cfg.head}")


def build_base(cfg: ModelConfig = ModelConfig(), weights: str | None = "imagenet"):
    """ImageNet MobileNetV2 without top, taking inputs already scaled to [-1, 1]."""
    import keras

    return keras.applications.MobileNetV2(
        input_shape=(cfg.input_size, cfg.input_size, 3),
        alpha=cfg.alpha,
        include_top=False,
        weights=weights,
    )


def build_model(cfg: ModelConfig = ModelConfig(), weights: str | None = "imagenet"):
    """Full model ``uint8-valued float RGB (N, S, S, 3) -> (N, 2)`` softmax.

    ``weights`` is passed to Keras as is: ``"imagenet"`` (use ``train.paths.imagenet_weights()``
    to make that work offline), a file path, or None (random init, tests only).
    """
    import keras
    from keras import layers

    base = build_base(cfg, weights)
    inp = keras.Input((cfg.input_size, cfg.input_size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_pm1")(inp)
    x = base(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = build_head(cfg, feature_dim=base.output_shape[-1])(x)
    return keras.Model(inp, out, name=f"br35h_mobilenetv2_{cfg.head}")


def base_of(model):
    """The MobileNetV2 sub-model inside a model built by :func:`build_model`."""
    for layer in model.layers:
        if layer.name.startswith("mobilenetv2"):
            return layer
    raise ValueError(f"{model.name} holds no MobileNetV2 base")


def head_of(model):
    for layer in model.layers:
        if layer.name.startswith("head_"):
            return layer
    raise ValueError(f"{model.name} holds no head sub-model")


def feature_extractor(model):
    """``image -> pooled features``: the frozen part used to cache stage-1 inputs."""
    import keras

    return keras.Model(model.input, model.get_layer("pool").output, name="features")


def freeze_batchnorm(model, head: bool = False) -> int:
    """Set every BatchNormalization layer of the base (and of the head when ``head``) to
    ``trainable = False``; returns how many.

    Why explicit: in Keras 3, ``base(x, training=False)`` inside a functional model is *not*
    honoured when the outer model trains, so BatchNorm would switch to batch statistics
    (batch 16 of MRI slices, far from ImageNet's) and fine-tuning degrades or collapses. A
    frozen BatchNorm layer in Keras 3 also runs in inference mode.

    The head's BatchNorm layers were fitted in stage 1; left trainable during fine-tuning
    they normalise with noisy batch-16 statistics while their moving averages lag the
    drifting features, and validation accuracy fell from 98.8 % to 89 % after one epoch.
    """
    from keras import layers

    n = 0
    scopes = [base_of(model)] + ([head_of(model)] if head else [])
    for layer in (l for scope in scopes for l in scope.layers):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
            n += 1
    return n


def set_base_trainable(model, trainable: bool, from_layer: str | None = None) -> None:
    """Freeze/unfreeze the base (optionally only from ``from_layer`` up); BatchNorm stays frozen."""
    base = base_of(model)
    base.trainable = trainable
    if trainable and from_layer is not None:
        names = [l.name for l in base.layers]
        if from_layer not in names:
            raise ValueError(f"{from_layer!r} is not a layer of {base.name}")
        for layer in base.layers[: names.index(from_layer)]:
            layer.trainable = False
    freeze_batchnorm(model)
