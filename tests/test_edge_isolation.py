"""The runtime stands alone: no TensorFlow / OpenCV / train / convert at run time, and
``pip install ./edge_runtime`` into an empty virtual environment classifies an image."""

import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import synthetic_mri

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "tests" / "assets" / "tiny_int8.tflite"
FORBIDDEN = ("tensorflow", "tf_keras", "keras", "cv2", "train", "convert", "onnxruntime")
WHEELHOUSE = Path(os.environ.get("BR35H_WHEELHOUSE", Path.home() / ".cache" / "br35h-wheelhouse"))


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("iso") / "slice.jpg"
    Image.fromarray(synthetic_mri(seed=3, tumour=True)).save(path)
    return path


def test_full_prediction_imports_no_forbidden_module(image):
    script = f"""
import json, sys
from edge_runtime import Classifier
from edge_runtime.cli import main
pred = Classifier({str(MODEL)!r}, num_threads=1).classify({str(image)!r})
rc = main(["predict", "--model", {str(MODEL)!r}, "--jsonl", {str(image)!r}])
bad = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})
print(json.dumps({{"label": pred.label, "rc": rc, "forbidden": bad}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["forbidden"] == [] and result["rc"] == 0 and result["label"] in ("yes", "no")


def _wheelhouse_ready() -> bool:
    return any(WHEELHOUSE.glob("ai_edge_litert-*.whl")) and any(WHEELHOUSE.glob("setuptools-*.whl"))


def _fill_wheelhouse() -> None:
    """Download the runtime's wheels once (a registry is needed only this first time)."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--dest", str(WHEELHOUSE),
           "numpy>=1.22", "pillow>=9.1", "ai-edge-litert>=2.1", "setuptools>=68", "wheel"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no wheels in {WHEELHOUSE} and no package registry reachable to fetch them ({exc})")


@pytest.mark.slow
def test_standalone_install_in_empty_venv(tmp_path, image):
    if not _wheelhouse_ready():
        _fill_wheelhouse()
    src = tmp_path / "src" / "edge_runtime"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(REPO / "edge_runtime", src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    install = [str(py), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(WHEELHOUSE), str(src)]
    proc = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path)}  # nothing from this checkout on sys.path
    proc = subprocess.run([str(venv / "bin" / "br35h-edge"), "predict", "--model", str(MODEL), "--jsonl", str(image)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[-1])
    assert record["label"] in ("yes", "no") and record["error"] is None
    assert "ai-edge-litert" in proc.stderr  # the backend is reported
    from edge_runtime.default_model import RELEASED_NAME

    released = REPO / "models" / RELEASED_NAME
    if released.is_file():  # the shipped model is package data: predict works with no --model
        proc = subprocess.run([str(venv / "bin" / "br35h-edge"), "predict", "--jsonl", str(image)],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.splitlines()[-1])["error"] is None
        used = Path(proc.stderr.rsplit("model ", 1)[1].strip().rstrip(")"))
        assert str(venv) in str(used) and used.read_bytes() == released.read_bytes()
    probe = "import importlib.util as u; print([m for m in ('tensorflow', 'cv2', 'train') if u.find_spec(m)])"
    assert subprocess.run([str(py), "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env).stdout.strip() == "[]"
