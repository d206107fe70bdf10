"""The diagnosis features measure what they claim on images built to have them."""

import numpy as np
from PIL import Image

from convert.external_diagnosis import DiagnosisConfig, image_features, outline_symmetry, plane_guess, separation
from tests.conftest import synthetic_mri


def test_symmetry_border_and_intensity_features(tmp_path):
    sym = synthetic_mri((200, 200), seed=1)
    asym = sym.copy()
    asym[60:140, 100:150] = 250  # a bright mass on one side only
    padded = np.pad(sym, ((100, 100), (100, 100), (0, 0)))  # same brain, more black canvas
    for name, img in (("sym", sym), ("asym", asym), ("padded", padded)):
        Image.fromarray(img).save(tmp_path / f"{name}.png")
    f_sym, crop = image_features(tmp_path / "sym.png")
    f_asym, _ = image_features(tmp_path / "asym.png")
    f_pad, _ = image_features(tmp_path / "padded.png")
    assert crop.shape == (224, 224) and f_sym["tint"] == 0.0
    assert f_sym["symmetry"] > 0.8 > f_asym["symmetry"]
    assert f_asym["crop_bright"] > f_sym["crop_bright"] == 0.0
    assert f_pad["border"] > f_sym["border"] and f_pad["image_side"] == 400
    assert abs(f_pad["crop_mean"] - f_sym["crop_mean"]) < 3  # the crop removes the canvas
    # a mass inside the head lowers the intensity symmetry, not the outline's
    assert f_sym["outline_symmetry"] > 0.95 and f_asym["outline_symmetry"] > 0.95
    cfg = DiagnosisConfig()
    assert plane_guess(f_sym, cfg) == "axial/coronal?"


def test_outline_symmetry_sees_a_profile():
    yy, xx = np.mgrid[0:200, 0:200]
    oval = ((yy - 100) / 80) ** 2 + ((xx - 100) / 70) ** 2 <= 1
    profile = oval | ((xx > 150) & (yy > 90) & (yy < 130)) | ((xx > 80) & (xx < 120) & (yy > 170))  # nose, neck
    assert outline_symmetry(oval) > 0.97
    assert outline_symmetry(profile[:, : 195]) < 0.9
    assert np.isnan(outline_symmetry(np.zeros((10, 10), bool)))


def test_separation_is_the_auc_of_one_feature():
    assert separation(np.array([1.0, 2.0]), np.array([3.0, 4.0, np.nan])) == 1.0
    assert separation(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 0.0
    assert np.isnan(separation(np.array([np.nan]), np.array([1.0])))
