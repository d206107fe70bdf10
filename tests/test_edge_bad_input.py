"""Every bad input of the issue: a clear error naming the file and reason, or a flagged answer."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime.classifier import Classifier
from edge_runtime.config import CropConfig
from edge_runtime.image_io import ImageDecodeError, load_rgb
from edge_runtime.records import classify_record
from tests.conftest import synthetic_mri

MODEL = Path(__file__).parent / "assets" / "tiny_int8.tflite"


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(MODEL, num_threads=1)


def _jpeg_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("notes.jpg", b"this is a radiology report, not a picture\n" * 20, "not an image"),
        ("empty.jpg", b"", "file is empty"),
        ("cut.jpg", _jpeg_bytes(synthetic_mri((200, 200), seed=1))[:700], "truncated"),
    ],
    ids=["not-an-image", "empty", "truncated-jpeg"],
)
def test_undecodable_files_raise_with_path_and_reason(tmp_path, clf, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=reason) as exc:
        clf.classify(path)
    assert exc.value.path == str(path) and str(path) in str(exc.value)


def test_missing_file(tmp_path, clf):
    with pytest.raises(ImageDecodeError, match="cannot read file"):
        clf.classify(tmp_path / "gone.png")


def _save(tmp_path: Path, img: Image.Image, name: str, **kw) -> Path:
    path = tmp_path / name
    img.save(path, **kw)
    return path


def _variants(tmp_path: Path) -> dict[str, Path]:
    gray = synthetic_mri((160, 140), seed=2)[:, :, 0]
    rgba = np.dstack([np.repeat(gray[:, :, None], 3, 2), np.full(gray.shape, 255, np.uint8)])
    rgba[:20, :, 3] = 0  # transparent band must become black, not white
    return {
        "png16": _save(tmp_path, Image.fromarray(gray.astype(np.uint16) * 257), "g16.png"),
        "rgba": _save(tmp_path, Image.fromarray(rgba, "RGBA"), "rgba.png"),
        "palette": _save(tmp_path, Image.fromarray(gray).convert("RGB").quantize(64), "pal.png"),
        "grayscale": _save(tmp_path, Image.fromarray(gray), "gray.jpg"),
        "cmyk": _save(tmp_path, Image.fromarray(np.repeat(gray[:, :, None], 3, 2)).convert("CMYK"), "cmyk.jpg"),
    }


@pytest.mark.parametrize("kind", ["png16", "rgba", "palette", "grayscale", "cmyk"])
def test_odd_pixel_formats_are_classified(tmp_path, clf, kind):
    path = _variants(tmp_path)[kind]
    if kind == "png16":
        assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    if kind == "cmyk":
        assert Image.open(path).mode == "CMYK"
    rgb = load_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (160, 140, 3)
    pred = clf.classify(path)
    assert not pred.no_brain_found and pred.box.width < 140  # the brain was found, not the frame
    if kind == "rgba":
        assert rgb[:20].max() == 0


def test_one_pixel_image(tmp_path, clf):
    pred = clf.classify(_save(tmp_path, Image.new("RGB", (1, 1), (200, 200, 200)), "one.png"))
    assert pred.box.as_tuple() == (0, 0, 1, 1)


def test_black_image_classifies_whole_image_and_flags_it(tmp_path, clf):
    pred = clf.classify(_save(tmp_path, Image.new("RGB", (64, 48)), "black.png"))
    assert pred.no_brain_found and pred.box.as_tuple() == (0, 0, 64, 48)
    # scores are still reported, but no answer: a flagged input is never in domain
    assert pred.label == "unknown" and pred.in_domain is False and 0 <= pred.score <= 1
    assert pred.to_record()["no_brain_found"] is True and pred.to_record()["in_domain"] is False


def test_enormous_image_is_refused_before_decoding(tmp_path, clf):
    path = _save(tmp_path, Image.new("1", (10_000, 6_000)), "huge.png")  # 60 MP, a few KB on disk
    assert path.stat().st_size < 200_000
    with pytest.raises(ImageDecodeError, match="above the limit of 50000000"):
        clf.classify(path)
    small = Classifier(MODEL, 1, crop=CropConfig(max_pixels=1000))
    with pytest.raises(ImageDecodeError, match="above the limit of 1000"):
        small.classify(_save(tmp_path, Image.new("RGB", (40, 40)), "forty.png"))


def test_batch_keeps_going_after_a_bad_file(tmp_path, clf):
    good = _save(tmp_path, Image.fromarray(synthetic_mri(seed=8)), "good.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    records = [classify_record(clf, p) for p in (good, bad, good)]
    assert [r["error"] is None for r in records] == [True, False, True]
    assert records[1]["path"] == str(bad) and records[1]["label"] is None and records[1]["score"] is None
    assert records[1]["error"].startswith(("not an image", "corrupt or truncated"))
    assert records[0]["label"] in ("yes", "no") and records[0]["score"] == records[2]["score"]
