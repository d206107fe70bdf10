"""End to end on a small real slice of BR35H: manifest -> crops -> ``python -m train`` (smoke
preset, ImageNet weights from ../shared) -> evaluation report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train.data.manifest import ManifestRow, read_manifest, write_manifest

pytestmark = [pytest.mark.slow, pytest.mark.real_data]
REPO = Path(__file__).resolve().parent.parent


def test_train_cli_on_real_slice(br35h_root, tmp_path):
    paper = read_manifest(REPO / "splits" / "br35h-paper.csv")
    rows = []
    for split, n in (("train", 8), ("val", 3), ("test", 3)):
        for label in ("yes", "no"):
            rows += [r for r in paper if r.split == split and r.label == label][:n]
    manifest = write_manifest([ManifestRow(r.path, r.sha256, r.label, r.group, r.split) for r in rows],
                              tmp_path / "slice.csv")
    run = tmp_path / "run"
    env = dict(os.environ, BR35H_CACHE=str(tmp_path / "cache"), BR35H_DATA=str(br35h_root), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "train", "--manifest", str(manifest), "--preset", "smoke",
                           "--run", str(run)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((run / "report.json").read_text())
    assert report["metrics"]["n"] == 6
    assert (run / "model.keras").is_file() and (run / "figures" / "predictions.png").is_file()
    state = json.loads((run / "state.json").read_text())
    assert state["stage"] == "done"
    assert [r["stage"] for r in state["history"]] == ["head"] * 2 + ["finetune"] * 2
