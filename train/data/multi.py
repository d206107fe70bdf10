"""Multi-source manifests: BR35H + Nickparvar, with near-duplicate groups that span sources.

Nickparvar's "Brain Tumor MRI Dataset" contains most of BR35H's normals, so adding it naively
puts copies of BR35H test images into training. Every protocol here is decided on the
cross-source groups of :func:`train.data.dedup.find_groups_multi`:

``external`` (a): every Nickparvar image whose group holds no BR35H image, all ``test``: what a
    BR35H-only model has never seen, not even as a twin.
``paper`` (b, "paper+"): the BR35H rows of ``splits/br35h-paper.csv`` exactly as committed,
    plus Nickparvar ``Training/`` images in train/val (90/10 by group and class) except those
    whose group holds a BR35H test image; a Nickparvar image grouped with a BR35H train (val)
    image goes to train (val) with it. Nickparvar ``Testing/`` images go to test when their group
    holds nothing in train/val, and are dropped (and counted) otherwise.
``grouped`` (c): both sources split about 70/10/20 by whole groups, stratified by (label,
    source); a group with any BR35H member counts as BR35H, since nearly all spanning groups
    are BR35H normals with their Nickparvar copies.

Group ids: in ``external`` and ``grouped`` they are the cross-source group ids. In ``paper`` the
BR35H rows keep their committed (BR35H-only) ids; a Nickparvar row takes the smallest BR35H id
of its cross-source group, or, without BR35H members, a fresh id above all BR35H ids. BR35H-only
groups are a refinement of the cross-source ones (same rule on a subset), which is checked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from edge_runtime.config import CropConfig

from .dedup import DedupConfig, DedupResult, FingerprintCache, SourceScan, find_groups_multi, scan_source, split_key
from .manifest import SPLITS, ManifestRow
from .scan import natural_key
from .sources import BR35H, NICKPARVAR, RootResolver, RootSpec, get_source
from .splits import Item, SplitConfig, _grouped

MULTI_PROTOCOLS = ("external", "paper", "grouped")
MANIFEST_NAMES = {"external": "nickparvar-external", "paper": "multi-paper", "grouped": "multi-grouped"}


@dataclass(frozen=True)
class SourceImage:
    """One labelled image of any source with its cross-source group."""

    source: str
    path: str
    sha256: str
    class_name: str
    group: int

    @property
    def label(self) -> str:
        return get_source(self.source).label_of(self.class_name)

    @property
    def part(self) -> str:
        """Nickparvar's own ``Training``/``Testing``; ``""`` for BR35H."""
        return get_source(self.source).part_of(self.path)

    @property
    def key(self) -> str:
        return f"{self.source}:{self.path}"

    def row(self, split: str, group: int | None = None) -> ManifestRow:
        return ManifestRow(self.path, self.sha256, self.label, self.group if group is None else group, split,
                           self.source, self.class_name)


@dataclass(frozen=True)
class MultiSource:
    """Both sources scanned and grouped together: what every multi-source protocol starts from."""

    scans: list[SourceScan]
    groups: DedupResult  # paths are ``source:path`` keys
    images: list[SourceImage]

    @property
    def ok(self) -> bool:
        return all(s.scan.ok for s in self.scans)

    def summary(self) -> str:
        return "\n".join(f"{s.source} ({s.root}): {s.scan.summary()}" for s in self.scans)


def group_sources(roots: RootSpec = None, sources: Sequence[str] = (BR35H.name, NICKPARVAR.name),
                  cfg: DedupConfig = DedupConfig(), progress: bool = False, use_cache: bool = True) -> MultiSource:
    """Scan (with integrity) and fingerprint each source, then group all labelled images together."""
    resolve = RootResolver(roots)
    scans = [scan_source(name, resolve(name), cfg, use_cache=use_cache, progress=progress) for name in sources]
    dd = find_groups_multi(scans, cfg, FingerprintCache(cfg, CropConfig()) if use_cache else None)
    sha = {f"{s.source}:{r.path}": r.sha256 for s in scans for r in s.scan.labelled()}
    return MultiSource(scans, dd, images_from(dd, sha))


