"""Turning command-line arguments into image files: folders, globs and files, each real file once.

``Path.glob`` and ``glob.glob(recursive=True)`` follow symbolic links without remembering
where they have been: one link back to a parent yields the same image dozens of times, two such
links make the walk exponential. Here every directory is entered at most once (identified by
device and inode, so a loop or a second route to it is noticed) and every file is yielded at
most once, however many links or hard links lead to it.

Rules, the same for ``predict`` arguments and ``watch``:

- a directory is walked for image names (:func:`is_image_name`), whatever its own name
  (a folder called ``x.jpg`` is a folder);
- a file named explicitly is always kept (even ``scan.dat``) so a wrong file gets an error
  record instead of vanishing; a glob keeps every file it matches and walks matched folders;
- an argument naming nothing that matches nothing is kept, so it is reported as missing;
- an existing folder (or a glob) that yields no image is reported in ``Expansion.empty``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import fnmatch
import glob
import os
from pathlib import Path
from typing import Iterable, Iterator

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})


def is_image_name(path: Path | str) -> bool:
    """Image extension and not a hidden / partial upload (``.x.jpg``, ``x.jpg.part``)."""
    name = os.path.basename(path)
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith(".")


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _walk(root: Path, recursive: bool, seen_dirs: set, seen_files: set) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """Regular files under ``root`` as (path, parts relative to root), sorted, loop-safe."""
    try:
        st = root.stat()
    except OSError:
        return
    if _identity(st) in seen_dirs:
        return
    seen_dirs.add(_identity(st))
    stack: list[tuple[Path, tuple[str, ...]]] = [(root, ())]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: nothing to classify in it
        subdirs = []
        for e in entries:
            try:
                est = e.stat()  # follows links; a dangling link raises and is skipped
            except OSError:
                continue
            ident = _identity(est)
            if e.is_dir():
                if recursive and ident not in seen_dirs:
                    seen_dirs.add(ident)
                    subdirs.append((Path(e.path), rel + (e.name,)))
            elif e.is_file() and ident not in seen_files:
                seen_files.add(ident)
                yield Path(e.path), rel + (e.name,)
        stack.extend(reversed(subdirs))


def images_in(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder``, each real file once, in a stable order."""
    return [p for p, _ in _walk(Path(folder), recursive, set(), set()) if is_image_name(p)]


def _match_parts(parts: tuple[str, ...], pats: tuple[str, ...]) -> bool:
    """``glob``-style match of path components; ``**`` spans zero or more folders and, like
    ``glob``, wildcards do not match a leading dot."""
    if not pats:
        return not parts
    if pats[0] == "**":
        return any(_match_parts(parts[i:], pats[1:]) for i in range(len(parts) + 1)
                   if all(not p.startswith(".") for p in parts[:i]))
    if not parts:
        return False
    hidden_ok = pats[0].startswith(".") or not parts[0].startswith(".")
    return hidden_ok and fnmatch.fnmatchcase(parts[0], pats[0]) and _match_parts(parts[1:], pats[1:])


def _glob(pattern: str, seen_dirs: set, seen_files: set) -> list[Path]:
    """Files matching ``pattern`` (``**`` allowed), matched folders walked; loop-safe."""
    parts = Path(pattern).parts
    fixed = 0
    while fixed < len(parts) and not glob.has_magic(parts[fixed]):
        fixed += 1
    base = Path(*parts[:fixed]) if fixed else Path(".")
    pats = tuple(parts[fixed:])
    out = []
    for path, rel in _walk(base, True, seen_dirs, seen_files):
        for depth in range(1, len(rel) + 1):  # a matched folder takes the images inside it
            if _match_parts(rel[:depth], pats):
                if depth == len(rel) or is_image_name(path):
                    out.append(path)
                break
    return out


@dataclass
class Expansion:
    """``files`` to classify in argument order; ``empty``: arguments that exist (or are globs)
    but yielded no image."""

    files: list[Path] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)


def expand(args: Iterable[str]) -> Expansion:
    """Paths in argument order, folders and globs expanded, each real file once."""
    out = Expansion()
    seen_files: set = set()
    kept: dict[Path, None] = {}
    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            found = [f for f, _ in _walk(p, True, set(), seen_files) if is_image_name(f)]
        elif p.exists() or not glob.has_magic(arg):
            try:
                ident = _identity(p.stat())
            except OSError:
                ident = None
            if ident is not None and ident in seen_files:
                continue
            if ident is not None:
                seen_files.add(ident)
            kept[p] = None
            continue
        else:
            found = _glob(str(p), set(), seen_files)
            if not found and not any(True for _ in glob.iglob(str(p))):
                kept[p] = None  # matches nothing at all: report the pattern as missing
                continue
        if not found:
            out.empty.append(arg)
        kept.update(dict.fromkeys(found))
    out.files = list(kept)
    return out
