"""The release gate: an artifact that classifies worse than its source model does not ship."""

from __future__ import annotations

from typing import Mapping

from convert.config import GateConfig
from convert.evaluate import Metrics


def gate_failures(keras_accuracy: float, artifacts: Mapping[str, Metrics], cfg: GateConfig) -> list[str]:
    """One human-readable line per failing artifact (empty = pass); numbers in percent."""
    failures = []
    for name, m in artifacts.items():
        drop = 100 * (keras_accuracy - m.accuracy)
        if drop > cfg.tolerance + 1e-9:
            failures.append(f"{name}: accuracy {100 * m.accuracy:.2f}% is {drop:.2f} points below the Keras model's "
                            f"{100 * keras_accuracy:.2f}% (tolerance {cfg.tolerance} points; agreement "
                            f"{100 * m.agreement:.2f}%, max prob diff {m.max_prob_diff:.3f})")
        bar = 100 * cfg.paper_accuracy - cfg.paper_tolerance
        if cfg.paper_protocol and 100 * m.accuracy < bar - 1e-9:
            failures.append(f"{name}: accuracy {100 * m.accuracy:.2f}% is below the paper's {100 * cfg.paper_accuracy:.2f}% "
                            f"minus {cfg.paper_tolerance} points = {bar:.2f}% (paper protocol)")
    return failures
