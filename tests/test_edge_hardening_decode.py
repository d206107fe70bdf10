"""Decoding and answering safely: allowlisted formats, memory budget, draft decode, failures
isolated per file of any exception type, corrupt models refused, never a NaN in the output."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime.budget import estimate_bytes
from edge_runtime.classifier import Classifier
from edge_runtime.cli import main
from edge_runtime.formats import sniff
from edge_runtime.image_io import DecodeConfig, ImageDecodeError, load_image, load_rgb
from edge_runtime.interpreter import ModelError
from edge_runtime.records import classify_record, format_csv, format_jsonl
from edge_runtime.selftest import check_scores
from tests.conftest import synthetic_mri

ASSETS = Path(__file__).parent / "assets"
MODEL = ASSETS / "tiny_int8.tflite"
REPO = Path(__file__).resolve().parent.parent
FP16 = REPO / "models" / "br35h-mobilenetv2-fp16.tflite"


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(MODEL, num_threads=1)


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _strict_json(line: str) -> dict:
    """``json.loads`` that rejects NaN/Infinity, as strict JSON parsers do."""
    def bad(token):
        raise ValueError(f"non-JSON constant {token}")
    return json.loads(line, parse_constant=bad)


@pytest.mark.parametrize("fmt, hint", [("DDS", "DDS"), ("SPIDER", "bytes"), ("EPS", "PostScript/EPS"),
                                       ("PCX", "bytes"), ("ICO", "bytes")])
def test_formats_outside_the_allowlist_are_refused_by_content(tmp_path, clf, fmt, hint):
    img = Image.new("F" if fmt == "SPIDER" else "RGB", (16, 16))
    path = tmp_path / "scan.jpg"  # the name lies: the content decides
    path.write_bytes(_bytes(img, fmt))
    assert Image.open(path).format == fmt  # Pillow itself would have opened it
    rec = classify_record(clf, path)
    assert rec["label"] is None and rec["error"].startswith("not an image in an accepted format")
    assert hint in rec["error"]


def test_eps_never_reaches_ghostscript(tmp_path, clf, monkeypatch):
    marker = tmp_path / "gs-ran"
    gs = tmp_path / "bin" / "gs"
    gs.parent.mkdir()
    gs.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{gs.parent}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "scan.jpg"
    path.write_bytes(_bytes(Image.new("L", (16, 16)), "EPS"))
    with pytest.raises(ImageDecodeError, match="PostScript/EPS") as exc:
        clf.classify(path)
    assert exc.value.kind == "refused" and not marker.exists()


@pytest.mark.parametrize("fmt, mode", [("JPEG", "RGB"), ("PNG", "L"), ("BMP", "RGB"), ("TIFF", "RGB"),
                                       ("WEBP", "RGB"), ("GIF", "P")])
def test_allowed_formats_decode(tmp_path, fmt, mode):
    img = Image.fromarray(synthetic_mri((64, 48), seed=3)).convert(mode)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(_bytes(img, fmt))
    assert sniff(path.read_bytes()[:16]) == fmt
    assert load_rgb(path).shape == (64, 48, 3)


def test_directory_named_like_an_image_is_an_error_not_a_crash(tmp_path, clf):
    (tmp_path / "x.jpg").mkdir()
    rec = classify_record(clf, tmp_path / "x.jpg")
    assert rec["error"] == "is a directory, not an image file"


def test_memory_budget_refuses_from_the_header(tmp_path, clf):
    path = tmp_path / "big16.png"
    Image.new("I;16", (3000, 3000)).save(path)  # 9 MP of zeros: a few KB on disk
    assert path.stat().st_size < 100_000
    need = estimate_bytes(3000, 3000, "I;16")
    small = Classifier(MODEL, 1, decode=DecodeConfig(memory_budget_mb=need // 2**20 - 1))
    with pytest.raises(ImageDecodeError, match="above the memory budget") as exc:
        small.classify(path)
    assert exc.value.kind == "refused" and "3000x3000 I;16" in exc.value.reason
    roomy = Classifier(MODEL, 1, decode=DecodeConfig(memory_budget_mb=need // 2**20 + 1))
    assert roomy.classify(path).no_brain_found  # all black, but decoded within budget


def test_default_budget_fits_a_pi_and_the_dataset():
    assert estimate_bytes(7000, 7000, "I;16") > DecodeConfig().memory_budget_mb * 2**20
    assert estimate_bytes(7000, 7000, "L") > DecodeConfig().memory_budget_mb * 2**20
    assert estimate_bytes(1920, 1920, "RGB") < DecodeConfig().memory_budget_mb * 2**20  # largest BR35H ~1.9k px


def test_draft_decode_reduces_large_jpegs_and_maps_the_box_back(tmp_path):
    arr = synthetic_mri((1800, 1600), seed=4)
    path = tmp_path / "big.jpg"
    Image.fromarray(arr).save(path, quality=95)
    full = load_image(path, DecodeConfig(draft=False))
    drafted = load_image(path, DecodeConfig())  # the runtime's default
    assert full.scale == 1.0 and full.rgb.shape == (1800, 1600, 3)
    assert drafted.scale == 2.0 and drafted.rgb.shape == (900, 800, 3) and drafted.size == (1600, 1800)
    small = tmp_path / "small.jpg"
    Image.fromarray(synthetic_mri((400, 380), seed=4)).save(small)
    assert load_image(small, DecodeConfig()).scale == 1.0  # too small to reduce
    c_full = Classifier(MODEL, 1, decode=DecodeConfig(draft=False))
    c_draft = Classifier(MODEL, 1)
    b_full, b_draft = c_full.classify(path).box, c_draft.classify(path).box
    assert max(abs(a - b) for a, b in zip(b_full.as_tuple(), b_draft.as_tuple())) <= 4  # full-size coordinates
    assert load_rgb(path).shape == (1800, 1600, 3)  # the training decoder never drafts


class _Boom:
    """A classifier whose ``classify`` raises what a hostile file made Pillow raise."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def classify(self, path):
        raise self.exc


