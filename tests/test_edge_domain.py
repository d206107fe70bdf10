"""The domain gate, the model contract and the degenerate-input rule in the device runtime.

Runs without TensorFlow on ``tests/assets/tiny_domain_int8.tflite`` (made by
``python -m tests.assets.make_domain_model`` with the project's own conversion code: a tiny random-feature
network whose domain check was fitted on BR35H crops, with its contract embedded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageDraw

from edge_runtime import cli
from edge_runtime.classifier import Classifier, NoContractWarning
from edge_runtime.contract import CONTRACT_FILE, ContractError, graph_part, load_contract
from edge_runtime.crop import FLAT_STD, MIN_SIDE, crop_image, degenerate, find_box
from tests.conftest import synthetic_mri

ASSETS = Path(__file__).parent / "assets"
DOMAIN_MODEL = ASSETS / "tiny_domain_int8.tflite"
PLAIN_MODEL = ASSETS / "tiny_int8.tflite"


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"), key=lambda p: int(re.sub(r"\D", "", p.stem) or -1))


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(DOMAIN_MODEL, num_threads=1)


def _photo(seed: int = 0, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A colour "photo": sky, ground, a sun and random coloured objects (no MRI has colour)."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = Image.new("RGB", (w, h), (110, 160, 230))
    d = ImageDraw.Draw(img)
    d.rectangle((0, int(h * 0.6), w, h), fill=(70, 140, 60))
    d.ellipse((w - 150, 30, w - 60, 120), fill=(250, 220, 60))
    for _ in range(12):
        x, y = int(rng.integers(0, w - 80)), int(rng.integers(0, h - 80))
        d.rectangle((x, y, x + int(rng.integers(20, 120)), y + int(rng.integers(20, 120))),
                    fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return np.asarray(img)


# --- the gate both ways ---------------------------------------------------------------------

def test_photo_is_refused_with_scores_still_reported(clf):
    for seed in range(3):
        pred = clf.classify_array(_photo(seed), "photo.png")
        assert not pred.no_brain_found
        assert pred.in_domain is False and pred.label == "unknown", pred.domain_score
        assert pred.domain_score < clf.contract.domain_threshold
        rec = pred.to_record()
        assert rec["in_domain"] is False and rec["label"] == "unknown" and 0 <= rec["score"] <= 1


@pytest.mark.real_data
def test_br35h_slices_are_accepted(clf, br35h_root):
    # files never seen when the asset was fitted (it used the first 100 of each class)
    paths = _files(br35h_root / "yes")[1400:1420] + _files(br35h_root / "no")[1400:1420]
    preds = [clf.classify(p) for p in paths]
    accepted = [p.in_domain for p in preds]
    assert np.mean(accepted) >= 0.9, [(p.path, p.domain_score) for p in preds if not p.in_domain]
    assert all(p.label in ("yes", "no") for p in preds if p.in_domain)


def test_synthetic_in_domain_crop_scores_higher_than_a_photo(clf):
    """Without the data: the check orders a brain-like slice above a colour photo."""
    mri = clf.classify_array(synthetic_mri((220, 200), seed=3))
    photo = clf.classify_array(_photo(0))
    assert mri.domain_score > photo.domain_score


# --- the contract ---------------------------------------------------------------------------

def test_contract_is_read_from_the_model_file(clf):
    c = load_contract(DOMAIN_MODEL)
    assert c is not None and c == clf.contract
    assert set(c.operating_points) >= {"default", "sensitivity", "specificity"}
    assert 0 < c.domain_threshold < 1 and c.temperature > 0
    assert c.graph_bytes == len(graph_part(DOMAIN_MODEL.read_bytes()))
    with zipfile.ZipFile(DOMAIN_MODEL) as z:  # readable with the standard library alone
        raw = json.loads(z.read(CONTRACT_FILE))
        assert {"labels.txt", "domain_labels.txt", CONTRACT_FILE} <= set(z.namelist())
    assert raw["domain"]["threshold"] == c.domain_threshold and raw["labels"] == ["no", "yes"]


def test_operating_points_change_the_threshold_only():
    default = Classifier(DOMAIN_MODEL, 1)
    spec = Classifier(DOMAIN_MODEL, 1, operating_point="specificity")
    assert spec.threshold == spec.contract.operating_points["specificity"] != default.threshold
    img = synthetic_mri((200, 180), seed=1)
    a, b = default.classify_array(img), spec.classify_array(img)
    assert a.score == b.score and a.domain_score == b.domain_score
    assert b.label == ("yes" if b.score >= spec.threshold else "no") or b.label == "unknown"
    with pytest.raises(ValueError, match="unknown operating point"):
        Classifier(DOMAIN_MODEL, 1, operating_point="bogus")


def test_tampered_graph_is_refused(tmp_path):
    data = bytearray(DOMAIN_MODEL.read_bytes())
    n = len(graph_part(bytes(data)))
    data[n // 2] ^= 0xFF  # one flipped byte inside the flatbuffer, the contract untouched
    bad = tmp_path / "tampered.tflite"
    bad.write_bytes(bytes(data))
    with pytest.raises(ContractError, match="altered"):
        Classifier(bad, 1)
    Image.fromarray(synthetic_mri((200, 180), seed=3)).save(tmp_path / "slice.png")
    assert cli.main(["predict", "--model", str(bad), str(tmp_path / "slice.png")]) == 2


def test_truncated_or_swapped_graph_is_refused(tmp_path):
    data = DOMAIN_MODEL.read_bytes()
    n = len(graph_part(data))
    other = PLAIN_MODEL.read_bytes()  # another model's graph with this model's contract
    swapped = tmp_path / "swapped.tflite"
    swapped.write_bytes(other + data[n:])
    with pytest.raises(ContractError):
        load_contract(swapped)


def test_model_without_contract_runs_with_a_warning_and_no_domain_answer(tmp_path):
    with pytest.warns(NoContractWarning, match="WITHOUT a domain check"):
        plain = Classifier(PLAIN_MODEL, 1)
    assert plain.contract is None
    pred = plain.classify_array(synthetic_mri((200, 180), seed=2))
    assert pred.in_domain is None and pred.domain_score is None and pred.label in ("yes", "no")
    rec = pred.to_record()
    assert rec["in_domain"] is None and "domain_score" in rec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoContractWarning)
        with pytest.raises(ValueError, match="needs a model with a contract"):
            Classifier(PLAIN_MODEL, 1, operating_point="sensitivity")


def test_cli_counts_unknown_answers_and_writes_the_fields(tmp_path, capsys):
    Image.fromarray(_photo(1)).save(tmp_path / "photo.png")
    Image.new("RGB", (64, 64), (255, 255, 255)).save(tmp_path / "white.png")
    Image.fromarray(synthetic_mri((200, 180), seed=5)).save(tmp_path / "slice.png")
    out = tmp_path / "out.csv"
    rc = cli.main(["predict", "--model", str(DOMAIN_MODEL), "--threads", "1", "--csv", "-o", str(out),
                   "--operating-point", "sensitivity", str(tmp_path / "photo.png"), str(tmp_path / "white.png"),
                   str(tmp_path / "slice.png")])
    assert rc == 0
    lines = out.read_text().splitlines()
    header = lines[0].split(",")
    assert "in_domain" in header and "domain_score" in header
    rows = {Path(l.split(",")[0]).name: dict(zip(header, l.split(","))) for l in lines[1:]}
    assert rows["photo.png"]["label"] == "unknown" and rows["photo.png"]["in_domain"] == "False"
    assert rows["white.png"]["label"] == "unknown" and rows["white.png"]["no_brain_found"] == "True"
    err = capsys.readouterr().err
    unknown = sum(r["label"] == "unknown" for r in rows.values())
    assert f"3 classified, 0 failed; {unknown} of the classified answered 'unknown'" in err


# --- degenerate inputs ----------------------------------------------------------------------

@pytest.mark.parametrize("shape,value", [((64, 64), 255), ((64, 64), 0), ((300, 200), 128), ((200, 300), 60),
                                         ((1, 1), 200), ((2, 2), 200), ((1, 500), 200), ((500, 1), 200),
                                         ((MIN_SIDE - 1, 200), 200)])
def test_degenerate_inputs_are_no_brain_found_and_unknown(clf, shape, value):
    rgb = np.full((*shape, 3), value, np.uint8)
    _, box = crop_image(rgb)
    assert box.fallback
    pred = clf.classify_array(rgb)
    assert pred.no_brain_found and pred.in_domain is False and pred.label == "unknown"


def test_mask_over_the_whole_frame_is_degenerate_only_when_flat():
    flat = np.full((120, 160, 3), 200, np.uint8)
    flat[::7, ::5] = 190  # a little texture, still flat: std << FLAT_STD
    assert degenerate(flat, find_box(flat)) is not None
    # a real-looking slice on a grey background above the mask threshold (as 13 BR35H FLAIR scans):
    # the mask covers the frame, but the image has structure -> not degenerate
    slice_ = synthetic_mri((200, 180), seed=7).astype(np.int16) + 60
    slice_ = np.clip(slice_, 0, 255).astype(np.uint8)
    box = find_box(slice_)
    assert box.as_tuple() == (0, 0, 180, 200) and float(slice_.std()) > FLAT_STD
    assert degenerate(slice_, box) is None


@pytest.mark.real_data
def test_full_frame_br35h_scans_are_not_degenerate(br35h_root):
    """BR35H FLAIR slices whose mask covers the whole frame (measured) stay classifiable."""
    for name in ("y1058.jpg", "y1340.jpg", "y134.jpg", "y879.jpg"):
        from edge_runtime.image_io import load_rgb

        rgb = load_rgb(br35h_root / "yes" / name)
        _, box = crop_image(rgb)
        assert not box.fallback, name


# --- MediaPipe ------------------------------------------------------------------------------

def _mediapipe_python() -> str | None:
    """A Python with mediapipe installed (never this venv: MediaPipe does not sit next to TF 2.21).

    ``$BR35H_MEDIAPIPE_PYTHON`` or ``/tmp/mp/bin/python`` (the venv ``convert/mediapipe_check.py``
    describes)."""
    for cand in (os.environ.get("BR35H_MEDIAPIPE_PYTHON"), "/tmp/mp/bin/python"):
        if cand and shutil.which(cand) or (cand and Path(cand).is_file()):
            ok = subprocess.run([cand, "-c", "import mediapipe"], capture_output=True, timeout=120)
            if ok.returncode == 0:
                return cand
    return None


@pytest.mark.slow
def test_mediapipe_loads_the_two_output_model():
    py = _mediapipe_python()
    if py is None:
        pytest.skip("no Python with mediapipe (set BR35H_MEDIAPIPE_PYTHON or create /tmp/mp: "
                    "python3.11 -m venv /tmp/mp && /tmp/mp/bin/pip install mediapipe==1.2.2)")
    check = Path(__file__).resolve().parents[1] / "convert" / "mediapipe_check.py"
    res = subprocess.run([py, str(check), str(DOMAIN_MODEL)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "labels from metadata ['no', 'yes']; heads [2]" in res.stdout and "in_domain" in res.stdout
