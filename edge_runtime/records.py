"""Result records and their three output formats; appending them so readers never see half a line.

A record is a flat dict (``Prediction.to_record()`` or :func:`error_record`): ``path``,
``path_bytes_b64`` (see :mod:`.names`), ``label`` (``yes``/``no``, or ``unknown`` when
``in_domain`` is false), ``score`` (probability of tumour) and ``error`` always present;
predictions add ``in_domain`` (true/false, null without a model contract), ``domain_score`` and
``unknown_reason`` (null when ``label`` is a real answer; else ``no_brain_found``,
``view_not_supported`` or ``out_of_domain``, see :mod:`.unknown`).
Every failure of one file, whatever its exception type (MemoryError included), becomes that
file's error record: one bad file never stops a batch. Output is always valid: JSON never holds
NaN/Infinity, text is always encodable UTF-8.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Iterable, TextIO

from .classifier import Classifier
from .image_io import ImageDecodeError
from .names import display, path_fields
from .unknown import VIEW_NOT_SUPPORTED

CSV_FIELDS = ("path", "label", "score", "score_no", "score_yes", "box", "no_brain_found", "in_domain", "domain_score",
              "unknown_reason", "decode_ms", "preprocess_ms", "inference_ms", "num_threads", "error")
CSV_FIELDS += ("path_bytes_b64",)  # the exact name when ``path`` had to be escaped
FORMATS = ("table", "jsonl", "csv")


def error_record(path: str | Path, reason: str) -> dict:
    return {**path_fields(path), "label": None, "score": None, "error": display(reason)}


def failure_reason(exc: BaseException) -> str:
    """What goes into ``error`` for an exception raised while handling one file."""
    if isinstance(exc, ImageDecodeError):
        return exc.reason
    if isinstance(exc, MemoryError):
        return "out of memory while processing this file"
    return f"unexpected {type(exc).__name__}: {exc}"


def classify_record(classifier: Classifier, path: str | Path) -> dict:
    """One file's record; any failure on this file (not Ctrl-C) becomes an error record."""
    try:
        return {**classifier.classify(path).to_record(), **path_fields(path)}
    except Exception as exc:  # noqa: BLE001 - per-file isolation is the point; the reason is recorded
        return error_record(path, failure_reason(exc))


def _clean(value):
    """Strings made encodable (lone surrogates escaped); other values unchanged."""
    return display(value) if isinstance(value, str) else value


def format_jsonl(record: dict) -> str:
    """One JSON line; a record holding NaN/Infinity becomes its error record (never invalid JSON)."""
    try:
        return json.dumps({k: _clean(v) for k, v in record.items()}, allow_nan=False) + "\n"
    except ValueError:
        return json.dumps(error_record(record.get("path", "?"), "non-finite value in result")) + "\n"


def format_csv(record: dict, header: bool = False, fields: tuple[str, ...] = CSV_FIELDS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fields, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    row = {k: _clean(v) for k, v in record.items()}
    if any(isinstance(v, float) and not math.isfinite(v) for v in row.values()):
        row = error_record(record.get("path", "?"), "non-finite value in result")
    if row.get("box") is not None:
        row["box"] = " ".join(map(str, row["box"]))
    writer.writerow(row)
    return buf.getvalue()


def format_table_row(record: dict) -> str:
    if record["error"] or not math.isfinite(record["score"]):
        return f"{'ERROR':7}  {'':>6}  {_clean(record['path'])}: {_clean(record['error'] or 'non-finite score')}\n"
    note = ""
    if record.get("no_brain_found"):
        note = "  (no brain found or degenerate input: not assessable)"
    elif record.get("unknown_reason") == VIEW_NOT_SUPPORTED:
        note = "  (view not supported: the model was not validated on this slice's view)"
    elif record.get("in_domain") is False:
        note = f"  (out of domain: domain score {record['domain_score']:.4f} below the model's threshold)"
    ms = record["decode_ms"] + record["preprocess_ms"] + record["inference_ms"]
    return f"{record['label']:7}  {record['score']:6.4f}  {_clean(record['path'])}  [{ms:.1f} ms]{note}\n"


def write_records(records: Iterable[dict], fmt: str, stream: TextIO) -> tuple[int, int]:
    """Stream records as they come; returns ``(n_ok, n_failed)``."""
    if fmt not in FORMATS:
        raise ValueError(f"output format must be one of {FORMATS}, got {fmt!r}")
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
