"""Split manifests: the CSV every stage after the split reads, so a result names its images.

Header ``path,sha256,label,group,split[,source,class]``; ``path`` relative to the root of the
row's source (``yes/y0.jpg`` in BR35H, ``Training/glioma/Tr-gl_0010.jpg`` in Nickparvar),
``label`` ``yes``/``no`` (what the model predicts), ``group`` the near-duplicate group id (unique
across sources: one id is one group, whichever sources its members come from), ``split``
``train``/``val``/``test``, ``source`` a name in :mod:`train.data.sources`, ``class`` the
source's own class (``glioma``, ``notumor``, ...; for BR35H the label itself). Rows are kept in
file order.

The two trailing columns are optional so the committed BR35H-only manifests stay valid byte for
byte: a 5-column file reads as source ``br35h`` with class = label, and a manifest whose rows
are all like that is written with 5 columns again. :func:`manifest_digest` likewise hashes such
rows exactly as before, because crop caches and committed reports are keyed by it.
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
HEADER_MULTI = (*HEADER, "source", "class")
SPLITS = ("train", "val", "test")
DEFAULT_SOURCE = "br35h"


@dataclass(frozen=True)
class ManifestRow:
    """``class_name`` (column ``class``) defaults to the label, as BR35H's classes are its labels."""

    path: str
    sha256: str
    label: str
    group: int
    split: str
    source: str = DEFAULT_SOURCE
    class_name: str = ""

    def __post_init__(self) -> None:
        if not self.class_name:
            object.__setattr__(self, "class_name", self.label)

    @property
    def is_legacy(self) -> bool:
        """True when the 5-column form says everything (a BR35H row whose class is its label)."""
        return self.source == DEFAULT_SOURCE and self.class_name == self.label

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
    rows = list(rows)
    multi = not all(r.is_legacy for r in rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER_MULTI if multi else HEADER)
    for r in rows:
        w.writerow((r.path, r.sha256, r.label, r.group, r.split) + ((r.source, r.class_name) if multi else ()))
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
    if header not in (HEADER, HEADER_MULTI):
        raise ManifestError(
            f"{path}: header must be {','.join(HEADER)} or {','.join(HEADER_MULTI)}, got {','.join(header)}"
        )
    from .sources import SOURCES

    rows = []
    for lineno, rec in enumerate(reader, start=2):
        if not rec:
            continue
        if len(rec) != len(header):
            raise ManifestError(f"{path}:{lineno}: expected {len(header)} fields, got {len(rec)}")
        p, sha, label, group, split = rec[:5]
        source, cls = rec[5:] if len(rec) == 7 else (DEFAULT_SOURCE, label)
        if source not in SOURCES:
            raise ManifestError(f"{path}:{lineno}: source must be one of {tuple(SOURCES)}, got {source!r}")
        if SOURCES[source].class_to_label.get(cls) != label:
            raise ManifestError(
                f"{path}:{lineno}: class {cls!r} of source {source!r} does not map to label {label!r}"
            )
        if label not in LABELS:
            raise ManifestError(f"{path}:{lineno}: label must be one of {LABELS}, got {label!r}")
        if split not in SPLITS:
            raise ManifestError(f"{path}:{lineno}: split must be one of {SPLITS}, got {split!r}")
        try:
            g = int(group)
        except ValueError:
            raise ManifestError(f"{path}:{lineno}: group must be an integer, got {group!r}") from None
        rows.append(ManifestRow(p, sha, label, g, split, source, cls))
    return rows


def manifest_digest(rows: Iterable[ManifestRow]) -> str:
    """Content hash of (path, sha256, label, split[, source, class]): cache keys and reports cite it.

    Source and class enter only for rows that are not plain BR35H rows, so the digest of every
    BR35H-only manifest (and every cache entry and report keyed by it) is what it always was.
    """
    h = hashlib.sha256()
    for r in rows:
        extra = "" if r.is_legacy else f"\0{r.source}\0{r.class_name}"
        h.update(f"{r.path}\0{r.sha256}\0{r.label}\0{r.split}{extra}\n".encode())
    return h.hexdigest()
