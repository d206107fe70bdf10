"""Several sources: the registry, manifests with source/class columns (old ones unchanged), and
crops resolved through each row's own source root. Synthetic data only: seconds."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime.config import CropConfig
from tests.conftest import synthetic_mri
from train.data.cache import load_crops
from train.data.manifest import HEADER, HEADER_MULTI, ManifestError, ManifestRow, manifest_digest, read_manifest, write_manifest
from train.data.scan import scan
from train.data.sources import BR35H, NICKPARVAR, RootResolver, get_source, source_roots
from train.paths import DataNotFoundError

REPO = Path(__file__).resolve().parent.parent
CFG = CropConfig(size=32)


@pytest.fixture
def synthetic_nickparvar(tmp_path: Path) -> Path:
    """Nickparvar-shaped: Training|Testing/<class>/, 2 images per folder, 224x224, SHA256SUMS."""
    root = tmp_path / "nickparvar"
    lines = []
    for part in ("Training", "Testing"):
        for k, cls in enumerate(("glioma", "meningioma", "pituitary", "notumor")):
            (root / part / cls).mkdir(parents=True)
            for i in range(2):
                arr = synthetic_mri((224, 224), seed=500 + 10 * k + i + (100 if part == "Testing" else 0),
                                    tumour=cls != "notumor")
                path = root / part / cls / f"{part[:2]}-{cls[:2]}_{i:04d}.jpg"
                Image.fromarray(arr).save(path, quality=92)
                lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {part}/{cls}/{path.name}")
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return root


def test_committed_manifest_reads_as_br35h_and_keeps_its_digest_and_bytes(tmp_path):
    committed = REPO / "splits" / "br35h-paper.csv"
    rows = read_manifest(committed)
    assert {r.source for r in rows} == {"br35h"} and all(r.class_name == r.label for r in rows)
    # the digest formula every crop cache and committed report was keyed by, recomputed here
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.path}\0{r.sha256}\0{r.label}\0{r.split}\n".encode())
    assert manifest_digest(rows) == h.hexdigest()
    out = write_manifest(rows, tmp_path / "again.csv")
    assert out.read_bytes() == committed.read_bytes()


def test_multi_source_manifest_round_trip_and_digest(tmp_path):
    rows = [
        ManifestRow("yes/y0.jpg", "a" * 64, "yes", 0, "train"),
        ManifestRow("Training/glioma/Tr-gl_0000.jpg", "b" * 64, "yes", 7, "val", "nickparvar", "glioma"),
        ManifestRow("Testing/notumor/Te-no_0000.jpg", "c" * 64, "no", 8, "test", "nickparvar", "notumor"),
    ]
    path = write_manifest(rows, tmp_path / "m.csv")
    assert path.read_text().splitlines()[0] == ",".join(HEADER_MULTI)
    back = read_manifest(path)
    assert back == rows and back[0].source == "br35h" and back[1].class_name == "glioma"
    assert manifest_digest(back) == manifest_digest(rows)
    # source and class are part of the content: the same path from another source is another image
    moved = [rows[0], ManifestRow(*[getattr(rows[1], f) for f in ("path", "sha256", "label", "group", "split")],
                                  "nickparvar", "meningioma"), rows[2]]
    assert manifest_digest(moved) != manifest_digest(rows)
    # a BR35H-only list is written in the old 5-column form
    assert write_manifest(rows[:1], tmp_path / "old.csv").read_text().splitlines()[0] == ",".join(HEADER)


@pytest.mark.parametrize("line, match", [
    ("x.jpg,%s,yes,0,train,kaggle,glioma" % ("a" * 64), "source must be one of"),
    ("x.jpg,%s,no,0,train,nickparvar,glioma" % ("a" * 64), "does not map to label 'no'"),
    ("x.jpg,%s,yes,0,train,nickparvar" % ("a" * 64), "expected 7 fields, got 6"),
])
def test_bad_multi_manifest_names_file_and_line(tmp_path, line, match):
    path = tmp_path / "bad.csv"
    path.write_text(",".join(HEADER_MULTI) + "\n" + line + "\n")
    with pytest.raises(ManifestError, match=match) as exc:
        read_manifest(path)
    assert f"{path}:2" in str(exc.value)


def test_registry_maps_classes_to_labels():
    assert [NICKPARVAR.label_of(c) for c in ("glioma", "meningioma", "pituitary", "notumor")] == ["yes"] * 3 + ["no"]
    assert NICKPARVAR.class_of("Testing/pituitary/x.jpg") == "pituitary" and NICKPARVAR.part_of("Testing/pituitary/x.jpg") == "Testing"
    assert BR35H.class_of("no/no3.jpg") == "no" and BR35H.part_of("no/no3.jpg") == ""
    with pytest.raises(ValueError, match="not in a labelled folder"):
        NICKPARVAR.class_of("Validation/glioma/x.jpg")
    with pytest.raises(ValueError, match="unknown source 'kaggle'"):
        get_source("kaggle")
    assert source_roots("/x") == {"br35h": "/x"}


def test_missing_root_names_source_folder_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("NICKPARVAR_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as exc:
        NICKPARVAR.root()
    msg = str(exc.value)
    assert "'nickparvar'" in msg and str(tmp_path / "nowhere") in msg and "$NICKPARVAR_DATA" in msg
    assert "Training/glioma" in msg
    # explicit beats the environment variable
    (tmp_path / "br" / "yes").mkdir(parents=True)
    (tmp_path / "br" / "no").mkdir()
    monkeypatch.setenv("BR35H_DATA", str(tmp_path / "elsewhere"))
    assert BR35H.root(tmp_path / "br") == (tmp_path / "br").resolve()


def test_scan_of_nickparvar_layout_checks_its_sums(synthetic_nickparvar):
    result = scan(synthetic_nickparvar, folders=NICKPARVAR.scan_folders())
    assert result.ok, result.summary()
    assert len(result.records) == 16
    labels = {r.path: r.label for r in result.records}
    assert labels["Training/notumor/Tr-no_0000.jpg"] == "no" and labels["Testing/glioma/Te-gl_0001.jpg"] == "yes"
    victim = synthetic_nickparvar / "Testing" / "meningioma" / "Te-me_0001.jpg"
    victim.write_bytes(victim.read_bytes()[:-200] + b"\0" * 200)
    bad = scan(synthetic_nickparvar, folders=NICKPARVAR.scan_folders())
    assert bad.of_kind("changed") == ["Testing/meningioma/Te-me_0001.jpg"]


def _multi_manifest(br35h: Path, nick: Path, out: Path) -> Path:
    rows = []
    for i, r in enumerate(scan(br35h).labelled()[::4]):
        rows.append(ManifestRow(r.path, r.sha256, r.label, i, ("train", "val", "test")[i % 3]))
    for i, r in enumerate(scan(nick, folders=NICKPARVAR.scan_folders()).labelled()):
        cls = NICKPARVAR.class_of(r.path)
        rows.append(ManifestRow(r.path, r.sha256, r.label, 100 + i, ("train", "val", "test")[i % 3], "nickparvar", cls))
    return write_manifest(rows, out)


def test_crops_resolve_each_row_through_its_source(synthetic_dataset, synthetic_nickparvar, tmp_path, monkeypatch):
    manifest = _multi_manifest(synthetic_dataset, synthetic_nickparvar, tmp_path / "multi.csv")
    monkeypatch.setenv("NICKPARVAR_DATA", str(synthetic_nickparvar))
    crops = load_crops(manifest, None, data_root=synthetic_dataset, cfg=CFG, cache_root=tmp_path / "c", progress=False)
    rows = read_manifest(manifest)
    assert crops.paths == [r.path for r in rows] and crops.sources == [r.source for r in rows]
    assert crops.classes == [r.class_name for r in rows] and crops.y.tolist() == [r.y for r in rows]
    assert {"br35h", "nickparvar"} == set(crops.sources) and crops.x.std() > 10
    # a mapping names each root; the same bytes give the same crops
    again = load_crops(manifest, "test", data_root={"br35h": synthetic_dataset, "nickparvar": synthetic_nickparvar},
                       cfg=CFG, cache_root=tmp_path / "c2", progress=False)
    idx = [crops.paths.index(p) for p in again.paths]
    np.testing.assert_array_equal(again.x, crops.x[idx])


def test_crops_fail_naming_the_missing_source(synthetic_dataset, synthetic_nickparvar, tmp_path, monkeypatch):
    manifest = _multi_manifest(synthetic_dataset, synthetic_nickparvar, tmp_path / "multi.csv")
    monkeypatch.setenv("NICKPARVAR_DATA", str(tmp_path / "gone"))
    with pytest.raises(DataNotFoundError, match="source 'nickparvar' not found"):
        load_crops(manifest, "train", data_root=synthetic_dataset, cfg=CFG, cache_root=tmp_path / "c", progress=False)
    assert not list((tmp_path / "c").glob("crops/*/meta.npz"))  # nothing half-built left as complete


def test_resolver_only_needs_sources_in_use(synthetic_dataset, monkeypatch, tmp_path):
    monkeypatch.setenv("NICKPARVAR_DATA", str(tmp_path / "gone"))
    resolve = RootResolver(synthetic_dataset)
    assert resolve("br35h") == synthetic_dataset.resolve()
    with pytest.raises(DataNotFoundError):
        resolve("nickparvar")
