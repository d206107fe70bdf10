"""Scanner-side deployment: classify every image that appears in a folder, append to a log.

What happens to each file (the README's "Guarantees" section says the same for deployers):

- **Settling.** A file is read once its size and mtime are unchanged between two polls
  (``--once`` reads what is there). Hidden names and non-image suffixes such as ``.part`` are
  ignored: a scanner writing ``x.jpg.part`` and renaming it is never seen half-written.
- **Pending, not failed.** A file that fails to decode as corrupt or truncated while it was
  modified less than ``settle_s`` ago, or that changes while it is read, is still being written:
  no record, it is tried again when it changes or settles. A writer that stalls longer than
  ``settle_s`` gets an error record, and the completed file is classified again (new version).
- **Retried.** A file that cannot be read (permission denied, busy, I/O error) is retried with
  exponential backoff (``interval`` x 2^n, at most 60 s) up to ``max_attempts`` times, then gets
  an error record naming the reason. ``--once`` never writes a record for a pending or
  retryable file: the next run tries it again.
- **Logged.** Every other outcome, success or error of any kind, is one line in the ledger
  (:mod:`.ledger`), keyed by the file version, so a restart neither repeats nor loses work and
  a changed or reused file name is classified again.
- **Idle cost.** Folder listings are cached by folder mtime (:mod:`.scanner`); finished files
  are not stat'ed again except in a full scan every ``rescan_s`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import errno
import math
import os
from pathlib import Path
import time
from typing import Callable

from .classifier import Classifier
from .image_io import ImageDecodeError
from .ledger import Ledger, file_key
from .names import path_fields
from .records import error_record, failure_reason
from .scanner import FolderIndex

#: errno values worth another try: the file may become readable without anyone touching it.
TRANSIENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EAGAIN, errno.EBUSY, errno.EIO,
                              errno.ETXTBSY, errno.ESTALE, errno.EINTR})
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class WatchConfig:
    """``folder`` to watch, ``output`` log (``.jsonl`` or ``.csv``), poll ``interval`` seconds.

    ``settle_s``: a corrupt-looking file modified more recently than this is pending;
    ``max_attempts``: reads of an unreadable file before it gets an error record;
    ``rescan_s``: period of the full scan that notices files rewritten in place.
    """

    folder: Path
    output: Path
    interval: float = 1.0
    recursive: bool = False
    settle_s: float = 10.0
    max_attempts: int = 5
    rescan_s: float = 60.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.interval) and self.interval >= 0.01):
            raise ValueError(f"interval must be at least 0.01 s (a smaller one is a busy loop), got {self.interval}")
        if not (self.settle_s >= 0 and self.rescan_s > 0 and self.max_attempts >= 1):
            raise ValueError("settle_s must be >= 0, rescan_s > 0 and max_attempts >= 1")


@dataclass
class WatchSummary:
    """What a watch run did: records ``appended`` (``failed`` of them errors) and files
    ``deferred`` (pending or to be retried) when it stopped."""

    appended: int = 0
    failed: int = 0
    deferred: dict[str, str] = field(default_factory=dict)


@dataclass
class _Retry:
    attempts: int
    next_at: float


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _attempt(classifier: Classifier, path: Path, st: os.stat_result, settle_s: float) -> tuple[dict, str]:
    """Classify once; outcome ``"ok"``, ``"error"`` (final), ``"pending"`` or ``"transient"``."""
    try:
        record = {**classifier.classify(path).to_record(), **path_fields(path)}
        outcome = "ok"
    except ImageDecodeError as exc:
        record = error_record(path, exc.reason)
        if exc.kind == "io" and exc.errno in TRANSIENT_ERRNOS:
            outcome = "transient"
        elif exc.kind == "corrupt" and time.time() - st.st_mtime_ns / 1e9 < settle_s:
            outcome = "pending"
        else:
            outcome = "error"
    except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the watcher
        record, outcome = error_record(path, failure_reason(exc)), "error"
    try:
        changed = _signature(path.stat()) != _signature(st)
    except OSError:
        changed = True
    if changed:  # written to (or replaced) while we read it: this answer is for no stable file
        return record, "pending"
    return record, outcome


def watch(classifier: Classifier, cfg: WatchConfig, stop: Callable[[], bool] = lambda: False,
          once: bool = False, on_record: Callable[[dict], None] | None = None,
          on_note: Callable[[str], None] | None = None, ledger: Ledger | None = None) -> WatchSummary:
    """Poll until ``stop()`` is true (or one pass when ``once``).

    ``ledger``: an already opened (locked) log for ``cfg.output``; it is closed at the end.
    """
    if not cfg.folder.is_dir():
        raise NotADirectoryError(f"{cfg.folder}: not a folder to watch")
    note = on_note or (lambda _msg: None)
    summary = WatchSummary()
    index = FolderIndex(cfg.folder, cfg.recursive)
    finished: dict[Path, tuple[int, int, int]] = {}  # path -> signature, known to be logged
    last_seen: dict[Path, tuple[int, int, int]] = {}
    retries: dict[Path, _Retry] = {}
    unfinished: set[Path] = set()  # seen, not logged yet: the only files an idle poll looks at
    last_full = -math.inf
    with ledger or Ledger(cfg.output) as ledger:
        for msg in ledger.notes:
            note(msg)
        while True:
            now = time.monotonic()
            full = now - last_full >= cfg.rescan_s
            if full:
                last_full = now
            paths = index.scan()
            if full or index.listed:  # something may have gone: forget it (a new file may reuse its name)
                present = set(paths)
                for gone in [p for p in finished if p not in present]:
                    del finished[gone]
            # Between full scans only files from re-listed folders and unfinished ones are looked at,
            # so an idle poll costs the same with 20 000 finished files as with none.
            candidates = paths if full else sorted(index.fresh | unfinished)
            for path in candidates:
                if path in finished and not full and path not in index.fresh:
                    continue
                try:
                    st = path.stat()
                except OSError:  # removed between listing and stat: nothing to do
                    last_seen.pop(path, None)
                    unfinished.discard(path)
                    continue
                sig = _signature(st)
                if finished.get(path) == sig:
                    continue
                key = file_key(path, st)
                shown = path_fields(path)["path"]
                if ledger.done(key, shown):
                    finished[path] = sig
                    unfinished.discard(path)
                    continue
                unfinished.add(path)
                if not once and last_seen.get(path) != sig:
                    last_seen[path] = sig  # still settling: look again next poll
                    continue
                retry = retries.get(path)
                if retry and not once and time.monotonic() < retry.next_at:
                    continue
                record, outcome = _attempt(classifier, path, st, cfg.settle_s)
                if outcome == "transient":
                    attempts = (retry.attempts if retry else 0) + 1
                    if once or attempts < cfg.max_attempts:
                        if not once:
                            delay = min(MAX_BACKOFF_S, cfg.interval * 2**attempts)
                            retries[path] = _Retry(attempts, time.monotonic() + delay)
                        summary.deferred[shown] = f"{record['error']}; will retry"
                        note(f"{shown}: {record['error']} (attempt {attempts}; will retry)")
                        continue
                    record["error"] += f" (after {attempts} attempts)"
                if outcome == "pending":
                    last_seen.pop(path, None)
                    summary.deferred[shown] = "still being written"
                    note(f"{shown}: still being written ({record['error'] or 'changed while read'}); will retry")
                    continue
                ledger.append(record, key)
                finished[path] = sig
                unfinished.discard(path)
                retries.pop(path, None)
                last_seen.pop(path, None)
                summary.deferred.pop(shown, None)
                summary.appended += 1
                summary.failed += record["error"] is not None
                if on_record:
                    on_record(record)
            if once or stop():
                return summary
            time.sleep(cfg.interval)
