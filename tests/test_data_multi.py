"""Multi-source grouping and the three protocols: invariants on synthetic groups, on the
committed manifests, and cross-source grouping on a small real slice of both sources."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from edge_runtime.image_io import load_rgb
from train.data import dedup as dedup_mod
from train.data.dedup import (DedupConfig, FingerprintCache, SourceScan, find_groups_multi, fingerprint, ncc_pairs,
                              scan_source)
from train.data.manifest import ManifestRow, read_manifest
from train.data.multi import SourceImage, external, grouped, paper_plus, split_counts
from train.data.scan import ImageRecord, ScanResult
from train.data.sources import NICKPARVAR
from train.data.splits import crossing_groups

SPLITS = Path(__file__).resolve().parent.parent / "splits"
SHA = "0" * 64


def br(i: int, cls: str, group: int) -> SourceImage:
    return SourceImage("br35h", f"{cls}/{'y' if cls == 'yes' else 'no'}{i}.jpg", f"{i:064x}", cls, group)


def nk(part: str, cls: str, i: int, group: int) -> SourceImage:
    return SourceImage("nickparvar", f"{part}/{cls}/{part[:2]}-{cls[:2]}_{i:04d}.jpg", f"{10_000 + i:064x}", cls, group)


# --- protocols on synthetic groups ------------------------------------------------------------

@pytest.fixture
def world():
    """BR35H: 0 train (group 0), 1 val (1), 2 test (2), 3 train (3); Nickparvar around them."""
    images = [br(0, "no", 0), br(1, "no", 1), br(2, "no", 2), br(3, "yes", 3)]
    paper = [im.row(s, group=g) for im, s, g in zip(images, ("train", "val", "test", "train"), (10, 11, 12, 13))]
    images += [
        nk("Training", "notumor", 0, 0),   # twin of a BR35H train image -> train
        nk("Training", "notumor", 1, 1),   # twin of a BR35H val image -> val
        nk("Training", "notumor", 2, 2),   # twin of a BR35H test image -> left out
        nk("Testing", "notumor", 3, 2),    # Testing twin of a BR35H test image only -> test
        nk("Testing", "notumor", 4, 0),    # Testing twin of a BR35H train image -> left out
    ]
    images += [nk("Training", "glioma", 10 + k, 100 + k // 2) for k in range(40)]  # 20 pairs
    images += [nk("Testing", "glioma", 60, 100)]                                    # twin of a Training pair
    images += [nk("Testing", "pituitary", 61, 200), nk("Testing", "pituitary", 62, 200)]  # independent
    return images, paper


def test_external_keeps_only_groups_without_br35h(world):
    images, _ = world
    p = external(images)
    assert {r.split for r in p.rows} == {"test"} and {r.source for r in p.rows} == {"nickparvar"}
    assert {r.group for r in p.rows}.isdisjoint({0, 1, 2, 3})
    assert len(p.rows) == 43 and sum(map(len, p.dropped.values())) == 5


def test_paper_plus_follows_the_rules(world):
    images, paper = world
    p = paper_plus(images, paper, seed=1)
    assert p.rows[:4] == paper  # BR35H rows unchanged, first
    split_of = {r.path: r.split for r in p.rows}
    group_of = {r.path: r.group for r in p.rows}
    assert split_of["Training/notumor/Tr-no_0000.jpg"] == "train" and group_of["Training/notumor/Tr-no_0000.jpg"] == 10
    assert split_of["Training/notumor/Tr-no_0001.jpg"] == "val" and group_of["Training/notumor/Tr-no_0001.jpg"] == 11
    assert "Training/notumor/Tr-no_0002.jpg" not in split_of
    assert split_of["Testing/notumor/Te-no_0003.jpg"] == "test" and group_of["Testing/notumor/Te-no_0003.jpg"] == 12
    assert "Testing/notumor/Te-no_0004.jpg" not in split_of and "Testing/glioma/Te-gl_0060.jpg" not in split_of
    assert split_of["Testing/pituitary/Te-pi_0061.jpg"] == "test"
    # fresh groups get ids above every BR35H id and stay whole
    fresh = {r.group for r in p.rows if r.source == "nickparvar" and r.path.startswith("Training/glioma")}
    assert min(fresh) > 13 and len(fresh) == 20
    glioma = [r for r in p.rows if r.class_name == "glioma"]
    assert crossing_groups(glioma) == [] and sum(r.split == "val" for r in glioma) == 4  # 10 % of 40, whole pairs
    assert sum(map(len, p.dropped.values())) == 3
    assert paper_plus(images, paper, seed=1).rows == p.rows  # deterministic


def test_paper_plus_refuses_a_manifest_that_does_not_match(world):
    images, paper = world
    with pytest.raises(ValueError, match="differ from the paper manifest's sha256"):
        paper_plus(images, [ManifestRow(r.path, SHA, r.label, r.group, r.split) for r in paper])
    with pytest.raises(ValueError, match="fall into several cross-source groups"):
        paper_plus(images, [ManifestRow(r.path, r.sha256, r.label, 7, r.split) for r in paper])


def test_grouped_keeps_groups_whole_and_near_70_10_20():
    rng = np.random.default_rng(0)
    images, g = [], 0
    for i in range(300):
        images.append(br(i, ("yes", "no")[i % 2], g))
        if rng.random() < 0.3:
            images.append(nk("Training", "notumor" if i % 2 else "glioma", i, g))
        g += int(rng.random() < 0.7)
    images += [nk("Testing", "pituitary", 1000 + k, 10_000 + k // 3) for k in range(300)]
    p = grouped(images, seed=3)
    assert crossing_groups(p.rows) == [] and len(p.rows) == len(images)
    total = {s: sum(r.split == s for r in p.rows) / len(images) for s in ("train", "val", "test")}
    assert abs(total["train"] - 0.7) < 0.03 and abs(total["val"] - 0.1) < 0.03 and abs(total["test"] - 0.2) < 0.03
    pit = [r for r in p.rows if r.class_name == "pituitary"]
    assert abs(sum(r.split == "test" for r in pit) / len(pit) - 0.2) < 0.03  # stratified per (label, source)
    assert split_counts(p.rows)["test"]["nickparvar"]["pituitary"] == sum(r.split == "test" for r in pit)


# --- the grouping machinery ---------------------------------------------------------------------

def test_upper_triangle_ncc_matches_brute_force():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(700, 16)).astype(np.float32)
    a[350:] = a[:350] + rng.normal(scale=0.3, size=(350, 16))  # correlated copies across a block edge
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    full = a @ a.T >= 0.9
    i, j = np.nonzero(np.triu(full, k=1))
    got = ncc_pairs(a, a, 0.9, block=128)
    assert len(i) > 300 and sorted(map(tuple, got.tolist())) == sorted(zip(i.tolist(), j.tolist()))


def _scan_of(source: str, root: Path, rels: list[str], cfg=DedupConfig()) -> SourceScan:
    import hashlib

    from train.data.sources import get_source

    recs, fps = [], {}
    for rel in rels:
        rgb = load_rgb(root / rel)
        label = get_source(source).label_of(get_source(source).class_of(rel))
        recs.append(ImageRecord(rel, label, hashlib.sha256((root / rel).read_bytes()).hexdigest(), rgb.shape[1], rgb.shape[0], "RGB"))
        fps[rel] = fingerprint(rgb, cfg)
    return SourceScan(source, root, ScanResult(root, recs), fps)


def _textured(size: tuple[int, int], seed: int) -> np.ndarray:
    """A seed-specific coarse pattern over the whole image: unrelated seeds do not correlate
    (synthetic ellipses all would, their outline dominates a 64x64 thumbnail)."""
    h, w = size
    small = (np.random.default_rng(seed).random((8, 8)) * 255).astype(np.uint8)
    gray = np.asarray(PILImage.fromarray(small).resize((w, h), PILImage.BICUBIC))
    return np.repeat(gray[:, :, None], 3, axis=2)


def test_cross_source_groups_find_a_squashed_copy(tmp_path):
    """A BR35H image resized to 224x224 (aspect changed, as Nickparvar's copies were) joins its
    original's group; ids are unique across sources and keys name the source."""
    broot, nroot = tmp_path / "br", tmp_path / "nick"
    for d in (broot / "no", broot / "yes", nroot / "Training" / "notumor", nroot / "Training" / "glioma"):
        d.mkdir(parents=True)
    for name, seed, size in (("no/no3.jpg", 1, (300, 240)), ("no/no5.jpg", 2, (256, 256)), ("yes/y1.jpg", 3, (210, 280))):
        PILImage.fromarray(_textured(size, seed)).save(broot / name, quality=92)
    PILImage.open(broot / "no" / "no3.jpg").resize((224, 224)).save(nroot / "Training/notumor/Tr-no_0000.jpg", quality=90)
    PILImage.fromarray(_textured((224, 224), 4)).save(nroot / "Training/glioma/Tr-gl_0000.jpg", quality=92)
    b = _scan_of("br35h", broot, ["no/no3.jpg", "no/no5.jpg", "yes/y1.jpg"])
    n = _scan_of("nickparvar", nroot, ["Training/notumor/Tr-no_0000.jpg", "Training/glioma/Tr-gl_0000.jpg"])
    dd = find_groups_multi([b, n])
    group = dict(zip(dd.paths, dd.groups.tolist()))
    assert dd.paths[:3] == ["br35h:no/no3.jpg", "br35h:no/no5.jpg", "br35h:yes/y1.jpg"]  # sources in the given order
    assert group["nickparvar:Training/notumor/Tr-no_0000.jpg"] == group["br35h:no/no3.jpg"] == 0
    assert sorted(set(group.values())) == [0, 1, 2, 3]


def test_scan_source_reuses_cached_fingerprints(synthetic_dataset, tmp_path, monkeypatch):
    calls = []
    real = dedup_mod.fingerprint
    monkeypatch.setattr(dedup_mod, "fingerprint", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = scan_source("br35h", synthetic_dataset, cache_root=tmp_path)
    assert len(calls) == 24 and first.scan.ok
    second = scan_source("br35h", synthetic_dataset, cache_root=tmp_path)
    assert len(calls) == 24  # nothing recomputed
    for p, fp in first.fingerprints.items():
        np.testing.assert_array_equal(second.fingerprints[p].thumbs, fp.thumbs)
        np.testing.assert_array_equal(second.fingerprints[p].hashes, fp.hashes)
    assert FingerprintCache(DedupConfig(), dedup_mod.CropConfig(), tmp_path).dir != \
        FingerprintCache(DedupConfig(min_ncc=0.9), dedup_mod.CropConfig(), tmp_path).dir


# --- the committed manifests (no image data needed) ---------------------------------------------

def test_committed_multi_paper_keeps_br35h_paper_rows_and_has_no_test_twin_in_training():
    rows = read_manifest(SPLITS / "multi-paper.csv")
    paper = read_manifest(SPLITS / "br35h-paper.csv")
    assert [r for r in rows if r.source == "br35h"] == paper
    br_test = {r.group for r in paper if r.split == "test"}
    nick = [r for r in rows if r.source == "nickparvar"]
    assert nick and not [r for r in nick if r.split != "test" and r.group in br_test]
    assert all(r.path.startswith("Training/") for r in nick if r.split in ("train", "val"))
    assert all(r.path.startswith("Testing/") for r in nick if r.split == "test")
    trainval = {r.group for r in rows if r.split in ("train", "val")}
    assert not [r for r in nick if r.split == "test" and r.group in trainval]


def test_committed_multi_grouped_and_external_are_disjoint_by_group():
    g = read_manifest(SPLITS / "multi-grouped.csv")
    assert crossing_groups(g) == [] and len(g) == 10_019 and len({(r.source, r.path) for r in g}) == 10_019
    assert {r.source for r in g} == {"br35h", "nickparvar"}
    ext = read_manifest(SPLITS / "nickparvar-external.csv")
    assert {r.split for r in ext} == {"test"} and {r.source for r in ext} == {"nickparvar"}
    br_groups = {r.group for r in g if r.source == "br35h"}  # same cross-source ids in both files
    group_of = {(r.source, r.path): r.group for r in g}
    assert all(group_of[("nickparvar", r.path)] == r.group for r in ext)
    assert not {r.group for r in ext} & br_groups


# --- a small real slice of both sources ---------------------------------------------------------

@pytest.mark.real_data
def test_real_slice_cross_source_groups(br35h_root, nickparvar_root):
    """Four committed groups that span both sources (a few BR35H normals and their Nickparvar
    copies) plus independent images of each source: the slice's groups refine the committed
    ones, and the BR35H-Nickparvar links reappear."""
    rows = read_manifest(SPLITS / "multi-grouped.csv")
    by_group: dict[int, list[ManifestRow]] = {}
    for r in rows:
        by_group.setdefault(r.group, []).append(r)
    spanning = [g for g in sorted(by_group) if {r.source for r in by_group[g]} == {"br35h", "nickparvar"}
                and len(by_group[g]) <= 4][:4]
    assert len(spanning) == 4
    singles = [by_group[g][0] for g in sorted(by_group) if len(by_group[g]) == 1][::200][:6]
    chosen = [r for g in spanning for r in by_group[g]] + singles
    scans = [_scan_of(s, root, [r.path for r in chosen if r.source == s]) for s, root in
             (("br35h", br35h_root), ("nickparvar", nickparvar_root))]
    for s in scans:  # the files are the manifest's
        assert all(rec.sha256 == next(r.sha256 for r in chosen if (r.source, r.path) == (s.source, rec.path))
                   for rec in s.scan.records)
    dd = find_groups_multi(scans)
    committed = {f"{r.source}:{r.path}": r.group for r in chosen}
    mine = dict(zip(dd.paths, dd.groups.tolist()))
    for g in set(mine.values()):
        assert len({committed[k] for k, v in mine.items() if v == g}) == 1
    joined = {g for g in set(mine.values()) if {k.split(":")[0] for k, v in mine.items() if v == g} == {"br35h", "nickparvar"}}
    assert len(joined) >= 3  # small groups: nearly always a direct BR35H-Nickparvar pair
    assert NICKPARVAR.label_of(NICKPARVAR.class_of(next(r.path for r in chosen if r.source == "nickparvar"))) == "no"


def test_cross_source_groups_are_cached_by_content(tmp_path, monkeypatch):
    broot, nroot = tmp_path / "br", tmp_path / "nick"
    for d in (broot / "no", nroot / "Testing" / "notumor"):
        d.mkdir(parents=True)
    for i in range(3):
        PILImage.fromarray(_textured((240, 200), 20 + i)).save(broot / "no" / f"no{i}.jpg", quality=92)
    PILImage.open(broot / "no" / "no1.jpg").resize((224, 224)).save(nroot / "Testing/notumor/Te-no_0000.jpg", quality=90)
    scans = [_scan_of("br35h", broot, [f"no/no{i}.jpg" for i in range(3)]),
             _scan_of("nickparvar", nroot, ["Testing/notumor/Te-no_0000.jpg"])]
    cache = FingerprintCache(DedupConfig(), dedup_mod.CropConfig(), tmp_path / "c")
    first = find_groups_multi(scans, cache=cache)
    monkeypatch.setattr(dedup_mod, "find_groups", lambda *a, **k: pytest.fail("groups recomputed"))
    again = find_groups_multi(scans, cache=cache)
    assert again.paths == first.paths and again.groups.tolist() == first.groups.tolist() == [0, 1, 2, 1]
    assert again.pairs == first.pairs and again.exact_pairs == first.exact_pairs
    # other bytes under the same names: another key, so computed afresh
    changed = [scans[0], SourceScan("nickparvar", nroot, ScanResult(nroot, [ImageRecord(
        "Testing/notumor/Te-no_0000.jpg", "no", "f" * 64, 224, 224, "RGB")]), scans[1].fingerprints)]
    with pytest.raises(pytest.fail.Exception, match="groups recomputed"):
        find_groups_multi(changed, cache=cache)
