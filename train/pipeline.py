"""Train a recipe on a manifest and evaluate it: the library call behind ``python -m train``.

:func:`run` loads the manifest's train and val crops (building the crop cache if needed),
trains or resumes the run in ``run_dir`` (:func:`train.fit.train_model`) and writes the test
split's report into it (:func:`train.evaluate.evaluate_run`). Failures are exceptions, so a
caller that chains stages can decide what a missing dataset means; the CLI turns them into
exit codes.
"""

from __future__ import annotations

from pathlib import Path
import time

from .paths import imagenet_weights
from .presets import TrainConfig


def run(cfg: TrainConfig, manifest: str | Path, run_dir: str | Path, *, data_root=None,
        weights: str | Path | None = None, resume: bool = False, init: str | Path | None = None,
        evaluate: bool = True) -> Path:
    """Train (or resume) ``cfg`` on ``manifest`` in ``run_dir``; returns ``run_dir/model.keras``.

    ``data_root``: BR35H's folder or a ``{source: folder}`` mapping (default: each source's
    environment variable or ``../shared/data/<source>``). ``weights``: an ImageNet MobileNetV2
    no-top ``.h5`` file (default: Keras' ``"imagenet"``, found offline when a copy exists).
    ``init``: a trained ``.keras`` model to warm-start from (skips the head stage).
    ``evaluate=False`` skips the test-split report.

    Raises :class:`train.paths.DataNotFoundError` when a source's folder is missing,
    ``FileExistsError`` when ``run_dir`` holds a run and ``resume`` is False, and
    ``ValueError`` when resuming with another config than the run was started with.
    """
    from .data.cache import load_crops
    from .fit import train_model

    train = load_crops(manifest, "train", data_root=data_root)
    val = load_crops(manifest, "val", data_root=data_root)
    print(f"{manifest}: {len(train)} train / {len(val)} val crops; preset {cfg.preset}, head {cfg.model.head}")
    t0 = time.time()
    meta = {"manifest": str(manifest), "data": str(data_root or "")}
    model = train_model(cfg, train, val, run_dir, weights=imagenet_weights(weights), resume=resume, meta=meta,
                        sources=getattr(train, "sources", None) or None, init=init)
    model_path = Path(run_dir) / "model.keras"
    print(f"training finished in {time.time() - t0:.0f}s (this invocation); model at {model_path}")
    if evaluate:
        from .evaluate import evaluate_run

        report = evaluate_run(run_dir, manifest, "test", model=model, data_root=data_root)
        print(f"report: {report}")
    return model_path
