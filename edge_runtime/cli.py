"""``br35h-edge`` / ``python -m edge_runtime``: predict, bench, watch.

Exit status: 0 all images classified, 1 at least one input failed (its record says why),
2 the model or the arguments are unusable (nothing was classified).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from .bench import BenchConfig, bench
from .classifier import Classifier
from .default_model import ModelNotFoundError
from .inputs import expand
from .interpreter import DEFAULT_THREADS, ModelError, find_backend
from .records import FORMATS, classify_record, write_records
from .watch import WatchConfig, watch


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", type=Path, help="a .tflite model (default: the released int8 model)")
    common.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"interpreter threads (default {DEFAULT_THREADS})")
    common.add_argument("--backend", choices=["ai-edge-litert", "tflite-runtime", "tensorflow"],
                        help="force a TFLite backend (default: first available in that order)")
    common.add_argument("--operating-point", choices=["default", "sensitivity", "specificity"], default="default",
                        help="decision threshold from the model's contract: default, >= 99%% sensitivity or "
                             ">= 99%% specificity on validation")
    parser = argparse.ArgumentParser(prog="br35h-edge", description="BR35H brain-tumour classifier for edge devices.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", parents=[common], help="classify files, folders (recursive) or globs")
    p.add_argument("inputs", nargs="+", help="image files, folders or quoted glob patterns")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--jsonl", dest="format", action="store_const", const="jsonl", help="one JSON object per image")
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv", help="CSV with a header")
    p.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    p.set_defaults(format="table")

    b = sub.add_parser("bench", parents=[common], help="on-device latency: warm-up, N runs, percentiles")
    b.add_argument("--image", type=Path, help="image to preprocess and classify (default: synthetic slice)")
    b.add_argument("--runs", type=int, default=BenchConfig.runs)
    b.add_argument("--warmup", type=int, default=BenchConfig.warmup)
    b.add_argument("--json", type=Path, help="also write the full result as JSON here")

    w = sub.add_parser("watch", parents=[common], help="classify every new image in a folder, append to a log")
    w.add_argument("folder", type=Path)
    w.add_argument("--output", "-o", type=Path, required=True, help="log file: .jsonl or .csv (appended)")
    w.add_argument("--interval", type=float, default=1.0, help="poll interval in seconds")
    w.add_argument("--recursive", action="store_true")
    w.add_argument("--once", action="store_true", help="one pass over what is there now, then exit")
    return parser


def _classifier(args: argparse.Namespace) -> Classifier:
    backend = find_backend(args.backend) if args.backend else None
    return Classifier(args.model, num_threads=args.threads, backend=backend, operating_point=args.operating_point)


def _predict(args: argparse.Namespace, clf: Classifier) -> int:
    paths = expand(args.inputs)
    unknown = 0

    def counted(rec: dict) -> dict:
        nonlocal unknown
        unknown += rec.get("label") == "unknown"
        return rec

    records = (counted(classify_record(clf, p)) for p in paths)
    if args.output:
        with open(args.output, "w", newline="") as f:
            ok, failed = write_records(records, args.format, f)
    else:
        ok, failed = write_records(records, args.format, sys.stdout)
    print(f"{ok} classified, {failed} failed; {unknown} of the classified answered 'unknown' (out of domain or "
          f"no brain found) ({clf.model.backend.name}, {clf.model.num_threads} threads, model {clf.model.path})",
          file=sys.stderr)
    return 1 if failed else 0


def _bench(args: argparse.Namespace, clf: Classifier) -> int:
    res = bench(clf, args.image, BenchConfig(args.runs, args.warmup))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    inf, pre = res["inference"], res["preprocess"]
    print(f"model {res['model']}  backend {res['backend']} {res['backend_version']}  threads {res['num_threads']}")
    print(f"machine {res['machine']['cpu']} ({res['machine']['arch']}, {res['machine']['cores']} cores)")
    for name, s in (("inference", inf), ("preprocess", pre)):
        print(f"{name:10} mean {s['mean_ms']:.2f}  std {s['std_ms']:.2f}  p50 {s['p50_ms']:.2f}  "
              f"p90 {s['p90_ms']:.2f}  p99 {s['p99_ms']:.2f} ms  (n={s['n']}, warm-up {res['warmup']})")
    return 0


def _watch(args: argparse.Namespace, clf: Classifier) -> int:
    cfg = WatchConfig(args.folder, args.output, args.interval, args.recursive)
    print(f"watching {cfg.folder} -> {cfg.output} ({clf.model.backend.name}, {clf.model.num_threads} threads)",
          file=sys.stderr)
    failed = 0

    def report(rec: dict) -> None:
        nonlocal failed
        failed += rec["error"] is not None
        print(f"{rec['path']}: {rec['error'] or rec['label']}", file=sys.stderr)

    try:
        watch(clf, cfg, once=args.once, on_record=report)
    except KeyboardInterrupt:
        pass  # Ctrl-C / SIGINT is the normal way to stop; every record is already on disk
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        clf = _classifier(args)
        return {"predict": _predict, "bench": _bench, "watch": _watch}[args.command](args, clf)
    except (ModelError, ModelNotFoundError, ImportError, NotADirectoryError, ValueError) as exc:
        print(f"br35h-edge: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
