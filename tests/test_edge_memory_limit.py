"""Under a Raspberry-Pi-like address-space limit, huge images are refused or fail alone.

The classifier runs in a subprocess under ``resource.setrlimit(RLIMIT_AS, 768 MiB)`` (the
interpreter, numpy and TFLite need ~300 MiB of address space; a 1 GB Pi has less than that
free for pixels). A 7000x7000 16-bit PNG (~100 KB on disk, ~1.75 GB to decode) is refused by the
memory budget before decoding; a 7000x7000 JPEG is decoded at 1/8 size (draft) and classified,
or refused by the budget with ``--no-draft``. With the budget switched off the PNG fails with
MemoryError, which becomes its error record while the next image is still classified; the 8-bit
grey JPEG decoded in full fits since the crop works on one channel of grey images, so it is
either classified or out of memory, never another error.
"""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import synthetic_mri

REPO = Path(__file__).resolve().parent.parent
MODEL = str(REPO / "tests" / "assets" / "tiny_int8.tflite")
LIMIT_MIB = 768
_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from edge_runtime.cli import main
sys.exit(main(sys.argv[1:]))
"""

resource = pytest.importorskip("resource")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("huge")
    big16, big_jpg, normal = d / "big16.png", d / "big.jpg", d / "normal.jpg"
    Image.new("I;16", (7000, 7000)).save(big16)
    gray = np.zeros((7000, 7000), np.uint8)
    gray[1000:6000, 1500:5500] = 120
    Image.fromarray(gray).save(big_jpg, quality=90)
    Image.fromarray(synthetic_mri((300, 260), seed=1)).save(normal)
    assert big16.stat().st_size < 200_000
    return [big16, big_jpg, normal]


def _predict(images: list[Path], *extra: str) -> tuple[int, list[dict], str]:
    code = _CHILD.format(limit=LIMIT_MIB * 2**20)
    proc = subprocess.run([sys.executable, "-c", code, "predict", "--model", MODEL, "--threads", "1", "--jsonl",
                           *extra, *map(str, images)], cwd=REPO, capture_output=True, text=True, timeout=120)
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines()], proc.stderr


def test_budget_refuses_huge_images_under_a_pi_memory_limit(images):
    rc, rows, err = _predict(images, "--no-draft")
    assert rc == 1, err
    assert [Path(r["path"]).name for r in rows] == ["big16.png", "big.jpg", "normal.jpg"]
    assert "7000x7000 I;16" in rows[0]["error"] and "memory budget" in rows[0]["error"]
    assert "7000x7000 L" in rows[1]["error"] and "memory budget" in rows[1]["error"]
    assert rows[2]["error"] is None and rows[2]["label"] in ("yes", "no")


def test_draft_decodes_the_huge_jpeg_within_the_limit(images):
    rc, rows, err = _predict(images)
    assert rc == 1, err  # the 16-bit PNG cannot be drafted: still refused
    assert "memory budget" in rows[0]["error"]
    assert rows[1]["error"] is None  # decoded at 875x875, box in full-size coordinates (one reduced px = 8)
    assert max(abs(a - b) for a, b in zip(rows[1]["box"], [1500, 1000, 5500, 6000])) <= 8
    assert rows[2]["error"] is None


def test_without_the_budget_out_of_memory_stays_per_file(images):
    rc, rows, err = _predict(images, "--memory-budget-mb", "100000", "--no-draft")
    assert rc == 1, err
    assert rows[0]["error"] is not None and "out of memory" in rows[0]["error"]
    assert (rows[1]["error"] is None and rows[1]["label"] in ("yes", "no", "unknown")) or "out of memory" in rows[1]["error"]
    assert rows[2]["error"] is None and rows[2]["label"] in ("yes", "no")
