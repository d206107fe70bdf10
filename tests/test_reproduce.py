"""The main-job command: without BR35H it stops at once with where to put the data."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_missing_data_is_a_clear_message_not_a_traceback(tmp_path):
    env = dict(os.environ, BR35H_DATA=str(tmp_path / "nowhere"))
    r = subprocess.run([sys.executable, "-m", "train.reproduce", "--runs-dir", str(tmp_path / "runs")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "BR35H not found" in r.stderr and "kaggle" in r.stderr.lower()
    assert str(tmp_path / "nowhere") in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()
