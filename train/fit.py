"""Training as a list of stages, each resumable through the run folder's ``state.json``.

1. **head**: fit the head on the frozen base, by default on cached pooled features of the
   original and the horizontally flipped training crops (~30x faster than running the base;
   :class:`HeadOnFeatures`), otherwise on live augmented images (:class:`HeadOnImages`).
2. **finetune**: unfreeze the base (BatchNorm kept frozen, see ``train.model.freeze_batchnorm``)
   and fine-tune at a low learning rate with augmentation (:class:`FineTune`).

Evaluation is not a stage: :func:`train.evaluate.evaluate_run` reads the finished run folder.

Resume is exact by construction: each epoch's shuffle order and augmentation seeds derive
from ``(seed, stage, epoch)`` only, and a checkpoint carries the optimizer state, so a run
killed mid-epoch and resumed produces the same epochs as one that was never interrupted.
A stage starts from scratch (freezing, compiling) only when none of its epochs is recorded;
otherwise the checkpoint already holds its compiled model and it continues at the next epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
from pathlib import Path
import sys
import time
from typing import Protocol, Sequence

import numpy as np

from .datasets import ArraySet, cached_features, make_dataset, onehot
from .devices import devices, strategy as make_strategy
from .model import build_head, build_model, freeze_batchnorm, head_of, set_base_trainable
from .optim import compile_model, current_lr
from .presets import TrainConfig
from .run_state import RunState, atomic_write_text, save_model_atomic
from .sampling import epoch_order, sample_weights


@dataclass
class Job:
    """What every stage works on: the recipe, the model being trained, the data, the run folder."""

    cfg: TrainConfig
    model: object  # keras.Model
    train: ArraySet
    val: ArraySet
    state: RunState
    callbacks: Sequence = ()
    weights: np.ndarray | None = None  # per training image: draw probability / loss weight (``cfg.balance``)


class Stage(Protocol):
    #: The name ``state.json`` and ``history.csv`` record for this stage's epochs.
    name: str

    def epochs(self, cfg: TrainConfig) -> int: ...

    def run(self, job: Job, done: int) -> None:
        """Run the epochs after the ``done`` already recorded, committing each to ``job.state``."""


def _verbose() -> int:
    return 1 if sys.stdout.isatty() else 2


def _epoch_seed(cfg: TrainConfig, stage: str, epoch: int) -> int:
    return (cfg.seed * 1_000_003 + (0 if stage == "head" else 500_000) + epoch) % (2**31)


def _run_epochs(job: Job, stage: str, epochs: int, start: int, batch: int) -> None:
    """Epoch loop shared by live-image stages: fit one epoch, checkpoint, commit state.

    A fine-tune epoch with ``cfg.finetune_samples`` is a weighted draw (``job.weights``) of that
    many images; the draw derives from the epoch seed, so a resumed run repeats it exactly.
    """
    import keras

    cfg, model, train, state = job.cfg, job.model, job.train, job.state
    val_ds = make_dataset(job.val.x, job.val.y, 64, None)
    for epoch in range(start, epochs):
        seed = _epoch_seed(cfg, stage, epoch)
        keras.utils.set_random_seed(seed)
        samples = cfg.finetune_samples if stage == "finetune" else 0
        order = epoch_order(len(train.x), seed, samples, job.weights)
        ds = make_dataset(train.x, train.y, batch, seed, cfg.augment, order=order)
        t0 = time.time()
        print(f"[{stage}] epoch {epoch + 1}/{epochs}")
        h = model.fit(ds, validation_data=val_ds, epochs=1, verbose=_verbose(), callbacks=list(job.callbacks)).history
        secs = time.time() - t0
        ckpt = f"checkpoint-{stage}-e{epoch + 1}.keras"
        save_model_atomic(model, state.run_dir / ckpt)
        row = dict(stage=stage, epoch=epoch + 1, loss=h["loss"][0], accuracy=h["accuracy"][0],
                   val_loss=h["val_loss"][0], val_accuracy=h["val_accuracy"][0], lr=current_lr(model),
                   seconds=round(secs, 2))
        state.commit(stage, epoch + 1, ckpt, [row], secs)
        print(f"[{stage}] epoch {epoch + 1}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
              f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f} ({secs:.0f}s)")


class HeadOnFeatures:
    """The head alone, fitted on cached features of the frozen base, as one unit: it takes
    seconds, so it is checkpointed once at the end rather than per epoch."""

    name = "head"

    def epochs(self, cfg: TrainConfig) -> int:
        return cfg.head_epochs

    def run(self, job: Job, done: int) -> None:
        import keras

        cfg, model, train, val = job.cfg, job.model, job.train, job.val
        t0 = time.time()
        set_base_trainable(model, False)
        print(f"[stage 1] caching frozen-base features of {len(train.x)} train (+flipped) and {len(val.x)} val crops")
        ftr = np.concatenate([cached_features(model, train.x, False, "train"),
                              cached_features(model, train.x, True, "train")])
        ytr = np.concatenate([train.y, train.y])
        # Balance as loss weights (mean 1, so the learning rate keeps its meaning).
        sw = None if job.weights is None else np.concatenate([job.weights, job.weights]) * len(ytr) / 2
        fva = cached_features(model, val.x, False, "val")
        print(f"[stage 1] features ready in {time.time() - t0:.0f}s; fitting head for {cfg.head_epochs} epochs")
        keras.utils.set_random_seed(cfg.seed)
        head = build_head(cfg.model, feature_dim=ftr.shape[1])
        compile_model(head, cfg.head_lr, label_smoothing=cfg.label_smoothing)
        hist = head.fit(
            ftr, onehot(ytr), sample_weight=sw, batch_size=cfg.head_batch, epochs=cfg.head_epochs,
            validation_data=(fva, onehot(val.y)), shuffle=True, verbose=_verbose(),
        )
        head_of(model).set_weights(head.get_weights())
        per_epoch = (time.time() - t0) / max(cfg.head_epochs, 1)
        h = hist.history
        rows = [dict(stage="head", epoch=e + 1, loss=h["loss"][e], accuracy=h["accuracy"][e],
                     val_loss=h["val_loss"][e], val_accuracy=h["val_accuracy"][e], lr=cfg.head_lr,
                     seconds=round(per_epoch, 2))
                for e in range(cfg.head_epochs)]
        ckpt = "checkpoint-head.keras"
        compile_model(model, cfg.head_lr, label_smoothing=cfg.label_smoothing)
        save_model_atomic(model, job.state.run_dir / ckpt)
        job.state.commit("head", cfg.head_epochs, ckpt, rows, time.time() - t0)


class HeadOnImages:
    """The head on the frozen base, fed live augmented images, checkpointed per epoch (the
    paper's recipe; minutes per epoch on a CPU)."""

    name = "head"

    def epochs(self, cfg: TrainConfig) -> int:
        return cfg.head_epochs

    def run(self, job: Job, done: int) -> None:
        cfg = job.cfg
        if done == 0:
            set_base_trainable(job.model, False)
            compile_model(job.model, cfg.head_lr, label_smoothing=cfg.label_smoothing)
        _run_epochs(job, self.name, cfg.head_epochs, done, cfg.head_batch)


class FineTune:
    """The base unfrozen (from ``cfg.finetune_from``; BatchNorm frozen), cosine-decayed lr."""

    name = "finetune"

    def epochs(self, cfg: TrainConfig) -> int:
        return cfg.finetune_epochs

    def run(self, job: Job, done: int) -> None:
        cfg, model = job.cfg, job.model
        if done == 0:
            set_base_trainable(model, True, cfg.finetune_from)
            if cfg.freeze_head_batchnorm:
                freeze_batchnorm(model, head=True)
            per_epoch = -(-(cfg.finetune_samples or len(job.train.x)) // cfg.finetune_batch)
            steps = cfg.finetune_epochs * per_epoch
            compile_model(model, cfg.finetune_lr, steps if cfg.cosine_decay else None,
                          warmup=int(cfg.warmup_epochs * per_epoch), label_smoothing=cfg.label_smoothing)
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        print(f"[finetune] {trainable:,} trainable parameters, BatchNorm frozen")
        _run_epochs(job, self.name, cfg.finetune_epochs, done, cfg.finetune_batch)


def stages(cfg: TrainConfig) -> list[Stage]:
    """The stages of ``cfg``'s recipe, in order."""
    return [HeadOnFeatures() if cfg.head_on_cached_features else HeadOnImages(), FineTune()]


def remaining(cfg: TrainConfig, state: RunState) -> list[tuple[Stage, int]]:
    """``(stage, epochs already done)`` for each stage of ``cfg`` that ``state`` has not finished."""
    out = []
    for stage in stages(cfg):
        done = state.epochs_done(stage.name, stage.epochs(cfg))
        if done < stage.epochs(cfg):
            out.append((stage, done))
    return out


def _check_same_config(cfg_path: Path, cfg: TrainConfig) -> None:
    saved = json.loads(cfg_path.read_text())["train"]
    now = json.loads(json.dumps(cfg.to_dict()))
    if saved != now:
        changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        raise ValueError(f"{cfg_path}: the run was started with another config ({', '.join(changed)} differ); "
                         "resume with the same one")


def train_model(cfg: TrainConfig, train: ArraySet, val: ArraySet, run_dir: str | Path,
                weights: str | None = "imagenet", resume: bool = False, callbacks=(), meta: dict | None = None,
                sources=None, init: str | Path | None = None):
    """Run (or resume) every stage in ``run_dir``; returns the trained Keras model.

    ``sources`` (one name per training image) lets ``cfg.balance == "label_source"`` weigh
    sources equally within a class. ``init`` (a ``.keras`` model of the same architecture, e.g.
    the released paper model) starts the run from its weights and skips the head stage: a
    warm start that extends a trained model to new data at the cost of a few fine-tune epochs.

    Writes ``config.json``, ``state.json``, ``history.csv`` and, at the end, ``model.keras``
    (inference model without optimizer state). ``resume=False`` on a folder that already
    holds a run is refused rather than silently overwritten. ``callbacks`` are Keras callbacks
    passed to every live-image epoch (e.g. TensorBoard). ``meta`` (manifest, preset, ...) is
    stored beside the config in ``config.json`` for the evaluation report.
    """
    import keras

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = RunState(run_dir)
    cfg_path = run_dir / "config.json"
    if state.started and not resume:
        raise FileExistsError(f"{run_dir} already holds a run (stage {state.stage}, epoch {state.epoch}); "
                              "pass resume=True (--resume) or choose another folder")
    if resume and cfg_path.exists():
        _check_same_config(cfg_path, cfg)
    draw = sample_weights(train.y, sources, cfg.balance) if cfg.balance != "none" else None
    strategy = make_strategy(cfg.distribute)
    blob = {"train": cfg.to_dict(), "weights": str(weights), "preset": cfg.preset,
            "strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
            "backend": keras.backend.backend(), "devices": devices(), **(meta or {})}
    if init is not None:
        blob["init"] = {"path": str(init), "sha256": hashlib.sha256(Path(init).read_bytes()).hexdigest()}
    atomic_write_text(cfg_path, json.dumps(blob, indent=1))
    print(f"strategy {blob['strategy']} with {blob['replicas']} replica(s)")
    with strategy.scope():
        if state.checkpoint:
            print(f"resuming {run_dir} after {state.stage} epoch {state.epoch} from {state.checkpoint}")
            model = keras.saving.load_model(run_dir / state.checkpoint)
        else:
            keras.utils.set_random_seed(cfg.seed)
            model = build_model(cfg.model, weights)
            if init is not None:
                model.set_weights(keras.saving.load_model(init, compile=False).get_weights())
                ckpt = "checkpoint-init.keras"
                save_model_atomic(model, run_dir / ckpt)
                state.commit("head", cfg.head_epochs, ckpt, [], 0.0)  # the head stage counts as done
                print(f"warm start from {init}: head stage skipped")
        job = Job(cfg, model, train, val, state, callbacks, draw)
        for stage, done in remaining(cfg, state):
            stage.run(job, done)

    final = build_model(cfg.model, weights=None)
    final.set_weights(model.get_weights())
    save_model_atomic(final, run_dir / "model.keras")
    state.commit("done", state.epoch, state.checkpoint, [], 0.0)
    return final
