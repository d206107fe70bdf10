"""Scanner-side deployment: classify every image that appears in a folder, append to a log.

A file is picked up once its size and mtime are unchanged between two polls (a scanner still
writing it is left alone; writing to a temporary name and renaming is better still: hidden
names and non-image suffixes such as ``.part`` are ignored). Paths already in the log are
skipped, so a restarted watcher neither repeats nor loses work; a bad file gets an error
record and the watcher goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import time
from typing import Callable

from .classifier import Classifier
from .inputs import images_in
from .records import AtomicAppender, classify_record, logged_paths


@dataclass(frozen=True)
class WatchConfig:
    """``folder`` to watch, ``output`` log (``.jsonl`` or ``.csv``), poll ``interval`` seconds."""

    folder: Path
    output: Path
    interval: float = 1.0
    recursive: bool = False


def watch(classifier: Classifier, cfg: WatchConfig, stop: Callable[[], bool] = lambda: False,
          once: bool = False, on_record: Callable[[dict], None] | None = None) -> int:
    """Poll until ``stop()`` is true (or one pass when ``once``); returns records appended."""
    if not cfg.folder.is_dir():
        raise NotADirectoryError(f"{cfg.folder}: not a folder to watch")
    done = logged_paths(cfg.output)
    last_seen: dict[str, tuple[int, int]] = {}
    count = 0
    with AtomicAppender(cfg.output) as log:
        while True:
            for path in images_in(cfg.folder, cfg.recursive):
                key = str(path)
                if key in done:
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:  # removed between listing and stat: nothing to do
                    last_seen.pop(key, None)
                    continue
                sig = (st.st_size, st.st_mtime_ns)
                if not once and last_seen.get(key) != sig:
                    last_seen[key] = sig  # still settling: look again next poll
                    continue
                record = classify_record(classifier, path)
                log.append(record)
                done.add(key)
                last_seen.pop(key, None)
                count += 1
                if on_record:
                    on_record(record)
            if once or stop():
                return count
            time.sleep(cfg.interval)
