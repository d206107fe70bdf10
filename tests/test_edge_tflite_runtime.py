"""The 32-bit Raspberry Pi route, on x86: a venv where tflite-runtime replaces ai-edge-litert.

The venv gets exactly the ``[legacy]`` pins of ``edge_runtime/pyproject.toml`` (so the test fails
if they stop resolving to a working set) plus Pillow, then the edge runtime itself without
dependencies, and ``br35h-edge predict`` runs in it. Kept fast: the venv is reused between runs
(``.cache/venvs/``, keyed by the pins and the Python version) and pip reuses its wheel cache.
Skips, naming pip's reason, when the wheel cannot be installed here (offline, or a Python newer
than the last tflite-runtime wheel, 3.11): the lack of a network must never fail CI.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tomllib

import numpy as np
from PIL import Image
import pytest

from tests.conftest import synthetic_mri

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
EDGE = REPO / "edge_runtime"
TINY = REPO / "tests" / "assets" / "tiny_int8.tflite"
#: What edge_runtime/pyproject.toml's build-system needs, installed once so each run builds offline.
BUILD_TOOLS = ("setuptools>=68", "wheel")


def _legacy_pins() -> list[str]:
    extras = tomllib.loads((EDGE / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return extras["legacy"]


def _pip(venv: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A venv with the [legacy] pins, Pillow and this checkout's edge runtime; no ai-edge-litert."""
    pins = [*_legacy_pins(), "pillow>=9.0"]
    key = hashlib.sha256(json.dumps([pins, BUILD_TOOLS, sys.version_info[:2]]).encode()).hexdigest()[:12]
    venv = Path(os.environ.get("BR35H_CACHE", REPO / ".cache")) / "venvs" / f"tflite-runtime-{key}"
    if not (venv / ".ready").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        res = _pip(venv, "install", "--only-binary", ":all:", *pins, *BUILD_TOOLS)
        if res.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(f"cannot install {pins} here (offline, or no wheel for Python "
                        f"{sys.version_info.major}.{sys.version_info.minor}): {res.stderr.strip()[-300:]}")
        (venv / ".ready").write_text("\n".join(pins) + "\n")
    # the runtime itself: always this checkout's sources (built from a copy, so the tree stays clean)
    src = tmp_path_factory.mktemp("edge_src") / "edge_runtime"
    shutil.copytree(EDGE, src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    res = _pip(venv, "install", "--no-deps", "--no-build-isolation", "--force-reinstall", str(src))
    assert res.returncode == 0, res.stderr
    return venv


def _versions(venv: Path) -> dict:
    code = ("import json, importlib.metadata as m\n"
            "def v(d):\n    try:\n        return m.version(d)\n    except m.PackageNotFoundError:\n        return None\n"
            "print(json.dumps({d: v(d) for d in ('numpy', 'tflite-runtime', 'ai-edge-litert')}))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_pins_resolve_to_tflite_runtime_with_numpy_1(venv):
    v = _versions(venv)
    assert v["ai-edge-litert"] is None and v["tflite-runtime"] and v["numpy"].startswith("1.")


def test_br35h_edge_predict_runs_on_tflite_runtime(venv, tmp_path):
    from edge_runtime.classifier import Classifier

    images = []
    for i, tumour in enumerate((True, False)):
        images.append(tmp_path / f"slice{i}.png")
        Image.fromarray(synthetic_mri((220, 190), seed=20 + i, tumour=tumour)).save(images[-1])
    proc = subprocess.run([str(venv / "bin" / "br35h-edge"), "predict", "--jsonl", "--threads", "1",
                           "--model", str(TINY), *map(str, images)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "tflite-runtime" in proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == [p.name for p in images] and all(r["error"] is None for r in rows)
    here = Classifier(TINY, num_threads=1)  # ai-edge-litert in this process
    for row, image in zip(rows, images):
        assert abs(row["score"] - float(here.classify(image).score)) <= 1 / 256 + 1e-6  # one int8 output step


def test_released_model_installed_with_the_package_runs_on_tflite_runtime(venv, tmp_path):
    image = tmp_path / "slice.png"
    Image.fromarray(synthetic_mri((220, 190), seed=30, tumour=True)).save(image)
    env = {k: v for k, v in os.environ.items() if k != "BR35H_EDGE_MODEL"}
    proc = subprocess.run([str(venv / "bin" / "br35h-edge"), "predict", "--jsonl", "--threads", "1", str(image)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["error"] is None and 0 <= row["score"] <= 1
    # The released default carries a contract and a domain output: tflite-runtime reads both, and a
    # synthetic slice may well be out of domain, which must then read "unknown".
    assert isinstance(row["in_domain"], bool) and 0 <= row["domain_score"] <= 1
    assert row["label"] == "unknown" if not row["in_domain"] else row["label"] in ("yes", "no")
    assert "tflite-runtime" in proc.stderr and str(venv) in proc.stderr  # the package's own copy of the model
