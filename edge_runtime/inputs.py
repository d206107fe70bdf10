"""Turning command-line arguments into a list of image paths: files, folders, globs.

A file named explicitly is always kept (even ``scan.dat``) so that a wrong file gets an error
record instead of vanishing; folders are walked recursively for image extensions only; an
argument that names nothing and matches no glob is kept too, and reported as missing.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Iterable

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"})


def is_image_name(path: Path) -> bool:
    """Image extension and not a hidden / partial upload (``.x.jpg``, ``x.jpg.part``)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def images_in(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` in a stable (sorted) order."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and is_image_name(p))


def expand(args: Iterable[str]) -> list[Path]:
    """Paths in argument order, folders and globs expanded, duplicates dropped."""
    out: dict[Path, None] = {}
    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            out.update(dict.fromkeys(images_in(p)))
        elif p.exists() or not glob.has_magic(arg):
            out[p] = None
        else:
            matches = sorted(Path(m) for m in glob.glob(str(p), recursive=True))
            files = [m for m in matches if m.is_file()]
            out.update(dict.fromkeys(files or [p]))  # nothing matched: report the pattern
    return list(out)
