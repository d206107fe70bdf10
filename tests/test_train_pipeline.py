"""``train.pipeline.run`` raises; ``python -m train`` turns a missing dataset into exit code 2."""

import pytest

from train.data.manifest import ManifestRow, write_manifest
from train.paths import DataNotFoundError
from train.presets import get_preset


def _manifest(tmp_path):
    # sha256 values no real image has, so the crop cache never holds this manifest and the
    # data folder must be looked up.
    rows = [ManifestRow(f"{lab}/pipeline{i}.jpg", f"{i:064x}", lab, i, split)
            for i, (lab, split) in enumerate([("yes", "train"), ("no", "train"), ("yes", "val"), ("no", "test")])]
    return write_manifest(rows, tmp_path / "m.csv")


def test_run_raises_when_the_data_folder_is_missing(tmp_path):
    from train.pipeline import run

    with pytest.raises(DataNotFoundError, match="nowhere"):
        run(get_preset("smoke"), _manifest(tmp_path), tmp_path / "run", data_root=tmp_path / "nowhere")
    assert not (tmp_path / "run").exists()


def test_cli_exits_2_naming_where_it_looked(tmp_path, capsys):
    from train.__main__ import main

    code = main(["--manifest", str(_manifest(tmp_path)), "--run", str(tmp_path / "run"), "--preset", "smoke",
                 "--data", str(tmp_path / "nowhere")])
    assert code == 2
    err = capsys.readouterr().err
    assert "not found" in err and "kaggle" in err and str(tmp_path / "nowhere") in err
