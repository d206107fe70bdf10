"""Where training runs: the accelerators Keras sees and the distribution strategy to use.

Both are recorded in the run's ``config.json``, because a number trained on a GPU under JAX and
one trained on two CPU cores under TensorFlow are not the same experiment.
"""

from __future__ import annotations

import contextlib

DISTRIBUTE = ("default", "mirrored")


def devices() -> list[str]:
    """The accelerators training runs on (``["cpu"]`` if none), e.g. ``["gpu:NVIDIA H200"]``."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        found = [f"{d.platform}:{getattr(d, 'device_kind', d)}" for d in jax.devices() if d.platform != "cpu"]
    elif backend == "torch":
        import torch

        found = [f"cuda:{torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    else:
        import tensorflow as tf

        found = [f"gpu:{tf.config.experimental.get_device_details(g).get('device_name', g.name)}"
                 for g in tf.config.list_physical_devices("GPU")]
    return found or ["cpu"]


class NoStrategy:
    """Stand-in for ``tf.distribute`` on backends without it (JAX, PyTorch): one device."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def strategy(distribute: str):
    """``"default"``: the current ``tf.distribute`` strategy (one device) or :class:`NoStrategy`
    off TensorFlow; ``"mirrored"``: ``tf.distribute.MirroredStrategy`` over every visible GPU
    (TensorFlow backend only)."""
    import keras

    if distribute not in DISTRIBUTE:
        raise ValueError(f"unknown distribute {distribute!r}; choose 'default' or 'mirrored'")
    if keras.backend.backend() != "tensorflow":
        if distribute == "mirrored":
            raise ValueError(f"--distribute mirrored needs the TensorFlow backend, not {keras.backend.backend()!r}")
        return NoStrategy()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if distribute == "mirrored" else tf.distribute.get_strategy()
