"""What evaluating a model on one split produces: a row per image and the split's metrics.

Its own module so the report writer (:mod:`train.report`) and the evaluator
(:mod:`train.evaluate`) share these types without importing each other: evaluate imports
report, report imports only this.
"""

from __future__ import annotations

from dataclasses import dataclass

from train.metrics import BinaryMetrics, SubsetMetrics


@dataclass(frozen=True)
class PredictionRow:
    path: str
    label: str
    p_tumour: float
    predicted: str
    correct: bool
    source: str = ""  # set when the split mixes sources


@dataclass(frozen=True)
class EvalResult:
    split: str
    metrics: BinaryMetrics
    rows: tuple[PredictionRow, ...]
    by_source: tuple[SubsetMetrics, ...] = ()  # one per source when the manifest names sources

    def to_dict(self) -> dict:
        d = {"split": self.split, "metrics": self.metrics.to_dict()}
        if self.by_source:
            d["by_source"] = [s.to_dict() for s in self.by_source]
        return d
