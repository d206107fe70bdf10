"""The augmentation-lever comparison: each lever's copy is the training layer's, and the
independent-normal mask finds Nickparvar normals whose group holds no BR35H image."""

import hashlib

import numpy as np

from benchmarks.augment_levers import LEVERS, _independent_normals, augmented
from train.data.manifest import ManifestRow, write_manifest


def test_each_lever_changes_the_crops_reproducibly_and_keeps_their_format():
    x = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None, None], (4, 1, 32, 3))
    for name, fields in LEVERS.items():
        if not fields:
            continue
        a, b = augmented(x, fields, seed=3), augmented(x, fields, seed=3)
        assert a.dtype == np.uint8 and a.shape == x.shape, name
        assert np.array_equal(a, b), name
        assert np.abs(a.astype(int) - x).mean() > 0.1, name


def test_independent_normals_are_nickparvar_normals_in_one_source_groups(tmp_path):
    def row(path, label, group, split, source, cls):
        return ManifestRow(path, hashlib.sha256(path.encode()).hexdigest(), label, group, split, source, cls)

    rows = [row("no/no1.jpg", "no", 0, "train", "br35h", "no"),
            row("Training/notumor/a.jpg", "no", 0, "val", "nickparvar", "notumor"),  # copy of a BR35H slice
            row("Training/notumor/b.jpg", "no", 1, "val", "nickparvar", "notumor"),  # independent
            row("Training/glioma/c.jpg", "yes", 2, "val", "nickparvar", "glioma")]
    man = write_manifest(rows, tmp_path / "m.csv")
    assert _independent_normals(str(man), "val").tolist() == [False, True, False]
