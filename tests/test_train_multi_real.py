"""End to end on a tiny slice of the committed multi-source manifest: rows of BR35H and of
Nickparvar in every split -> crops from each source's own root -> ``python -m train`` (smoke)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train.data.manifest import read_manifest, write_manifest

pytestmark = [pytest.mark.slow, pytest.mark.real_data]
REPO = Path(__file__).resolve().parent.parent


def test_train_cli_on_multi_source_slice(br35h_root, nickparvar_root, tmp_path):
    rows = read_manifest(REPO / "splits" / "multi-paper.csv")
    chosen = []
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        for source in ("br35h", "nickparvar"):
            for label in ("yes", "no"):
                chosen += [r for r in rows if (r.split, r.source, r.label) == (split, source, label)][:n]
    manifest = write_manifest(chosen, tmp_path / "slice.csv")
    assert read_manifest(manifest) == chosen
    run = tmp_path / "run"
    env = dict(os.environ, BR35H_CACHE=str(tmp_path / "cache"), BR35H_DATA=str(br35h_root),
               NICKPARVAR_DATA=str(nickparvar_root), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "train", "--manifest", str(manifest), "--preset", "smoke",
                           "--run", str(run)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "16 train / 8 val crops" in proc.stdout
    report = json.loads((run / "report.json").read_text())
    assert report["metrics"]["n"] == 8
    assert [(s["name"], s["n"], s["n_positive"]) for s in report["by_source"]] == [("br35h", 4, 2), ("nickparvar", 4, 2)]
    assert "## Per source" in (run / "report.md").read_text()
    predictions = (run / "predictions.csv").read_text().splitlines()[1:]
    assert sum(p.startswith(("Testing/", "Training/")) for p in predictions) == 4
