"""Shared fixtures: the real BR35H folder (skipped with a reason when absent) and synthetic
MRI-like images for unit tests that must not depend on it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def br35h_root() -> Path:
    """The shared BR35H folder; tests that need it skip, naming where they looked."""
    from train.paths import DataNotFoundError, data_root

    try:
        return data_root()
    except DataNotFoundError as exc:
        pytest.skip(f"real BR35H data absent: {exc}")


@pytest.fixture(scope="session")
def nickparvar_root() -> Path:
    """The shared Nickparvar folder (second source); tests that need it skip, naming where they looked."""
    from train.data.sources import NICKPARVAR
    from train.paths import DataNotFoundError

    try:
        return NICKPARVAR.root()
    except DataNotFoundError as exc:
        pytest.skip(f"real Nickparvar data absent: {exc}")


def synthetic_mri(size: tuple[int, int] = (180, 150), seed: int = 0, tumour: bool = False) -> np.ndarray:
    """A bright ellipse ("brain") on a black background with a little noise, RGB uint8.

    ``tumour`` adds a brighter blob, so tiny models can learn something from synthetic data.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h / 2 + rng.uniform(-5, 5), w / 2 + rng.uniform(-5, 5)
    ry, rx = h * rng.uniform(0.3, 0.4), w * rng.uniform(0.3, 0.4)
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    img = np.where(inside, 120, 0).astype(np.float64)
    if tumour:
        ty, tx = cy + rng.uniform(-ry / 3, ry / 3), cx + rng.uniform(-rx / 3, rx / 3)
        blob = ((yy - ty) ** 2 + (xx - tx) ** 2) <= (min(h, w) * 0.08) ** 2
        img[blob] = 230
    img += rng.normal(0, 4, size=img.shape)
    gray = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


@pytest.fixture
def synthetic_dataset(tmp_path: Path) -> Path:
    """A tiny BR35H-shaped folder (yes/ and no/, 12 JPEGs each) with a SHA256SUMS file."""
    import hashlib

    root = tmp_path / "br35h"
    lines = []
    for label, prefix in (("yes", "y"), ("no", "no")):
        (root / label).mkdir(parents=True)
        for i in range(12):
            arr = synthetic_mri((160 + 7 * i, 140 + 5 * i), seed=i + (100 if label == "yes" else 0), tumour=label == "yes")
            path = root / label / f"{prefix}{i}.jpg"
            Image.fromarray(arr).save(path, quality=92)
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {label}/{path.name}")
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return root
