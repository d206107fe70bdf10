"""The per-run evaluation report: ``report.json`` (machine-readable) + ``report.md`` (for people).

A result is only worth something if someone can tell what produced it, so the report names
the manifest (path + content digest), the weights file's sha256, the preset, the machine and
the library versions, and states the accuracy with its 95 % interval next to the paper's
99.33 % (596/600): with 600 test images one image is 0.17 points, so a difference smaller
than the interval is not a difference.
"""

from __future__ import annotations

from datetime import datetime, timezone
import hashlib
import json
import math
from pathlib import Path
import sys

from edge_runtime.machine import machine_info, package_versions
from train import figures
from train.results import EvalResult

#: The paper's reported test result. Its "specificity" of 0.00666 equals 4/600, the error
#: rate, not TN / (TN + FP); we report the real specificity and note the discrepancy.
PAPER = {"accuracy": 596 / 600, "correct": 596, "n": 600, "reported_specificity": 0.00666}
LIBRARIES = ("numpy", "tensorflow", "keras", "matplotlib", "opencv-python-headless", "pillow")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def machine_with_libraries() -> dict:
    """:func:`edge_runtime.machine.machine_info` plus ``gpus`` and ``libraries``.

    The device-side record cannot name these (the runtime does not import TensorFlow, and the
    device has none of the desktop libraries), but a training report needs them: the same
    weights evaluated under another TensorFlow or Keras can round differently.
    """
    versions = package_versions(LIBRARIES)
    gpus = []
    if "tensorflow" in sys.modules:  # only ask TF when it is loaded anyway (import costs seconds)
        gpus = [d.name for d in sys.modules["tensorflow"].config.list_physical_devices("GPU")]
    return {**machine_info(), "gpus": gpus, "libraries": versions}


def _manifest_info(manifest_path) -> dict:
    from train.data.manifest import manifest_digest, read_manifest

    info = {"path": None if manifest_path is None else str(manifest_path)}
    if manifest_path is not None and Path(manifest_path).is_file():
        info["digest"] = manifest_digest(read_manifest(manifest_path))
    return info


def _trained_on(config: dict) -> str:
    """`` on Keras/jax, gpu:NVIDIA H200`` from the run's config.json (runs that predate recording it: "")."""
    if not isinstance(config, dict) or "backend" not in config:
        return ""
    devices = config.get("devices")
    return f" on Keras/{config['backend']}" + (f", {', '.join(devices)}" if devices else "")


def _preset(config: dict) -> str | None:
    for d in (config, config.get("train", {})):
        if isinstance(d, dict) and d.get("preset"):
            return d["preset"]
    return None


def write_run_report(out_dir: str | Path, result: EvalResult, history_csv: str | Path | None, config: dict,
                     manifest_path: str | Path | None, weights_path: str | Path | None,
                     machine: dict | None = None, examples: figures.Examples | None = None) -> Path:
    """Write figures, ``report.json`` and ``report.md`` into ``out_dir``; returns the .md path."""
    out = Path(out_dir)
    fig_dir = out / "figures"
    m = result.metrics
    history = figures.read_history(history_csv) if history_csv else []
    figs = {"confusion": figures.plot_confusion(m, fig_dir / "confusion.png"),
            "metrics": figures.plot_metric_bars(m, fig_dir / "metrics.png"),
            "roc": figures.plot_roc(m, fig_dir / "roc.png")}
    if history:
        figs = {"curves": figures.plot_history(history, fig_dir / "curves.png"), **figs}
    if examples is not None and len(examples.rows):
        figs["predictions"] = figures.plot_prediction_grid(examples, fig_dir / "predictions.png")
    train_seconds = sum(r.get("seconds", 0.0) for r in history if not math.isnan(r.get("seconds", math.nan)))
    lo, hi = m.accuracy_ci95
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "split": result.split,
        "metrics": m.to_dict(),
        "manifest": _manifest_info(manifest_path),
        "weights": {"path": str(weights_path), "sha256": sha256_file(weights_path)} if weights_path else None,
        "preset": _preset(config),
        "config": config,
        "training": {"epochs": len(history), "seconds": round(train_seconds, 1)} if history else None,
        "machine": machine or machine_with_libraries(),
        "paper": {**PAPER, "accuracy_inside_our_ci95": bool(lo <= PAPER["accuracy"] <= hi)},
        "errors": [{"path": r.path, "label": r.label, "p_tumour": r.p_tumour} for r in result.rows if not r.correct],
        "figures": {k: str(p.relative_to(out)) for k, p in figs.items()},
    }
    if result.by_source:
        report["by_source"] = [s.to_dict() for s in result.by_source]
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    md = out / "report.md"
    md.write_text(render_markdown(report))
    return md


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _pct_ci(v, ci) -> str:
    if v is None:
        return "n/a"
    return _pct(v) + ("" if ci is None else f" ({100 * ci[0]:.2f}–{100 * ci[1]:.2f})")


def _by_source_lines(rows: list[dict]) -> list[str]:
    """The per-source table: each source's numbers with their exact 95 % intervals."""
    lines = ["## Per source", "",
             "Intervals are exact (Clopper-Pearson); a source with few images has a wide one.", "",
             "| source | n (tumour / no tumour) | accuracy (95 % CI) | sensitivity (95 % CI) | specificity (95 % CI) | ROC-AUC |",
             "|---|---|---|---|---|---|"]
    for s in rows:
        lines.append(f"| {s['name']} | {s['n']} ({s['n_positive']} / {s['n_negative']}) "
                     f"| {s['correct']}/{s['n']} = {_pct_ci(s['accuracy'], s['accuracy_ci95'])} "
                     f"| {_pct_ci(s['sensitivity'], s['sensitivity_ci95'])} "
                     f"| {_pct_ci(s['specificity'], s['specificity_ci95'])} | {_num(s['roc_auc'])} |")
    return lines + [""]


