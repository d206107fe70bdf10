"""Calibration draws only train images, reproducibly, in the requested shape; fast (no TF)."""

from __future__ import annotations

import numpy as np
import pytest

from convert.calibration import CalibrationError, pick_arrays, select_calibration, write_calibration_list
from convert.config import QuantizationConfig
from train.data.manifest import ManifestRow


def rows(n_train=40, n_test=20, groups=10):
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            label = "yes" if i % 4 == 0 else "no"  # imbalanced on purpose: 1 yes per 3 no
            out.append(ManifestRow(f"{label}/{split}{i}.jpg", f"{i:064x}", label, i % groups, split))
    return out


@pytest.mark.parametrize("selection", ["random", "stratified", "groups"])
def test_only_train_rows_and_requested_size(selection):
    chosen = select_calibration(rows(), QuantizationConfig(calibration_size=12, selection=selection))
    assert len(chosen) == 12 and len({r.path for r in chosen}) == 12
    assert all(r.split == "train" for r in chosen)


def test_seed_makes_it_reproducible_and_changes_it():
    a = select_calibration(rows(), QuantizationConfig(calibration_size=10, seed=1))
    assert a == select_calibration(rows(), QuantizationConfig(calibration_size=10, seed=1))
    assert a != select_calibration(rows(), QuantizationConfig(calibration_size=10, seed=2))


def test_stratified_balances_an_imbalanced_split():
    chosen = select_calibration(rows(), QuantizationConfig(calibration_size=16, selection="stratified"))
    assert sum(r.label == "yes" for r in chosen) == 8


def test_groups_covers_every_group_before_repeating_one():
    chosen = select_calibration(rows(groups=10), QuantizationConfig(calibration_size=10, selection="groups"))
    assert len({r.group for r in chosen}) == 10


def test_size_is_capped_by_the_train_split():
    assert len(select_calibration(rows(n_train=5), QuantizationConfig(calibration_size=300))) == 5


def test_no_train_rows_is_an_error_not_a_fallback_to_test():
    with pytest.raises(CalibrationError, match="no train rows"):
        select_calibration(rows(n_train=0), QuantizationConfig())


def test_pick_arrays_by_path_and_missing_path_named(tmp_path):
    chosen = select_calibration(rows(), QuantizationConfig(calibration_size=3))
    paths = [r.path for r in rows() if r.split == "train"]
    x = np.arange(len(paths))[:, None]
    assert [paths[i] for i in pick_arrays(x, paths, chosen)[:, 0]] == [r.path for r in chosen]
    with pytest.raises(CalibrationError, match=chosen[0].path):
        pick_arrays(x[1:], paths[1:] if chosen[0].path == paths[0] else [p for p in paths if p != chosen[0].path],
                    chosen)
    listed = write_calibration_list(chosen, tmp_path / "calibration.txt", QuantizationConfig(calibration_size=3))
    assert [l.split("\t")[0] for l in listed.read_text().splitlines()[1:]] == [r.path for r in chosen]


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        QuantizationConfig(calibration_size=0)
    with pytest.raises(ValueError):
        QuantizationConfig(io_type="float16")
