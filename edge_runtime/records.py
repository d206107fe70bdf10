"""Result records and their three output formats; appending them so readers never see half a line.

A record is a flat dict (``Prediction.to_record()`` or :func:`error_record`): ``path``,
``label`` (``yes``/``no``, or ``unknown`` when ``in_domain`` is false), ``score`` (probability of
tumour) and ``error`` always present; predictions add ``in_domain`` (true/false, null without a
model contract) and ``domain_score``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Iterable, TextIO

from .classifier import Classifier
from .image_io import ImageDecodeError

CSV_FIELDS = ("path", "label", "score", "score_no", "score_yes", "box", "no_brain_found", "in_domain", "domain_score",
              "decode_ms", "preprocess_ms", "inference_ms", "num_threads", "error")
FORMATS = ("table", "jsonl", "csv")


def error_record(path: str | Path, reason: str) -> dict:
    return {"path": str(path), "label": None, "score": None, "error": reason}


def classify_record(classifier: Classifier, path: str | Path) -> dict:
    """One file's record; a bad image becomes an error record, anything else still raises."""
    try:
        return classifier.classify(path).to_record()
    except ImageDecodeError as exc:
        return error_record(path, exc.reason)


def format_jsonl(record: dict) -> str:
    return json.dumps(record, sort_keys=False) + "\n"


def format_csv(record: dict, header: bool = False) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    row = dict(record)
    if row.get("box") is not None:
        row["box"] = " ".join(map(str, row["box"]))
    writer.writerow(row)
    return buf.getvalue()


def format_table_row(record: dict) -> str:
    if record["error"]:
        return f"{'ERROR':7}  {'':>6}  {record['path']}: {record['error']}\n"
    note = ""
    if record.get("no_brain_found"):
        note = "  (no brain found or degenerate input: not assessable)"
    elif record.get("in_domain") is False:
        note = f"  (out of domain: domain score {record['domain_score']:.4f} below the model's threshold)"
    ms = record["decode_ms"] + record["preprocess_ms"] + record["inference_ms"]
    return f"{record['label']:7}  {record['score']:6.4f}  {record['path']}  [{ms:.1f} ms]{note}\n"


def write_records(records: Iterable[dict], fmt: str, stream: TextIO) -> tuple[int, int]:
    """Stream records as they come; returns ``(n_ok, n_failed)``."""
    ok = failed = 0
    if fmt == "table":
        stream.write(f"{'label':7}  {'score':>6}  path\n")
    for i, rec in enumerate(records):
        if fmt == "jsonl":
            stream.write(format_jsonl(rec))
        elif fmt == "csv":
            stream.write(format_csv(rec, header=i == 0))
        else:
            stream.write(format_table_row(rec))
        stream.flush()
        failed += rec["error"] is not None
        ok += rec["error"] is None
    if fmt == "csv" and ok + failed == 0:
        stream.write(",".join(CSV_FIELDS) + "\n")
    return ok, failed


class AtomicAppender:
    """Append-only JSONL/CSV log: each record is one ``write`` on an ``O_APPEND`` descriptor,
    then fsync, so a reader (or a crash) sees whole lines only and earlier lines are never
    rewritten. The format follows the suffix (``.csv`` or anything else = JSONL)."""

    def __init__(self, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fmt = "csv" if self.path.suffix.lower() == ".csv" else "jsonl"
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self.fmt == "csv" and os.fstat(self._fd).st_size == 0:
            self._write(",".join(CSV_FIELDS) + "\n")

    def _write(self, text: str) -> None:
        os.write(self._fd, text.encode())
        if self.fsync:
            os.fsync(self._fd)

    def append(self, record: dict) -> None:
        self._write(format_csv(record) if self.fmt == "csv" else format_jsonl(record))

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "AtomicAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def logged_paths(path: str | Path) -> set[str]:
    """Paths already present in a JSONL/CSV log (so a restarted watcher does not redo them)."""
    p = Path(path)
    if not p.is_file():
        return set()
    text = p.read_text()
    if p.suffix.lower() == ".csv":
        return {row["path"] for row in csv.DictReader(io.StringIO(text)) if row.get("path")}
    done = set()
    for line in text.splitlines():
        if line.strip():
            try:
                done.add(json.loads(line)["path"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn line from a crash elsewhere: that image is simply redone
    return done
