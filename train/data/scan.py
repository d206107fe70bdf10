"""Scan a BR35H folder: one record per decodable image, one issue per problem, nothing dropped.

Why a full decode and not just a checksum: a file can match ``SHA256SUMS`` and still be
undecodable (the list was made from a broken copy), and a file absent from the list can be a
perfectly good image. So every file under ``yes/``, ``no/`` and ``pred/`` is hashed *and*
decoded with the same decoder training and the device use (``edge_runtime.image_io.load_rgb``),
and the checksum list is compared separately. A bad file never stops the scan; it becomes a
:class:`ScanIssue` naming the file and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
from PIL import Image

from edge_runtime.image_io import ImageDecodeError, load_rgb

#: Sub-folder -> label; ``pred/`` holds the dataset's unlabelled images.
FOLDERS: dict[str, str | None] = {"yes": "yes", "no": "no", "pred": None}
SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class ImageRecord:
    """One decodable image. ``path`` is relative to the dataset root, POSIX style (``yes/y0.jpg``)."""

    path: str
    label: str | None
    sha256: str
    width: int
    height: int
    mode: str  # Pillow mode of the file as stored (``L``, ``RGB``, ...), before conversion to RGB


@dataclass(frozen=True)
class ScanIssue:
    """``kind`` is ``missing`` / ``extra`` / ``changed`` (vs ``SHA256SUMS``) or ``unreadable``."""

    path: str
    kind: str
    reason: str


@dataclass
class ScanResult:
    root: Path
    records: list[ImageRecord]
    issues: list[ScanIssue] = field(default_factory=list)
    checksums_present: bool = False

    def of_kind(self, kind: str) -> list[str]:
        return [i.path for i in self.issues if i.kind == kind]

    @property
    def ok(self) -> bool:
        return not self.issues

    def labelled(self) -> list[ImageRecord]:
        return [r for r in self.records if r.label is not None]

    def summary(self) -> str:
        if self.ok:
            sums = "all match SHA256SUMS" if self.checksums_present else "no SHA256SUMS to verify against"
            return f"{len(self.records)} images decoded, {sums}"
        lines = [f"{len(self.records)} images decoded, {len(self.issues)} problem(s):"]
        lines += [f"  {i.kind:10s} {i.path}: {i.reason}" for i in self.issues]
        return "\n".join(lines)


def natural_key(path: str) -> tuple:
    """``yes/y2.jpg`` before ``yes/y10.jpg``: numbered files sort as people expect."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path))


def read_checksums(path: Path) -> dict[str, str]:
    """``sha256sum`` output (``HASH  name`` or ``HASH *name``) -> ``{name: hash}``."""
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            raise ValueError(f"{path}:{lineno}: not a sha256sum line: {line!r}")
        sums[parts[1].lstrip("*").strip()] = parts[0].lower()
    return sums


def list_files(root: Path, folders: Iterable[str] = FOLDERS) -> list[str]:
    """Every regular, non-hidden file in the label folders, relative POSIX paths, natural order."""
    out = []
    for folder in folders:
        d = root / folder
        if d.is_dir():
            out += [p.relative_to(root).as_posix() for p in d.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(out, key=natural_key)


def scan(
    root: str | Path,
    *,
    include_pred: bool = True,
    folders: Mapping[str, str | None] | None = None,
    max_pixels: int = 50_000_000,
    on_image: Callable[[ImageRecord, np.ndarray], None] | None = None,
    progress: bool = False,
) -> ScanResult:
    """Hash, decode and verify every image under ``root``.

    ``on_image(record, rgb)`` is called for each decoded image so later stages (the duplicate
    hash) can reuse the decode instead of reading 3000 JPEGs twice.

    ``folders`` maps sub-folder (may be nested, ``Training/glioma``) -> label for another
    source's layout (see :mod:`train.data.sources`); then only ``SHA256SUMS`` entries inside
    those folders are checked, since a source's list may cover files it does not label.
    The default is BR35H's ``FOLDERS``.
    """
    root = Path(root)
    explicit = folders is not None
    mapping = dict(folders) if explicit else {f: lab for f, lab in FOLDERS.items() if include_pred or lab is not None}
    files = list_files(root, mapping)
    sums_path = root / SUMS_FILE
    sums = read_checksums(sums_path) if sums_path.is_file() else None
    if sums is not None and explicit:
        sums = {k: v for k, v in sums.items() if k.rsplit("/", 1)[0] in mapping}
    elif sums is not None and not include_pred:
        sums = {k: v for k, v in sums.items() if not k.startswith("pred/")}
    result = ScanResult(root, [], checksums_present=sums is not None)
    issues: list[ScanIssue] = []
    for rel in _progress(files, progress, "scan"):
        p = root / rel
        try:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError as exc:
            issues.append(ScanIssue(rel, "unreadable", f"cannot read file ({exc.strerror or exc})"))
            continue
        if sums is not None:
            if rel not in sums:
                issues.append(ScanIssue(rel, "extra", "not listed in SHA256SUMS"))
            elif sums[rel] != digest:
                issues.append(ScanIssue(rel, "changed", f"sha256 {digest[:12]}… differs from SHA256SUMS {sums[rel][:12]}…"))
        try:
            rgb = load_rgb(p, max_pixels)
            with Image.open(p) as img:
                mode = img.mode
        except ImageDecodeError as exc:
            issues.append(ScanIssue(rel, "unreadable", exc.reason))
            continue
        rec = ImageRecord(rel, mapping[rel.rsplit("/", 1)[0]], digest, rgb.shape[1], rgb.shape[0], mode)
        result.records.append(rec)
        if on_image is not None:
            on_image(rec, rgb)
    if sums is not None:
        present = set(files)
        issues += [ScanIssue(k, "missing", "listed in SHA256SUMS but not on disk") for k in sums if k not in present]
    result.issues = sorted(issues, key=lambda i: (i.kind, natural_key(i.path)))
    return result


def _progress(items: list, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", leave=False)
