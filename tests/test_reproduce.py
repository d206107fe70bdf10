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


def _fake_run(tmp_path):
    import json

    from train.reproduce import RELEASED, ReproduceConfig

    cfg = ReproduceConfig(runs_dir=tmp_path / "runs", models_dir=tmp_path / "models", release=True)
    run = cfg.run_dir
    (run / "convert" / "android").mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(
        {"metrics": {"accuracy": 0.99, "correct": 594, "n": 600, "accuracy_ci95": [0.9784, 0.9963]}}))
    metrics = {"accuracy": 0.985, "n": 600, "agreement": 0.995}
    (run / "convert" / "conversion_report.json").write_text(json.dumps(
        {"artifacts": {"model_int8.tflite": {"bytes": 8 * 2**20, "metrics": metrics}}, "gate_failures": []}))
    for src in RELEASED:
        path = run / src
        if not path.exists():
            path.write_bytes(src.encode())
    (run / "convert" / "android" / "model.json").write_text("{}")
    return cfg


def test_summary_gives_each_artifact_with_its_interval(tmp_path):
    from train.reproduce import summary

    text = summary(_fake_run(tmp_path))
    assert "keras     accuracy 99.00% (594/600) (95 % CI 97.84-99.63)" in text
    line = next(l for l in text.splitlines() if l.startswith("model_int8.tflite"))
    assert "98.50% (591/600, CI " in line and "agreement 99.50%" in line and "8.0 MiB" in line


def test_release_copies_the_shipped_artifacts(tmp_path):
    from train.reproduce import RELEASED, stage_release

    cfg = _fake_run(tmp_path)
    out = stage_release(cfg)
    for src, name in RELEASED.items():
        if (cfg.run_dir / src).is_file():
            assert (out / name).read_bytes() == (cfg.run_dir / src).read_bytes()
    assert (out / "android" / "model.json").is_file()


def test_stage_paths_are_relative_inside_the_working_directory(tmp_path, monkeypatch):
    """Reports written by ``make reproduce`` must not carry this machine's checkout path."""
    from train.reproduce import _arg

    monkeypatch.chdir(tmp_path)
    assert _arg(tmp_path / "splits" / "br35h-paper.csv") == str(Path("splits") / "br35h-paper.csv")
    outside = tmp_path.parent / "elsewhere" / "m.csv"
    assert _arg(outside) == str(outside)


def test_report_names_the_training_backend_when_recorded():
    from train.report import _trained_on

    assert _trained_on({"backend": "jax", "devices": ["gpu:NVIDIA H200"]}) == " on Keras/jax, gpu:NVIDIA H200"
    assert _trained_on({"backend": "tensorflow"}) == " on Keras/tensorflow"
    assert _trained_on({"preset": "cpu"}) == ""


def test_protocol_table_points_at_committed_manifests_and_known_presets():
    from train.presets import PRESETS
    from train.reproduce import PROTOCOLS, ReproduceConfig

    for name, spec in PROTOCOLS.items():
        cfg = ReproduceConfig(protocol=name)
        assert cfg.manifest.is_file(), name
        assert spec.preset in PRESETS
        assert spec.init_from is None or spec.init_from in PROTOCOLS
    multi = ReproduceConfig(protocol="multi-paper")
    assert multi.run_dir.name == "multi-ft-multi-paper" and multi.spec.test_sources == ("br35h",)
    from convert.__main__ import parse_args

    args = parse_args(["--model", "m.keras", "--manifest", "m.csv", "--out", "o", *multi.spec.convert_args])
    assert args.domain_dims == 1280  # the options are ones the converter knows


def test_multi_source_release_ships_under_its_own_name_and_takes_the_android_bundle(tmp_path):
    from train.reproduce import released

    paper, multi = released(), released("multisource-mobilenetv2")
    assert paper["convert/model_int8.tflite"] == "br35h-mobilenetv2-int8.tflite"
    assert multi["convert/model_int8.tflite"] == "multisource-mobilenetv2-int8.tflite"
    assert set(paper.values()).isdisjoint(set(multi.values()) - {"android"})
    assert "convert/android" not in released("br35h-mobilenetv2", android_bundle=False)
