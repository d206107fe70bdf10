"""Each quantized artifact's view probe, matched to that artifact's own pooled features.

Why: an int8 base's pooled features are not the float ones (cosine ~0.92 on BR35H val crops for
the paper model). The classifier shrugs that off (99.7 % agreement), but the view probe's
skull-base / supratentorial boundary does not: fitted on float features, the first gated int8
TFLite answered 87.7 % of BR35H test crops where the float file answered 96.2 %. So, for every quantized
format (dynamic-range and int8 TFLite, int8 ONNX): read its pooled features on the labelled
slices, fit ``float ~= a * quantized + b`` per feature (:func:`convert.views.affine_match`),
fold that into the probe's input step, and export the format again. The base is quantized the
same way both times (same float base, same calibration images), which :func:`recentre_all`
checks by comparing the two exports' pooled features.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import re

import numpy as np

#: Formats whose base is quantized, so whose pooled features differ from the float model's.
QUANTIZED = ("model_dynamic.tflite", "model_int8.tflite", "model_int8.onnx")
_TFLITE_POOL = re.compile(r"/pool(_\d+)?/Mean$")


def tflite_pooled(path: Path, x: np.ndarray) -> np.ndarray:
    """The pooled features a ``.tflite`` computes for ``x`` (uint8 crops), dequantized."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    pools = [d for d in it.get_tensor_details() if _TFLITE_POOL.search(d["name"])]
    if len(pools) != 1:
        raise ValueError(f"{path}: expected one pooled-feature tensor (…/pool/Mean), found {len(pools)}")
    pool = pools[0]
    scale, zero = pool["quantization"]
    inp = it.get_input_details()[0]
    out = []
    for im in np.asarray(x):
        it.set_tensor(inp["index"], im[None].astype(inp["dtype"]))
        it.invoke()
        v = it.get_tensor(pool["index"]).astype(np.float64)
        out.append((v - zero) * scale if scale else v)
    return np.concatenate(out).reshape(len(out), -1)


def onnx_pooled(path: Path, x: np.ndarray) -> np.ndarray:
    """The pooled features an ``.onnx`` feeds its tail: the last tensor of the ``pool`` layer in
    graph order (after its Quantize/DequantizeLinear pair in a QDQ int8 graph)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    names = [o for n in model.graph.node for o in n.output if "/pool" in o]
    if not names:
        raise ValueError(f"{path}: no tensor of the pool layer")
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(names[-1]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = sess.get_inputs()[0].name
    out = [sess.run([names[-1]], {feed: x[i:i + 32].astype(np.float32)})[0] for i in range(0, len(x), 32)]
    return np.concatenate(out).reshape(len(x), -1).astype(np.float64)


def pooled(path: Path, x: np.ndarray) -> np.ndarray:
    return onnx_pooled(path, x) if Path(path).suffix == ".onnx" else tflite_pooled(path, x)


def recentre_all(job, labelled_x: np.ndarray, float_features: np.ndarray, gate, log) -> dict:
    """Re-export every quantized format of ``job`` with its probe matched to its own features.

    ``job`` is the pipeline's :class:`convert.formats.ExportJob` after the first export;
    ``gate`` the fitted :class:`convert.views.ViewGate`. Returns, per format, how often the gate's
    decision on the labelled slices agrees with the float model's, before and after, and whether
    the re-export's pooled features equal the first export's."""
    from convert import formats, tflite_export
    from convert.domain import VIEW
    from convert.views import ViewGate, affine_match, gate_weights

    want = gate.gate(float_features)
    models = list({id(m): m for m in (job.model, job.int8_model)}.values())
    original = [m.get_layer(VIEW).get_weights() for m in models]
    info = {}
    try:
        for fmt in formats.selected(job.cfg):
            path = job.files.get(fmt.file)
            if fmt.file not in QUANTIZED or path is None:
                continue
            q = pooled(path, labelled_x)
            a, b = affine_match(q, float_features)
            fixed = ViewGate(gate.probe.recentred(a, b), gate.supported, gate.threshold)
            for m in models:
                m.get_layer(VIEW).set_weights(gate_weights(fixed))
            sub = job.tmp / f"recentre-{fmt.file}"
            sub.mkdir()
            saved = tflite_export.export_saved_model(job.model, sub / "saved_model")
            saved_int8 = saved if job.int8_model is job.model else tflite_export.export_saved_model(
                job.int8_model, sub / "saved_model_int8")
            again = replace(job, saved=saved, saved_int8=saved_int8, tmp=sub, files={}, float_layers=dict(job.float_layers))
            fmt.export(again, path)
            q2 = pooled(path, labelled_x)
            info[fmt.file] = {
                "gate_agreement_with_float_before": float((gate.gate(q) == want).mean()),
                "gate_agreement_with_float_after": float((fixed.gate(q2) == want).mean()),
                "base_features_max_change_between_exports": float(np.abs(q2 - q).max()),
                "slope_median": float(np.median(a))}
            log(f"{fmt.file}: view probe matched to its own features: gate agrees with float on "
                f"{100 * info[fmt.file]['gate_agreement_with_float_before']:.1f}% -> "
                f"{100 * info[fmt.file]['gate_agreement_with_float_after']:.1f}% of labelled slices "
                f"(pooled features changed by at most {info[fmt.file]['base_features_max_change_between_exports']:.3g} "
                "between the two exports)")
    finally:
        for m, w in zip(models, original):
            m.get_layer(VIEW).set_weights(w)
    return info
