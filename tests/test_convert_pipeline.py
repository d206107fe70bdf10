"""End to end on tiny models (seconds): the CLI converts, evaluates, gates, reports and bundles.

The passing model is a hand-set brightness classifier; the broken one separates classes by a
brightness difference far below one int8 step, so its int8 artifacts really fail (no mocking).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import zipfile

import numpy as np
import pytest

from tests.convert_helpers import brightness_model, fake_loader, write_tiny_manifest

pytestmark = pytest.mark.slow


def run_cli(tmp: Path, subtle: bool, *extra: str) -> tuple[int, Path]:
    from convert import __main__ as cli, pipeline

    model_path = tmp / "model.keras"
    brightness_model(subtle).save(model_path)
    manifest = write_tiny_manifest(tmp / "tiny-paper.csv")
    out = tmp / "convert"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "default_loader", lambda: fake_loader(subtle))
        rc = cli.main(["--model", str(model_path), "--manifest", str(manifest), "--out", str(out),
                       "--calibration-size", "16", *extra])
    return rc, out


@pytest.fixture(scope="module")
def passing(tmp_path_factory) -> Path:
    rc, out = run_cli(tmp_path_factory.mktemp("pass"), subtle=False)
    assert rc == 0, (out / "conversion_report.md").read_text()
    return out


ARTIFACTS = ("model_fp32.tflite", "model_fp16.tflite", "model_dynamic.tflite", "model_int8.tflite",
             "model.onnx", "model_int8.onnx")


def test_every_artifact_is_written_and_evaluated(passing):
    from convert.formats import FORMATS

    report = json.loads((passing / "conversion_report.json").read_text())
    assert tuple(report["artifacts"]) == ARTIFACTS == tuple(f.file for f in FORMATS)  # in the table's order
    for name, a in report["artifacts"].items():
        assert a["bytes"] == (passing / name).stat().st_size > 0
        assert a["metrics"]["n"] == report["keras"]["n"] == 16
        assert a["metrics"]["agreement"] == 1.0, name
    assert report["gate_failures"] == [] and report["config"]["gate"]["paper_protocol"] is True
    assert report["config"]["onnx_recipe"]["weight_type"] == "uint8"
    isa = report["artifacts"]["model_int8.onnx"]["isa_check"]  # same file with exact int32 (VNNI) arithmetic
    assert isa["metrics"]["accuracy"] == 1.0 and isa["class_changes_vs_native"] == 0
    from edge_runtime.machine import machine_info

    assert machine_info()["isa_level"] in report["machine"]  # names the CPU's vector level and features
    assert "PASS" in (passing / "conversion_report.md").read_text()


def test_int8_is_full_integer_with_raw_pixel_input(passing):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(passing / "model_int8.tflite"))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.uint8 and out["dtype"] == np.uint8
    assert inp["quantization"] == (1.0, 0)  # calibrated on 0..255 crops: the uint8 input is the raw pixel
    float_ops = [d for d in it.get_tensor_details() if d["dtype"] == np.float32]
    assert float_ops == [], [d["name"] for d in float_ops]
    # (holds for --int8-keep-float 0; with K > 0 the K kept convs are float: tests/test_convert_sensitivity.py)
    report = json.loads((passing / "conversion_report.json").read_text())
    assert report["config"]["quant"]["keep_float"] == 0
    assert report["int8_float_layers"] == {"keep_float": 0, "fully_integer": True, "float_ops": []}
    assert "**fully integer**" in (passing / "conversion_report.md").read_text()


def test_calibration_list_holds_only_train_images(passing):
    lines = (passing / "calibration.txt").read_text().splitlines()[1:]
    assert len(lines) == 16 and all("/train" in l for l in lines)


def test_metadata_reads_back_with_labels_and_normalisation(passing):
    from convert import metadata

    for name in ("model_int8.tflite", "model_fp32.tflite"):
        s = metadata.summarize((passing / name).read_bytes())
        assert s.labels == ("no", "yes") and s.mean == (0.0,) and s.std == (1.0,) and s.color_space == "RGB"


def test_android_bundle_matches_files_and_real_tensors(passing):
    from convert import android, metadata
    from edge_runtime.config import CropConfig

    bundle = passing / "android"
    manifest = json.loads((bundle / "model.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest, name
    model = (bundle / "model.tflite").read_bytes()
    assert model == (passing / "model_int8.tflite").read_bytes()
    assert manifest["tensors"] == android.tensor_spec(model)
    assert tuple(manifest["labels"]) == metadata.summarize(model).labels
    assert (bundle / "labels.txt").read_text().split() == manifest["labels"]
    assert manifest["preprocessing"]["crop_fingerprint"] == CropConfig().fingerprint()
    report = json.loads((passing / "conversion_report.json").read_text())
    assert manifest["evaluation"]["accuracy"] == report["artifacts"]["model_int8.tflite"]["metrics"]["accuracy"]
    with zipfile.ZipFile(passing / "android.zip") as z:
        assert sorted(z.namelist()) == sorted(f"android/{n}" for n in (*manifest["files"], "model.json"))
        assert z.read("android/model.tflite") == model


def test_embedding_metadata_twice_keeps_one_entry_and_the_outputs(passing):
    from ai_edge_litert import schema_py_generated as tfl

    from convert import metadata
    from convert.config import BundleInfo
    from convert.runtimes import TFLiteRunner

    model = (passing / "model_int8.tflite").read_bytes()
    again = metadata.embed(model, metadata.build_metadata(BundleInfo(version="9.9")), {"labels.txt": b"no\nyes\n"})
    names = [tfl.Model.GetRootAs(again, 0).Metadata(i).Name() for i in range(tfl.Model.GetRootAs(again, 0).MetadataLength())]
    assert names.count(b"TFLITE_METADATA") == 1 and metadata.summarize(again).version == "9.9"
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    assert np.array_equal(TFLiteRunner(model).predict(x), TFLiteRunner(again).predict(x))


def test_gate_fails_a_model_that_int8_breaks(tmp_path, capsys):
    rc, out = run_cli(tmp_path, True, "--no-onnx-int8")
    err = capsys.readouterr().err
    assert rc == 1
    assert "GATE FAILED: model_int8.tflite" in err
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["keras"]["accuracy"] == 1.0 and report["artifacts"]["model_fp32.tflite"]["metrics"]["accuracy"] == 1.0
    assert json.loads((out / "android" / "model.json").read_text())["evaluation"]["gate_passed"] is False


def test_missing_model_file_is_named(tmp_path, capsys):
    from convert.__main__ import main

    assert main(["--model", str(tmp_path / "nope.keras"), "--manifest", "x.csv", "--out", str(tmp_path)]) == 2
    assert "nope.keras" in capsys.readouterr().err


def test_selective_int8_keeps_integer_io_and_runs_denylisted_ops_in_float(tmp_path):
    """(Denylisting the first or last op would leave that end float: nothing to retype.)"""
    from ai_edge_litert.interpreter import Interpreter

    from convert import calibration, tflite_export
    from convert.config import QuantizationConfig

    saved = tflite_export.export_saved_model(brightness_model(), tmp_path / "sm")
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.float32)
    flat = tflite_export.convert(saved, "int8", calibration.representative_dataset(x),
                                 QuantizationConfig(denylisted_ops=("MEAN",)))
    it = Interpreter(model_content=flat)
    assert it.get_input_details()[0]["dtype"] == np.uint8 and it.get_output_details()[0]["dtype"] == np.uint8
    mean_ops = [op for op in it._get_ops_details() if op["op_name"] == "MEAN"]
    assert mean_ops and all(it.get_tensor_details()[t]["dtype"] == np.float32
                            for op in mean_ops for t in op["outputs"])


@pytest.mark.parametrize("variant, qcfg, message", [
    ("int8", {"keep_float": 2}, "int8 TFLite cannot honour keep_float=2 without the ranked convs"),
    ("dynamic", {"denylisted_nodes": ("pool",)}, "dynamic TFLite cannot honour denylisted_nodes"),
    ("fp16", {"float_tail": True}, "fp16 TFLite cannot honour float_tail"),
])
def test_an_option_the_tflite_variant_cannot_honour_is_refused(tmp_path, variant, qcfg, message):
    """``keep_float`` needs convs ranked on the Keras model, which a SavedModel conversion cannot do;
    the float-op options mean nothing to a variant without int8 ops. Refused before converting."""
    from convert import calibration, tflite_export
    from convert.config import QuantizationConfig

    saved = tflite_export.export_saved_model(brightness_model(), tmp_path / "sm")
    rep = calibration.representative_dataset(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=message):
        tflite_export.convert(saved, variant, rep, QuantizationConfig(**qcfg))


def test_an_option_no_exported_format_honours_is_refused(tmp_path):
    """An ONNX int8 recipe with the ONNX int8 turned off would change nothing: refused before any work."""
    from convert import pipeline
    from convert.config import FULL_RANGE_ONNX_RECIPE, ConvertConfig
    from convert.formats import refuse_unhonoured

    refuse_unhonoured(ConvertConfig(onnx_recipe=FULL_RANGE_ONNX_RECIPE))  # the ONNX int8 takes it
    manifest = write_tiny_manifest(tmp_path / "tiny.csv")
    with pytest.raises(ValueError, match=r"onnx_recipe=.*ONNX int8 \(model_int8.onnx\)"):
        pipeline.run(brightness_model(), manifest, tmp_path / "out",
                     ConvertConfig(onnx_int8=False, onnx_recipe=FULL_RANGE_ONNX_RECIPE), loader=fake_loader())
    assert not list((tmp_path / "out").iterdir())


def test_test_source_restricts_the_gated_rows_and_an_absent_source_is_refused(tmp_path):
    """Rows without a source column are BR35H's: asking for another source finds no test rows and
    stops before anything is exported."""
    with pytest.raises(ValueError, match="no test rows from sources"):
        run_cli(tmp_path, False, "--no-onnx-int8", "--test-source", "nickparvar")
    assert not list((tmp_path / "convert").glob("model*"))