def images_from(dd: DedupResult, sha256: dict[str, str]) -> list[SourceImage]:
    """``dd`` from ``find_groups_multi`` (paths are ``source:path`` keys) -> images in its order."""
    out = []
    for key, g in zip(dd.paths, dd.groups.tolist()):
        source, path = split_key(key)
        out.append(SourceImage(source, path, sha256[key], get_source(source).class_of(path), int(g)))
    return out


def members(images: Iterable[SourceImage]) -> dict[int, list[SourceImage]]:
    out: dict[int, list[SourceImage]] = {}
    for im in images:
        out.setdefault(im.group, []).append(im)
    return out


@dataclass
class Protocol:
    """A manifest and why images were left out of it (``{reason: [key, ...]}``)."""

    name: str
    rows: list[ManifestRow]
    dropped: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict:
        return split_counts(self.rows)

    def dropped_counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for reason, keys in self.dropped.items():
            c = Counter(f"{split_key(k)[0]}/{get_source(split_key(k)[0]).class_of(split_key(k)[1])}" for k in keys)
            out[reason] = dict(sorted(c.items()))
        return out


def split_counts(rows: Sequence[ManifestRow]) -> dict[str, dict[str, dict[str, int]]]:
    """``{split: {source: {class: n}}}`` with splits in train/val/test order, empty ones left out."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for s in SPLITS:
        c = Counter((r.source, r.class_name) for r in rows if r.split == s)
        if c:
            out[s] = {}
            for (src, cls), n in sorted(c.items()):
                out[s].setdefault(src, {})[cls] = n
    return out


def external(images: Sequence[SourceImage]) -> Protocol:
    """(a): Nickparvar images whose group has no BR35H member, all ``test``."""
    groups = members(images)
    with_br35h = {g for g, ms in groups.items() if any(m.source == BR35H.name for m in ms)}
    nick = [im for im in images if im.source == NICKPARVAR.name]
    rows = [im.row("test") for im in nick if im.group not in with_br35h]
    dropped = {"twin of a BR35H image": [im.key for im in nick if im.group in with_br35h]}
    return Protocol("external", _ordered(rows), dropped)


def paper_plus(images: Sequence[SourceImage], paper_rows: Sequence[ManifestRow], seed: int = 42,
               val_fraction: float = 0.1) -> Protocol:
    """(b): the committed BR35H paper split plus Nickparvar, see the module docstring."""
    br = {im.path: im for im in images if im.source == BR35H.name}
    paper = [r for r in paper_rows if r.source == BR35H.name]
    if {r.path for r in paper} != set(br):
        raise ValueError("the BR35H paper manifest and the scanned BR35H images list different files")
    bad = [r.path for r in paper if r.sha256 != br[r.path].sha256]
    if bad:
        raise ValueError(f"BR35H files differ from the paper manifest's sha256: {bad[:5]}{' ...' if len(bad) > 5 else ''}")
    cross_of_old: dict[int, set[int]] = {}
    for r in paper:
        cross_of_old.setdefault(r.group, set()).add(br[r.path].group)
    split_groups = sorted(g for g, s in cross_of_old.items() if len(s) > 1)
    if split_groups:
        raise ValueError(f"BR35H groups {split_groups[:5]} fall into several cross-source groups: "
                         "the manifest's groups were not made with the same dedup rule")

    paper_split = {r.path: r.split for r in paper}
    br_splits: dict[int, set[str]] = {}
    old_id: dict[int, int] = {}
    for r in paper:
        g = br[r.path].group
        br_splits.setdefault(g, set()).add(r.split)
        old_id[g] = min(old_id.get(g, r.group), r.group)

    nick = [im for im in images if im.source == NICKPARVAR.name]
    train_part = [im for im in nick if im.part == "Training"]
    dropped: dict[str, list[str]] = {"Training/: group holds a BR35H test image": [],
                                      "Testing/: group holds a train/val image": []}
    assign: dict[str, str] = {}
    free: list[SourceImage] = []
    for im in train_part:
        s = br_splits.get(im.group, set())
        if "test" in s:
            dropped["Training/: group holds a BR35H test image"].append(im.key)
        elif "train" in s:
            assign[im.key] = "train"
        elif "val" in s:
            assign[im.key] = "val"
        else:
            free.append(im)
    assign.update(_train_val_by_group(free, val_fraction, np.random.default_rng(seed)))
    trainval_groups = {im.group for im in train_part if assign.get(im.key) in ("train", "val")}
    trainval_groups |= {g for g, s in br_splits.items() if s & {"train", "val"}}
    for im in nick:
        if im.part == "Testing":
            if im.group in trainval_groups:
                dropped["Testing/: group holds a train/val image"].append(im.key)
            else:
                assign[im.key] = "test"

    next_id = max((r.group for r in paper), default=-1) + 1
    fresh: dict[int, int] = {}
    rows = list(paper)
    for im in nick:
        if im.key not in assign:
            continue
        if im.group in old_id:
            gid = old_id[im.group]
        else:
            gid = fresh.setdefault(im.group, next_id + len(fresh))
        rows.append(im.row(assign[im.key], gid))
    return Protocol("paper", rows, dropped)


def _train_val_by_group(images: Sequence[SourceImage], val_fraction: float, rng: np.random.Generator) -> dict[str, str]:
    """Whole groups to val until each class (a group's majority class) has its share, the rest to train.

    Groups are visited in a seeded random order; one that would overshoot the class's val
    target goes to train, so val never exceeds ``round(val_fraction * n)`` images per class.
    """
    groups = members(images)
    by_class: dict[str, list[int]] = {}
    for g, ms in sorted(groups.items()):
        cls = Counter(m.class_name for m in ms).most_common(1)[0][0]
        by_class.setdefault(cls, []).append(g)
    out = {}
    for cls in sorted(by_class):
        ids = by_class[cls]
        target = round(val_fraction * sum(len(groups[g]) for g in ids))
        n_val = 0
        for k in rng.permutation(len(ids)):
            ms = groups[ids[k]]
            to_val = n_val + len(ms) <= target
            n_val += len(ms) * to_val
            out.update({m.key: "val" if to_val else "train" for m in ms})
    return out


def grouped(images: Sequence[SourceImage], seed: int = 42, test_fraction: float = 0.2, val_fraction: float = 0.1) -> Protocol:
    """(c): whole cross-source groups to train/val/test, stratified by (label, source).

    ``val_fraction`` is a share of *all* images (0.1 -> 70/10/20), unlike :class:`SplitConfig`'s."""
    groups = members(images)
    stratum: dict[int, tuple[str, str]] = {}
    for g, ms in groups.items():
        label = max(sorted({m.label for m in ms}), key=[m.label for m in ms].count)
        src = BR35H.name if any(m.source == BR35H.name for m in ms) else ms[0].source
        stratum[g] = (label, src)
    cfg = SplitConfig("grouped", seed, test_fraction, val_fraction / (1 - test_fraction))
    rng = np.random.default_rng(seed)
    assign: dict[str, str] = {}
    for key in sorted(set(stratum.values())):
        items = [Item(m.key, m.sha256, m.label, g) for g, ms in sorted(groups.items()) if stratum[g] == key for m in ms]
        assign.update(_grouped(items, cfg.targets(len(items)), rng))
    return Protocol("grouped", _ordered([im.row(assign[im.key]) for im in images]))


def _ordered(rows: list[ManifestRow]) -> list[ManifestRow]:
    order = {BR35H.name: 0, NICKPARVAR.name: 1}
    return sorted(rows, key=lambda r: (order.get(r.source, 9), natural_key(r.path)))
