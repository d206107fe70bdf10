"""The main-job command: without BR35H it stops at once with where to put the data."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_missing_data_is_a_clear_message_not_a_traceback(tmp_path):
    env = dict(os.environ, BR35H_DATA=str(tmp_path / "nowhere"))
    r = subprocess.run([sys.executable, "-m", "reproduce", "--runs-dir", str(tmp_path / "runs")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "BR35H not found" in r.stderr and "kaggle" in r.stderr.lower()
    assert str(tmp_path / "nowhere") in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()


def _fake_run(tmp_path):
    import json

    from reproduce import RELEASED, ReproduceConfig

    cfg = ReproduceConfig(runs_dir=tmp_path / "runs", models_dir=tmp_path / "models", release=True,
                          package_models_dir=tmp_path / "package_models")
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
    from reproduce import summary

    text = summary(_fake_run(tmp_path))
    assert "keras     accuracy 99.00% (594/600) (95 % CI 97.84-99.63)" in text
    line = next(l for l in text.splitlines() if l.startswith("model_int8.tflite"))
    assert "98.50% (591/600, CI " in line and "agreement 99.50%" in line and "8.0 MiB" in line


def test_release_copies_the_shipped_artifacts(tmp_path):
    import json

    from reproduce import RELEASED, stage_release

    cfg = _fake_run(tmp_path)
    out = stage_release(cfg)
    for src, name in RELEASED.items():
        if (cfg.run_dir / src).is_file():
            assert (out / name).read_bytes() == (cfg.run_dir / src).read_bytes()
    assert (out / "android" / "model.json").is_file()
    link = cfg.package_models_dir / "br35h-mobilenetv2-int8.tflite"
    assert link.is_symlink() and link.read_bytes() == (out / "br35h-mobilenetv2-int8.tflite").read_bytes()
    manifest = json.loads((out / "RELEASE.json").read_text())
    assert manifest["default"] == "br35h-mobilenetv2"  # the multi-source model is not released there
    assert manifest["copies"]["android/model.tflite"] == "br35h-mobilenetv2-int8.tflite"


def test_stage_paths_are_relative_inside_the_working_directory(tmp_path, monkeypatch):
    """Reports written by ``make reproduce`` must not carry this machine's checkout path."""
    from reproduce import _arg

    monkeypatch.chdir(tmp_path)
    assert _arg(tmp_path / "splits" / "br35h-paper.csv") == Path("splits") / "br35h-paper.csv"
    outside = tmp_path.parent / "elsewhere" / "m.csv"
    assert _arg(outside) == outside


def test_report_names_the_training_backend_when_recorded():
    from train.report import _trained_on

    assert _trained_on({"backend": "jax", "devices": ["gpu:NVIDIA H200"]}) == " on Keras/jax, gpu:NVIDIA H200"
    assert _trained_on({"backend": "tensorflow"}) == " on Keras/tensorflow"
    assert _trained_on({"preset": "cpu"}) == ""


def test_protocol_table_points_at_committed_manifests_and_known_presets():
    from train.presets import PRESETS
    from reproduce import PROTOCOLS, ReproduceConfig

    for name, spec in PROTOCOLS.items():
        cfg = ReproduceConfig(protocol=name)
        assert cfg.manifest.is_file(), name
        assert spec.preset in PRESETS
        assert spec.init_from is None or spec.init_from in PROTOCOLS
    multi = ReproduceConfig(protocol="multi-paper")
    assert multi.run_dir.name == "multi-ft-multi-paper" and multi.spec.test_sources == ("br35h",)
    conv = multi.spec.convert_config()
    assert conv.domain.dims == 1280 and conv.test_sources == ("br35h",) and conv.gate.paper_protocol
    assert not ReproduceConfig(protocol="multi-grouped").spec.convert_config().gate.paper_protocol


