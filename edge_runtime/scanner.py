"""Listing a watched folder without re-reading what has not changed.

A watcher polls forever, mostly over files it has already classified. Listing and stat'ing
20 000 files every second cost a third of a core while idle. A folder's mtime changes whenever
an entry is created, renamed or removed in it, so a folder whose mtime is unchanged keeps its
cached listing; the watcher then only stats files it has not finished. What a folder mtime
cannot show (a file rewritten in place under the same name) is caught by a full scan every
``rescan_s`` seconds. Folders modified within the last ``_RECENT_NS`` are always re-listed:
on coarse-timestamp filesystems a new entry can land in the same mtime tick as the last listing.

Folders are entered once each (device + inode), so symlink loops cannot repeat or hang a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import time

from .walk import is_image_name

_RECENT_NS = 2_000_000_000


@dataclass
class _Listing:
    mtime_ns: int
    files: list[Path]  # Path objects kept, so an idle poll builds (and hashes) nothing new
    subdirs: list[str]


class FolderIndex:
    """``scan()`` -> image paths under ``root``, re-listing only folders that changed."""

    def __init__(self, root: Path, recursive: bool = False) -> None:
        self.root = Path(root)
        self.recursive = recursive
        self._cache: dict[str, _Listing] = {}
        self.listed = 0  # folders actually re-listed by the last scan (for tests and benchmarks)
        self.fresh: set[Path] = set()  # paths of the last scan that come from a re-listed folder

    def _list(self, folder: str, st: os.stat_result) -> _Listing | None:
        cached = self._cache.get(folder)
        if cached and cached.mtime_ns == st.st_mtime_ns and time.time_ns() - st.st_mtime_ns > _RECENT_NS:
            return cached
        files, subdirs = [], []
        try:
            with os.scandir(folder) as it:
                for e in it:
                    try:
                        if e.is_dir():
                            if self.recursive:
                                subdirs.append(e.name)
                        elif e.is_file() and is_image_name(e.name):
                            files.append(e.name)
                    except OSError:
                        continue
        except OSError:
            return None
        self.listed += 1
        listing = _Listing(st.st_mtime_ns, [Path(folder, name) for name in sorted(files)], sorted(subdirs))
        self._cache[folder] = listing
        return listing

    def scan(self) -> list[Path]:
        """Image paths under the root, each folder visited once (loops are cut)."""
        self.listed = 0
        self.fresh = set()
        out: list[Path] = []
        seen: set[tuple[int, int]] = set()
        stack = [str(self.root)]
        visited: set[str] = set()
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
            except OSError:
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue
            seen.add(ident)
            visited.add(folder)
            before = self.listed
            listing = self._list(folder, st)
            if listing is None:
                continue
            if self.listed != before:
                self.fresh.update(listing.files)
            out.extend(listing.files)
            stack.extend(os.path.join(folder, d) for d in reversed(listing.subdirs))
        for gone in set(self._cache) - visited:
            del self._cache[gone]
        return out
