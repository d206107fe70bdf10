"""On-device latency: warm-up, N timed runs, summary statistics, and the machine they came from.

Inference is timed on the model alone (the tensor already prepared), preprocessing on the
numpy crop of one decoded image, so the report can show that preprocessing is a small
fraction of the total. Threads and backend are part of every result: a number without them
cannot be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .classifier import Classifier
from .crop import crop_image
from .image_io import load_rgb
from .machine import machine_info


@dataclass(frozen=True)
class BenchConfig:
    runs: int = 100
    warmup: int = 10

    def __post_init__(self) -> None:
        if self.runs < 1 or self.warmup < 0:
            raise ValueError(f"need runs >= 1 and warmup >= 0, got {self.runs} and {self.warmup}")


def summarize(ms: np.ndarray) -> dict:
    """mean/std/min/p50/p90/p99/max of a sample of milliseconds."""
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"n": int(ms.size), "mean_ms": float(ms.mean()), "std_ms": float(ms.std()), "min_ms": float(ms.min()),
            "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "max_ms": float(ms.max())}


def _time(fn: Callable[[], object], cfg: BenchConfig) -> np.ndarray:
    for _ in range(cfg.warmup):
        fn()
    out = np.empty(cfg.runs)
    for i in range(cfg.runs):
        t0 = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def synthetic_slice(size: int = 512, seed: int = 0) -> np.ndarray:
    """An MRI-like bright ellipse with noise, for benchmarking without a real image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    inside = ((yy - size / 2) / (size * 0.38)) ** 2 + ((xx - size / 2) / (size * 0.33)) ** 2 <= 1
    gray = np.clip(np.where(inside, 110.0, 0.0) + rng.normal(0, 6, (size, size)), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def bench(classifier: Classifier, image: Path | None = None, cfg: BenchConfig = BenchConfig()) -> dict:
    """Latency report for ``classifier`` on ``image`` (or a synthetic 512 px slice)."""
    rgb = load_rgb(image, classifier.crop.max_pixels) if image else synthetic_slice()
    cropped, _ = crop_image(rgb, classifier.crop)
    pre = _time(lambda: crop_image(rgb, classifier.crop), cfg)
    inf = _time(lambda: classifier.model.scores(cropped), cfg)
    return {
        **classifier.info,
        "image": str(image) if image else "synthetic 512x512",
        "image_shape": list(rgb.shape),
        "runs": cfg.runs,
        "warmup": cfg.warmup,
        "inference": summarize(inf),
        "preprocess": summarize(pre),
        "machine": machine_info(),
    }
