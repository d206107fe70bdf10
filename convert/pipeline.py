"""One call: trained Keras model -> every artifact, each evaluated in its runtime, gated, reported, bundled."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
import tempfile
import time
from typing import Callable, Protocol

import numpy as np

from convert import (android, bias_correction, calibration, contract, domain, formats, metadata, onnx_export, report,
                     sensitivity, tflite_export)
from convert.config import ConvertConfig
from convert.evaluate import Metrics, score
from convert.gate import gate_failures
from convert.runtimes import keras_outputs, open_artifact
from edge_runtime.config import LABELS, CropConfig
from edge_runtime.machine import describe
from train.data.manifest import read_manifest


class Crops(Protocol):
    """What ``train.data.cache.load_crops`` returns (only the fields used here)."""

    x: np.ndarray
    y: np.ndarray
    paths: list[str]


Loader = Callable[..., Crops]


def default_loader() -> Loader:
    from train.data.cache import load_crops

    return load_crops


@dataclass(frozen=True)
class Result:
    report: dict
    failures: list[str]
    out_dir: Path


def run(model, manifest: str | Path, out_dir: str | Path, cfg: ConvertConfig = ConvertConfig(),
        data_root: str | Path | None = None, crop: CropConfig = CropConfig(), loader: Loader | None = None,
        command: str = "", log: Callable[[str], None] = print) -> Result:
    """Convert ``model`` (a Keras model or a ``.keras`` path) and evaluate on ``manifest``'s test split.

    With the domain check (``cfg.domain_mode``; on whenever the manifest has val rows unless
    ``off``), the exported network is ``convert.domain.build_checked_model``: calibrated
    probabilities plus the domain score as a second output; every artifact then carries its
    contract (``convert.contract``) with thresholds chosen on its own validation outputs.
    """
    import keras

    loader = loader or default_loader()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = str(model) if isinstance(model, (str, Path)) else getattr(model, "name", "in-memory model")
    if isinstance(model, (str, Path)):
        model = keras.saving.load_model(model, compile=False)

    rows = read_manifest(manifest)
    if cfg.domain_mode not in ("auto", "on", "off"):
        raise ValueError(f"domain_mode must be auto, on or off, got {cfg.domain_mode!r}")
    formats.refuse_unhonoured(cfg)
    has_val = any(r.split == "val" for r in rows)
    with_domain = cfg.domain_mode == "on" or (cfg.domain_mode == "auto" and has_val)
    chosen = calibration.select_calibration(rows, cfg.quant)
    calibration.write_calibration_list(chosen, out / "calibration.txt", cfg.quant)
    train = loader(manifest, split="train", data_root=data_root, cfg=crop)
    calib_x = calibration.pick_arrays(train.x, train.paths, chosen).astype(np.float32)
    test = loader(manifest, split="test", data_root=data_root, cfg=crop)
    test_x, test_y = test.x.astype(np.float32), np.asarray(test.y)
    test_src = getattr(test, "sources", None) or None
    if cfg.test_sources:
        keep = np.isin(np.asarray(test_src or ["br35h"] * len(test_y)), cfg.test_sources)
        if not keep.any():
            raise ValueError(f"{manifest}: no test rows from sources {cfg.test_sources}")
        test_x, test_y = test_x[keep], test_y[keep]
        test_src = [s for s, k in zip(test_src or ["br35h"] * len(keep), keep) if k]
        log(f"test rows restricted to sources {', '.join(cfg.test_sources)}: {int(keep.sum())} of {len(keep)}")
    val = loader(manifest, split="val", data_root=data_root, cfg=crop) if has_val else None
    log(f"calibration: {len(calib_x)} train images; test: {len(test_x)} images"
        + (f"; val: {len(val.y)} images" if val is not None else "; no val split"))

    domain_info, temperature = None, 1.0
    if with_domain:
        labelled = None
        if cfg.domain.views.labels:
            from convert.views import load_labelled

            held_out = {r.sha256 for r in rows if r.split in ("val", "test")}
            labelled = load_labelled(cfg.domain.views, held_out, out, loader, data_root, crop)
        attached = domain.attach(model, train, val, cfg.domain, log=log, labelled=labelled)
        model, temperature, domain_info = attached.model, attached.temperature, attached.info
        if isinstance(model_path, str) and model_path.endswith(".keras"):
            domain_info["keras_model"] = str(out / "model_checked.keras")
            model.save(out / "model_checked.keras")
    else:
        log("domain check: OFF (no val split or --no-domain): artifacts carry a contract without a domain threshold")
    qcfg = replace(cfg.quant, float_tail=with_domain)

    ref, ref_dom = keras_outputs(model, test_x)
    keras_metrics = score(ref, test_y, ref)
    log(f"keras: accuracy {100 * keras_metrics.accuracy:.2f}%")
    calib_info = _calibration_report(ref, test_y, test_src, temperature) if with_domain else None

    recentre = None
    if with_domain and attached.gate is not None:
        recentre = (labelled.x, attached.labelled_features, attached.gate)
    files, bc_info, sel_info = _export_all(model, out, replace(cfg, quant=qcfg), calib_x, log, with_domain, recentre)
    if recentre is not None:
        domain_info["views"]["recentred"] = sel_info.pop("view_recentred")
    results: dict[str, dict] = {}
    metrics: dict[str, Metrics] = {}
    contracts: dict[str, dict] = {}
    probs: dict[str, np.ndarray] = {}
    for name, path in files.items():
        t = time.perf_counter()
        runner = open_artifact(path, cfg.num_threads)
        probs[name], dom = runner.predict_outputs(test_x)
        metrics[name] = score(probs[name], test_y, ref)
        val_probs, val_dom = runner.predict_outputs(val.x.astype(np.float32)) if val is not None else (None, None)
        contracts[name] = contract.build(LABELS, crop, cfg.bundle, temperature, val_probs,
                                         None if val is None else np.asarray(val.y), val_dom, cfg.domain.accept,
                                         extra={"artifact": name},
                                         val_sources=None if val is None else (getattr(val, "sources", None) or None),
                                         view_gate=_view_gate_contract(domain_info))
        _write_contract(path, contracts[name], cfg, with_domain)
        results[name] = {"bytes": path.stat().st_size, "sha256": android.sha256(path), "metrics": metrics[name].to_dict(),
                         "input": _input_info(path), "eval_seconds": round(time.perf_counter() - t, 2),
                         "contract": {k: contracts[name][k] for k in ("operating_points", "domain")}}
        if dom is not None and contracts[name]["domain"] is not None:
            results[name]["test_domain_accepted"] = float((dom >= contracts[name]["domain"]["threshold"]).mean())
        log(f"{name}: accuracy {100 * metrics[name].accuracy:.2f}%, agreement {100 * metrics[name].agreement:.2f}%, "
            f"max prob diff {metrics[name].max_prob_diff:.4f}, {path.stat().st_size / 1024:.0f} KiB"
            + (f", test crops in domain {100 * results[name]['test_domain_accepted']:.2f}%"
               if "test_domain_accepted" in results[name] else ""))

    gated = dict(metrics)
    if "model_int8.onnx" in files:
        exact, results["model_int8.onnx"]["isa_check"] = _onnx_isa_check(files["model_int8.onnx"], probs["model_int8.onnx"],
                                                                         test_x, test_y, ref, cfg.num_threads)
        gated[EXACT_ONNX] = exact
        log(f"{EXACT_ONNX}: accuracy {100 * exact.accuracy:.2f}%, "
            f"largest change vs this CPU's kernels {results['model_int8.onnx']['isa_check']['max_prob_diff_vs_native']:.4f}")
    failures = gate_failures(keras_metrics.accuracy, gated, cfg.gate)
    int8 = out / "model_int8.tflite"
    android.write_bundle(out / "android", int8.read_bytes(), LABELS, cfg.bundle, crop, evaluation={
        "manifest": str(manifest), "split": "test", "n": metrics[int8.name].n,
        "accuracy": metrics[int8.name].accuracy, "agreement_with_keras": metrics[int8.name].agreement,
        "keras_accuracy": keras_metrics.accuracy, "confusion": metrics[int8.name].confusion,
        "gate_passed": not any(f.startswith(int8.name) for f in failures)}, contract=contracts[int8.name])
    rep = {
        "model": model_path, "command": command, "machine": describe(), "manifest": str(manifest),
        "config": cfg.to_dict(), "crop": crop.to_dict(), "tools": report.tool_versions(),
        "keras": keras_metrics.to_dict(),
        "keras_size": Path(model_path).stat().st_size if Path(model_path).is_file() else 0,
        "calibration": {"n": len(chosen), "file": "calibration.txt", **{k: cfg.quant.to_dict()[k] for k in
                                                                        ("selection", "seed", "io_type")}},
        "bias_correction": bc_info,
        "int8_float_layers": sel_info,
        "domain": domain_info, "probability_calibration": calib_info,
        "artifacts": results, "gate_failures": failures,
    }
    report.write(rep, out)
    return Result(rep, failures, out)


def _view_gate_contract(domain_info: dict | None) -> dict | None:
    """What the contract says of the view gate: a negative score means "view not supported", its
    magnitude the domain score the slice would have had."""
    views = (domain_info or {}).get("views")
    if not views:
        return None
    return {"refused_when": "domain_score < 0", "views": views["views"],
            "supported": [r["view"] for r in views["support"] if r["supported"]],
            "supported_probability_threshold": views["threshold"], "val_support": views["support"]}


def _write_contract(path: Path, contract_dict: dict, cfg: ConvertConfig, with_domain: bool) -> None:
    """Embed the artifact's contract: TFLite associated file (metadata re-packed) or ONNX props."""
    if path.suffix == ".tflite":
        files = {metadata.LABELS_FILE: metadata.labels_file(LABELS)}
        if with_domain:
            files[metadata.DOMAIN_LABELS_FILE] = metadata.DOMAIN_LABELS
        meta = metadata.build_metadata(cfg.bundle, domain_output=with_domain)
        path.write_bytes(contract.embed_tflite(path.read_bytes(), contract_dict, meta, files))
    else:
        contract.embed_onnx(path, contract_dict)


