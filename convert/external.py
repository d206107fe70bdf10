"""External validation: any artifact on any labelled folder tree or manifest, with the model's
own training images taken out.

``python -m convert.external --model ARTIFACT (--data DIR | --manifest CSV --data ROOT)
[--exclude-twins-of MANIFEST ...] --out DIR``

A score on BR35H says how the model does on BR35H. Before anyone relies on it elsewhere it has
to be measured on scans from elsewhere, and those collections are not independent of BR35H by
default (Nickparvar contains most of its normals). So this command:

* labels images from folder names (:mod:`edge_runtime.labels`, the rules the device uses) or
  reads a split manifest (optionally one ``--split``; multi-source rows read from their own source);
* decodes and crops exactly as training does (``load_rgb`` + the OpenCV crop of
  :mod:`train.data.crop_cv`) and runs the artifact in its real runtime (:mod:`convert.runtimes`:
  LiteRT for ``.tflite``, onnxruntime for ``.onnx``; Keras for ``.keras``);
* marks every image that is a near-twin of any row of the ``--exclude-twins-of`` manifests
  (:mod:`convert.twins`), leaves it out of the headline metrics and counts it per class (the
  twins' own numbers are reported too, as the "seen images" contrast);
* for an artifact carrying a contract with a domain check, decides ``in_domain`` and the
  ``unknown_reason`` of each image from its domain output exactly as the device runtime does
  (:mod:`edge_runtime.unknown`), so the report adds coverage and answered-only metrics;
* writes ``report.json``, ``report.md`` (metrics with 95 % intervals from
  :mod:`edge_runtime.evaluate`, the same code as ``br35h-edge evaluate``) and ``predictions.csv``.

The decision threshold is the model's (0.5): external data is reported on, never tuned on.
Exit status: 0 all images scored, 1 some failed to decode (listed), 2 unusable input.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass, field
import io
import json
import math
from pathlib import Path
import shlex
import sys
import time
from typing import Callable, Sequence

import numpy as np

from edge_runtime.config import TUMOUR_INDEX, CropConfig
from edge_runtime.contract import Contract, load_contract
from edge_runtime.evaluate import EvaluationConfig, ScoredImage, class_key, markdown_summary, summarise
from edge_runtime.image_io import ImageDecodeError, load_rgb
from edge_runtime.interpreter import ModelError
from edge_runtime.labels import LabelledPath, label_from_parts, label_tree
from edge_runtime.machine import describe, machine_info, package_versions
from edge_runtime.unknown import DomainRule, verdict
from train.data.dedup import DedupConfig
from train.report import sha256_file

Predictor = Callable[[np.ndarray], np.ndarray]
#: Raw RGB batch -> (probabilities (N, 2), domain scores (N,) or None without a domain output).
Outputs = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]


@dataclass(frozen=True)
class ExternalConfig:
    """``threshold``/``histogram_bins``: see :class:`edge_runtime.evaluate.EvaluationConfig`;
    ``batch_size``: images decoded, cropped and predicted at once (memory stays at one batch);
    ``num_threads``: runtime threads (None = the runtime's default); ``borderline``: images whose
    best twin correlation is within this of the threshold are counted and the metrics are given
    once more without them, so a reader sees how much the result hangs on the twin threshold."""

    evaluation: EvaluationConfig = EvaluationConfig()
    dedup: DedupConfig = DedupConfig()
    crop: CropConfig = CropConfig()
    batch_size: int = 32
    num_threads: int | None = None
    borderline: float = 0.03


@dataclass
class ImageResult:
    """One image's row of ``predictions.csv``."""

    item: LabelledPath
    rel: str
    sha256: str = ""
    score: float = float("nan")
    no_brain_found: bool = False
    twin: bool = False
    twin_ncc: float = float("nan")
    twin_of: str = ""
    twin_view: str = ""
    domain_score: float = float("nan")
    in_domain: bool | None = None
    unknown_reason: str | None = None
    error: str = ""


@dataclass
class Outcome:
    report: dict
    results: list[ImageResult] = field(default_factory=list)


@dataclass(frozen=True)
class Scorer:
    """An artifact ready to score: ``outputs`` (see :data:`Outputs`), the runtime's name, and the
    refusal rule of its contract (None for an artifact without a contract or a domain check:
    then ``in_domain`` stays None and the report has no "answered" section)."""

    outputs: Outputs
    runtime: str
    rule: DomainRule | None


def open_predictor(artifact: str | Path, num_threads: int | None = None) -> tuple[Predictor, str]:
    """``(predict, runtime name)``: raw RGB 0..255 NHWC batch -> (N, 2) probabilities."""
    scorer = open_scorer(artifact, num_threads)
    return (lambda x: scorer.outputs(x)[0]), scorer.runtime


def open_scorer(artifact: str | Path, num_threads: int | None = None) -> Scorer:
    """The artifact in its runtime, with its contract's domain rule; a ``.keras`` file carries no
    contract. An altered artifact (graph hash differs from its contract) is a ValueError."""
    artifact = Path(artifact)
    if artifact.suffix == ".keras":
        import keras

        from train.evaluate import predict_probs

        model = keras.saving.load_model(artifact, compile=False)
        return Scorer(lambda x: (predict_probs(model, x), None),
                      f"keras {keras.__version__} ({keras.backend.backend()})", None)
    from convert.runtimes import open_artifact

    rule = DomainRule.of(artifact_contract(artifact))  # before the runtime: an altered graph is never run
    runner = open_artifact(artifact, num_threads)  # raises on an unknown suffix
    name = "ai-edge-litert" if artifact.suffix == ".tflite" else "onnxruntime"
    return Scorer(runner.predict_outputs, name, rule)


def artifact_contract(artifact: str | Path) -> Contract | None:
    """The verified contract a ``.tflite`` or ``.onnx`` carries (None when it has none, and for
    any other file), read with the device runtime's parser so both sides apply the same threshold."""
    from convert.contract import read_onnx

    artifact = Path(artifact)
    try:
        if artifact.suffix == ".tflite":
            return load_contract(artifact)
        if artifact.suffix != ".onnx":
            return None
        raw = read_onnx(artifact)
        return None if raw is None else Contract.from_dict(raw, str(artifact))
    except ModelError as exc:
        raise ValueError(str(exc)) from exc


def items_from_manifest(manifest: str | Path, data_root: str | Path, split: str | None = None
                        ) -> tuple[list[LabelledPath], dict[Path, str]]:
    """Rows of a split manifest as labelled paths (and each path's sha256).

    BR35H rows resolve against ``data_root``; rows of another source (multi-source manifests'
    ``source`` column) against that source's own folder (its environment variable or the shared
    default), since one ``--data`` cannot hold two collections. The original class is the
    manifest's ``class`` column when it has one, else the folder that labels the path
    (``glioma/x.jpg``), else the label.
    """
    from train.data.manifest import read_manifest

    rows = [r for r in read_manifest(manifest) if split is None or r.split == split]
    if not rows:
        raise ValueError(f"{manifest}: no rows" + (f" in split {split!r}" if split else ""))
    roots = manifest_roots(manifest, data_root)
    out, shas = [], {}
    for r in rows:
        got = label_from_parts(Path(r.path).parts[:-1], f"{manifest}: {r.path}")
        if got is not None and got[0] != r.label:
            raise ValueError(f"{manifest}: {r.path} is labelled {r.label!r} but its folder says {got[0]!r}")
        original = r.class_name if r.class_name != r.label else (got[1] if got else r.label)
        out.append(LabelledPath(roots[r.source] / r.path, r.label, original))
        shas[out[-1].path] = r.sha256
    return out, shas


def manifest_roots(manifest: str | Path, data_root: str | Path) -> dict[str, Path]:
    """Source name -> the folder its manifest rows resolve against (BR35H: ``data_root``)."""
    from train.data.manifest import DEFAULT_SOURCE, read_manifest
    from train.data.sources import get_source

    names = {r.source for r in read_manifest(manifest)} - {DEFAULT_SOURCE}
    return {DEFAULT_SOURCE: Path(data_root), **{n: get_source(n).root() for n in sorted(names)}}


def _prepare(res: ImageResult, crop: CropConfig, with_fingerprint: bool, dedup: DedupConfig, expected_sha: str | None):
    """Decode once: ``(crop, fingerprint or None)``; a bad file sets ``res.error`` and returns None."""
    from train.data.crop_cv import crop_image
    from train.data.dedup import fingerprint

    try:
        res.sha256 = sha256_file(res.item.path)
        if expected_sha and res.sha256 != expected_sha:
            res.error = f"sha256 {res.sha256[:12]}... differs from the manifest's {expected_sha[:12]}..."
            return None
        rgb = load_rgb(res.item.path, crop.max_pixels)
    except OSError as exc:
        res.error = f"cannot read file ({exc.strerror or exc})"
        return None
    except ImageDecodeError as exc:
        res.error = exc.reason
        return None
    x, box = crop_image(rgb, crop)
    res.no_brain_found = box.fallback
    return x, fingerprint(rgb, dedup, crop) if with_fingerprint else None


def score_items(items: Sequence[LabelledPath], root: Path, predict: Outputs, reference=None,
                cfg: ExternalConfig = ExternalConfig(), progress: Callable[[int, int], None] | None = None,
                expected_sha: dict[Path, str] | None = None, rule: DomainRule | None = None) -> list[ImageResult]:
    """Decode, crop, twin-check and predict every item, one batch in memory at a time.

    ``expected_sha`` (manifest mode): a file whose content differs from its row is a failure.
    ``rule``: the artifact's domain rule; with it each image gets ``in_domain`` and
    ``unknown_reason`` as on the device, without it both stay None.
    """
    from convert import twins

    results = [ImageResult(it, _relative(it.path, root)) for it in items]
    for start in range(0, len(results), cfg.batch_size):
        batch = results[start:start + cfg.batch_size]
        ok, crops, fps = [], [], []
        for res in batch:
            got = _prepare(res, cfg.crop, reference is not None, cfg.dedup, (expected_sha or {}).get(res.item.path))
            if got is not None:
                ok.append(res)
                crops.append(got[0])
                fps.append(got[1])
        if not ok:
            continue
        probs, domain = predict(np.stack(crops))
        probs = np.asarray(probs)
        if probs.shape != (len(ok), 2) or not np.isfinite(probs).all():
            raise ValueError(f"the model returned {probs.shape} (finite: {np.isfinite(probs).all()}), expected ({len(ok)}, 2)")
        if rule is not None and domain is None:
            raise ValueError("the artifact's contract has a domain threshold but the artifact has no domain output")
        for i, (res, p) in enumerate(zip(ok, probs[:, TUMOUR_INDEX])):
            res.score = float(p)
            if domain is not None:
                res.domain_score = float(domain[i])
            if rule is not None:
                res.in_domain, res.unknown_reason = verdict(res.no_brain_found, res.domain_score, rule)
        if reference is not None:
            for res, m in zip(ok, twins.match(fps, [r.sha256 for r in ok], reference, cfg.dedup)):
                res.twin, res.twin_ncc, res.twin_of, res.twin_view = m.twin, m.ncc, m.of, m.view
        if progress:
            progress(min(start + cfg.batch_size, len(results)), len(results))
    return results


def _relative(path: Path, root: Path | Sequence[Path]) -> str:
    for r in [root] if isinstance(root, Path) else root:
        try:
            return str(path.relative_to(r))
        except ValueError:
            continue
    return str(path)


def _scored(results: Sequence[ImageResult]) -> list[ScoredImage]:
    return [ScoredImage(r.rel, r.item.label, r.item.original_class, r.score, r.in_domain, r.unknown_reason)
            for r in results]


def exclusion_table(results: Sequence[ImageResult]) -> dict[str, dict]:
    """Per original class: found, failed to decode, near-twins excluded, evaluated."""
    out: dict[str, dict] = {}
    for r in results:
        d = out.setdefault(r.item.original_class, {"label": r.item.label, "found": 0, "failed": 0,
                                                   "twins_excluded": 0, "evaluated": 0})
        d["found"] += 1
        if r.error:
            d["failed"] += 1
        elif r.twin:
            d["twins_excluded"] += 1
        else:
            d["evaluated"] += 1
    return {k: out[k] for k in sorted(out, key=class_key)}


def build_report(results: list[ImageResult], *, artifact: Path, runtime: str, source: dict, exclude: list[str],
                 unlabelled_skipped: int, command: str, cfg: ExternalConfig, seconds: float,
                 rule: DomainRule | None = None) -> dict:
    independent = [r for r in results if not r.error and not r.twin]
    twin_rows = [r for r in results if not r.error and r.twin]
    cut = cfg.dedup.min_ncc - cfg.borderline
    clear = [r for r in independent if not r.twin_ncc >= cut]  # nan (no reference) counts as clear
    border_counts: dict[str, int] = {}
    for r in independent:
        if r.twin_ncc >= cut:
            border_counts[r.item.original_class] = border_counts.get(r.item.original_class, 0) + 1
    return {
        "command": command,
        "artifact": {"path": str(artifact), "sha256": sha256_file(artifact), "bytes": artifact.stat().st_size,
                     "runtime": runtime},
        "data": source,
        "exclude_twins_of": exclude,
        "twin_rule": {**cfg.dedup.to_dict(), "note": "best 64x64 NCC over raw/crop views and mirrors, exhaustive; "
                      "or the same sha256"} if exclude else None,
        "machine": {**machine_info(),
                    "libraries": package_versions(("ai-edge-litert", "onnxruntime", "tensorflow", "keras", "numpy",
                                                   "pillow", "opencv-python-headless"))},
        "crop_fingerprint": cfg.crop.fingerprint(),
        "domain_check": None if rule is None else {"threshold": rule.threshold,
                                                   "view_gate": rule.view_gate},
        "unlabelled_skipped": unlabelled_skipped,
        "per_class": exclusion_table(results),
        "no_brain_found": sum(r.no_brain_found for r in independent),
        "failures": [{"path": r.rel, "reason": r.error} for r in results if r.error],
        "seconds": round(seconds, 1),
        "metrics": summarise(_scored(independent), cfg.evaluation) if independent else None,
        "metrics_excluded_twins": summarise(_scored(twin_rows), cfg.evaluation) if twin_rows else None,
        "borderline": {"ncc_from": cut, "ncc_below": cfg.dedup.min_ncc, "per_class": border_counts,
                       "metrics_without": summarise(_scored(clear), cfg.evaluation)
                       if exclude and clear and border_counts else None},
    }


def markdown_report(r: dict) -> str:
    a, m = r["artifact"], r["machine"]
    src = r["data"]
    where = f"`{src['root']}`" + (f" (manifest `{src['manifest']}`" + (f", split {src['split']}" if src.get("split") else "")
                                   + ")" if src.get("manifest") else "")
    lines = [
        f"# External validation: `{Path(a['path']).name}` on {where}", "",
        f"Command: `{r['command']}`  ",
        f"Artifact: `{a['path']}`, {a['bytes'] / 2**20:.1f} MiB, sha256 `{a['sha256']}`, run with {a['runtime']}  ",
        f"Machine: {describe(m)}  ",
        f"Crop: the training crop (`load_rgb` + OpenCV, fingerprint `{r['crop_fingerprint']}`); "
        f"{r['seconds']:.0f} s in all.", "",
    ]
    dom = r.get("domain_check")
    if dom:
        gate = "" if not dom["view_gate"] else "; a negative domain score is its view gate's refusal"
        lines += [f"Domain check from the artifact's contract: answered when domain score >= {dom['threshold']:.6g}"
                  f"{gate} (the device runtime's rule).", ""]
    if r["exclude_twins_of"]:
        rule = r["twin_rule"]
        lines += [f"Near-twins of any row of {', '.join(f'`{e}`' for e in r['exclude_twins_of'])} are excluded "
                  f"(64x64 NCC >= {rule['min_ncc']} on the whole image, the brain crop or their mirrors, or the same "
                  "sha256; `train/data/dedup.py`'s rule)."]
    else:
        lines += ["No twin exclusion was asked for (`--exclude-twins-of`): these images may overlap the training data."]
    lines += [f"Unlabelled files skipped: {r['unlabelled_skipped']}. Failed to decode: {len(r['failures'])}.", "",
              "| class | label | found | failed | near-twins excluded | evaluated |", "|---|---|---|---|---|---|"]
    tot = {k: 0 for k in ("found", "failed", "twins_excluded", "evaluated")}
    for cls, d in r["per_class"].items():
        lines.append(f"| {cls} | {d['label']} | {d['found']} | {d['failed']} | {d['twins_excluded']} | {d['evaluated']} |")
        for k in tot:
            tot[k] += d[k]
    lines += [f"| all | | {tot['found']} | {tot['failed']} | {tot['twins_excluded']} | {tot['evaluated']} |", ""]
    lines += ["## Independent images (the external result)", ""]
    lines += markdown_summary(r["metrics"]) if r["metrics"] else ["No independent image was scored."]
    lines += ["", f"No brain found (whole image classified): {r['no_brain_found']} of the independent images."]
    b = r["borderline"]
    if b["metrics_without"]:
        w = b["metrics_without"]
        counts = ", ".join(f"{k} {v}" for k, v in b["per_class"].items())
        lines += ["", f"Borderline: {sum(b['per_class'].values())} independent images have a best twin correlation in "
                  f"[{b['ncc_from']:.2f}, {b['ncc_below']:.2f}) ({counts}). Without them too: "
                  f"sensitivity {_short(w['sensitivity'])}, specificity {_short(w['specificity'])}, "
                  f"balanced accuracy {_short(w['balanced_accuracy'])}, ROC-AUC {_short(w['roc_auc'])}."]
    t = r["metrics_excluded_twins"]
    if t:
        lines += ["", "## Excluded near-twins (seen by the model; for contrast only)", "",
                  f"{t['n']} images: sensitivity {_short(t['sensitivity'])}, specificity {_short(t['specificity'])}, "
                  f"ROC-AUC {_short(t['roc_auc'])}."]
    if r["failures"]:
        lines += ["", "## Files that failed (left out)", ""] + [f"- `{f['path']}`: {f['reason']}" for f in r["failures"]]
    return "\n".join(lines) + "\n"


def _short(d: dict) -> str:
    if d["value"] is None:
        return "n/a"
    count = f" ({d['k']}/{d['n']})" if "k" in d else ""
    return f"{100 * d['value']:.1f} %{count}"


def write_outputs(outcome: Outcome, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("path", "label", "class", "p_tumour", "predicted", "twin", "twin_ncc", "twin_of", "twin_view",
                "no_brain_found", "error", "domain_score", "in_domain", "unknown_reason"))
    thr = outcome.report["metrics"]["threshold"] if outcome.report["metrics"] else 0.5
    for r in outcome.results:
        ok = not r.error
        w.writerow((r.rel, r.item.label, r.item.original_class, f"{r.score:.6f}" if ok else "",
                    ("yes" if r.score > thr else "no") if ok else "", int(r.twin),
                    f"{r.twin_ncc:.4f}" if math.isfinite(r.twin_ncc) else "", r.twin_of, r.twin_view,
                    int(r.no_brain_found), r.error, f"{r.domain_score:.6f}" if math.isfinite(r.domain_score) else "",
                    "" if r.in_domain is None else int(r.in_domain), r.unknown_reason or ""))
    (out_dir / "predictions.csv").write_text(buf.getvalue())
    (out_dir / "report.json").write_text(json.dumps(outcome.report, indent=2) + "\n")
    (out_dir / "report.md").write_text(markdown_report(outcome.report))


def run(artifact: str | Path, out_dir: str | Path, *, data: str | Path, manifest: str | Path | None = None,
        split: str | None = None, exclude: Sequence[str | Path] = (), exclude_root: str | Path | None = None,
        skip_unlabelled: bool = False, cfg: ExternalConfig = ExternalConfig(), command: str = "",
        log: Callable[[str], None] = print) -> Outcome:
    """Evaluate ``artifact`` on a folder tree (``data``) or a manifest resolved against ``data``."""
    from convert import twins
    from train.paths import data_root

    t0 = time.perf_counter()
    artifact, root = Path(artifact), Path(data).expanduser()
    if not artifact.is_file():
        raise FileNotFoundError(f"{artifact}: no such model file")
    if manifest is not None:
        (items, expected), unlabelled = items_from_manifest(manifest, root, split), 0
        source = {"root": str(root), "manifest": str(manifest), "split": split}
        roots = list(manifest_roots(manifest, root).values())
    else:
        tree = label_tree(root, skip_unlabelled)
        items, unlabelled, expected = list(tree.items), len(tree.unlabelled), None
        source = {"root": str(root), "manifest": None, "split": None}
    reference = None
    if exclude:
        ref_root = Path(exclude_root).expanduser() if exclude_root else data_root()
        log(f"fingerprinting the rows of {', '.join(map(str, exclude))} under {ref_root}")
        reference = twins.merge([twins.reference_fingerprints(m, ref_root, cfg.dedup, cfg.crop) for m in exclude])
    scorer = open_scorer(artifact, cfg.num_threads)
    runtime = scorer.runtime
    log(f"{len(items)} images, {runtime}; reference set: {len(reference.fps) if reference else 0} images"
        + ("" if scorer.rule is None else f"; domain threshold {scorer.rule.threshold:.6g}"))
    step = max(1, len(items) // 10)

    def progress(done: int, total: int) -> None:
        if done % step < cfg.batch_size or done == total:
            log(f"  {done}/{total} images ({time.perf_counter() - t0:.0f} s)")

    results = score_items(items, roots if manifest is not None else root, scorer.outputs, reference, cfg, progress,
                          expected, scorer.rule)
    report = build_report(results, artifact=artifact, runtime=runtime, source=source,
                          exclude=[str(e) for e in exclude], unlabelled_skipped=unlabelled, command=command,
                          cfg=cfg, seconds=time.perf_counter() - t0, rule=scorer.rule)
    outcome = Outcome(report, results)
    write_outputs(outcome, Path(out_dir))
    return outcome


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m convert.external", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, type=Path, help=".keras, .tflite or .onnx")
    p.add_argument("--data", required=True, type=Path,
                   help="labelled folder tree (yes/no or tumour-type folders), or the root --manifest paths resolve against")
    p.add_argument("--manifest", type=Path, help="split manifest (path,sha256,label,group,split[,source,class]) instead of "
                   "folders; rows of another source than BR35H resolve against that source's folder")
    p.add_argument("--split", choices=("train", "val", "test"), help="only this split of --manifest")
    p.add_argument("--exclude-twins-of", action="append", default=[], type=Path, metavar="MANIFEST",
                   help="leave out images that are near-twins of any row of this manifest (repeatable)")
    p.add_argument("--exclude-root", type=Path, help="folder the --exclude-twins-of manifests resolve against "
                   "(default: $BR35H_DATA or ../shared/data/br35h)")
    p.add_argument("--skip-unlabelled", action="store_true", help="skip (and count) images in no labelling folder")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threshold", type=float, default=EvaluationConfig.threshold,
                   help="the model's decision threshold (chosen on its validation data, never on this set)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=ExternalConfig.batch_size)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.split and not args.manifest:
        print("error: --split needs --manifest", file=sys.stderr)
        return 2
    cfg = ExternalConfig(evaluation=EvaluationConfig(threshold=args.threshold), batch_size=args.batch_size,
                         num_threads=args.threads)
    command = "python -m convert.external " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        outcome = run(args.model, args.out, data=args.data, manifest=args.manifest, split=args.split,
                      exclude=args.exclude_twins_of, exclude_root=args.exclude_root,
                      skip_unlabelled=args.skip_unlabelled, cfg=cfg, command=command,
                      log=lambda s: print(s, file=sys.stderr))
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_report(outcome.report))
    print(f"report: {args.out / 'report.md'}", file=sys.stderr)
    return 1 if outcome.report["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
