"""The latency matrix: artifact x threads x stage, plus the runtime-free preprocessing case.

Stages: ``inference`` = the model on a ready crop; ``end_to_end`` = decode the file, numpy
crop + resize, inference (what one ``Classifier.classify`` call costs); ``preprocess`` =
numpy crop + resize of an already decoded image, the same for every model.
"""

from __future__ import annotations

from dataclasses import dataclass

from .artifacts import Artifact

STAGES = ("inference", "end_to_end")


@dataclass(frozen=True)
class LatencyCase:
    stage: str  # preprocess | inference | end_to_end
    artifact: Artifact | None = None  # None only for preprocess
    threads: int | None = None  # None: the runtime's default (Keras uses every core)

    @property
    def id(self) -> str:
        if self.artifact is None:
            return self.stage
        t = "default" if self.threads is None else f"t{self.threads}"
        return f"{self.artifact.label}-{t}-{self.stage}"


def latency_cases(artifacts: list[Artifact], thread_counts: list[int]) -> list[LatencyCase]:
    """Every stage of every artifact at every thread count (Keras: its own threading only)."""
    cases = [LatencyCase("preprocess")]
    for a in artifacts:
        for t in ([None] if a.runtime == "keras" else thread_counts):
            cases += [LatencyCase(stage, a, t) for stage in STAGES]
    return cases