def test_multi_source_release_ships_under_its_own_name_and_takes_the_android_bundle(tmp_path):
    from reproduce import released

    paper, multi = released(), released("multisource-mobilenetv2")
    assert paper["convert/model_int8.tflite"] == "br35h-mobilenetv2-int8.tflite"
    assert multi["convert/model_int8.tflite"] == "multisource-mobilenetv2-int8.tflite"
    assert set(paper.values()).isdisjoint(set(multi.values()) - {"android"})
    assert "convert/android" not in released("br35h-mobilenetv2", android_bundle=False)


def _fake_training(calls):
    """Stands in for ``train.pipeline.run``: records the call, writes a model and a report."""
    import json

    def run(cfg, manifest, run_dir, *, data_root=None, weights=None, resume=False, init=None, evaluate=True):
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        calls.append({"epochs": cfg.finetune_epochs, "resume": resume, "init": init})
        (run_dir / "model.keras").write_bytes(f"weights after {cfg.finetune_epochs} epochs".encode())
        (run_dir / "report.json").write_text(json.dumps({"metrics": {}}))
        (run_dir / "report.md").write_text("# report\n")
        return run_dir / "model.keras"

    return run


def test_training_is_redone_when_its_config_changes_not_when_files_are_touched(tmp_path, monkeypatch):
    """Freshness is a hash of the inputs: touching files skips nothing, editing a preset retrains
    and keeps the old run aside instead of deleting it."""
    import os

    import reproduce
    from train import pipeline as train_pipeline
    from train.presets import get_preset

    calls = []
    monkeypatch.setattr(train_pipeline, "run", _fake_training(calls))
    cfg = reproduce.ReproduceConfig(runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports")
    reproduce.stage_train(cfg)
    reproduce.stage_train(cfg)
    assert len(calls) == 1  # second call: same inputs, skipped
    later = os.stat(cfg.manifest).st_mtime + 3600
    os.utime(cfg.run_dir / "model.keras", (later, later))
    reproduce.stage_train(cfg)
    assert len(calls) == 1  # a newer file is not a changed input

    edited = get_preset("cpu", finetune_epochs=21)
    monkeypatch.setattr(reproduce.ReproduceConfig, "train_config", property(lambda self: edited))
    reproduce.stage_train(cfg)
    assert len(calls) == 2 and calls[-1]["epochs"] == 21 and not calls[-1]["resume"]
    kept = [p for p in cfg.runs_dir.iterdir() if p.name.startswith(f"{cfg.run_dir.name}.stale-")]
    assert len(kept) == 1 and (kept[0] / "model.keras").read_bytes() == b"weights after 20 epochs"


def test_an_interrupted_run_with_the_same_inputs_resumes(tmp_path, monkeypatch):
    import reproduce
    from train import pipeline as train_pipeline

    calls = []
    monkeypatch.setattr(train_pipeline, "run", _fake_training(calls))
    cfg = reproduce.ReproduceConfig(runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports")
    reproduce.write_stamp(cfg.run_dir, "train", reproduce.train_inputs(cfg))
    (cfg.run_dir / "state.json").write_text("{}")  # what an interrupted training leaves
    reproduce.stage_train(cfg)
    assert calls[-1]["resume"] is True
    assert not [p for p in cfg.runs_dir.iterdir() if ".stale-" in p.name]


def test_a_failing_stage_stops_the_run_with_its_reason(tmp_path, monkeypatch, capsys):
    import reproduce
    from train import pipeline as train_pipeline

    def broken(*args, **kwargs):
        raise ValueError("splits/x.csv: row 3 has no label")

    monkeypatch.setattr(train_pipeline, "run", broken)
    monkeypatch.setattr(reproduce, "stage_data", lambda cfg: None)
    converted = []
    monkeypatch.setattr(reproduce, "stage_convert", lambda cfg: converted.append(cfg) or [])
    cfg = reproduce.ReproduceConfig(runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports")
    assert reproduce.run(cfg) == 1
    err = capsys.readouterr().err
    assert "[train] failed: ValueError: splits/x.csv: row 3 has no label" in err
    assert not converted
