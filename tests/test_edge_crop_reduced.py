"""``CropConfig.analysis_min_side``: off by default (the training crop), read from the contract,
and when on, a box close to the full-size one on synthetic brains of several sizes."""

from dataclasses import replace
import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime import crop as npc
from edge_runtime.config import CropConfig
from edge_runtime.contract import SCHEMA, Contract, load_contract
from tests.conftest import synthetic_mri

REPO = Path(__file__).resolve().parents[1]

CFG = CropConfig()


def test_default_is_off_and_leaves_the_fingerprint_of_shipped_contracts():
    assert CFG.analysis_min_side == 0 and npc.analysis_factor(4000, 3000, CFG) == 1
    assert "analysis_min_side" not in CFG.to_dict()
    for name in ("br35h-mobilenetv2-int8.tflite", "multisource-mobilenetv2-int8.tflite"):
        c = load_contract(REPO / "models" / name)
        assert c.crop == CFG and c.crop.to_dict() == c.raw["crop"]
        assert c.crop.fingerprint() == c.raw["crop_fingerprint"]


def test_a_set_value_enters_the_fingerprint_and_a_negative_one_is_refused():
    on = replace(CFG, analysis_min_side=224)
    assert on.to_dict()["analysis_min_side"] == 224 and on.fingerprint() != CFG.fingerprint()
    with pytest.raises(ValueError, match="analysis_min_side"):
        CropConfig(analysis_min_side=-1)


def test_the_value_is_read_from_the_contract():
    d = {"schema": SCHEMA, "labels": ["no", "yes"], "crop": {**CFG.to_dict(), "analysis_min_side": 160},
         "operating_points": {p: {"threshold": 0.5} for p in ("default", "sensitivity", "specificity")},
         "temperature": 1.0, "graph": {"sha256": "0" * 64, "bytes": 1}}
    crop = Contract.from_dict(json.loads(json.dumps(d))).crop
    assert crop.analysis_min_side == 160
    rgb = synthetic_mri((480, 400), seed=3)
    assert npc.analysis_factor(480, 400, crop) == 2
    _, box = npc.crop_image(rgb, crop)
    assert box == npc.box_of_gray(npc.to_gray(rgb), crop)


@pytest.mark.parametrize("shape, n, factor", [((200, 180), 224, 1), ((480, 400), 224, 1), ((480, 450), 224, 2),
                                              ((700, 900), 224, 3), ((1200, 1000), 224, 4), ((300, 260), 128, 2)])
def test_factor_keeps_the_min_side(shape, n, factor):
    assert npc.analysis_factor(*shape, replace(CFG, analysis_min_side=n)) == factor


@pytest.mark.parametrize("shape", [(180, 150), (450, 460), (700, 620), (1100, 1030)])
def test_reduced_box_is_within_the_reduction_of_the_full_box(shape):
    rgb = synthetic_mri(shape, seed=shape[0], tumour=True)
    cfg = replace(CFG, analysis_min_side=224)
    f = npc.analysis_factor(*shape, cfg)
    full, reduced = npc.find_box(rgb, CFG), npc.find_box(rgb, cfg)
    if f == 1:
        assert reduced == full
        return
    diff = max(abs(a - b) for a, b in zip(full.as_tuple(), reduced.as_tuple()))
    assert diff <= 2 * f, (full, reduced, f)
    assert 0 <= reduced.left < reduced.right <= shape[1] and 0 <= reduced.top < reduced.bottom <= shape[0]


def test_reduced_black_image_falls_back_to_the_whole_frame():
    _, box = npc.crop_image(np.zeros((600, 500, 3), np.uint8), replace(CFG, analysis_min_side=224))
    assert box.fallback and box.as_tuple() == (0, 0, 500, 600)
