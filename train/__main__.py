"""``python -m train``: train a preset on a manifest, then evaluate on its test split.

A command line over :func:`train.pipeline.run`; exit code 2 when the data is missing or a
``--set`` override is malformed.

    python -m train --manifest splits/br35h-paper.csv --preset cpu --run runs/cpu-paper
    python -m train ... --resume          # continue an interrupted run where it stopped
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
import sys

from .model import ModelConfig
from .paths import DataNotFoundError
from .presets import PRESETS, get_preset, parse_override


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="split manifest CSV (splits/br35h-paper.csv, ...)")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    p.add_argument("--run", required=True, help="run folder (checkpoints, history, model, report)")
    p.add_argument("--head", choices=["paper", "slim"], help="override the preset's head")
    p.add_argument("--finetune-epochs", type=int, help="override the preset's fine-tuning epochs")
    p.add_argument("--seed", type=int, help="override the preset's seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe field, e.g. --set finetune_lr=2e-5 --set augment.zoom=0.05 (repeatable)")
    p.add_argument("--distribute", choices=["default", "mirrored"], help="tf.distribute strategy")
    p.add_argument("--data", help="BR35H folder (default: $BR35H_DATA or ../shared/data/br35h)")
    p.add_argument("--weights", help="ImageNet MobileNetV2 no-top .h5 (default: Keras' 'imagenet')")
    p.add_argument("--resume", action="store_true", help="continue the run in --run")
    p.add_argument("--init", type=Path, help="start from this trained .keras model (same architecture); skips the head stage")
    p.add_argument("--no-eval", action="store_true", help="skip the test-split evaluation and report")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = {}
    if args.head:
        overrides["model"] = ModelConfig(head=args.head)
    for name in ("finetune_epochs", "seed", "distribute"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    cfg = get_preset(args.preset, **overrides)
    try:
        for text in args.set:
            cfg = replace(cfg, **parse_override(text, cfg))
    except ValueError as exc:
        print(f"--set: {exc}", file=sys.stderr)
        return 2

    from .pipeline import run

    try:
        run(cfg, args.manifest, args.run, data_root=args.data, weights=args.weights, resume=args.resume,
            init=args.init, evaluate=not args.no_eval)
    except DataNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
