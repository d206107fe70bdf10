"""``br35h-edge evaluate DIR``: labelled folder -> metrics with CIs, on the tiny test model."""

import json
from pathlib import Path
import subprocess
import sys

import pytest
from PIL import Image

from edge_runtime.cli import main
from tests.conftest import synthetic_mri

REPO = Path(__file__).resolve().parent.parent
MODEL = str(REPO / "tests" / "assets" / "tiny_int8.tflite")


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "scans"
    layout = {"Training/glioma": (0, 1, 2), "Training/notumor": (3, 4), "yes": (5,), "no": (6, 7)}
    for folder, seeds in layout.items():
        (root / folder).mkdir(parents=True)
        for s in seeds:
            Image.fromarray(synthetic_mri((150 + 9 * s, 140), seed=s, tumour="no" not in folder)).save(root / folder / f"{s}.png")
    (root / "SHA256SUMS").write_text("ignored: not an image\n")
    return root


def predict_scores(capsys, root: Path) -> dict[str, float]:
    assert main(["predict", "--model", MODEL, "--threads", "1", "--jsonl", str(root)]) == 0
    out, _ = capsys.readouterr()
    return {Path(r["path"]).relative_to(root).as_posix(): r["score"] for r in map(json.loads, out.splitlines())}


def test_evaluate_reports_what_predict_scores(capsys, tree, tmp_path):
    scores = predict_scores(capsys, tree)
    rc = main(["evaluate", "--model", MODEL, "--threads", "1", str(tree),
               "--json", str(tmp_path / "r.json"), "--md", str(tmp_path / "r.md")])
    out, _ = capsys.readouterr()
    assert rc == 0
    r = json.loads((tmp_path / "r.json").read_text())
    m = r["metrics"]
    yes = [s for p, s in scores.items() if p.startswith(("yes/", "Training/glioma/"))]
    no = [s for p, s in scores.items() if p.startswith(("no/", "Training/notumor/"))]
    assert (m["n"], m["n_yes"], m["n_no"]) == (8, 4, 4)
    assert m["sensitivity"]["k"] == sum(s > 0.5 for s in yes)
    assert m["specificity"]["k"] == sum(s <= 0.5 for s in no)
    pairs = [(a > b) + 0.5 * (a == b) for a in yes for b in no]
    assert m["roc_auc"]["value"] == pytest.approx(sum(pairs) / len(pairs), abs=1e-6)
    assert {k: v["n"] for k, v in m["per_original_class"].items()} == {"yes": 1, "glioma": 3, "no": 2, "notumor": 2}
    assert sum(m["score_histogram"]["yes"]) == 4 and sum(m["score_histogram"]["no"]) == 4
    assert r["failures"] == [] and r["unlabelled_skipped"] == 0 and len(r["model_sha256"]) == 64
    md = (tmp_path / "r.md").read_text()
    assert md in out + "\n" and "| sensitivity (recall of yes) |" in md and "| glioma | yes | 3 |" in md
    assert r["machine"]["cpu"] and r["model"]["backend"]


def test_bad_image_is_listed_and_the_rest_still_scored(capsys, tree, tmp_path):
    (tree / "no" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    rc = main(["evaluate", "--model", MODEL, str(tree), "--json", str(tmp_path / "r.json")])
    _, err = capsys.readouterr()
    r = json.loads((tmp_path / "r.json").read_text())
    assert rc == 1 and r["metrics"]["n"] == 8
    assert [Path(f["path"]).name for f in r["failures"]] == ["broken.jpg"] and "broken.jpg" in err


def test_unlabelled_image_stops_with_its_name_unless_skipped(capsys, tree, tmp_path):
    (tree / "pred").mkdir()
    Image.fromarray(synthetic_mri(seed=9)).save(tree / "pred" / "p0.png")
    assert main(["evaluate", "--model", MODEL, str(tree)]) == 2
    _, err = capsys.readouterr()
    assert "pred/p0.png" in err
    assert main(["evaluate", "--model", MODEL, str(tree), "--skip-unlabelled", "--json", str(tmp_path / "r.json")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["unlabelled_skipped"] == 1 and r["metrics"]["n"] == 8 and "--skip-unlabelled" in r["command"]


def test_evaluate_imports_nothing_the_device_lacks(tree):
    script = f"""
import json, sys
from edge_runtime.cli import main
rc = main(["evaluate", "--model", {MODEL!r}, {str(tree)!r}])
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "cv2", "train", "convert", "onnxruntime", "scipy"))
print(json.dumps({{"rc": rc, "forbidden": bad}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"rc": 0, "forbidden": []}
