"""The inputs every case shares: a fixed, class-balanced set of test-split files, decoded and
cropped once by the edge runtime (the path a device runs).

Fixed = the first ``n/2`` tumour and ``n/2`` no-tumour rows of the test split in manifest
order, so two runs (or two machines) time the very same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime import CropConfig, load_rgb
from edge_runtime.crop import crop_image
from train.data.manifest import ManifestRow, read_manifest


@dataclass(frozen=True)
class Sample:
    """One test image: its file, label (0 = no, 1 = yes) and the runtime's 224x224 crop."""

    path: Path
    y: int
    crop: np.ndarray


def split_rows(manifest: Path, split: str = "test") -> list[ManifestRow]:
    rows = [r for r in read_manifest(manifest) if r.split == split]
    if not rows:
        raise ValueError(f"{manifest}: no {split} rows")
    return rows


def fixed_rows(manifest: Path, n: int) -> list[ManifestRow]:
    """``n`` test rows, alternating classes, deterministic (see module docstring)."""
    rows = split_rows(manifest)
    yes = [r for r in rows if r.y == 1][: (n + 1) // 2]
    no = [r for r in rows if r.y == 0][: n // 2]
    picked = [r for pair in zip(yes, no) for r in pair] + yes[len(no):] + no[len(yes):]
    return picked[:n]


def load_samples(rows: list[ManifestRow], data_root: Path, cfg: CropConfig = CropConfig()) -> list[Sample]:
    """Decode and crop each row with the edge runtime; a bad file raises (never skipped)."""
    out = []
    for r in rows:
        path = data_root / r.path
        out.append(Sample(path, r.y, crop_image(load_rgb(path, cfg.max_pixels), cfg)[0]))
    return out
