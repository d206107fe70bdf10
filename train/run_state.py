"""A run folder's progress: ``state.json``, ``history.csv`` and the checkpoint they name.

``state.json`` holds the last completed ``(stage, epoch)``, the checkpoint written after it,
the per-epoch history and the training seconds so far. ``stage`` is one of
:data:`STAGE_ORDER`: ``start`` (nothing done yet), ``head``, ``finetune`` (``epoch`` = epochs of
that stage completed) or ``done`` (``model.keras`` written). Every run folder written so far
uses this format, so any of them resumes.

Each file is written to a temporary name and renamed, and ``state.json`` is written only after
its checkpoint is complete: a process killed at any instant leaves a folder whose state names
a complete checkpoint, and resuming from it repeats at most the interrupted epoch.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

HISTORY_FIELDS = ("stage", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")

#: Stage names in the order a run passes them; ``state.json`` stores one of these.
STAGE_ORDER = ("start", "head", "finetune", "done")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_model_atomic(model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then rename (Keras wants the suffix)."""
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


class RunState:
    """``state.json``: the last completed (stage, epoch), its checkpoint and the history."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "state.json"
        self.run_dir = run_dir
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.stage: str = data.get("stage", "start")
        if self.stage not in STAGE_ORDER:
            raise ValueError(f"{self.path}: unknown stage {self.stage!r}; expected one of {STAGE_ORDER}")
        self.epoch: int = data.get("epoch", 0)
        self.checkpoint: str | None = data.get("checkpoint")
        self.history: list[dict] = data.get("history", [])
        self.seconds: float = data.get("seconds", 0.0)

    @property
    def started(self) -> bool:
        return self.stage != "start"

    def epochs_done(self, stage: str, epochs: int) -> int:
        """How many of ``stage``'s ``epochs`` are complete: all once the run is past it, none
        before it reached it, ``epoch`` while it is in it."""
        here, there = STAGE_ORDER.index(self.stage), STAGE_ORDER.index(stage)
        if here > there:
            return epochs
        return self.epoch if here == there else 0

    def commit(self, stage: str, epoch: int, checkpoint: str | None, rows: list[dict], seconds: float) -> None:
        """Record ``(stage, epoch)`` as complete with ``checkpoint`` (already saved), append
        ``rows`` to the history, then delete the checkpoint this one replaces."""
        old = self.checkpoint
        self.stage, self.epoch, self.checkpoint = stage, epoch, checkpoint
        self.history.extend(rows)
        self.seconds += seconds
        blob = dict(stage=stage, epoch=epoch, checkpoint=checkpoint, history=self.history, seconds=self.seconds)
        atomic_write_text(self.path, json.dumps(blob, indent=1))
        buf = io.StringIO()
        w = csv.DictWriter(buf, HISTORY_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows({k: r.get(k, "") for k in HISTORY_FIELDS} for r in self.history)
        atomic_write_text(self.run_dir / "history.csv", buf.getvalue())
        if old and old != checkpoint and (self.run_dir / old).exists():
            (self.run_dir / old).unlink()
