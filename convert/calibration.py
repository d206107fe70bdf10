"""The int8 representative set: drawn from the **train** split only, reproducibly, and recorded.

Calibration images are preprocessed exactly like inference input (the same cached crops the
model trained on, raw 0..255 float32), so the calibrated input range is the deployed one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from convert.config import QuantizationConfig
from train.data.manifest import ManifestRow


class CalibrationError(ValueError):
    """The manifest cannot provide the requested calibration set."""


def select_calibration(rows: Sequence[ManifestRow], cfg: QuantizationConfig) -> list[ManifestRow]:
    """Pick ``cfg.calibration_size`` train rows (fewer only if the split is smaller), in manifest order."""
    train = [r for r in rows if r.split == "train"]
    if not train:
        raise CalibrationError("manifest has no train rows to calibrate on (test images must never be used)")
    rng = np.random.default_rng(cfg.seed)
    n = min(cfg.calibration_size, len(train))
    if cfg.selection == "random":
        idx = rng.choice(len(train), n, replace=False)
    elif cfg.selection == "stratified":
        idx = _stratified(train, n, rng, key=lambda r: r.label)
    else:  # groups: one image per group first, more only if there are fewer groups than n
        first = {}
        for i in rng.permutation(len(train)):
            first.setdefault(train[i].group, i)
        reps = np.array(list(first.values()))
        reps = reps[_stratified([train[i] for i in reps], min(n, len(reps)), rng, key=lambda r: r.label)]
        rest = np.setdiff1d(np.arange(len(train)), reps)
        idx = np.concatenate([reps, rng.choice(rest, n - len(reps), replace=False)]) if len(reps) < n else reps
    return [train[i] for i in sorted(int(i) for i in idx)]


def _stratified(rows: Sequence[ManifestRow], n: int, rng: np.random.Generator, key) -> np.ndarray:
    """Equal share per class (the remainder to the larger classes), without replacement."""
    classes: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        classes.setdefault(key(r), []).append(i)
    order = sorted(classes, key=lambda c: -len(classes[c]))
    quota = {c: min(n // len(order), len(classes[c])) for c in order}
    for c in order:  # hand out what is left to classes that still have images
        extra = min(n - sum(quota.values()), len(classes[c]) - quota[c])
        quota[c] += extra
    return np.concatenate([rng.choice(classes[c], quota[c], replace=False) for c in order]).astype(int)


def write_calibration_list(rows: Sequence[ManifestRow], path: str | Path, cfg: QuantizationConfig) -> Path:
    """``calibration.txt``: a header naming the recipe, then ``path sha256 label`` per image."""
    path = Path(path)
    lines = [f"# int8 calibration set: {len(rows)} train images, selection={cfg.selection}, seed={cfg.seed}"]
    lines += [f"{r.path}\t{r.sha256}\t{r.label}" for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def pick_arrays(x: np.ndarray, paths: Sequence[str], chosen: Sequence[ManifestRow]) -> np.ndarray:
    """The crops of ``chosen`` out of a loaded split, by path; a missing one is an error."""
    where = {p: i for i, p in enumerate(paths)}
    missing = [r.path for r in chosen if r.path not in where]
    if missing:
        raise CalibrationError(f"{len(missing)} calibration images not in the loaded train crops, e.g. {missing[0]}")
    return x[[where[r.path] for r in chosen]]


def representative_dataset(x: np.ndarray):
    """Converter callback: one float32 image per step (the batch size the model will run)."""

    def gen() -> Iterator[list[np.ndarray]]:
        for img in x:
            yield [img[None].astype(np.float32)]

    return gen