def render_markdown(r: dict) -> str:
    """``report.md`` from the ``report.json`` dict alone (so it can be re-rendered)."""
    m, mc, paper = r["metrics"], r["machine"], r["paper"]
    lo, hi = m["accuracy_ci95"]
    wlo, whi = m["accuracy_ci95_wilson"]
    (tn, fp), (fn, tp) = m["confusion"]
    w = r["weights"] or {}
    lines = [
        f"# Evaluation on the {r['split']} split",
        "",
        f"**Accuracy {_pct(m['accuracy'])} ({m['correct']}/{m['n']})**, 95 % CI {_pct(lo)} to {_pct(hi)} "
        f"(exact Clopper-Pearson). One image moves accuracy by {100 / m['n']:.2f} points.",
        f"Paper: {_pct(paper['accuracy'])} ({paper['correct']}/{paper['n']}); "
        f"{'inside' if paper['accuracy_inside_our_ci95'] else 'outside'} our 95 % interval.",
        "",
        "## Metrics (tumour = positive)",
        "",
        "| metric | value | note |",
        "|---|---|---|",
        f"| accuracy | {_pct(m['accuracy'])} | 95 % CI {_pct(lo)}–{_pct(hi)} (Clopper-Pearson), "
        f"{_pct(wlo)}–{_pct(whi)} (Wilson) |",
        f"| precision | {_pct(m['precision'])} | TP / (TP + FP) |",
        f"| recall (sensitivity) | {_pct(m['recall'])} | TP / (TP + FN) |",
        f"| specificity | {_pct(m['specificity'])} | TN / (TN + FP); the paper's 0.00666 is its error rate (4/600) |",
        f"| F1 | {_pct(m['f1'])} | |",
        f"| ROC-AUC | {_num(m['roc_auc'])} | rank-based, ties count 1/2 |",
        f"| threshold | {m['threshold']} | tumour if p_tumour > threshold |",
        "",
        "## Confusion matrix",
        "",
        "| true \\ predicted | no tumour | tumour |",
        "|---|---|---|",
        f"| **no tumour** | {tn} (TN) | {fp} (FP) |",
        f"| **tumour** | {fn} (FN) | {tp} (TP) |",
        "",
    ]
    if r.get("by_source"):
        lines += _by_source_lines(r["by_source"])
    if r["errors"]:
        lines += ["## Misclassified images", "", "| image | true | p_tumour |", "|---|---|---|"]
        lines += [f"| `{e['path']}` | {e['label']} | {e['p_tumour']:.4f} |" for e in r["errors"]]
        lines += [""]
    captions = {"curves": "Training curves (Fig. 6)", "confusion": "Confusion matrix (Fig. 7)",
                "metrics": "Metrics (Fig. 8)", "roc": "ROC curve",
                "predictions": "Predictions with Grad-CAM (Fig. 9)"}
    lines += ["## Figures", ""]
    lines += [f"![{captions.get(k, k)}]({p})" + "\n" for k, p in r["figures"].items()]
    libs = ", ".join(f"{k} {v}" for k, v in mc["libraries"].items() if v)
    training = r["training"] or {}
    lines += [
        "## Provenance",
        "",
        "| | |",
        "|---|---|",
        f"| manifest | `{r['manifest']['path'] or 'n/a'}` (digest `{r['manifest'].get('digest', 'n/a')}`) |",
        f"| weights | `{w.get('path', 'n/a')}` (sha256 `{w.get('sha256', 'n/a')}`) |",
        f"| preset | {r['preset'] or 'n/a'} |",
        f"| training | {training.get('epochs', 'n/a')} epochs, {training.get('seconds', 'n/a')} s{_trained_on(r['config'])} |",
        f"| evaluated on | {mc['cpu']} ({mc['arch']}), {mc['cores']} cores ({mc['cores_usable']} usable), "
        f"{mc['ram_gib']} GiB RAM{', GPU: ' + ', '.join(mc['gpus']) if mc['gpus'] else ', no GPU'} |",
        f"| software | Python {mc['python']}, {libs}; {mc['os']} |",
        f"| created | {r['created']} |",
        "",
        "Rerun: `python -m train.evaluate --run <run folder>`; per-image predictions are in `predictions.csv`.",
        "",
    ]
    return "\n".join(lines)


PUBLISHED = ("report.md", "report.json", "history.csv", "predictions.csv", "config.json", "figures")


def publish_run_report(run_dir: str | Path, dest: str | Path) -> Path:
    """Copy a run's report (not its weights) to ``dest``, e.g. ``reports/train/cpu-paper``.

    Run folders are git-ignored (checkpoints weigh ~90 MB); the report, figures, history and
    per-image predictions are what gets committed, so every README number has a file behind it.
    """
    import shutil

    run_dir, dest = Path(run_dir), Path(dest)
    missing = [n for n in PUBLISHED[:2] if not (run_dir / n).exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir}: no {', '.join(missing)} yet; evaluate the run first")
    dest.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED:
        src = run_dir / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest / "report.md"
