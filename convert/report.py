"""The conversion report: JSON for machines, Markdown for people, same numbers."""

from __future__ import annotations

import json
from pathlib import Path
import platform

from edge_runtime.machine import package_versions

TOOLS = ("tensorflow", "keras", "ai-edge-litert", "onnx", "onnxruntime", "tf2onnx", "flatbuffers", "numpy")


def tool_versions() -> dict[str, str]:
    found = package_versions(TOOLS)
    return {"python": platform.python_version(), **{k: v or "not installed" for k, v in found.items()}}


def write(report: dict, out_dir: str | Path, stem: str = "conversion_report") -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(report, indent=2) + "\n")
    md.write_text(markdown(report))
    return js, md


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def markdown(r: dict) -> str:
    k = r["keras"]
    lines = [
        f"# Conversion report: `{r['model']}`", "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']}  ",
        f"Manifest: `{r['manifest']}` (test split: {k['n']} images; paper protocol: {r['config']['gate']['paper_protocol']})  ",
        f"Gate: **{'PASS' if not r['gate_failures'] else 'FAIL'}** (tolerance {r['config']['gate']['tolerance']} points vs Keras)",
        "",
        "| artifact | size (KiB) | accuracy % | agreement with Keras % | max prob diff | confusion [[TN, FP], [FN, TP]] | input |",
        "|---|---:|---:|---:|---:|---|---|",
        f"| Keras (`{Path(r['model']).name}`) | {r['keras_size'] / 1024:.0f} | {_pct(k['accuracy'])} | 100.00 | 0 | {k['confusion']} | float32 |",
    ]
    for name, a in r["artifacts"].items():
        m = a["metrics"]
        q = a["input"]
        qs = q["dtype"] + (f" (scale {q['quantization']['scale']:.4g}, zp {q['quantization']['zero_point']})"
                           if q.get("quantization") else "")
        lines.append(f"| `{name}` | {a['bytes'] / 1024:.0f} | {_pct(m['accuracy'])} | {_pct(m['agreement'])} | "
                     f"{m['max_prob_diff']:.4f} | {m['confusion']} | {qs} |")
    cal = r["calibration"]
    lines += ["", f"int8 calibration: {cal['n']} **train** images, selection `{cal['selection']}`, seed {cal['seed']}, "
              f"io `{cal['io_type']}`; list in `{cal['file']}`.", "", _bias_correction_line(r.get("bias_correction")), "",
              *_float_layers_lines(r.get("int8_float_layers")), ""]
    lines += _domain_lines(r)
    if r["gate_failures"]:
        lines += ["## Gate failures", ""] + [f"- {f}" for f in r["gate_failures"]] + [""]
    lines += ["## Tool versions", ""] + [f"- {n}: {v}" for n, v in r["tools"].items()] + [""]
    return "\n".join(lines)


def _bias_correction_line(bc: dict | None) -> str:
    if not bc or not bc.get("applied"):
        return "int8 weight-rounding bias correction: **not applied** (`--bias-correction` to apply)."
    top = ", ".join(f"`{l['conv']}` {l['max_abs_shift_out']:.3g}" for l in bc["largest"][:3])
    return (f"int8 weight-rounding bias correction: **applied** to the int8 artifacts ({bc['layers']} conv -> BatchNorm "
            f"pairs, measured on the {bc['calibration_images']} calibration images in {bc['seconds']} s; largest "
            f"per-channel shift removed, after the BatchNorm: {top}).")


def _float_layers_lines(sel: dict | None) -> list[str]:
    """What of the int8 TFLite is integer: fully integer, or which convs were kept float and why."""
    if not sel:
        return []
    k = sel.get("keep_float", 0)
    rk = sel.get("ranking", {})
    floats = sel.get("float_ops", [])
    if sel.get("kept"):
        kept = ", ".join(f"`{x['layer'].rsplit('/', 1)[-1]}`"
                         + (f" ({x['mean_abs_margin_change']:.3g})" if x.get("mean_abs_margin_change") is not None else "")
                         for x in sel["kept"])
        lines = [f"int8 TFLite: **not fully integer**: {len(sel['kept'])} conv(s) kept in **float** "
                 f"(`--int8-keep-float {k}`): {kept}; score = mean |logit margin change| when only that conv's "
                 f"weights are int8-rounded (Keras, {rk.get('images', '?')} train calibration images, "
                 f"{rk.get('seconds', '?')} s). Each runs in float between dequantize/quantize ops; uint8 I/O is "
                 "unchanged; the ONNX int8 stays fully integer."]
    elif sel.get("fully_integer", True):
        lines = ["int8 TFLite: **fully integer** (every op int8"
                 + (f"; `--int8-keep-float {k}` found no conv to keep" if k else
                    "; `--int8-keep-float K` keeps the K convs most sensitive to weight rounding in float") + ")."]
    else:
        lines = ["int8 TFLite: **not fully integer** (denylisted ops/nodes run in float)."]
    if floats:
        lines += ["", f"Float ops in `model_int8.tflite`: {len(floats)} ({', '.join(sorted({f['op'] for f in floats}))})."]
    if rk.get("top"):
        lines += ["", "Weight-rounding sensitivity (top 10): "
                  + ", ".join(f"`{t['layer']}` {t['mean_abs_margin_change']:.3g}" for t in rk["top"]) + "."]
    return lines


def _domain_lines(r: dict) -> list[str]:
    """The domain check, the temperature and each artifact's contract thresholds (val-chosen)."""
    d = r.get("domain")
    if not d:
        return ["Domain check and temperature: **off** (no val split or `--domain off`); contracts carry "
                "only the default operating point.", ""]
    t = d["temperature"]
    lines = ["## Domain check, temperature, contract", "",
             f"Mahalanobis on the pooled features, {d['dims']} whitened dims, fitted on {d['fit_images']} train crops, "
             f"scale {d['scale']:.4g}; temperature {t['temperature']:.4g} (val NLL {t['nll_before']:.4f} -> "
             f"{t['nll_after']:.4f}{', at the search bound: kept 1' if t['at_bound'] else ''}).", "",
             "| artifact | domain threshold (val 99 %) | test crops accepted % | sensitivity op. point | specificity op. point |",
             "|---|---:|---:|---:|---:|"]
    for name, a in r["artifacts"].items():
        c = a.get("contract") or {}
        dom, pts = c.get("domain") or {}, c.get("operating_points") or {}
        acc = a.get("test_domain_accepted")
        lines.append(f"| `{name}` | {dom.get('threshold', float('nan')):.4f} | "
                     f"{'-' if acc is None else f'{100 * acc:.2f}'} | "
                     f"{pts.get('sensitivity', {}).get('threshold', float('nan')):.4f} | "
                     f"{pts.get('specificity', {}).get('threshold', float('nan')):.4f} |")
    cal = r.get("probability_calibration") or {}
    for g, v in (cal.get("per_source") or {}).items():
        lines.append(f"\nECE on the test split, {g} (n={v['n']}): {100 * v['before']['ece']:.2f} % before, "
                     f"{100 * v['after']['ece']:.2f} % after the temperature.")
    return lines + [""]
