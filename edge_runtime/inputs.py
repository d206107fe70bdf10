"""Turning command-line arguments into a list of image paths: files, folders, globs.

Kept for callers of the original API; the rules and the loop-safe walk live in :mod:`.walk`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .walk import IMAGE_SUFFIXES, images_in, is_image_name
from .walk import expand as _expand

__all__ = ["IMAGE_SUFFIXES", "expand", "images_in", "is_image_name"]


def expand(args: Iterable[str]) -> list[Path]:
    """Paths in argument order, folders and globs expanded, each real file once."""
    return _expand(args).files
