"""Where the data, the ImageNet weights and the caches live; one place, overridable.

Resolution order for every location: explicit argument (a CLI flag) > environment variable >
default next to the checkout (``../shared`` as laid out for development and CI).
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DEFAULT = REPO_ROOT.parent / "shared"
DATA_ENV = "BR35H_DATA"
CACHE_ENV = "BR35H_CACHE"
WEIGHTS_ENV = "BR35H_IMAGENET_WEIGHTS"
IMAGENET_NO_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"

DATA_HELP = (
    "BR35H not found. Put the dataset (folders yes/ and no/, optionally pred/ and SHA256SUMS) "
    f"in {SHARED_DEFAULT / 'data' / 'br35h'}, or point ${DATA_ENV} or --data at it. "
    "It is published on Kaggle as 'Br35H :: Brain Tumor Detection 2020' "
    "(kaggle datasets download -d ahmedhamada0/brain-tumor-detection)."
)


class DataNotFoundError(FileNotFoundError):
    """No BR35H folder at the resolved location; the message says where to put it."""


def data_root(explicit: str | Path | None = None, *, must_exist: bool = True) -> Path:
    """The BR35H folder: ``explicit`` > ``$BR35H_DATA`` > ``../shared/data/br35h``."""
    raw = explicit or os.environ.get(DATA_ENV) or SHARED_DEFAULT / "data" / "br35h"
    root = Path(raw).expanduser().resolve()
    if must_exist and not ((root / "yes").is_dir() and (root / "no").is_dir()):
        raise DataNotFoundError(f"{DATA_HELP} (looked in {root})")
    return root


def cache_dir(explicit: str | Path | None = None) -> Path:
    """Root of derived, rebuildable data (crops, features): ``$BR35H_CACHE`` or ``.cache/``."""
    root = Path(explicit or os.environ.get(CACHE_ENV) or REPO_ROOT / ".cache").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def imagenet_weights(explicit: str | Path | None = None) -> str:
    """What to pass as ``weights=`` to ``MobileNetV2(include_top=False)``.

    Returns ``"imagenet"`` (the real code path: Keras downloads or finds the file in
    ``~/.keras/models``) unless a file is given explicitly or via ``$BR35H_IMAGENET_WEIGHTS``.
    When Keras' cache lacks the file but the offline copy in ``../shared/keras/models`` exists,
    it is copied into the cache first so ``"imagenet"`` works without network.
    """
    chosen = explicit or os.environ.get(WEIGHTS_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ImageNet weights file not found: {path}")
        return str(path)
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()
    cached = keras_home / "models" / IMAGENET_NO_TOP
    offline = SHARED_DEFAULT / "keras" / "models" / IMAGENET_NO_TOP
    if not cached.is_file() and offline.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".part")
        shutil.copyfile(offline, tmp)
        os.replace(tmp, cached)
    return "imagenet"
