"""Run folders resume by their ``state.json`` (the format every run so far was written in):
which stages are left, and from which epoch. No Keras needed."""

import json

import pytest

from train.fit import remaining
from train.presets import get_preset
from train.run_state import RunState


def _state(tmp_path, blob: dict | None) -> RunState:
    if blob is not None:
        (tmp_path / "state.json").write_text(json.dumps(blob))
    return RunState(tmp_path)


def _plan(cfg, state):
    return [(type(stage).__name__, done) for stage, done in remaining(cfg, state)]


# state.json as the two-stage loop wrote it: stage in start/head/finetune/done, epoch = last
# completed epoch of that stage, checkpoint named relative to the run folder.
@pytest.mark.parametrize("blob, expected", [
    (None, [("HeadOnFeatures", 0), ("FineTune", 0)]),
    ({"stage": "head", "epoch": 8, "checkpoint": "checkpoint-head.keras", "history": [], "seconds": 3.0},
     [("FineTune", 0)]),
    ({"stage": "finetune", "epoch": 13, "checkpoint": "checkpoint-finetune-e13.keras", "history": [], "seconds": 9.0},
     [("FineTune", 13)]),
    ({"stage": "finetune", "epoch": 20, "checkpoint": "checkpoint-finetune-e20.keras", "history": [], "seconds": 9.0},
     []),
    ({"stage": "done", "epoch": 20, "checkpoint": "checkpoint-finetune-e20.keras", "history": [], "seconds": 9.0}, []),
])
def test_cpu_recipe_resumes_where_an_existing_run_folder_stopped(tmp_path, blob, expected):
    cfg = get_preset("cpu")  # 8 head epochs on cached features, 20 fine-tune epochs
    assert _plan(cfg, _state(tmp_path, blob)) == expected


def test_live_image_head_resumes_mid_stage(tmp_path):
    cfg = get_preset("paper")  # head on live images, checkpointed per epoch
    state = _state(tmp_path, {"stage": "head", "epoch": 3, "checkpoint": "checkpoint-head-e3.keras"})
    assert _plan(cfg, state) == [("HeadOnImages", 3), ("FineTune", 0)]
    assert _plan(cfg, _state(tmp_path, {"stage": "start", "epoch": 0})) == [("HeadOnImages", 0), ("FineTune", 0)]


def test_commit_round_trips_and_removes_the_replaced_checkpoint(tmp_path):
    state = _state(tmp_path, None)
    assert not state.started and state.checkpoint is None
    (tmp_path / "checkpoint-head.keras").write_bytes(b"h")
    state.commit("head", 8, "checkpoint-head.keras", [{"stage": "head", "epoch": 8, "loss": 0.5}], 2.0)
    (tmp_path / "checkpoint-finetune-e1.keras").write_bytes(b"f")
    state.commit("finetune", 1, "checkpoint-finetune-e1.keras", [{"stage": "finetune", "epoch": 1, "loss": 0.3}], 5.0)
    assert not (tmp_path / "checkpoint-head.keras").exists() and (tmp_path / "checkpoint-finetune-e1.keras").exists()
    back = RunState(tmp_path)
    assert (back.stage, back.epoch, back.checkpoint, back.seconds) == ("finetune", 1, "checkpoint-finetune-e1.keras", 7.0)
    assert json.loads((tmp_path / "state.json").read_text()).keys() == {"stage", "epoch", "checkpoint", "history", "seconds"}
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0] == "stage,epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds" and lines[2].startswith("finetune,1,0.3,")
    assert _plan(get_preset("cpu"), back) == [("FineTune", 1)]


def test_unknown_stage_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="state.json.*'warmup'"):
        _state(tmp_path, {"stage": "warmup", "epoch": 1})
