"""Train/val/test split manifests: the paper's random protocol and a duplicate-aware one.

``paper``: stratified random split as in the paper (first 20 % test, the rest 90/10
train/val; BR35H: 300/120/1080 per class). Near-duplicates land on both sides, which is what
makes its test accuracy optimistic; :func:`leakage` counts how often.

``grouped``: the same per-class targets, but whole near-duplicate groups are assigned, so no
group is on two sides. Groups are placed largest first (small ones fill the remaining gaps
exactly); each goes to a split drawn with probability proportional to that split's remaining
room among the splits it fits in, so big groups are not all pushed into train and the three
splits see a similar mix of group sizes.

Both protocols write the dedup group into the manifest so any later stage can re-check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .manifest import SPLITS, ManifestRow
from .scan import natural_key

PROTOCOLS = ("paper", "grouped")


@dataclass(frozen=True)
class SplitConfig:
    """Attributes:
        protocol: ``paper`` or ``grouped`` (see the module docstring).
        seed: the only source of randomness; same seed and inputs -> same manifest.
        test_fraction: share of each class that goes to test (paper: 0.2).
        val_fraction: share of the *remaining* images of each class that goes to val (0.1).
    """

    protocol: str = "paper"
    seed: int = 42
    test_fraction: float = 0.2
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if not (0 < self.test_fraction < 1 and 0 <= self.val_fraction < 1):
            raise ValueError("need 0 < test_fraction < 1 and 0 <= val_fraction < 1")

    def targets(self, n: int) -> dict[str, int]:
        """Per-class split sizes for ``n`` images of that class (1500 -> 300 / 120 / 1080)."""
        test = round(n * self.test_fraction)
        val = round((n - test) * self.val_fraction)
        return {"train": n - test - val, "val": val, "test": test}


@dataclass(frozen=True)
class Item:
    """What the splitter needs per image (a labelled scan record plus its dedup group)."""

    path: str
    sha256: str
    label: str
    group: int


def split(items: Sequence[Item], cfg: SplitConfig = SplitConfig()) -> list[ManifestRow]:
    """Assign every item to train/val/test; rows come back in natural path order."""
    items = sorted(items, key=lambda it: natural_key(it.path))
    rng = np.random.default_rng(cfg.seed)
    assign: dict[str, str] = {}
    # A group that mixed labels (none does on BR35H) is split with its majority label, whole.
    votes: dict[int, list[str]] = {}
    for it in items:
        votes.setdefault(it.group, []).append(it.label)
    group_label = {g: max(sorted(set(v)), key=v.count) for g, v in votes.items()}
    for label in sorted({it.label for it in items}):
        targets = cfg.targets(sum(it.label == label for it in items))
        of_label = [it for it in items if (it.label if cfg.protocol == "paper" else group_label[it.group]) == label]
        if cfg.protocol == "paper":
            order = rng.permutation(len(of_label))
            n_test, n_val = targets["test"], targets["val"]
            for rank, idx in enumerate(order):
                assign[of_label[idx].path] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
        else:
            assign.update(_grouped(of_label, targets, rng))
    return [ManifestRow(it.path, it.sha256, it.label, it.group, assign[it.path]) for it in items]


def _grouped(items: list[Item], targets: dict[str, int], rng: np.random.Generator) -> dict[str, str]:
    groups: dict[int, list[str]] = {}
    for it in items:
        groups.setdefault(it.group, []).append(it.path)
    ids = sorted(groups)
    tiebreak = rng.permutation(len(ids))
    order = sorted(range(len(ids)), key=lambda k: (-len(groups[ids[k]]), tiebreak[k]))
    room = dict(targets)
    out = {}
    for k in order:
        members = groups[ids[k]]
        fits = [s for s in SPLITS if room[s] >= len(members)]
        if fits:
            weights = np.array([room[s] for s in fits], dtype=float)
            s = fits[rng.choice(len(fits), p=weights / weights.sum())]
        else:  # a group bigger than every gap: the split with the most room overflows
            s = max(SPLITS, key=lambda s: room[s])
        room[s] -= len(members)
        out.update({p: s for p in members})
    return out


def leakage(rows: Sequence[ManifestRow], into: str = "test", source: str = "train") -> int:
    """How many ``into`` images have a same-group image in ``source`` (a memorised twin)."""
    source_groups = {r.group for r in rows if r.split == source}
    return sum(r.split == into and r.group in source_groups for r in rows)


def crossing_groups(rows: Sequence[ManifestRow]) -> list[int]:
    """Groups present in more than one split (must be empty for ``grouped``)."""
    where: dict[int, set] = {}
    for r in rows:
        where.setdefault(r.group, set()).add(r.split)
    return sorted(g for g, s in where.items() if len(s) > 1)


def counts(rows: Sequence[ManifestRow]) -> dict[str, dict[str, int]]:
    """``{split: {label: n}}``."""
    out = {s: {} for s in SPLITS}
    for r in rows:
        out[r.split][r.label] = out[r.split].get(r.label, 0) + 1
    return out
