"""Every file ``python -m convert`` exports, as one table: file name, what changes it, how it is made.

Adding a format is one :class:`Format` row in :data:`FORMATS` and one exporter function. The
pipeline (``convert.pipeline``) walks the table in order, and the report lists the artifacts in
the same order. The Android bundle is not a row: it is assembled after evaluation, from the int8
TFLite file and that file's measured accuracy and contract.

``honours`` names the config options (fields of ``QuantizationConfig`` or ``ConvertConfig``) that
change a format's file; every other option leaves it as it is. An option set away from its default
that no exported format honours is refused (:func:`refuse_unhonoured`) rather than silently
dropped; the low-level exporters refuse what their own format cannot do in the same way
(``tflite_export.convert``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from convert import domain, metadata, onnx_export, tflite_export
from convert.config import ConvertConfig, QuantizationConfig
from edge_runtime.config import LABELS


@dataclass
class ExportJob:
    """What the exporters read, prepared once by the pipeline for all formats.

    ``tmp`` is a scratch folder that lives as long as the export. ``int8_model``/``saved_int8`` are
    the bias-corrected copy when ``cfg.quant.bias_correction``
    is on, else the float model itself; ``kept_layers`` are the convs the int8 TFLite keeps float
    (``convert.sensitivity`` ranking, empty unless ``cfg.quant.keep_float``). ``files`` fills in
    table order (the ONNX int8 reuses the float ONNX when there is no corrected copy), and the int8
    TFLite exporter records which of its ops are float in ``float_layers``.
    """

    model: object
    int8_model: object
    saved: Path
    saved_int8: Path
    calib_x: np.ndarray
    representative: Callable
    cfg: ConvertConfig
    tmp: Path
    kept_layers: Sequence = ()
    with_domain: bool = False
    files: dict[str, Path] = field(default_factory=dict)
    float_layers: dict = field(default_factory=dict)


Exporter = Callable[[ExportJob, Path], None]


@dataclass(frozen=True)
class Format:
    """One exported file: its report name ``file``, a human ``name``, the options that change it,
    the function that writes it, and whether the config asks for it at all."""

    name: str
    file: str
    honours: tuple[str, ...]
    export: Exporter
    enabled: Callable[[ConvertConfig], bool] = lambda cfg: True


def _write_tflite(job: ExportJob, path: Path, flat: bytes) -> None:
    """TFLite files carry the metadata, float ones too (MediaPipe takes them)."""
    files = {metadata.LABELS_FILE: metadata.labels_file(LABELS)}
    if job.with_domain:
        files[metadata.DOMAIN_LABELS_FILE] = metadata.DOMAIN_LABELS
    meta = metadata.build_metadata(job.cfg.bundle, domain_output=job.with_domain)
    path.write_bytes(metadata.embed(flat, meta, files))


def _float_tflite(variant: tflite_export.Variant) -> Exporter:
    def export(job: ExportJob, path: Path) -> None:
        _write_tflite(job, path, tflite_export.convert(job.saved, variant))

    export.__name__ = f"export_tflite_{variant}"
    return export


def export_tflite_int8(job: ExportJob, path: Path) -> None:
    """Full integer with ``io_type`` I/O from the (corrected) model, calibrated on the train images;
    the ranked convs, denylisted ops/nodes and the float tail stay float (``tflite_export``)."""
    from convert.sensitivity import float_ops

    flat, kept_nodes = tflite_export.convert_int8(job.saved_int8, job.representative, job.cfg.quant, job.kept_layers)
    sel = job.float_layers
    if tflite_export.keeps_float_ops(job.cfg.quant, job.kept_layers):
        scores = {s["path"]: s for s in sel.get("ranking", {}).get("top", [])}
        sel["kept"] = [{"layer": p, "node": n,
                        "mean_abs_margin_change": scores.get(p, {}).get("mean_abs_margin_change")}
                       for p, n in kept_nodes.items()]
    floats = float_ops(flat)
    sel.update(fully_integer=not floats, float_ops=floats)
    _write_tflite(job, path, flat)


def export_onnx_fp32(job: ExportJob, path: Path) -> None:
    onnx_export.export_onnx(job.model, path)


def export_onnx_int8(job: ExportJob, path: Path) -> None:
    """onnxruntime static int8 per ``cfg.onnx_recipe`` from the (corrected) model, calibrated on the
    same images as the TFLite int8; the domain check and classifier tail stay float."""
    if job.int8_model is job.model and "model.onnx" in job.files:
        fp32 = job.files["model.onnx"]
    else:
        fp32 = onnx_export.export_onnx(job.int8_model, job.tmp / "corrected.onnx")
    onnx_export.quantize_onnx_int8(fp32, path, job.calib_x, job.cfg.onnx_recipe,
                                   keep_float=domain.TAIL_LAYERS if job.with_domain else ())


#: Options that shape both int8 files: calibration images, bias correction, the float tail.
#: ``keep_float``, ``sensitivity_images``, ``io_type`` and the denylists are TFLite-only;
#: onnxruntime's quantizer has its own ``onnx_recipe``.
_INT8 = ("calibration_size", "seed", "selection", "bias_correction", "float_tail")

FORMATS: tuple[Format, ...] = (
    Format("TFLite float32", "model_fp32.tflite", (), _float_tflite("fp32")),
    Format("TFLite float16", "model_fp16.tflite", (), _float_tflite("fp16")),
    Format("TFLite dynamic-range int8", "model_dynamic.tflite", (), _float_tflite("dynamic")),
    Format("TFLite int8", "model_int8.tflite",
           (*_INT8, "io_type", "denylisted_ops", "denylisted_nodes", "keep_float", "sensitivity_images"),
           export_tflite_int8),
    Format("ONNX float32", "model.onnx", (), export_onnx_fp32),
    Format("ONNX int8", "model_int8.onnx", (*_INT8, "onnx_recipe"), export_onnx_int8,
           enabled=lambda cfg: cfg.onnx_int8),
)


def selected(cfg: ConvertConfig) -> tuple[Format, ...]:
    return tuple(f for f in FORMATS if f.enabled(cfg))


def _changed_options(cfg: ConvertConfig) -> dict[str, object]:
    """Format-specific options set away from their defaults."""
    default_q, default = QuantizationConfig(), ConvertConfig()
    out = {f.name: getattr(cfg.quant, f.name) for f in fields(QuantizationConfig)
           if getattr(cfg.quant, f.name) != getattr(default_q, f.name)}
    if cfg.onnx_recipe != default.onnx_recipe:
        out["onnx_recipe"] = cfg.onnx_recipe
    return out


def refuse_unhonoured(cfg: ConvertConfig) -> None:
    """ValueError for an option set away from its default that no format being exported honours
    (e.g. an ONNX int8 recipe with the ONNX int8 turned off): it would change nothing."""
    chosen = selected(cfg)
    for option, value in _changed_options(cfg).items():
        if not any(option in f.honours for f in chosen):
            could = [f"{f.name} ({f.file})" for f in FORMATS if option in f.honours]
            raise ValueError(f"{option}={value!r}: no exported format honours it; it changes only "
                             f"{', '.join(could) or 'nothing'}, which is not being exported")
