"""The watch log as a ledger: which exact file versions have a final record, crash-safe.

- **Keys.** A record's ``file_key`` hashes the file's canonical path (symlinks and ``..``
  resolved, so watching ``scans`` and ``/abs/scans`` is the same) with its size, mtime, device
  and inode. A file rewritten in place or a name reused for a new scan has a new key and is
  classified again; the later record supersedes the earlier one (last record per path wins).
- **Appends.** One ``write`` per record on an ``O_APPEND`` descriptor, then ``fsync``: a crash
  leaves at most one torn, unterminated last line, never a torn line in the middle.
- **Repair.** At open, a torn tail (bytes after the last newline) is moved to ``LOG.torn`` and
  cut off, so the next record starts on its own line; lines that are not valid UTF-8 JSON (or
  CSV rows with the wrong number of fields) are skipped and counted. Each repair is reported in
  ``notes``; the files those lines described are simply classified again.
- **Lock.** The log is held with an exclusive ``flock`` for the watcher's life: a second
  watcher on the same log is refused instead of classifying everything twice.

Logs written before ``file_key`` existed still work: their paths count as done.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path

from .outputs import OutputError
from .records import CSV_FIELDS, format_csv, format_jsonl

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows; the runtime targets Linux devices
    fcntl = None

#: Extra column of the watch log: the ledger key of the file version the record describes.
KEY_FIELD = "file_key"
LOG_CSV_FIELDS = CSV_FIELDS + (KEY_FIELD,)


def parse_line(line: bytes, fmt: str, fields: tuple[str, ...] = ()) -> dict | None:
    """One log line as a dict with a non-empty ``path``, or ``None`` if it is damaged."""
    try:
        text = line.decode("utf-8")
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(text)))
            if len(rows) != 1 or len(rows[0]) != len(fields):
                return None
            row = dict(zip(fields, rows[0]))
        else:
            row = json.loads(text)
    except (UnicodeDecodeError, ValueError, csv.Error):
        return None
    return row if isinstance(row, dict) and isinstance(row.get("path"), str) and row["path"] else None


class LogLockedError(OutputError):
    """Another process holds the log (exit status 2, nothing was classified)."""


def file_key(path: str | Path, st: os.stat_result | None = None) -> str:
    """Identity of one version of one file: canonical path + size + mtime + device + inode."""
    st = st or os.stat(path)
    real = os.fsencode(os.path.realpath(path))
    sig = f"{st.st_size}:{st.st_mtime_ns}:{st.st_dev}:{st.st_ino}".encode()
    return hashlib.sha256(real + b"\0" + sig).hexdigest()[:32]


class Ledger:
    """An open, locked, repaired watch log; ``done(key, path)`` and ``append(record, key)``."""

    def __init__(self, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fmt = "csv" if self.path.suffix.lower() == ".csv" else "jsonl"
        self.fsync = fsync
        self.notes: list[str] = []
        self.keys: set[str] = set()
        self.legacy_paths: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            self._lock()
            data = self._repair_tail(self._read_all())
            self.fields = self._load(data)
        except BaseException:
            os.close(self._fd)
            raise

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogLockedError(f"{self.path} is in use by another watcher (only one may append to a log)") from None

    def _read_all(self) -> bytes:
        chunks, offset = [], 0
        while True:
            chunk = os.pread(self._fd, 1 << 20, offset)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            offset += len(chunk)

    def _repair_tail(self, data: bytes) -> bytes:
        if not data or data.endswith(b"\n"):
            return data
        cut = data.rfind(b"\n") + 1
        torn = self.path.with_name(self.path.name + ".torn")
        with open(torn, "ab") as f:  # kept (durably) before it is cut from the log
            f.write(data[cut:] + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.ftruncate(self._fd, cut)
        os.fsync(self._fd)
        self.notes.append(f"{self.path}: torn last line ({len(data) - cut} bytes, from an interrupted write) "
                          f"moved to {torn}; that file will be classified again")
        return data[:cut]

    def _load(self, data: bytes) -> tuple[str, ...]:
        """Read the keys of every intact record; returns the CSV columns to write."""
        lines = data.split(b"\n")[:-1] if data else []
        fields: tuple[str, ...] = LOG_CSV_FIELDS
        damaged = 0
        if self.fmt == "csv":
            if not lines:
                self._write(",".join(LOG_CSV_FIELDS) + "\n")
                return LOG_CSV_FIELDS
            try:
                fields = tuple(next(csv.reader([lines[0].decode("utf-8")])))
            except (UnicodeDecodeError, StopIteration, csv.Error):
                fields = ()
            if "path" not in fields:
                raise OutputError(f"{self.path}: first line is not this runtime's CSV header; not appending to it")
            lines = lines[1:]
        for line in lines:
            row = parse_line(line, self.fmt, fields)
            if row is None:
                damaged += bool(line.strip())
                continue
            if row.get(KEY_FIELD):
                self.keys.add(row[KEY_FIELD])
            else:
                self.legacy_paths.add(row["path"])
        if damaged:
            self.notes.append(f"{self.path}: skipped {damaged} damaged line(s) (not valid UTF-8 / "
                              f"{self.fmt.upper()}); the files they described will be classified again")
        return fields

    def done(self, key: str, shown_path: str) -> bool:
        """Whether this file version already has a final record."""
        return key in self.keys or shown_path in self.legacy_paths

    def _write(self, text: str) -> None:
        os.write(self._fd, text.encode("utf-8"))
        if self.fsync:
            os.fsync(self._fd)

    def append(self, record: dict, key: str) -> None:
        """Write ``record`` tagged with ``key`` as one line, durably."""
        rec = {**record, KEY_FIELD: key}
        if self.fmt == "csv":
            line = format_csv(rec, fields=self.fields)
        else:
            line = format_jsonl(rec)
        self._write(line)
        self.keys.add(key)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def logged_paths(path: str | Path) -> set[str]:
    """Paths with a record in a JSONL/CSV log (read-only: no lock, no repair)."""
    p = Path(path)
    if not p.is_file():
        return set()
    fmt = "csv" if p.suffix.lower() == ".csv" else "jsonl"
    lines = p.read_bytes().split(b"\n")
    fields: tuple[str, ...] = ()
    if fmt == "csv" and lines:
        fields = tuple(next(csv.reader([lines.pop(0).decode("utf-8", "replace")]), ()))
    rows = (parse_line(line, fmt, fields) for line in lines)
    return {row["path"] for row in rows if row is not None}
