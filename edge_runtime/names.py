"""File names in results: always valid UTF-8 text, never ambiguous, never lossy.

On Linux a file name is bytes; a scanner can write names that are not UTF-8 (Latin-1 patient
names are common) or that hold newlines. Python carries such bytes as lone surrogates, which
cannot be written to a UTF-8 file (a CSV log then crashed every start) and which JSON parsers
treat inconsistently. So ``path`` is a printable text form (undecodable bytes as ``\\xNN``,
control characters escaped, one line always) and, whenever that form differs from the real
name, ``path_bytes_b64`` holds the exact bytes (standard base64 of ``os.fsencode(path)``).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path


def display(text: str) -> str:
    """Printable single-line UTF-8 text: surrogate-escaped bytes as ``\\xNN``, controls escaped."""
    fixed = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if fixed.isprintable():
        return fixed
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in fixed)


def path_fields(path: str | Path) -> dict:
    """``{"path": text form, "path_bytes_b64": exact bytes or None when the text is exact}``."""
    raw = os.fsencode(path)
    shown = display(os.fsdecode(raw))
    exact = shown.encode("utf-8") == raw
    return {"path": shown, "path_bytes_b64": None if exact else base64.b64encode(raw).decode("ascii")}


def path_from_fields(record: dict) -> Path:
    """The real path a record names (inverse of :func:`path_fields`)."""
    b64 = record.get("path_bytes_b64")
    return Path(os.fsdecode(base64.b64decode(b64))) if b64 else Path(record["path"])
