"""Which images of an external set are near-twins of a model's training data.

An "external" image the model was trained on (re-encoded, resized, mirrored) measures memory,
not generalisation; the Nickparvar set, for one, contains most of BR35H's normals. So every
external image is compared with every row of the given manifests (any split: a model selected
on val or reported on test has seen those images too) by the rule the project's grouped split
uses (:mod:`train.data.dedup`: 64x64 NCC >= 0.93 on the whole image, the brain crop and their
mirrors, exhaustive), plus byte-identical files by sha256.

The reference fingerprints (3000 BR35H decodes, some 1900 px wide) are cached under
``$BR35H_CACHE/fingerprints/`` keyed by the manifest rows' content and both configs.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_runtime.config import CropConfig
from edge_runtime.image_io import ImageDecodeError, load_rgb
from train.data.dedup import DedupConfig, Fingerprint, best_matches, fingerprint, stack_thumbs
from train.data.manifest import manifest_digest, read_manifest

#: Bump when fingerprinting changes in a way the configs do not capture.
CODE_VERSION = "fp-1"


@dataclass(frozen=True)
class Reference:
    """Fingerprints of the rows of one or more manifests, named ``"manifest:path"``; ``thumbs``
    is their stacked thumbnails, built once (each query batch is matched against it)."""

    names: list[str]
    sha256: list[str]
    fps: list[Fingerprint]

    @property
    def thumbs(self) -> np.ndarray:
        cached = self.__dict__.get("_thumbs")
        if cached is None:
            cached = stack_thumbs(self.fps)
            object.__setattr__(self, "_thumbs", cached)
        return cached


@dataclass(frozen=True)
class TwinMatch:
    """``ncc``: best correlation with any reference image; ``of``: that image; ``view``: how;
    ``twin``: at or above the threshold, or byte-identical (``view == "sha256"``)."""

    twin: bool
    ncc: float
    of: str
    view: str


def _key(rows_digest: str, cfg: DedupConfig, crop: CropConfig) -> str:
    blob = json.dumps([rows_digest, cfg.to_dict(), crop.fingerprint(), CODE_VERSION], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def reference_fingerprints(manifest: str | Path, data_root: str | Path, cfg: DedupConfig = DedupConfig(),
                           crop: CropConfig = CropConfig(), cache_root: str | Path | None = None) -> Reference:
    """Fingerprints of every row of ``manifest`` (files under ``data_root``), cached.

    A row whose file is missing or does not decode is an error naming it: an unchecked training
    image could be the twin that leaks.
    """
    from train.paths import cache_dir

    rows = read_manifest(manifest)
    names = [f"{Path(manifest).name}:{r.path}" for r in rows]
    path = cache_dir(cache_root) / "fingerprints" / f"{_key(manifest_digest(rows), cfg, crop)}.npz"
    if path.is_file():
        z = np.load(path)
        fps = [Fingerprint(h, t) for h, t in zip(z["hashes"], z["thumbs"])]
        return Reference(names, [r.sha256 for r in rows], fps)
    root = Path(data_root)
    fps, failures = [], []
    for r in rows:
        try:
            fps.append(fingerprint(load_rgb(root / r.path, crop.max_pixels), cfg, crop))
        except ImageDecodeError as exc:
            failures.append(f"{exc.path}: {exc.reason}")
    if failures:
        raise ValueError(f"{len(failures)} reference image(s) of {manifest} could not be read:\n  " + "\n  ".join(failures))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, hashes=np.stack([f.hashes for f in fps]), thumbs=np.stack([f.thumbs for f in fps]))
    os.replace(tmp, path)
    return Reference(names, [r.sha256 for r in rows], fps)


def merge(refs: Sequence[Reference]) -> Reference:
    return Reference([n for r in refs for n in r.names], [s for r in refs for s in r.sha256],
                     [f for r in refs for f in r.fps])


def match(query: Sequence[Fingerprint], query_sha256: Sequence[str], ref: Reference,
          cfg: DedupConfig = DedupConfig()) -> list[TwinMatch]:
    """One :class:`TwinMatch` per query image."""
    ncc, idx, view = best_matches(query, ref.thumbs, cfg)
    by_sha = {s: n for n, s in zip(ref.names, ref.sha256)}
    out = []
    for i, sha in enumerate(query_sha256):
        if sha in by_sha:
            out.append(TwinMatch(True, 1.0, by_sha[sha], "sha256"))
        elif idx[i] < 0:
            out.append(TwinMatch(False, float("nan"), "", ""))
        else:
            out.append(TwinMatch(bool(ncc[i] >= cfg.min_ncc), float(ncc[i]), ref.names[idx[i]], view[i]))
    return out
