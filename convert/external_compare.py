"""Do two artifacts of one model agree on external images? Compares two ``predictions.csv``.

``python -m convert.external_compare A/predictions.csv B/predictions.csv --out int8_vs_fp16.md``

The conversion gate checks int8 against Keras on the BR35H test split, where the int8 ranges
were calibrated. Scans from elsewhere can drive activations outside those ranges, so agreement
has to be measured on them too: per class, for the near-twins of the training data and for the
independent images, how often the two decisions differ and in which direction.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
import shlex
import sys

import numpy as np

from edge_runtime.evaluate import class_key


def read(path: Path) -> dict[str, dict]:
    return {r["path"]: r for r in csv.DictReader(path.open()) if not r["error"]}


def compare(a: dict[str, dict], b: dict[str, dict]) -> list[dict]:
    """One row per (subset, class): images, agreement, A-yes/B-no, A-no/B-yes, |dp| median and p90."""
    common = sorted(a.keys() & b.keys())
    if not common:
        raise ValueError("the two predictions files share no image")
    rows = []
    for subset, twin in (("independent", "0"), ("near-twins of training", "1")):
        keys = [k for k in common if a[k]["twin"] == twin]
        classes = sorted({a[k]["class"] for k in keys}, key=class_key)
        for cls in [*classes, "all"]:
            ks = [k for k in keys if cls == "all" or a[k]["class"] == cls]
            if not ks:
                continue
            d = np.array([abs(float(a[k]["p_tumour"]) - float(b[k]["p_tumour"])) for k in ks])
            rows.append({
                "subset": subset, "class": cls, "n": len(ks),
                "agree": sum(a[k]["predicted"] == b[k]["predicted"] for k in ks),
                "a_yes_b_no": sum(a[k]["predicted"] == "yes" and b[k]["predicted"] == "no" for k in ks),
                "a_no_b_yes": sum(a[k]["predicted"] == "no" and b[k]["predicted"] == "yes" for k in ks),
                "dp_median": float(np.median(d)), "dp_p90": float(np.percentile(d, 90)),
            })
    return rows


def markdown(rows: list[dict], name_a: str, name_b: str, command: str) -> str:
    lines = [f"# `{name_a}` vs `{name_b}` on the same external images", "", f"Command: `{command}`", "",
             "| subset | class | images | same decision | A yes, B no | A no, B yes | median abs(dP) | p90 abs(dP) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['subset']} | {r['class']} | {r['n']} | {r['agree']} ({100 * r['agree'] / r['n']:.1f} %) | "
                     f"{r['a_yes_b_no']} | {r['a_no_b_yes']} | {r['dp_median']:.4f} | {r['dp_p90']:.3f} |")
    lines += ["", f"A = `{name_a}`, B = `{name_b}`; dP = difference in P(tumour)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convert.external_compare", description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="predictions.csv of artifact A")
    p.add_argument("b", type=Path, help="predictions.csv of artifact B (same images)")
    p.add_argument("--out", type=Path, help="write the Markdown table here (default: stdout only)")
    args = p.parse_args(argv)
    command = "python -m convert.external_compare " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        md = markdown(compare(read(args.a), read(args.b)), args.a.parent.name, args.b.parent.name, command)
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