@pytest.mark.parametrize("exc, reason", [
    (NotImplementedError("DDS pixel format"), "unexpected NotImplementedError: DDS pixel format"),
    (AttributeError("'NoneType' object has no attribute 'read'"), "unexpected AttributeError"),
    (MemoryError(), "out of memory while processing this file"),
    (RuntimeError("interpreter"), "unexpected RuntimeError: interpreter"),
])
def test_any_exception_becomes_that_files_error_record(tmp_path, exc, reason):
    rec = classify_record(_Boom(exc), tmp_path / "a.jpg")
    assert rec["path"] == str(tmp_path / "a.jpg") and rec["label"] is None and rec["error"].startswith(reason)


def test_keyboard_interrupt_is_not_swallowed(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        classify_record(_Boom(KeyboardInterrupt()), tmp_path / "a.jpg")


def test_predict_batch_goes_on_after_any_failure(tmp_path, capsys, monkeypatch):
    good = tmp_path / "a.png"
    Image.fromarray(synthetic_mri(seed=1)).save(good)
    (tmp_path / "b.png").write_bytes(good.read_bytes())
    real = Classifier.classify

    def flaky(self, path):
        if Path(path).name == "a.png":
            raise NotImplementedError("plugin cannot decode this")
        return real(self, path)

    monkeypatch.setattr(Classifier, "classify", flaky)
    rc = main(["predict", "--model", str(MODEL), "--threads", "1", "--jsonl", str(tmp_path)])
    rows = [_strict_json(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 1 and [r["error"] is None for r in rows] == [False, True]
    assert "NotImplementedError" in rows[0]["error"]


def test_non_finite_scores_become_error_records_never_labels(tmp_path, clf, monkeypatch):
    path = tmp_path / "a.png"
    Image.fromarray(synthetic_mri(seed=1)).save(path)
    monkeypatch.setattr(clf.model, "run", lambda image: (np.array([np.nan, np.nan], np.float32), None))
    rec = classify_record(clf, path)
    assert rec["label"] is None and "non-finite score" in rec["error"]
    _strict_json(format_jsonl(rec))


def test_formatting_never_writes_nan():
    rec = {"path": "a.jpg", "label": "no", "score": float("nan"), "error": None}
    out = _strict_json(format_jsonl(rec))
    assert out["label"] is None and out["error"] == "non-finite value in result"
    assert "nan" not in format_csv(rec).lower() and "non-finite" in format_csv(rec)


def test_check_scores():
    assert check_scores(np.array([0.3, 0.7])) is None
    assert "non-finite" in check_scores(np.array([np.nan, 1.0]))
    assert "not probabilities" in check_scores(np.array([3.0, -2.0]))


def _corrupt_tiny_float(tmp_path: Path) -> Path:
    """The tiny float model with 16 bytes of 0xFF over its weights: it loads, then answers NaN."""
    blob = (ASSETS / "tiny_float32.tflite").read_bytes()
    for offset in range(len(blob) // 2, len(blob) - 16, 4):  # deterministic: first offset that loads
        path = tmp_path / "bad.tflite"
        path.write_bytes(blob[:offset] + b"\xff" * 16 + blob[offset + 16:])
        try:
            from edge_runtime.interpreter import TFLiteModel
            from edge_runtime.selftest import self_test_inputs

            scores = TFLiteModel(path, 1).scores(self_test_inputs(224)[0])
        except ModelError:
            continue
        if not np.isfinite(scores).all():
            return path
    pytest.fail("no corruption of the tiny model gives NaN")


def test_model_answering_nan_is_refused_at_load(tmp_path, capsys):
    bad = _corrupt_tiny_float(tmp_path)
    with pytest.raises(ModelError, match="self-test input 0 gives non-finite score"):
        Classifier(bad, 1)
    img = tmp_path / "a.png"
    Image.fromarray(synthetic_mri(seed=1)).save(img)
    rc = main(["predict", "--model", str(bad), "--threads", "1", "--jsonl", str(img)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and "corrupt" in err


@pytest.mark.skipif(not FP16.is_file(), reason=f"released fp16 model absent ({FP16})")
def test_released_fp16_with_4k_of_ff_is_refused(tmp_path):
    """With its contract the damage is caught by the graph hash; without one (a bare graph), by the
    self-test's non-finite scores. Either way the model never answers."""
    from edge_runtime.contract import graph_part

    blob = bytearray(FP16.read_bytes())
    mid = len(graph_part(bytes(blob))) // 2
    blob[mid:mid + 4096] = b"\xff" * 4096
    bad = tmp_path / "fp16-corrupt.tflite"
    bad.write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="altered"):
        Classifier(bad, 1)
    bare = tmp_path / "fp16-corrupt-bare.tflite"
    bare.write_bytes(graph_part(bytes(blob)))
    with pytest.warns(UserWarning, match="no contract"), pytest.raises(ModelError, match="non-finite score"):
        Classifier(bare, 1)


@pytest.mark.parametrize("fmt", ["--jsonl", "--csv", None])
def test_non_utf8_names_are_written_losslessly(tmp_path, capsys, fmt):
    raw = os.fsencode(tmp_path) + b"/scan-\xff\xfe-\n.png"
    Image.fromarray(synthetic_mri(seed=5)).save(os.fsdecode(raw))
    rc = main(["predict", "--model", str(MODEL), "--threads", "1", *([fmt] if fmt else []), str(tmp_path)])
    out = capsys.readouterr().out
    out.encode("utf-8")  # printable, encodable text
    assert rc == 0
    if fmt == "--jsonl":
        rec = _strict_json(out.strip())
    elif fmt == "--csv":
        import csv

        lines = out.splitlines()
        assert len(lines) == 2  # header + one single-line row despite the newline in the name
        rec = next(csv.DictReader(io.StringIO(out)))
    else:
        assert "scan-\\xff\\xfe-\\n.png" in out
        return
    assert rec["path"].endswith("scan-\\xff\\xfe-\\n.png")
    assert base64.b64decode(rec["path_bytes_b64"]) == raw
