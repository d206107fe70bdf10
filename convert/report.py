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
              f"io `{cal['io_type']}`; list in `{cal['file']}`.", "", _bias_correction_line(r.get("bias_correction")), ""]
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
