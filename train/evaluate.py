"""Evaluate a trained model on one manifest split and write the run's report.

``python -m train.evaluate --run runs/X [--manifest M] [--split test]`` loads
``runs/X/model.keras``, predicts the split's crops, and writes ``predictions.csv`` (one row per
image, so every number in the report can be recomputed and every error looked at),
``report.json``, ``report.md`` and ``figures/`` into the run folder (other splits than test:
into ``eval-<split>/`` beside them).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from edge_runtime.config import LABELS, TUMOUR_INDEX
from train.metrics import compute_metrics, metrics_by_group
from train.results import EvalResult, PredictionRow  # noqa: F401  (re-exported: callers import them from here)


class LabelledImages(Protocol):
    """What evaluation needs of ``train.data.cache.CropSet``."""

    x: np.ndarray  # (N, S, S, 3) uint8
    y: np.ndarray  # (N,) index into LABELS
    paths: list[str]


def predict_probs(model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Softmax ``(N, 2)``; batches are cast to float32 one at a time, not the whole uint8 set."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"x must be (N, S, S, 3), got {x.shape}")
    out = [np.asarray(model(x[s : s + batch_size].astype(np.float32), training=False))
           for s in range(0, len(x), batch_size)]
    probs = np.concatenate(out) if out else np.zeros((0, len(LABELS)), np.float32)
    if probs.shape != (len(x), len(LABELS)):
        raise ValueError(f"model returned {probs.shape}, expected {(len(x), len(LABELS))}")
    return probs


def evaluate_split(model, images: LabelledImages, split: str = "test", threshold: float = 0.5,
                   batch_size: int = 32, sources: Sequence[str] | None = None) -> EvalResult:
    """Predict ``images`` and score them; with ``sources`` (one name per image) also per source."""
    probs = predict_probs(model, images.x, batch_size)
    p = probs[:, TUMOUR_INDEX].astype(np.float64)
    y = np.asarray(images.y)
    if sources is not None and len(sources) != len(y):
        raise ValueError(f"need one source per image, got {len(sources)} for {len(y)} images")
    metrics = compute_metrics(y, p, threshold)
    pred = (p > threshold).astype(int)
    names = [str(s) for s in sources] if sources is not None else [""] * len(y)
    rows = tuple(
        PredictionRow(str(path), LABELS[int(t)], float(pi), LABELS[int(k)], bool(t == k), src)
        for path, t, pi, k, src in zip(images.paths, y, p, pred, names)
    )
    by_source = metrics_by_group(names, y, p, threshold) if sources is not None else ()
    return EvalResult(split, metrics, rows, by_source)


def write_predictions_csv(result: EvalResult, path: str | Path) -> Path:
    """One row per image; a trailing ``source`` column when the result was scored per source."""
    path = Path(path)
    per_source = bool(result.by_source)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("path", "label", "p_tumour", "predicted", "correct") + (("source",) if per_source else ()))
    for r in result.rows:
        w.writerow((r.path, r.label, f"{r.p_tumour:.6f}", r.predicted, int(r.correct)) + ((r.source,) if per_source else ()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())
    return path


def evaluate_run(run_dir: str | Path, manifest_path: str | Path | None = None, split: str = "test", *,
                 model=None, images: LabelledImages | None = None, data_root: str | Path | None = None,
                 n_examples: int = 8) -> Path:
    """Evaluate ``run_dir``'s model on ``split`` and write the report; returns ``report.md``.

    ``model``/``images`` let the training loop pass what it holds in memory; otherwise they are
    loaded from ``run_dir/model.keras`` and the manifest's crop cache. The manifest defaults to
    the one named in ``run_dir/config.json``. The test split is *the* run report and goes into
    ``run_dir`` itself; any other split into ``run_dir/eval-<split>/`` so it never overwrites it.
    When the manifest has a ``source`` column (several sources), the report adds a table per
    source and ``predictions.csv`` a ``source`` column.
    """
    from train.figures import Examples, select_examples
    from train.gradcam import gradcam
    from train.report import write_run_report

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    manifest_path = manifest_path or _manifest_from_config(config)
    if manifest_path is None:
        raise ValueError(f"{run_dir}/config.json names no manifest; pass --manifest")
    weights_path = run_dir / "model.keras"
    if model is None:
        import keras

        model = keras.saving.load_model(weights_path)
    if images is None:
        from train.data.cache import load_crops

        images = load_crops(manifest_path, split, data_root=data_root)
    result = evaluate_split(model, images, split, sources=_sources(images, manifest_path))
    out = run_dir if split == "test" else run_dir / f"eval-{split}"
    write_predictions_csv(result, out / "predictions.csv")
    chosen = select_examples(result.rows, n_correct=n_examples, n_wrong=n_examples)
    examples = None
    if chosen:
        x = np.asarray(images.x)[chosen]
        heat, _ = gradcam(model, x)
        examples = Examples(images=x, heatmaps=heat, rows=tuple(result.rows[i] for i in chosen))
    history = run_dir / "history.csv"
    return write_run_report(out, result, history if history.is_file() else None, config, manifest_path,
                            weights_path if weights_path.is_file() else None, examples=examples)


def _sources(images: LabelledImages, manifest_path: str | Path) -> list[str] | None:
    """Per-image source names when the manifest names sources (``source`` column), else None.

    A BR35H-only manifest has no such column, and its report stays as it always was.
    """
    from train.data.manifest import read_manifest

    sources = getattr(images, "sources", None)
    if not sources or all(r.is_legacy for r in read_manifest(manifest_path)):
        return None
    return list(sources)


def _manifest_from_config(config: dict) -> str | None:
    for d in (config, config.get("train", {}), config.get("data", {})):
        if isinstance(d, dict) and d.get("manifest"):
            return d["manifest"]
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="run folder holding model.keras (and config.json, history.csv)")
    ap.add_argument("--manifest", help="split manifest CSV (default: the one in the run's config.json)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--data", help="BR35H folder, if the crop cache must be built")
    ap.add_argument("--examples", type=int, default=8, help="correct (and at most as many wrong) images in the grid")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = evaluate_run(args.run, args.manifest, args.split, data_root=args.data, n_examples=args.examples)
    print(report.read_text().split("\n## ")[0])  # the headline section
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
