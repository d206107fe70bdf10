"""``predict`` outputs and inputs: checked before the model loads, never destroyed, never
shared; folders walked once per real file; threads and empty inputs refused clearly."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
from PIL import Image

import edge_runtime.cli as cli
from edge_runtime.cli import main
from edge_runtime.outputs import OutputLock
from edge_runtime.walk import expand, images_in
from tests.conftest import synthetic_mri

MODEL = str(Path(__file__).parent / "assets" / "tiny_int8.tflite")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def scans(tmp_path) -> Path:
    root = tmp_path / "scans"
    root.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_mri(seed=i)).save(root / f"s{i}.jpg")
    return root


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _no_model(monkeypatch):
    """Fail loudly if the model is loaded: output checks must come first."""
    def boom(args):
        raise AssertionError("model loaded before the output was checked")
    monkeypatch.setattr(cli, "_classifier", boom)


def test_output_over_an_input_scan_is_refused_before_the_model_loads(capsys, scans, monkeypatch):
    _no_model(monkeypatch)
    scan = scans / "s0.jpg"
    before = scan.read_bytes()
    rc, out, err = _run(capsys, "predict", "--model", MODEL, str(scans), "-o", str(scan))
    assert rc == 2 and "image extension" in err and scan.read_bytes() == before
    notes = scans / "notes.dat"
    notes.write_text("keep me")
    rc, _, err = _run(capsys, "predict", "--model", MODEL, str(notes), "-o", str(scans / ".." / "scans" / "notes.dat"))
    assert rc == 2 and "is also an input" in err and notes.read_text() == "keep me"


@pytest.mark.parametrize("where, message", [("missing", "does not exist"), ("is-a-folder", "is a folder"),
                                            ("fifo", "not a regular file")])
def test_unusable_output_is_exit_2_before_the_model_loads(capsys, scans, tmp_path, monkeypatch, where, message):
    _no_model(monkeypatch)
    target = {"missing": tmp_path / "nope" / "out.jsonl", "is-a-folder": tmp_path, "fifo": tmp_path / "pipe"}[where]
    if where == "fifo":
        os.mkfifo(target)
    rc, out, err = _run(capsys, "predict", "--model", MODEL, str(scans), "-o", str(target))
    assert rc == 2 and out == "" and "Traceback" not in err and message in err


def test_failed_rerun_keeps_previous_results(capsys, scans, tmp_path):
    out = tmp_path / "out.jsonl"
    rc, _, _ = _run(capsys, "predict", "--model", MODEL, "--threads", "1", "--jsonl", str(scans), "-o", str(out))
    first = out.read_bytes()
    assert rc == 0 and len(first.splitlines()) == 3
    bad_model = tmp_path / "bad.tflite"
    bad_model.write_bytes(b"not a model")
    rc, _, err = _run(capsys, "predict", "--model", str(bad_model), "--jsonl", str(scans), "-o", str(out))
    assert rc == 2 and out.read_bytes() == first
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left


def test_interrupted_run_keeps_previous_results_and_the_partial_ones(capsys, scans, tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    out.write_text('{"previous": true}\n')
    real = cli.classify_record
    calls = []

    def interrupt_on_third(clf, path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(clf, path)

    monkeypatch.setattr(cli, "classify_record", interrupt_on_third)
    rc, _, err = _run(capsys, "predict", "--model", MODEL, "--threads", "1", "--jsonl", str(scans), "-o", str(out))
    assert rc == 130 and out.read_text() == '{"previous": true}\n'
    partial = tmp_path / "out.jsonl.partial"
    assert len(partial.read_text().splitlines()) == 2 and str(partial) in err


def test_second_concurrent_writer_is_refused(capsys, scans, tmp_path, monkeypatch):
    _no_model(monkeypatch)
    out = tmp_path / "out.jsonl"
    lock = OutputLock(out)  # another process writing this output holds the same lock
    try:
        rc, _, err = _run(capsys, "predict", "--model", MODEL, str(scans), "-o", str(out))
    finally:
        lock.close()
    assert rc == 2 and "being written by another" in err and not out.exists()


def test_two_concurrent_processes_leave_one_complete_output(scans, tmp_path):
    out = tmp_path / "out.jsonl"
    for i in range(3, 40):
        (scans / f"s{i}.jpg").write_bytes((scans / "s0.jpg").read_bytes())
    cmd = [sys.executable, "-m", "edge_runtime", "predict", "--model", MODEL, "--threads", "1", "--jsonl",
           str(scans), "-o", str(out)]
    procs = [subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(60), p.stderr.read()) for p in procs]
    rcs = sorted(rc for rc, _ in results)
    lines = out.read_text().splitlines()
    assert len(lines) == 40 and all(json.loads(x)["error"] is None for x in lines)  # never interleaved
    assert rcs in ([0, 0], [0, 2])  # one after the other, or the second refused
    if rcs == [0, 2]:
        assert any("being written by another" in e for _, e in results)


def _loops(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    Image.fromarray(synthetic_mri(seed=7)).save(root / "a" / "one.jpg")
    os.symlink("..", root / "a" / "b" / "up")
    os.symlink("../..", root / "a" / "b" / "top")
    os.symlink(root / "a" / "one.jpg", root / "a" / "b" / "same.jpg")


def test_symlink_loops_visit_each_real_file_once(tmp_path, capsys):
    _loops(tmp_path)
    assert [p.name for p in images_in(tmp_path)] == ["one.jpg"]
    for arg in (str(tmp_path), str(tmp_path / "**" / "*.jpg"), str(tmp_path / "a" / "**")):
        assert len(expand([arg]).files) == 1, arg
    rc, out, _ = _run(capsys, "predict", "--model", MODEL, "--threads", "1", "--jsonl", str(tmp_path / "**" / "*.jpg"))
    assert rc == 0 and len(out.splitlines()) == 1


def test_two_loops_do_not_hang_predict(tmp_path):
    _loops(tmp_path)
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "again")
    proc = subprocess.run([sys.executable, "-m", "edge_runtime", "predict", "--model", MODEL, "--threads", "1",
                           "--jsonl", str(tmp_path / "**")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1


def test_directory_named_like_an_image_is_walked(capsys, tmp_path):
    d = tmp_path / "x.jpg"
    d.mkdir()
    Image.fromarray(synthetic_mri(seed=1)).save(d / "inner.png")
    rc, out, _ = _run(capsys, "predict", "--model", MODEL, "--threads", "1", "--jsonl", str(d))
    assert rc == 0 and json.loads(out)["path"] == str(d / "inner.png")
    rc, out, _ = _run(capsys, "predict", "--model", MODEL, "--threads", "1", "--jsonl", str(tmp_path / "*.jpg"))
    assert rc == 0 and json.loads(out)["path"] == str(d / "inner.png")  # the same whether named or globbed


def test_empty_input_is_exit_1_with_a_message(capsys, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.jpg").mkdir()
    _no_model(monkeypatch)
    for arg in ("empty", "x.jpg"):
        rc, out, err = _run(capsys, "predict", "--model", MODEL, str(tmp_path / arg))
        assert rc == 1 and "no image files found" in err and "0 images found" in err


@pytest.mark.parametrize("threads", ["0", "1000"])
def test_threads_are_capped_at_the_cpu_count(capsys, scans, threads, monkeypatch):
    _no_model(monkeypatch)
    rc, out, err = _run(capsys, "predict", "--model", MODEL, "--threads", threads, str(scans))
    assert rc == 2 and f"--threads {threads}: must be between 1 and {os.cpu_count()}" in err


def test_library_refuses_hundreds_of_threads():
    from edge_runtime.classifier import Classifier
    from edge_runtime.interpreter import MAX_THREADS

    with pytest.raises(ValueError, match=f"between 1 and {MAX_THREADS}"):
        Classifier(MODEL, num_threads=600)
