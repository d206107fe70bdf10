"""The optimiser, loss and learning-rate schedule every training stage compiles with."""

from __future__ import annotations

import numpy as np


def compile_model(model, lr, steps: int | None = None, warmup: int = 0, label_smoothing: float = 0.0) -> None:
    """Adam + BCE; with ``steps``, a cosine decay to 5 % of ``lr`` after ``warmup`` linear steps."""
    import keras

    schedule = lr
    if steps is not None:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else lr, decay_steps=max(steps - warmup, 1), alpha=0.05,
            warmup_target=lr if warmup else None, warmup_steps=warmup)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        # Binary cross-entropy on a one-hot 2-way softmax, as the paper states; it equals
        # categorical cross-entropy here (both outputs carry the same -log p_true term).
        loss=keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def current_lr(model) -> float:
    """The learning rate at the optimiser's current step (the schedule evaluated there)."""
    return float(np.asarray(model.optimizer.learning_rate))
