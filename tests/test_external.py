"""``python -m convert.external``: twin exclusion on a real BR35H slice, the report, the runners."""

import csv
import hashlib
import json
from pathlib import Path
import shutil

import numpy as np
import pytest
from PIL import Image

from convert import twins
from convert.external import items_from_manifest, main, open_predictor
from edge_runtime.image_io import load_rgb
from train.data.dedup import DedupConfig, fingerprint

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "assets" / "tiny_int8.tflite"
REFERENCE_ROWS = [("yes/y0.jpg", "yes"), ("yes/y1.jpg", "yes"), ("no/no0.jpg", "no"), ("no/no1.jpg", "no")]
OTHERS = {"glioma/y700.jpg": "yes/y700.jpg", "notumor/no700.jpg": "no/no700.jpg", "notumor/no900.jpg": "no/no900.jpg"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def slice_(br35h_root, tmp_path, monkeypatch):
    """A 4-row reference manifest of BR35H images and an external tree holding a resized,
    mirrored, re-encoded copy of one of them plus three BR35H images the manifest lacks."""
    monkeypatch.setenv("BR35H_CACHE", str(tmp_path / "cache"))
    manifest = tmp_path / "ref.csv"
    lines = ["path,sha256,label,group,split"]
    lines += [f"{p},{sha(br35h_root / p)},{lab},{i},train" for i, (p, lab) in enumerate(REFERENCE_ROWS)]
    manifest.write_text("\n".join(lines) + "\n")
    ext = tmp_path / "external"
    for rel, src in OTHERS.items():
        (ext / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(br35h_root / src, ext / rel)
    img = Image.open(br35h_root / "yes" / "y0.jpg").convert("RGB")
    img = img.resize((int(img.width * 0.6), int(img.height * 0.6)), Image.Resampling.BILINEAR)
    img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(ext / "glioma" / "copy_of_y0.jpg", quality=70)
    return br35h_root, manifest, ext


def test_resized_mirrored_copy_is_a_twin_and_the_others_are_not(slice_):
    root, manifest, ext = slice_
    ref = twins.reference_fingerprints(manifest, root)
    again = twins.reference_fingerprints(manifest, root)  # from the cache this time
    assert np.array_equal(np.stack([f.thumbs for f in ref.fps]), np.stack([f.thumbs for f in again.fps]))
    queries = sorted(ext.rglob("*.jpg"))
    fps = [fingerprint(load_rgb(p)) for p in queries]
    got = {p.name: m for p, m in zip(queries, twins.match(fps, [sha(p) for p in queries], ref))}
    assert got["copy_of_y0.jpg"].twin and got["copy_of_y0.jpg"].of == "ref.csv:yes/y0.jpg"
    assert got["copy_of_y0.jpg"].ncc >= DedupConfig().min_ncc
    assert [n for n, m in got.items() if m.twin] == ["copy_of_y0.jpg"]
    # a byte-identical copy is a twin whatever its pixels correlate to
    exact = twins.match(fps[:1], [ref.sha256[2]], ref)[0]
    assert exact.twin and exact.view == "sha256" and exact.of == "ref.csv:no/no0.jpg"


def test_cli_excludes_counts_and_reports(slice_, tmp_path, capsys):
    root, manifest, ext = slice_
    (ext / "notumor" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    rc = main(["--model", str(TINY), "--data", str(ext), "--exclude-twins-of", str(manifest),
               "--exclude-root", str(root), "--out", str(out), "--threads", "1"])
    stdout, _ = capsys.readouterr()
    assert rc == 1  # one file failed; everything else was still scored and written
    r = json.loads((out / "report.json").read_text())
    assert r["per_class"] == {
        "glioma": {"label": "yes", "found": 2, "failed": 0, "twins_excluded": 1, "evaluated": 1},
        "notumor": {"label": "no", "found": 3, "failed": 1, "twins_excluded": 0, "evaluated": 2},
    }
    assert r["failures"][0]["path"] == "notumor/broken.jpg"
    assert r["artifact"]["sha256"] == sha(TINY) and r["artifact"]["runtime"] == "ai-edge-litert"
    assert r["metrics"]["n"] == 3 and r["metrics_excluded_twins"]["n"] == 1
    border = [row for row in csv.DictReader((out / "predictions.csv").open())
              if row["twin"] == "0" and row["twin_ncc"] and float(row["twin_ncc"]) >= r["borderline"]["ncc_from"]]
    assert sum(r["borderline"]["per_class"].values()) == len(border)
    assert r["machine"]["cpu"] and isinstance(r["machine"]["vector_features"], list)
    rows = {row["path"]: row for row in csv.DictReader((out / "predictions.csv").open())}
    assert rows["glioma/copy_of_y0.jpg"]["twin"] == "1" and rows["notumor/broken.jpg"]["error"]
    # the desktop path (OpenCV crop, convert runner) gives the device's scores on the same files
    from edge_runtime import Classifier

    clf = Classifier(TINY, num_threads=1)
    for rel in ("glioma/y700.jpg", "notumor/no700.jpg", "notumor/no900.jpg"):
        assert float(rows[rel]["p_tumour"]) == pytest.approx(clf.classify(ext / rel).score, abs=1e-5)
    md = (out / "report.md").read_text()
    assert md in stdout + "\n" and "| glioma | yes | 2 | 0 | 1 | 1 |" in md and sha(TINY) in md


def test_manifest_mode_and_its_errors(slice_, tmp_path, capsys):
    root, manifest, _ = slice_
    items, shas = items_from_manifest(manifest, root)
    assert [(i.label, i.original_class) for i in items] == [("yes", "yes")] * 2 + [("no", "no")] * 2
    assert shas[items[0].path] == sha(root / "yes" / "y0.jpg")
    out = tmp_path / "m"
    assert main(["--model", str(TINY), "--manifest", str(manifest), "--data", str(root), "--split", "train",
                 "--out", str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["metrics"]["n"] == 4 and r["exclude_twins_of"] == [] and r["data"]["split"] == "train"
    assert main(["--model", str(TINY), "--manifest", str(manifest), "--data", str(root), "--split", "test",
                 "--out", str(out)]) == 2
    assert "no rows in split 'test'" in capsys.readouterr().err
    # a row whose file changed is a failure naming it, the other rows are still scored
    bad = tmp_path / "bad.csv"
    bad.write_text(manifest.read_text().replace(sha(root / "no" / "no1.jpg"), "0" * 64))
    assert main(["--model", str(TINY), "--manifest", str(bad), "--data", str(root), "--out", str(out)]) == 1
    r = json.loads((out / "report.json").read_text())
    assert r["failures"][0]["path"] == "no/no1.jpg" and "differs from the manifest" in r["failures"][0]["reason"]
    assert r["metrics"]["n"] == 3
    with pytest.raises(ValueError, match="unknown artifact type"):
        open_predictor(manifest)


def test_shipped_onnx_and_fp16_agree_on_a_real_slice(slice_, tmp_path):
    root, _, ext = slice_
    scores = {}
    for name in ("br35h-mobilenetv2.onnx", "br35h-mobilenetv2-fp16.tflite"):
        out = tmp_path / name
        assert main(["--model", str(REPO / "models" / name), "--data", str(ext), "--out", str(out), "--threads", "1"]) == 0
        r = json.loads((out / "report.json").read_text())
        assert r["artifact"]["runtime"] == ("onnxruntime" if name.endswith(".onnx") else "ai-edge-litert")
        scores[name] = {row["path"]: float(row["p_tumour"]) for row in csv.DictReader((out / "predictions.csv").open())}
    a, b = scores.values()
    assert a.keys() == b.keys() and len(a) == 4
    assert max(abs(a[k] - b[k]) for k in a) < 0.02  # same network, fp32 vs fp16 weights


@pytest.mark.slow
def test_keras_artifact_goes_through_the_keras_runner(tmp_path):
    import keras

    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    path = tmp_path / "m.keras"
    model.save(path)
    predict, runtime = open_predictor(path)
    batch = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3)).astype(np.uint8)
    probs = predict(batch)
    assert runtime.startswith("keras") and probs.shape == (3, 2)
    assert np.allclose(probs, model.predict(batch.astype(np.float32), verbose=0), atol=1e-6)


def test_compare_counts_disagreements_by_direction(tmp_path):
    from convert.external_compare import compare, main as compare_main

    header = "path,label,class,p_tumour,predicted,twin,twin_ncc,twin_of,twin_view,no_brain_found,error\n"
    rows_a = ["g/1.jpg,yes,glioma,0.99,yes,0,,,,0,", "g/2.jpg,yes,glioma,0.90,yes,0,,,,0,",
              "n/1.jpg,no,notumor,0.70,yes,0,,,,0,", "n/2.jpg,no,notumor,0.01,no,1,,,,0,", "n/3.jpg,no,notumor,,,0,,,,0,bad"]
    rows_b = ["g/1.jpg,yes,glioma,0.98,yes,0,,,,0,", "g/2.jpg,yes,glioma,0.10,no,0,,,,0,",
              "n/1.jpg,no,notumor,0.20,no,0,,,,0,", "n/2.jpg,no,notumor,0.02,no,1,,,,0,", "n/3.jpg,no,notumor,,,0,,,,0,bad"]
    for name, rows in (("a", rows_a), ("b", rows_b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions.csv").write_text(header + "\n".join(rows) + "\n")
    out = tmp_path / "cmp.md"
    assert compare_main([str(tmp_path / "a" / "predictions.csv"), str(tmp_path / "b" / "predictions.csv"), "--out", str(out)]) == 0
    from convert.external_compare import read

    got = {(r["subset"], r["class"]): r for r in compare(read(tmp_path / "a" / "predictions.csv"), read(tmp_path / "b" / "predictions.csv"))}
    assert got[("independent", "all")]["n"] == 3 and got[("independent", "all")]["agree"] == 1
    assert got[("independent", "glioma")]["a_yes_b_no"] == 1 and got[("independent", "notumor")]["a_yes_b_no"] == 1
    assert got[("independent", "all")]["a_no_b_yes"] == 0 and got[("near-twins of training", "all")]["agree"] == 1
    assert got[("independent", "glioma")]["dp_median"] == pytest.approx(0.405)
    assert "| independent | all | 3 | 1 (33.3 %) | 2 | 0 |" in out.read_text()


def test_multi_source_manifest_rows_resolve_against_each_source_and_keep_their_class(br35h_root, tmp_path,
                                                                                       monkeypatch):
    """A multi-source manifest (source, class columns) evaluates as one set: Nickparvar rows are
    read from their own folder, and the tumour type comes from the class column."""
    monkeypatch.setenv("BR35H_CACHE", str(tmp_path / "cache"))
    np_root = tmp_path / "np"
    for folder in ("Training", "Testing"):
        for cls in ("glioma", "meningioma", "pituitary", "notumor"):
            (np_root / folder / cls).mkdir(parents=True)
    shutil.copy(br35h_root / "yes" / "y5.jpg", np_root / "Testing" / "glioma" / "Te-gl_1.jpg")
    shutil.copy(br35h_root / "no" / "no5.jpg", np_root / "Testing" / "notumor" / "Te-no_1.jpg")
    monkeypatch.setenv("NICKPARVAR_DATA", str(np_root))
    rows = [("yes/y0.jpg", br35h_root, "yes", "br35h", "yes"), ("no/no0.jpg", br35h_root, "no", "br35h", "no"),
            ("Testing/glioma/Te-gl_1.jpg", np_root, "yes", "nickparvar", "glioma"),
            ("Testing/notumor/Te-no_1.jpg", np_root, "no", "nickparvar", "notumor")]
    manifest = tmp_path / "multi.csv"
    manifest.write_text("path,sha256,label,group,split,source,class\n" + "".join(
        f"{p},{sha(root / p)},{lab},{i},test,{src},{cls}\n" for i, (p, root, lab, src, cls) in enumerate(rows)))
    items, shas = items_from_manifest(manifest, br35h_root)
    assert [(i.path, i.original_class) for i in items] == [(root / p, cls) for p, root, _, _, cls in rows]
    out = tmp_path / "out"
    assert main(["--model", str(TINY), "--manifest", str(manifest), "--data", str(br35h_root), "--out", str(out)]) == 0
    with (out / "predictions.csv").open() as f:
        got = {r["path"]: r for r in csv.DictReader(f)}
    assert set(got) == {p for p, *_ in rows}  # relative to each source's own folder
    r = json.loads((out / "report.json").read_text())
    assert r["metrics"]["n"] == 4 and {"glioma", "notumor", "yes", "no"} <= set(r["per_class"])
