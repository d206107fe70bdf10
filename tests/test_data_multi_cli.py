"""The multi-source CLIs end to end on two tiny synthetic sources (seconds): split manifests
for the three protocols, then the report, which must agree with them."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train.data.__main__ import main
from train.data.manifest import read_manifest
from train.data.splits import crossing_groups


def _textured(size, seed):
    small = (np.random.default_rng(seed).random((8, 8)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size[1], size[0]), Image.BICUBIC).convert("RGB"))


def _sums(root: Path) -> None:
    files = sorted(p for p in root.rglob("*.jpg"))
    (root / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}\n"
                                             for p in files))


@pytest.fixture
def two_sources(tmp_path):
    """BR35H: 10 yes + 10 no distinct images. Nickparvar: squashed 224x224 copies of no0..no5
    (Training) and no6, no7 (Testing), plus 8 distinct images per tumour class / notumor."""
    br, nk = tmp_path / "br35h", tmp_path / "nickparvar"
    for label, prefix in (("yes", "y"), ("no", "no")):
        (br / label).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(_textured((200 + 3 * i, 180), 1000 * (label == "yes") + i)).save(br / label / f"{prefix}{i}.jpg", quality=92)
    for part in ("Training", "Testing"):
        for c in ("glioma", "meningioma", "pituitary", "notumor"):
            (nk / part / c).mkdir(parents=True)
    for i in range(8):
        part = "Training" if i < 6 else "Testing"
        Image.open(br / "no" / f"no{i}.jpg").resize((224, 224)).save(nk / part / "notumor" / f"{part[:2]}-no_{i:04d}.jpg", quality=90)
    for k, c in enumerate(("glioma", "meningioma", "pituitary", "notumor")):
        for i in range(8):
            part = "Training" if i < 6 else "Testing"
            Image.fromarray(_textured((224, 224), 5000 + 100 * k + i)).save(nk / part / c / f"{part[:2]}-{c[:2]}_{100 + i:04d}.jpg", quality=92)
    _sums(br)
    _sums(nk)
    return br, nk


def test_multi_split_and_report_cli(two_sources, tmp_path, monkeypatch, capsys):
    br, nk = two_sources
    monkeypatch.setenv("BR35H_CACHE", str(tmp_path / "cache"))
    paper = tmp_path / "splits" / "br35h-paper.csv"
    assert main(["split", "--data", str(br), "--protocol", "paper", "--out", str(paper)]) == 0
    args = ["--data", str(br), "--nickparvar", str(nk), "--paper-manifest", str(paper)]
    assert main(["multi-split", *args, "--out-dir", str(tmp_path / "splits")]) == 0
    ext = read_manifest(tmp_path / "splits" / "nickparvar-external.csv")
    assert len(ext) == 32 and not any("notumor/Tr-no_000" in r.path or "notumor/Te-no_000" in r.path for r in ext)
    multi = read_manifest(tmp_path / "splits" / "multi-paper.csv")
    assert [r for r in multi if r.source == "br35h"] == read_manifest(paper)
    br_split = {r.path: r.split for r in multi if r.source == "br35h"}
    for r in multi:  # a copy of a BR35H image never sits in train/val when its original is in test
        if r.source == "nickparvar" and "/notumor/" in r.path and "_000" in r.path:
            original = f"no/no{int(r.path[-5])}.jpg"
            assert not (br_split[original] == "test" and r.split != "test"), r
    grouped = read_manifest(tmp_path / "splits" / "multi-grouped.csv")
    assert crossing_groups(grouped) == [] and len(grouped) == 20 + 40

    out = tmp_path / "report"
    assert main(["multi-report", *args, "--out", str(out), "--splits-dir", str(tmp_path / "splits")]) == 0
    rep = json.loads((out / "multi_source.json").read_text())
    ov = rep["overlap"]
    assert ov["twins_of_br35h_grouped"]["total"] == {"notumor": 8}
    assert ov["twins_of_br35h_direct_our_rule"]["total"] == {"notumor": 8}
    assert ov["independent_of_br35h_grouped"]["total"] == {c: 8 for c in ("glioma", "meningioma", "notumor", "pituitary")}
    assert all(p["matches_committed_manifest"] for p in rep["protocols"].values())
    assert rep["protocols"]["paper"]["nickparvar_trainval_sharing_a_group_with_br35h_test"] == 0
    assert rep["sources"]["nickparvar"]["integrity_ok"] and rep["sources"]["br35h"]["images"] == 20 and rep["machine"]
    assert (out / "multi_source_pairs.png").stat().st_size > 1000
    md = (out / "multi_source.md").read_text()
    assert "| **in a group with a BR35H image** (what the protocols use) | 0 | 0 | 0 | 8 | 8 |" in md
