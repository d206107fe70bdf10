"""Crop cache: shapes and labels, split selection, reuse, invalidation, errors that name files."""

from pathlib import Path

import numpy as np
import pytest

from edge_runtime.config import CropConfig
from train.data import cache as cache_mod
from train.data.cache import CropBuildError, entry_dir, load_crops
from train.data.manifest import write_manifest
from train.data.scan import scan
from train.data.splits import Item, SplitConfig, split

CFG = CropConfig(size=32)


@pytest.fixture
def manifest(synthetic_dataset: Path, tmp_path: Path) -> Path:
    recs = scan(synthetic_dataset).labelled()
    rows = split([Item(r.path, r.sha256, r.label, i) for i, r in enumerate(recs)], SplitConfig("paper"))
    return write_manifest(rows, tmp_path / "m.csv")


def load(manifest, synthetic_dataset, tmp_path, split=None, cfg=CFG):
    return load_crops(manifest, split, data_root=synthetic_dataset, cfg=cfg, cache_root=tmp_path / "cache", progress=False)


def test_crops_labels_and_split_selection(manifest, synthetic_dataset, tmp_path):
    full = load(manifest, synthetic_dataset, tmp_path)
    assert full.x.shape == (24, 32, 32, 3) and full.x.dtype == np.uint8
    assert full.y.dtype == np.int64 and full.y.tolist() == [int(p.startswith("yes/")) for p in full.paths]
    assert full.boxes.shape == (24, 4) and full.boxes.dtype == np.int32 and not full.fallback.any()
    assert (full.boxes[:, 2] > full.boxes[:, 0]).all() and full.x.std() > 10
    test = load(manifest, synthetic_dataset, tmp_path, "test")
    assert len(test) == 4 and set(test.paths) < set(full.paths)
    i = full.paths.index(test.paths[0])
    np.testing.assert_array_equal(test.x[0], full.x[i])


def test_cache_is_reused_and_rebuilt_on_config_change(manifest, synthetic_dataset, tmp_path, monkeypatch):
    load(manifest, synthetic_dataset, tmp_path)
    calls = []
    real = cache_mod._build
    monkeypatch.setattr(cache_mod, "_build", lambda *a: calls.append(1) or real(*a))
    load(manifest, synthetic_dataset, tmp_path, "train")
    assert calls == []
    other = load(manifest, synthetic_dataset, tmp_path, cfg=CropConfig(size=16))
    assert calls == [1] and other.x.shape[1:] == (16, 16, 3)
    assert entry_dir(manifest, CFG, tmp_path / "cache") != entry_dir(manifest, CropConfig(size=16), tmp_path / "cache")


def test_manifest_change_changes_key(manifest, tmp_path):
    before = entry_dir(manifest, CFG, tmp_path / "cache")
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-1]) + "\n")
    assert entry_dir(manifest, CFG, tmp_path / "cache") != before


def test_bad_images_abort_the_build_naming_each_file(manifest, synthetic_dataset, tmp_path):
    (synthetic_dataset / "yes/y2.jpg").write_bytes(b"")
    (synthetic_dataset / "no/no4.jpg").unlink()
    with pytest.raises(CropBuildError) as err:
        load(manifest, synthetic_dataset, tmp_path)
    failed = dict(err.value.failures)
    assert set(failed) == {str(synthetic_dataset / "yes/y2.jpg"), str(synthetic_dataset / "no/no4.jpg")}
    assert "cannot read" in failed[str(synthetic_dataset / "no/no4.jpg")]
    assert "y2.jpg" in str(err.value)
    entry = entry_dir(manifest, CFG, tmp_path / "cache")
    assert not (entry / "meta.npz").exists() and not list(entry.glob("*.tmp*"))


def test_changed_image_is_refused(manifest, synthetic_dataset, tmp_path):
    from PIL import Image

    Image.new("RGB", (50, 50), "white").save(synthetic_dataset / "no/no0.jpg")
    with pytest.raises(CropBuildError, match="no0.jpg.*sha256"):
        load(manifest, synthetic_dataset, tmp_path)


def test_unknown_split_rejected(manifest, synthetic_dataset, tmp_path):
    with pytest.raises(ValueError, match="split"):
        load(manifest, synthetic_dataset, tmp_path, "holdout")
