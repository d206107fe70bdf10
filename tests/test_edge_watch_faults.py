"""Fault injection: ``watch`` SIGKILLed at seeded points over many files loses nothing and
duplicates nothing, and the log stays parseable line by line.

The kill points come from a seeded generator and are ledger writes (before a record, halfway
through its bytes, after it but before fsync), so every run kills at the same places. Each
case is 4-6 short subprocesses: about 10 s on an idle 2-core machine (no wall-clock assertion:
a shared CI machine can be several times slower).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
import random
import subprocess
import sys
import time

import pytest
from PIL import Image

from tests.conftest import synthetic_mri

REPO = Path(__file__).resolve().parent.parent
MODEL = str(REPO / "tests" / "assets" / "tiny_int8.tflite")
DRIVER = ["-m", "tests.helpers.watch_kill"]  # run with cwd=REPO, which -m puts on sys.path


@pytest.mark.parametrize("suffix, seed", [(".jsonl", 14), (".csv", 41)])
def test_killed_watch_loses_and_duplicates_nothing(tmp_path, suffix, seed):
    folder, log = tmp_path / "in", tmp_path / f"log{suffix}"
    folder.mkdir()
    names = [f"{i:02d}.jpg" for i in range(20)]
    for i, name in enumerate(names):
        Image.fromarray(synthetic_mri((96, 80), seed=i)).save(folder / name)
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")  # errors are records too
    old = time.time() - 3600  # long finished, so a final error rather than a file being written
    os.utime(folder / "bad.jpg", (old, old))
    rng = random.Random(seed)
    kills = []
    for _ in range(30):
        kill_at, mode = rng.randint(1, 10), rng.choice(["before", "torn", "after"])
        proc = subprocess.run([sys.executable, *DRIVER, str(folder), str(log), MODEL, str(kill_at), mode],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        if proc.returncode == -9:
            kills.append(mode)
            continue
        assert proc.returncode in (0, 1), proc.stderr  # finished (1 when bad.jpg was in this round)
        break
    else:
        pytest.fail("watch never finished")
    assert len(kills) >= 3 and {"torn", "after"} <= set(kills), kills  # the hard cases happened
    proc = subprocess.run([sys.executable, *DRIVER, str(folder), str(log), MODEL, "0", "none"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "torn" not in proc.stderr  # nothing left to do, nothing to repair
    text = log.read_text(encoding="utf-8")
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        rows = [json.loads(line) for line in text.splitlines()]
    got = sorted(Path(r["path"]).name for r in rows)
    assert got == sorted(names + ["bad.jpg"])  # no loss, no duplicate
    assert all(r["error"] in (None, "") for r in rows if Path(r["path"]).name != "bad.jpg")
