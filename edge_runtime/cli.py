"""``br35h-edge`` / ``python -m edge_runtime``: predict, bench, watch.

Exit status: 0 all images classified, 1 at least one input failed (its record says why),
2 the model or the arguments are unusable (nothing was classified).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from .bench import BenchConfig, bench, compare
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
    b.add_argument("--compare", nargs="*", type=Path, metavar="PATH",
                   help="time every artifact (.tflite; .onnx if onnxruntime is installed) in these files/folders "
                        "(none given: the released model's folder) in one run and say which to use here")

    w = sub.add_parser("watch", parents=[common], help="classify every new image in a folder, append to a log")
    w.add_argument("folder", type=Path)
    w.add_argument("--output", "-o", type=Path, required=True, help="log file: .jsonl or .csv (appended)")
    w.add_argument("--interval", type=float, default=1.0, help="poll interval in seconds")
    w.add_argument("--recursive", action="store_true")
    w.add_argument("--once", action="store_true", help="one pass over what is there now, then exit")
    return parser


def _classifier(args: argparse.Namespace) -> Classifier:
    backend = find_backend(args.backend) if args.backend else None
    return Classifier(args.model, num_threads=args.threads, backend=backend)


def _predict(args: argparse.Namespace, clf: Classifier) -> int:
    paths = expand(args.inputs)
    records = (classify_record(clf, p) for p in paths)
    if args.output:
        with open(args.output, "w", newline="") as f:
            ok, failed = write_records(records, args.format, f)
    else:
        ok, failed = write_records(records, args.format, sys.stdout)
    print(f"{ok} classified, {failed} failed ({clf.model.backend.name}, {clf.model.num_threads} threads, "
          f"model {clf.model.path})", file=sys.stderr)
    return 1 if failed else 0


def _compare(args: argparse.Namespace, clf: Classifier) -> int:
    from .default_model import candidates

    places = args.compare or [clf.model.path.parent, *(c.parent for c in candidates() if c.is_file())]
    paths = sorted({p for place in places for p in ([place] if place.is_file() else
                                                       [*place.glob("*.tflite"), *place.glob("*.onnx")])})
    res = compare(paths, args.image, args.threads, BenchConfig(args.runs, args.warmup), clf.model.backend)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    m = res["machine"]
    print(f"machine {m['cpu']} ({m['isa_level']}: {' '.join(m['vector_features'])}), threads {res['threads']}, "
          f"load average {' '.join(f'{v:.2f}' for v in res['loadavg_start'] or [])}")
    for r in sorted(res["artifacts"], key=lambda r: r["inference"]["p50_ms"]):
        acc = "" if r["accuracy"] is None else f"  accuracy {100 * r['accuracy']:.2f}%"
        print(f"{r['name']:40} {r['runtime']:24} p50 {r['inference']['p50_ms']:7.2f} ms  "
              f"x{r['ratio_to_fastest']:.2f}  {r['bytes'] / 2**20:.1f} MiB{acc}")
    for s in res["skipped"]:
        print(f"{Path(s['artifact']).name:40} skipped: {s['reason']}")
    print(f"use {res['use']}: {res['why']}")
    return 0


def _bench(args: argparse.Namespace, clf: Classifier) -> int:
    if args.compare is not None:
        return _compare(args, clf)
    res = bench(clf, args.image, BenchConfig(args.runs, args.warmup))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    inf, pre = res["inference"], res["preprocess"]
    print(f"model {res['model']}  backend {res['backend']} {res['backend_version']}  threads {res['num_threads']}")
    print(f"machine {res['machine']['cpu']} ({res['machine']['arch']}, {res['machine']['cores']} cores, "
          f"{res['machine']['isa_level']}: {' '.join(res['machine']['vector_features'])})")
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
