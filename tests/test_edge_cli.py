"""CLI: predict (table / JSONL / CSV; files, folders, globs; exit status), bench, watch."""

import csv
import io
import json
from pathlib import Path
import threading
import time

import pytest
from PIL import Image

from edge_runtime.classifier import Classifier
from edge_runtime.cli import main
from edge_runtime.ledger import logged_paths
from edge_runtime.watch import WatchConfig, watch
from tests.conftest import synthetic_mri

MODEL = str(Path(__file__).parent / "assets" / "tiny_int8.tflite")


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "scans"
    (root / "sub").mkdir(parents=True)
    for i, rel in enumerate(["a.jpg", "b.png", "sub/c.jpg"]):
        Image.fromarray(synthetic_mri(seed=i, tumour=i % 2 == 0)).save(root / rel)
    (root / "readme.txt").write_text("not an image, ignored inside folders")
    return root


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_predict_folder_recursive_jsonl(capsys, folder):
    rc, out, err = _run(capsys, "predict", "--model", MODEL, "--threads", "1", "--jsonl", str(folder))
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and sorted(Path(r["path"]).name for r in rows) == ["a.jpg", "b.png", "c.jpg"]
    assert all(r["label"] in ("yes", "no") and 0 <= r["score"] <= 1 and r["error"] is None for r in rows)
    assert "3 classified, 0 failed" in err and "1 threads" in err


def test_predict_glob_and_bad_file_csv(capsys, folder, tmp_path):
    bad = folder / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really")
    rc, out, err = _run(capsys, "predict", "--model", MODEL, "--csv", str(folder / "*.jpg"), str(tmp_path / "missing.png"))
    rows = list(csv.DictReader(io.StringIO(out)))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert rc == 1 and set(by_name) == {"a.jpg", "broken.jpg", "missing.png"}
    assert by_name["a.jpg"]["error"] == "" and by_name["a.jpg"]["label"] in ("yes", "no")
    assert by_name["broken.jpg"]["error"] and by_name["missing.png"]["error"].startswith("cannot read file")
    assert "1 classified, 2 failed" in err


def test_predict_table_to_file(capsys, folder, tmp_path):
    out_file = tmp_path / "out.txt"
    rc, _, _ = _run(capsys, "predict", "--model", MODEL, str(folder / "a.jpg"), "-o", str(out_file))
    lines = out_file.read_text().splitlines()
    assert rc == 0 and lines[0].split()[:2] == ["label", "score"] and "a.jpg" in lines[1]


def test_no_model_is_a_clear_error(capsys, folder, monkeypatch):
    monkeypatch.delenv("BR35H_EDGE_MODEL", raising=False)
    monkeypatch.setattr("edge_runtime.default_model.candidates", lambda: [Path("/nowhere/m.tflite")])
    rc, out, err = _run(capsys, "predict", str(folder))
    assert rc == 2 and out == "" and "--model" in err and "/nowhere/m.tflite" in err


def test_bench_reports_stats_threads_backend(capsys, tmp_path):
    rc, out, _ = _run(capsys, "bench", "--model", MODEL, "--threads", "2", "--runs", "5", "--warmup", "1",
                      "--json", str(tmp_path / "b.json"))
    res = json.loads((tmp_path / "b.json").read_text())
    assert rc == 0 and res["num_threads"] == 2 and res["backend"] == "ai-edge-litert"
    s = res["inference"]
    assert s["n"] == 5 and s["min_ms"] <= s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert res["machine"]["cpu"] and "p99" in out and "threads 2" in out


def test_watch_once_appends_and_resumes(folder, tmp_path):
    clf = Classifier(MODEL, 1)
    log = tmp_path / "log" / "results.jsonl"
    cfg = WatchConfig(folder, log, interval=0.01, recursive=True)
    assert watch(clf, cfg, once=True).appended == 3
    Image.fromarray(synthetic_mri(seed=9)).save(folder / "d.jpg")
    (folder / "e.jpg").write_bytes(b"")  # a bad file gets a record too
    assert watch(clf, cfg, once=True).appended == 2  # restarted watcher: only the new files
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(rows) == 5 and len(logged_paths(log)) == 5
    assert [r["error"] is None for r in rows[3:]] == [True, False]


def test_watch_picks_up_new_files_while_running_csv(folder, tmp_path):
    clf = Classifier(MODEL, 1)
    log = tmp_path / "results.csv"
    stop = threading.Event()
    seen = []
    cfg = WatchConfig(folder, log, interval=0.02)
    t = threading.Thread(target=watch, args=(clf, cfg, stop.is_set), kwargs={"on_record": seen.append})
    t.start()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:  # a.jpg, b.png (not recursive)
            time.sleep(0.02)
        Image.fromarray(synthetic_mri(seed=11)).save(folder / "new.jpg")
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(5)
    rows = list(csv.DictReader(log.open()))
    assert [Path(r["path"]).name for r in rows] == ["a.jpg", "b.png", "new.jpg"]
    assert all(r["label"] in ("yes", "no") for r in rows)


def test_watch_cli_once(capsys, folder, tmp_path):
    rc, _, err = _run(capsys, "watch", str(folder), "-o", str(tmp_path / "w.jsonl"), "--once", "--model", MODEL)
    assert rc == 0 and len((tmp_path / "w.jsonl").read_text().splitlines()) == 2 and "a.jpg" in err
    rc, _, err = _run(capsys, "watch", str(tmp_path / "nope"), "-o", str(tmp_path / "w.jsonl"), "--model", MODEL)
    assert rc == 2 and "not a folder" in err


def test_python_dash_m_runs_the_cli(folder):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "edge_runtime", "predict", "--model", MODEL, "--jsonl", str(folder / "a.jpg")],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"] == str(folder / "a.jpg") and "ai-edge-litert" in proc.stderr


def test_write_records_refuses_an_unknown_format_instead_of_printing_a_table():
    import io

    from edge_runtime.records import write_records

    with pytest.raises(ValueError, match="output format must be one of"):
        write_records([], "xml", io.StringIO())
