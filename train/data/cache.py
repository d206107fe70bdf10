"""The 224x224 brain crops of a manifest, built once and cached on disk.

Key = manifest content (``manifest_digest``) + ``CropConfig.fingerprint()`` + ``CODE_VERSION``:
a different split, crop parameter or crop code gets a fresh cache; nothing has to be deleted
by hand. One entry holds *all* rows of the manifest (the splits share one decode pass) as
``x.npy`` (memory-mapped on load, so selecting the 240 val crops does not read the 2160
train crops) and ``meta.npz``, each written to a temp file and renamed; ``meta.npz`` is
written last, so an entry without it is incomplete and rebuilt.

A build checks each file's sha256 against the manifest and decodes it; a file that fails
**aborts the build** (a training set with a silently missing or swapped image is wrong), but
only after every row was tried, so the error lists each bad file with its reason at once.

Each row is read from the root of its own source (:mod:`train.data.sources`): ``data_root`` is
BR35H's folder as a plain path (what ``--data`` always meant) or a ``{source: folder}`` mapping;
sources not given resolve through their environment variable or ``../shared/data/<source>``,
and only the sources a manifest actually uses must exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import os
from pathlib import Path

import numpy as np

from edge_runtime.config import LABELS, CropConfig
from edge_runtime.image_io import ImageDecodeError, load_rgb

from .manifest import SPLITS, ManifestRow, manifest_digest, read_manifest
from .sources import RootResolver, RootSpec

#: Bump when the crop code changes in a way ``CropConfig`` does not capture.
CODE_VERSION = "crop-cv-1"


@dataclass
class CropSet:
    x: np.ndarray  # (N, size, size, 3) uint8
    y: np.ndarray  # (N,) int64, index into LABELS
    paths: list[str]
    boxes: np.ndarray  # (N, 4) int32 left, top, right, bottom in the decoded image
    fallback: np.ndarray  # (N,) bool: no brain found, whole image used
    sources: list[str] = field(default_factory=list)  # per row, from the manifest (``br35h``, ``nickparvar``)
    classes: list[str] = field(default_factory=list)  # per row, the source's own class (``glioma``, ...)

    def __len__(self) -> int:
        return len(self.paths)


class CropBuildError(RuntimeError):
    """One or more images could not be cropped; ``failures`` is ``[(path, reason), ...]``."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        lines = "\n".join(f"  {p}: {why}" for p, why in failures)
        super().__init__(f"{len(failures)} image(s) could not be cropped, cache not written:\n{lines}")


def cache_key(rows: list[ManifestRow], cfg: CropConfig) -> str:
    blob = f"{manifest_digest(rows)}\0{cfg.fingerprint()}\0{CODE_VERSION}".encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def entry_dir(manifest_path: str | Path, cfg: CropConfig = CropConfig(), cache_root: str | Path | None = None) -> Path:
    """Where the crops of ``manifest_path`` under ``cfg`` live (whether built or not)."""
    return _entry(read_manifest(manifest_path), cfg, cache_root)


def _entry(rows: list[ManifestRow], cfg: CropConfig, cache_root: str | Path | None) -> Path:
    from train.paths import cache_dir

    return cache_dir(cache_root) / "crops" / cache_key(rows, cfg)


def load_crops(
    manifest_path: str | Path,
    split: str | None = None,
    data_root: RootSpec = None,
    cfg: CropConfig = CropConfig(),
    cache_root: str | Path | None = None,
    progress: bool = True,
) -> CropSet:
    """Crops of the manifest's rows in ``split`` (all rows when None), building the cache if needed."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    rows = read_manifest(manifest_path)
    entry = _entry(rows, cfg, cache_root)
    if not (entry / "meta.npz").is_file():
        _build(rows, entry, data_root, cfg, progress)
    meta = np.load(entry / "meta.npz")
    paths = [str(p) for p in meta["paths"]]
    if paths != [r.path for r in rows]:
        raise RuntimeError(f"{entry}: cache entry does not match {manifest_path}; delete the folder and retry")
    keep = np.array([split is None or r.split == split for r in rows], dtype=bool)
    idx = np.nonzero(keep)[0]
    x = np.load(entry / "x.npy", mmap_mode="r")
    return CropSet(
        x=np.ascontiguousarray(x[idx]),
        y=meta["y"][idx].astype(np.int64),
        paths=[paths[i] for i in idx],
        boxes=meta["boxes"][idx].astype(np.int32),
        fallback=meta["fallback"][idx].astype(bool),
        sources=[rows[i].source for i in idx],
        classes=[rows[i].class_name for i in idx],
    )


def _build(rows: list[ManifestRow], entry: Path, data_root: RootSpec, cfg: CropConfig, progress: bool) -> None:
    from .crop_cv import crop_image
    from .scan import _progress

    root_of = RootResolver(data_root)
    for source in dict.fromkeys(r.source for r in rows):
        root_of(source)  # fail before any work when a source's folder is missing
    entry.mkdir(parents=True, exist_ok=True)
    tmp_x = entry / f"x.npy.{os.getpid()}.tmp"
    x = np.lib.format.open_memmap(tmp_x, mode="w+", dtype=np.uint8, shape=(len(rows), cfg.size, cfg.size, 3))
    boxes = np.zeros((len(rows), 4), np.int32)
    fallback = np.zeros(len(rows), bool)
    failures: list[tuple[str, str]] = []
    try:
        for i, r in enumerate(_progress(rows, progress, "crops")):
            p = root_of(r.source) / r.path
            try:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                if digest != r.sha256:
                    failures.append((str(p), f"sha256 {digest[:12]}… differs from the manifest's {r.sha256[:12]}…"))
                    continue
                x[i], box = crop_image(load_rgb(p, cfg.max_pixels), cfg)
            except OSError as exc:
                failures.append((str(p), f"cannot read file ({exc.strerror or exc})"))
                continue
            except ImageDecodeError as exc:
                failures.append((exc.path, exc.reason))
                continue
            boxes[i], fallback[i] = box.as_tuple(), box.fallback
        if failures:
            raise CropBuildError(failures)
        x.flush()
        del x
        os.replace(tmp_x, entry / "x.npy")
    finally:
        tmp_x.unlink(missing_ok=True)
    tmp_meta = entry / f"meta.{os.getpid()}.tmp.npz"
    np.savez(
        tmp_meta,
        paths=np.array([r.path for r in rows]),
        y=np.array([LABELS.index(r.label) for r in rows], np.int64),
        boxes=boxes,
        fallback=fallback,
        crop_config=np.array(repr(cfg)),
        code_version=np.array(CODE_VERSION),
    )
    os.replace(tmp_meta, entry / "meta.npz")
