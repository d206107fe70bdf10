"""On-device latency of one model or of several artifacts side by side, and the machine it ran on.

Inference is timed on the model alone (the tensor already prepared), preprocessing on the
numpy crop of one decoded image, so the report can show that preprocessing is a small
fraction of the total. Threads and backend are part of every result: a number without them
cannot be compared. The clock, warm-up and statistics are :mod:`edge_runtime.timing`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .classifier import Classifier
from .crop import crop_image
from .image_io import load_rgb
from .machine import machine_info
from .timing import TimingConfig, summarize, time_calls


def synthetic_slice(size: int = 512, seed: int = 0) -> np.ndarray:
    """An MRI-like bright ellipse with noise, for benchmarking without a real image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    inside = ((yy - size / 2) / (size * 0.38)) ** 2 + ((xx - size / 2) / (size * 0.33)) ** 2 <= 1
    gray = np.clip(np.where(inside, 110.0, 0.0) + rng.normal(0, 6, (size, size)), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def bench(classifier: Classifier, image: Path | None = None, cfg: TimingConfig = TimingConfig()) -> dict:
    """Latency report for ``classifier`` on ``image`` (or a synthetic 512 px slice)."""
    rgb = load_rgb(image, classifier.crop.max_pixels) if image else synthetic_slice()
    cropped, _ = crop_image(rgb, classifier.crop)
    threads = classifier.model.num_threads
    pre = time_calls([lambda: crop_image(rgb, classifier.crop)], cfg, threads)
    inf = time_calls([lambda: classifier.model.scores(cropped)], cfg, threads)
    return {
        **classifier.info,
        "image": str(image) if image else "synthetic 512x512",
        "image_shape": list(rgb.shape),
        "runs": cfg.runs,
        "warmup": cfg.warmup,
        "inference": summarize(inf.ms[0]),
        "preprocess": summarize(pre.ms[0]),
        **inf.conditions(),  # the load around the inference timing, which the report leads with
        "machine": machine_info(),
    }


#: When the fastest artifact is not the int8 one, int8 is still recommended if it is at most this
#: much slower (median): it is the gated release model and the smallest, and one run on a loaded
#: machine does not separate medians closer than that.
INT8_PREFERENCE = 1.10


def _artifact_accuracy(path: Path) -> float | None:
    """Test accuracy of this exact file from a ``conversion_report.json`` beside it (matched by sha256)."""
    import hashlib
    import json

    report = path.parent / "conversion_report.json"
    if not report.is_file():
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        artifacts = json.loads(report.read_text()).get("artifacts", {})
    except ValueError:
        return None
    for a in artifacts.values():
        if a.get("sha256") == digest:
            return a.get("metrics", {}).get("accuracy")
    return None


def _distinct(paths: list[Path]) -> list[Path]:
    """One path per file content (the package's copy of the released model is also in ``models/``),
    preferring the copy whose conversion report gives its accuracy."""
    import hashlib

    by_digest: dict[str, Path] = {}
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in by_digest or (_artifact_accuracy(by_digest[digest]) is None and _artifact_accuracy(path) is not None):
            by_digest[digest] = path
    return sorted(by_digest.values())


def _onnx_runner(path: Path, threads: int) -> Callable[[np.ndarray], object] | None:
    """A callable running ``path`` in onnxruntime on one crop, or None when onnxruntime is absent."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda crop: sess.run(None, {name: crop.astype(np.float32)[None]})


def recommend(rows: list[dict]) -> tuple[dict, str]:
    """Which artifact to use and why, from rows with ``name``, ``accuracy`` and ``inference.p50_ms``;
    sets each row's ``ratio_to_fastest``."""
    fastest = min(rows, key=lambda r: r["inference"]["p50_ms"])
    for r in rows:
        r["ratio_to_fastest"] = r["inference"]["p50_ms"] / fastest["inference"]["p50_ms"]
    int8 = next((r for r in rows if r["name"].endswith(".tflite") and "int8" in r["name"]), None)
    if int8 is not None and int8["ratio_to_fastest"] <= INT8_PREFERENCE:
        choice = int8
        why = ("fastest here" if int8 is fastest else
               f"within {100 * (INT8_PREFERENCE - 1):.0f} % of the fastest ({fastest['name']}, "
               f"{int8['ratio_to_fastest']:.2f}x) and it is the gated release model, the smallest file")
    else:
        choice = fastest
        why = "fastest here" + (f"; the int8 TFLite is {int8['ratio_to_fastest']:.2f}x slower on this CPU"
                                if int8 is not None else "")
    if choice.get("accuracy") is not None:
        why += f"; test accuracy of this file {100 * choice['accuracy']:.2f} % (its conversion report)"
    return choice, why


def compare(paths: list[Path], image: Path | None, threads: int, cfg: TimingConfig = TimingConfig(),
            backend=None) -> dict:
    """Median inference of every artifact in ``paths`` on the same crop, interleaved in one run, and
    which to use.

    ``.tflite`` files run in the TFLite interpreter (XNNPACK), ``.onnx`` files in onnxruntime when it
    is installed (skipped with the reason otherwise). The choice: the fastest, except that the int8
    TFLite is kept while it is within :data:`INT8_PREFERENCE` of it. Ratios within one run are the
    numbers to trust on a shared machine; the load average is recorded with them.
    """
    from .config import CropConfig

    crop_cfg = CropConfig()
    rgb = load_rgb(image, crop_cfg.max_pixels) if image else synthetic_slice()
    cropped, _ = crop_image(rgb, crop_cfg)
    rows, skipped, runners = [], [], []
    for path in _distinct(paths):
        if path.suffix == ".onnx":
            run = _onnx_runner(path, threads)
            if run is None:
                skipped.append({"artifact": str(path), "reason": "onnxruntime is not installed"})
                continue
            runtime = "onnxruntime"
        else:
            clf = Classifier(path, num_threads=threads, backend=backend)
            run, runtime = clf.model.scores, f"{clf.model.backend.name} {clf.model.backend.version}"
        runners.append(run)
        rows.append({"artifact": str(path), "name": path.name, "runtime": runtime, "bytes": path.stat().st_size,
                     "accuracy": _artifact_accuracy(path)})
    if not rows:
        raise ValueError("no artifact could be run: " + "; ".join(f"{s['artifact']}: {s['reason']}" for s in skipped))
    # Interleaved rounds (each artifact once per round): every artifact sees the same load.
    timed = time_calls([lambda run=run: run(cropped) for run in runners], cfg, threads)
    for row, sample in zip(rows, timed.ms):
        row["inference"] = summarize(sample)
    choice, why = recommend(rows)
    return {"image": str(image) if image else "synthetic 512x512", **timed.conditions(), "runs": cfg.runs,
            "warmup": cfg.warmup, "artifacts": rows, "skipped": skipped, "use": choice["name"], "why": why, "machine": machine_info()}
