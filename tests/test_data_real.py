"""BR35H itself: the committed manifests, and scan/dedup/split on a small real slice."""

from pathlib import Path

import numpy as np
import pytest

from edge_runtime.image_io import load_rgb
from train.data.dedup import find_groups, fingerprint
from train.data.manifest import read_manifest
from train.data.scan import read_checksums
from train.data.splits import Item, SplitConfig, counts, crossing_groups, leakage, split

SPLITS = Path(__file__).resolve().parent.parent / "splits"
TARGETS = {"train": {"no": 1080, "yes": 1080}, "val": {"no": 120, "yes": 120}, "test": {"no": 300, "yes": 300}}


@pytest.mark.parametrize("protocol", ["paper", "grouped"])
def test_committed_manifests_have_paper_proportions(protocol):
    rows = read_manifest(SPLITS / f"br35h-{protocol}.csv")
    assert counts(rows) == TARGETS and len({r.path for r in rows}) == 3000


def test_committed_grouped_manifest_has_no_group_on_two_sides():
    assert crossing_groups(read_manifest(SPLITS / "br35h-grouped.csv")) == []


def test_committed_manifests_agree_on_groups():
    paper = {r.path: (r.group, r.sha256) for r in read_manifest(SPLITS / "br35h-paper.csv")}
    grouped = {r.path: (r.group, r.sha256) for r in read_manifest(SPLITS / "br35h-grouped.csv")}
    assert paper == grouped
    assert leakage(read_manifest(SPLITS / "br35h-paper.csv")) > 300  # BR35H's known leakage


@pytest.mark.real_data
def test_real_slice_scan_dedup_split(br35h_root: Path):
    """40 real images: 8 committed groups of >= 2 plus singletons. Dedup on the slice can only
    find edges that exist in the full set, so its groups must refine the committed ones."""
    rows = read_manifest(SPLITS / "br35h-grouped.csv")
    by_group: dict[int, list] = {}
    for r in rows:
        by_group.setdefault(r.group, []).append(r)
    multi = [g for g in sorted(by_group) if len(by_group[g]) >= 2][::40][:8]
    chosen = [r for g in multi for r in by_group[g][:3]]
    chosen += [by_group[g][0] for g in sorted(by_group) if len(by_group[g]) == 1][: 40 - len(chosen)]
    sums = read_checksums(br35h_root / "SHA256SUMS")
    assert all(sums[r.path] == r.sha256 for r in chosen)

    fps = [fingerprint(load_rgb(br35h_root / r.path)) for r in chosen]
    result = find_groups([r.path for r in chosen], fps, [r.sha256 for r in chosen])
    committed = {r.path: r.group for r in chosen}
    for g in np.unique(result.groups):
        members = [p for p, gg in zip(result.paths, result.groups) if gg == g]
        assert len({committed[p] for p in members}) == 1, members
    # and the slice still finds twins: most of the chosen committed groups reappear joined
    assert result.stats()["images_in_multi_image_groups"] >= 10

    group = dict(zip(result.paths, result.groups.tolist()))
    out = split([Item(r.path, r.sha256, r.label, group[r.path]) for r in chosen], SplitConfig("grouped"))
    assert crossing_groups(out) == [] and len(out) == len(chosen)


@pytest.mark.slow
@pytest.mark.real_data
def test_committed_manifests_match_regeneration(br35h_root: Path):
    """Full dedup of the 3000 labelled images (20 s CPU, ~35 s wall on the shared 2-core box): the committed files are what
    ``python -m train.data split`` writes with the default seed."""
    from train.data.dedup import dedup_folder

    result, dd = dedup_folder(br35h_root)
    assert result.ok, result.summary()
    group = dict(zip(dd.paths, dd.groups.tolist()))
    items = [Item(r.path, r.sha256, r.label, group[r.path]) for r in result.labelled()]
    for protocol in ("paper", "grouped"):
        assert split(items, SplitConfig(protocol)) == read_manifest(SPLITS / f"br35h-{protocol}.csv"), protocol
