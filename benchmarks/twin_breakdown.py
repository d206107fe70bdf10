"""A multi-source test score split by whether each image has a near-twin in the other source.

``python -m benchmarks.twin_breakdown --predictions reports/train/multi-multi-grouped/predictions.csv --manifest splits/multi-grouped.csv --out reports/train/multi-multi-grouped/twin_breakdown``

Nickparvar contains most of BR35H's normals. In a grouped multi-source split a Nickparvar normal
whose group also holds a BR35H image is a copy of a BR35H slice, so a per-source number mixes
"another site" with "BR35H again". This splits each (source, label) cell into images whose
near-duplicate group spans both sources and images whose group is one source only (independent).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
import csv
from pathlib import Path
import sys

from benchmarks.output import write_report
from train.data.manifest import read_manifest
from train.metrics import clopper_pearson


def breakdown(predictions: Path, manifest: Path) -> list[dict]:
    rows = read_manifest(manifest)
    sources_of_group = defaultdict(set)
    for r in rows:
        sources_of_group[r.group].add(r.source)
    group = {(r.source, r.path): r.group for r in rows}
    cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    with open(predictions, newline="") as f:
        for p in csv.DictReader(f):
            source = p.get("source") or "br35h"
            try:
                g = group[(source, p["path"])]
            except KeyError:
                raise ValueError(f"{predictions}: {source}:{p['path']} is not a row of {manifest}") from None
            kind = "spans both sources" if len(sources_of_group[g]) > 1 else "one source only"
            cell = cells[(source, p["label"], kind)]
            cell[0] += int(p["correct"])
            cell[1] += 1
    out = []
    for (source, label, kind), (k, n) in sorted(cells.items()):
        lo, hi = clopper_pearson(k, n)
        out.append({"source": source, "label": label, "group": kind, "correct": k, "n": n,
                    "rate": k / n, "ci95": [lo, hi]})
    return out


def markdown(rep: dict) -> str:
    lines = [f"# Test score by near-twin status across sources: `{rep['predictions']}`", "",
             f"Command: `{rep['command']}`. Rate = correct / n: specificity for `no`, sensitivity for `yes`; "
             "exact 95 % intervals.", "",
             "| source | label | near-duplicate group | correct / n | rate (95 % CI) |", "|---|---|---|---:|---|"]
    for c in rep["cells"]:
        lines.append(f"| {c['source']} | {c['label']} | {c['group']} | {c['correct']}/{c['n']} | "
                     f"{100 * c['rate']:.1f} % ({100 * c['ci95'][0]:.1f}-{100 * c['ci95'][1]:.1f}) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.twin_breakdown", description=__doc__.splitlines()[0])
    p.add_argument("--predictions", type=Path, required=True, help="a run's predictions.csv (with a source column)")
    p.add_argument("--manifest", type=Path, required=True, help="the multi-source manifest it was evaluated on")
    p.add_argument("--out", type=Path, required=True, help="output path without suffix (.json and .md are written)")
    a = p.parse_args(argv)
    rep = {"command": "python -m benchmarks.twin_breakdown " + " ".join(sys.argv[1:] if argv is None else argv),
           "predictions": str(a.predictions), "manifest": str(a.manifest), "cells": breakdown(a.predictions, a.manifest)}
    print(write_report(rep, a.out, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
