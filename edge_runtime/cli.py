"""``br35h-edge`` / ``python -m edge_runtime``: predict, bench, watch, evaluate.

Exit status: 0 all images classified, 1 at least one input failed (its record says why), an
input yielded no image, or (``watch --once``) a file is left for the next run; 2 the model, the
output or the arguments are unusable (checked before any image is read; nothing is written);
130 interrupted (``predict -o`` keeps partial results as ``NAME.partial``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
import sys

from .bench import bench, compare
from .classifier import Classifier
from .default_model import ModelNotFoundError
from . import evaluate as evaluate_cmd
from .image_io import DecodeConfig
from .interpreter import DEFAULT_THREADS, ModelError, find_backend
from .ledger import Ledger
from .outputs import AtomicOutput, OutputError, check_output
from .records import classify_record, write_records
from .timing import TimingConfig
from .unknown import REASONS
from .walk import expand, is_image_name
from .watch import WatchConfig, watch


def _interval(text: str) -> float:
    """``--interval``: refused at parse time, not after the first pass."""
    value = float(text)
    if not (math.isfinite(value) and value >= 0.01):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0.01 (0 would be a busy loop), got {text}")
    return value


def _decode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory-budget-mb", type=int, default=DecodeConfig.memory_budget_mb,
                   help="refuse images whose decode would need more memory (estimated from the header; "
                        f"default {DecodeConfig.memory_budget_mb}, fits a 1 GB Raspberry Pi)")
    p.add_argument("--no-draft", dest="draft", action="store_false",
                   help="decode large JPEGs at full size, exactly as training did (default: JPEGs whose "
                        f"shorter side is >= {2 * DecodeConfig.draft_min_side} px are decoded at 1/2..1/8 size)")


def _check_threads(threads: int) -> None:
    """Threads beyond the CPU count only add contention; hundreds abort natively in XNNPACK."""
    cpus = os.cpu_count() or 1
    if not 1 <= threads <= cpus:
        raise ValueError(f"--threads {threads}: must be between 1 and {cpus} (the number of CPUs here)")


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
    common.add_argument("--accept-all-views", action="store_true",
                        help="answer slices in views the model's view gate refuses (sagittal, coronal, skull-base "
                             "axial...: views its validation did not cover), judging them like any other slice")
    parser = argparse.ArgumentParser(prog="br35h-edge", description="BR35H brain-tumour classifier for edge devices.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", parents=[common], help="classify files, folders (recursive) or globs")
    p.add_argument("inputs", nargs="+", help="image files, folders or quoted glob patterns")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--jsonl", dest="format", action="store_const", const="jsonl", help="one JSON object per image")
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv", help="CSV with a header")
    p.add_argument("--output", "-o", type=Path, help="write here instead of stdout (replaced only when the run ends)")
    _decode_args(p)
    p.set_defaults(format="table")

    b = sub.add_parser("bench", parents=[common], help="on-device latency: warm-up, N runs, percentiles")
    b.add_argument("--image", type=Path, help="image to preprocess and classify (default: synthetic slice)")
    b.add_argument("--runs", type=int, default=TimingConfig.runs)
    b.add_argument("--warmup", type=int, default=TimingConfig.warmup)
    b.add_argument("--json", type=Path, help="also write the full result as JSON here")
    b.add_argument("--compare", nargs="*", type=Path, metavar="PATH",
                   help="time every artifact (.tflite; .onnx if onnxruntime is installed) in these files/folders "
                        "(none given: the released model's folder) in one run and say which to use here")

    w = sub.add_parser("watch", parents=[common], help="classify every new image in a folder, append to a log")
    w.add_argument("folder", type=Path)
    w.add_argument("--output", "-o", type=Path, required=True, help="log file: .jsonl or .csv (appended)")
    w.add_argument("--interval", type=_interval, default=1.0, help="poll interval in seconds (>= 0.01)")
    w.add_argument("--recursive", action="store_true")
    w.add_argument("--once", action="store_true", help="one pass over what is there now, then exit")
    w.add_argument("--rescan", type=_interval, default=WatchConfig.rescan_s,
                   help="seconds between full scans that catch files rewritten in place (default %(default)s); "
                        "between them an idle poll costs the same whatever the folder size")
    _decode_args(w)

    evaluate_cmd.add_parser(sub, common)
    return parser


def _classifier(args: argparse.Namespace) -> Classifier:
    backend = find_backend(args.backend) if args.backend else None
    decode = None
    if hasattr(args, "memory_budget_mb"):
        decode = DecodeConfig(memory_budget_mb=args.memory_budget_mb, draft=args.draft)
    return Classifier(args.model, num_threads=args.threads, backend=backend, decode=decode,
                      operating_point=getattr(args, "operating_point", "default"),
                      accept_all_views=getattr(args, "accept_all_views", False))


def _predict(args: argparse.Namespace) -> int:
    found = expand(args.inputs)
    for arg in found.empty:
        print(f"br35h-edge: {arg}: no image files found there", file=sys.stderr)
    if not found.files:
        print("br35h-edge: nothing to classify (0 images found)", file=sys.stderr)
        return 1
    out = None
    if args.output:
        check_output(args.output, found.files)
        out = AtomicOutput(args.output)  # locked from here on; nothing replaced until the end
    try:
        clf = _classifier(args)
        unknown = 0
        reasons = dict.fromkeys(REASONS, 0)

        def counted(rec: dict) -> dict:
            nonlocal unknown
            unknown += rec.get("label") == "unknown"
            if rec.get("unknown_reason") in reasons:
                reasons[rec["unknown_reason"]] += 1
            return rec

        records = (counted(classify_record(clf, p)) for p in found.files)
        ok, failed = write_records(records, args.format, out.stream if out else sys.stdout)
    except BaseException:
        if out:
            partial = out.abort()
            if partial:
                print(f"br35h-edge: run stopped; {args.output} left unchanged, partial results in {partial}",
                      file=sys.stderr)
        raise
    if out:
        out.commit()
    why = ", ".join(f"{k} {v}" for k, v in reasons.items())
    print(f"{ok} classified, {failed} failed; {unknown} of the classified answered 'unknown' ({why}) "
          f"({clf.model.backend.name}, {clf.model.num_threads} threads, model {clf.model.path})",
          file=sys.stderr)
    return 1 if failed or found.empty else 0


def _compare(args: argparse.Namespace, clf: Classifier) -> int:
    from .default_model import candidates

    places = args.compare or [clf.model.path.parent, *(c.parent for c in candidates() if c.is_file())]
    paths = sorted({p for place in places for p in ([place] if place.is_file() else
                                                       [*place.glob("*.tflite"), *place.glob("*.onnx")])})
    res = compare(paths, args.image, args.threads, TimingConfig(args.runs, args.warmup), clf.model.backend)
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
    res = bench(clf, args.image, TimingConfig(args.runs, args.warmup))
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


def _watch(args: argparse.Namespace) -> int:
    cfg = WatchConfig(args.folder, args.output, args.interval, args.recursive, rescan_s=args.rescan)
    if not cfg.folder.is_dir():
        raise NotADirectoryError(f"{cfg.folder}: not a folder to watch")
    if cfg.output.is_dir() or is_image_name(cfg.output):
        raise OutputError(f"log {cfg.output} must be a .jsonl or .csv file, not a folder or an image name")
    ledger = Ledger(cfg.output)  # locked and repaired before the model loads
    try:
        clf = _classifier(args)
    except BaseException:
        ledger.close()
        raise
    print(f"watching {cfg.folder} -> {cfg.output} ({clf.model.backend.name}, {clf.model.num_threads} threads)",
          file=sys.stderr)

    def report(rec: dict) -> None:
        print(f"{rec['path']}: {rec['error'] or rec['label']}", file=sys.stderr)

    def note(msg: str) -> None:
        print(f"br35h-edge: {msg}", file=sys.stderr)

    try:
        summary = watch(clf, cfg, once=args.once, on_record=report, on_note=note, ledger=ledger)
    except KeyboardInterrupt:
        return 0  # Ctrl-C / SIGINT is the normal way to stop; every record is already on disk
    if summary.deferred:
        note(f"{len(summary.deferred)} file(s) left for the next run (being written or not readable yet)")
    return 1 if summary.failed or summary.deferred else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_threads(args.threads)
        if args.command in ("bench", "evaluate"):
            return {"bench": _bench, "evaluate": evaluate_cmd.command}[args.command](args, _classifier(args))
        return {"predict": _predict, "watch": _watch}[args.command](args)
    except (ModelError, ModelNotFoundError, ImportError, NotADirectoryError, ValueError) as exc:
        print(f"br35h-edge: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output or log cannot be created or written
        print(f"br35h-edge: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
