"""Scan: every file hashed and decoded, every problem reported by name, nothing dropped."""

from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import synthetic_mri
from train.data.scan import natural_key, read_checksums, scan


def test_clean_dataset_is_ok(synthetic_dataset: Path):
    result = scan(synthetic_dataset)
    assert result.ok and result.checksums_present, result.summary()
    assert len(result.records) == 24
    rec = next(r for r in result.records if r.path == "yes/y3.jpg")
    assert rec.label == "yes" and (rec.width, rec.height) == (140 + 15, 160 + 21) and rec.mode == "RGB"
    assert [r.path for r in result.records] == sorted((r.path for r in result.records), key=natural_key)


def test_broken_copy_reports_each_problem(synthetic_dataset: Path):
    root = synthetic_dataset
    data = (root / "yes/y0.jpg").read_bytes()
    (root / "yes/y0.jpg").write_bytes(data[: len(data) // 2])  # truncated
    (root / "no/no1.jpg").write_bytes(b"")  # empty
    (root / "no/no2.jpg").write_text("this is not a jpeg")  # text
    (root / "yes/y3.jpg").unlink()  # missing
    Image.fromarray(synthetic_mri(seed=7)).save(root / "yes/extra.jpg")  # extra, but a fine image
    seen = []
    result = scan(root, on_image=lambda rec, rgb: seen.append((rec.path, rgb.shape)))

    assert result.of_kind("missing") == ["yes/y3.jpg"]
    assert result.of_kind("extra") == ["yes/extra.jpg"]
    assert result.of_kind("changed") == ["no/no1.jpg", "no/no2.jpg", "yes/y0.jpg"]
    unreadable = {i.path: i.reason for i in result.issues if i.kind == "unreadable"}
    assert set(unreadable) == {"yes/y0.jpg", "no/no1.jpg", "no/no2.jpg"}
    assert "truncated" in unreadable["yes/y0.jpg"]
    assert "empty" in unreadable["no/no1.jpg"]
    assert "not an image" in unreadable["no/no2.jpg"]
    # 24 - 1 deleted - 3 unreadable + 1 extra: every other image still decoded and visited.
    assert len(result.records) == 21 and len(seen) == 21
    assert "yes/extra.jpg" in {r.path for r in result.records}
    assert not result.ok and "yes/y3.jpg" in result.summary()


def test_without_checksums_nothing_is_missing_or_extra(synthetic_dataset: Path):
    (synthetic_dataset / "SHA256SUMS").unlink()
    (synthetic_dataset / "no/no5.jpg").write_bytes(b"\xff\xd8garbage")
    result = scan(synthetic_dataset)
    assert not result.checksums_present
    assert [(i.path, i.kind) for i in result.issues] == [("no/no5.jpg", "unreadable")]


def test_pred_is_unlabelled_and_optional(synthetic_dataset: Path):
    (synthetic_dataset / "pred").mkdir()
    Image.fromarray(synthetic_mri(seed=1)).save(synthetic_dataset / "pred/pred0.jpg")
    with_pred = scan(synthetic_dataset)
    assert [r.label for r in with_pred.records if r.path.startswith("pred/")] == [None]
    assert with_pred.of_kind("extra") == ["pred/pred0.jpg"]
    assert len(with_pred.labelled()) == 24
    assert scan(synthetic_dataset, include_pred=False).ok


def test_checksum_file_formats(tmp_path: Path):
    h = "a" * 64
    (tmp_path / "S").write_text(f"{h}  yes/a b.jpg\n{h.upper()} *no/x.jpg\n\n")
    assert read_checksums(tmp_path / "S") == {"yes/a b.jpg": h, "no/x.jpg": h}
    (tmp_path / "S").write_text("nonsense\n")
    with pytest.raises(ValueError, match="S:1"):
        read_checksums(tmp_path / "S")
