"""Split manifests: the CSV every stage after the split reads, so a result names its images.

Header ``path,sha256,label,group,split``; ``path`` relative to the dataset root
(``yes/y0.jpg``), ``label`` ``yes``/``no``, ``group`` the near-duplicate group id, ``split``
``train``/``val``/``test``. Rows are kept in file order.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
import hashlib
import io
import os
from pathlib import Path
from typing import Iterable

from edge_runtime.config import LABELS

HEADER = ("path", "sha256", "label", "group", "split")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ManifestRow:
    path: str
    sha256: str
    label: str
    group: int
    split: str

    @property
    def y(self) -> int:
        """Class index (``LABELS`` order: 0 = no, 1 = yes)."""
        return LABELS.index(self.label)


class ManifestError(ValueError):
    """A manifest file is malformed; the message names the file, line and problem."""


def write_manifest(rows: Iterable[ManifestRow], path: str | Path) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for r in rows:
        w.writerow((r.path, r.sha256, r.label, r.group, r.split))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)
    return path


def read_manifest(path: str | Path) -> list[ManifestRow]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader, ()))
    if header != HEADER:
        raise ManifestError(f"{path}: header must be {','.join(HEADER)}, got {','.join(header)}")
    rows = []
    for lineno, rec in enumerate(reader, start=2):
        if not rec:
            continue
        if len(rec) != len(HEADER):
            raise ManifestError(f"{path}:{lineno}: expected {len(HEADER)} fields, got {len(rec)}")
        p, sha, label, group, split = rec
        if label not in LABELS:
            raise ManifestError(f"{path}:{lineno}: label must be one of {LABELS}, got {label!r}")
        if split not in SPLITS:
            raise ManifestError(f"{path}:{lineno}: split must be one of {SPLITS}, got {split!r}")
        try:
            g = int(group)
        except ValueError:
            raise ManifestError(f"{path}:{lineno}: group must be an integer, got {group!r}") from None
        rows.append(ManifestRow(p, sha, label, g, split))
    return rows


def manifest_digest(rows: Iterable[ManifestRow]) -> str:
    """Content hash of (path, sha256, label, split): cache keys and reports cite it."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.path}\0{r.sha256}\0{r.label}\0{r.split}\n".encode())
    return h.hexdigest()
