"""Data report and CLI on the synthetic dataset: numbers from the data, files a person can open."""

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import synthetic_mri
from tests.test_data_dedup import textured_mri
from train.data.__main__ import main
from train.data.manifest import read_manifest


@pytest.fixture
def distinct_dataset(synthetic_dataset: Path) -> Path:
    """The synthetic dataset with mutually distinct images (its plain ellipses are all
    near-duplicates of each other at 64x64, which is correct but useless here)."""
    lines = []
    for i, p in enumerate(sorted(synthetic_dataset.glob("*/*.jpg"))):
        Image.fromarray(textured_mri(1000 + i, (150 + 3 * i, 140 + 2 * i))).save(p, quality=92)
        lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.parent.name}/{p.name}")
    (synthetic_dataset / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return synthetic_dataset


def test_report_files_and_numbers(distinct_dataset: Path, tmp_path: Path, capsys):
    synthetic_dataset = distinct_dataset
    # A mirrored copy of y0 under a new name: a duplicate group, and an "extra" file.
    Image.open(synthetic_dataset / "yes/y0.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(synthetic_dataset / "yes/y99.jpg")
    out = tmp_path / "report"
    assert main(["report", "--data", str(synthetic_dataset), "--out", str(out)]) == 1  # integrity: extra file
    r = json.loads((out / "data_report.json").read_text())
    assert r["class_counts"] == {"yes": 13, "no": 12, "pred": 0}
    assert r["integrity"]["issues"]["extra"] == ["yes/y99.jpg"] and not r["integrity"]["ok"]
    assert r["image_sizes"]["distinct_sizes"] == 24 and r["colour_modes"] == {"RGB": 25}
    dup = r["duplicates"]["default_rule"]
    assert (dup["images"], dup["groups"], dup["images_in_multi_image_groups"], dup["groups_mixing_labels"]) == (25, 24, 2, 0)
    assert r["duplicates"]["readme_rule"]["groups"] == 25  # the README rule does not see mirrored copies
    paper = r["splits"]["paper"]
    assert sum(sum(v.values()) for v in paper["counts"].values()) == 25
    assert r["splits"]["grouped"]["groups_on_two_sides"] == 0
    assert "AMD" in r["machine"] or "cores" in r["machine"]
    md = (out / "data_report.md").read_text()
    assert "yes/y99.jpg" in md and "| grouped |" in md and md in capsys.readouterr().out
    for png in ("duplicate_groups.png", "crop_stages.png"):
        assert 1000 < (out / png).stat().st_size < 1_000_000
    montage, stages = Image.open(out / "duplicate_groups.png"), Image.open(out / "crop_stages.png")
    assert montage.width == 2 * stages.width // 5  # one row with the 2 twins; 5 crop stages per row
    assert stages.height > 3 * montage.height  # 4 example images, one row each


def test_cli_split_and_crops(distinct_dataset: Path, tmp_path: Path, monkeypatch):
    synthetic_dataset = distinct_dataset
    monkeypatch.setenv("BR35H_CACHE", str(tmp_path / "cache"))
    m = tmp_path / "g.csv"
    assert main(["split", "--data", str(synthetic_dataset), "--protocol", "grouped", "--seed", "3", "--out", str(m)]) == 0
    rows = read_manifest(m)
    assert len(rows) == 24 and sum(r.split == "test" for r in rows) == 4
    assert main(["crops", "--data", str(synthetic_dataset), "--manifest", str(m), "--split", "val"]) == 0
    assert len(list((tmp_path / "cache" / "crops").glob("*/x.npy"))) == 1


def test_cli_split_refuses_broken_dataset(synthetic_dataset: Path, tmp_path: Path):
    (synthetic_dataset / "no/no0.jpg").write_bytes(b"")
    Image.fromarray(synthetic_mri(seed=5)).save(synthetic_dataset / "no/no0b.jpg")
    with pytest.raises(SystemExit, match="refusing"):
        main(["split", "--data", str(synthetic_dataset), "--out", str(tmp_path / "x.csv"), "--protocol", "paper"])
    assert not (tmp_path / "x.csv").exists()