def _calibration_report(probs: np.ndarray, y: np.ndarray, sources, temperature: float) -> dict:
    """ECE and reliability tables on the test split before/after the folded temperature, per source.

    "Before" is recovered from the calibrated probabilities (logits = T log p up to a constant)."""
    from convert.temperature import reliability, softmax

    logits = temperature * np.log(np.clip(probs.astype(np.float64), 1e-300, None))
    before = softmax(logits, 1.0)
    groups = {"all": np.ones(len(y), bool)}
    if sources is not None:
        src = np.asarray(sources)
        groups.update({str(s): src == s for s in sorted(set(src.tolist()))})
    return {"temperature": temperature, "split": "test", "per_source": {
        g: {"n": int(m.sum()), "before": reliability(before[m], y[m]).to_dict(),
            "after": reliability(probs[m], y[m]).to_dict()} for g, m in groups.items() if m.any()}}


def _export_all(model, out: Path, cfg: ConvertConfig, calib_x: np.ndarray,
                log, with_domain: bool = False, recentre=None) -> tuple[dict[str, Path], dict, dict]:
    """Write every format of ``convert.formats.FORMATS`` the config asks for, in table order.

    With ``cfg.quant.keep_float`` = K > 0 the K convs most sensitive to int8 weight rounding
    (``convert.sensitivity``, ranked on the float ``model`` and train-split calibration images) stay
    float in the int8 TFLite. With ``cfg.quant.bias_correction`` the int8 artifacts (TFLite and ONNX)
    come from a bias-corrected copy of ``model`` (both quantizers round weights to the same symmetric
    per-channel grid; kept-float convs are not corrected); the float artifacts always come from
    ``model`` itself. With ``recentre`` (labelled crops, their float pooled features, the view
    gate), every quantized format is exported again with the view probe matched to its own pooled
    features (``convert.view_recentre``; what it did goes to ``sel_info["view_recentred"]``).
    Returns the files, what the correction did and which int8 TFLite ops are float.
    """
    kept_refs, sel_info = [], {"keep_float": cfg.quant.keep_float}
    if cfg.quant.keep_float:
        ranking = sensitivity.rank_convs(model, sensitivity.subset(calib_x, cfg.quant.sensitivity_images), log=log)
        kept_refs = ranking.top(cfg.quant.keep_float)
        sel_info["ranking"] = ranking.to_dict(top=10)
    int8_model, bc_info = model, {"applied": False}
    if cfg.quant.bias_correction:
        t = time.perf_counter()
        int8_model, stats = bias_correction.correct_weight_rounding_bias(
            model, calib_x, log=log, skip_convs=[r.path for r in kept_refs])
        top = sorted(stats, key=lambda s: -s.max_abs_shift_out)
        bc_info = {"applied": True, "layers": len(stats), "calibration_images": len(calib_x),
                   "seconds": round(time.perf_counter() - t, 1), "largest": [s.to_dict() for s in top[:5]]}
    with tempfile.TemporaryDirectory() as tmp:
        saved = tflite_export.export_saved_model(model, Path(tmp) / "saved_model")
        saved_int8 = saved if int8_model is model else tflite_export.export_saved_model(int8_model,
                                                                                        Path(tmp) / "saved_model_int8")
        job = formats.ExportJob(model, int8_model, saved, saved_int8, calib_x,
                                calibration.representative_dataset(calib_x), cfg, Path(tmp), kept_refs, with_domain,
                                float_layers=sel_info)
        for fmt in formats.selected(cfg):
            t = time.perf_counter()
            path = out / fmt.file
            fmt.export(job, path)
            job.files[fmt.file] = path
            log(f"{fmt.file}: converted in {time.perf_counter() - t:.1f}s")
        if recentre is not None:
            from convert.view_recentre import recentre_all

            sel_info["view_recentred"] = recentre_all(job, *recentre, log=log)
    return job.files, bc_info, sel_info


#: The ONNX int8 artifact again with exact int32 accumulation: what a VNNI CPU computes. The gate
#: checks both, so the release holds whichever x86 level runs it (on a VNNI CPU the two are equal).
EXACT_ONNX = "model_int8.onnx (exact int32 kernels)"


def _onnx_isa_check(path: Path, native: np.ndarray, x: np.ndarray, y: np.ndarray, ref: np.ndarray,
                    threads: int | None) -> tuple[Metrics, dict]:
    """Metrics of ``path`` under exact int32 accumulation and how far this CPU's kernels (``native``
    probabilities) are from it."""
    exact = onnx_export.predict(onnx_export.session(path, "exact", threads), x)
    m = score(exact, y, ref)
    return m, {"kernel": "exact", "metrics": m.to_dict(),
               "max_prob_diff_vs_native": float(np.abs(native - exact).max()),
               "class_changes_vs_native": int((native.argmax(1) != exact.argmax(1)).sum())}


def _input_info(path: Path) -> dict:
    if path.suffix == ".tflite":
        return android.tensor_spec(path.read_bytes())["input"]
    return {"dtype": "float32", "quantization": None}
