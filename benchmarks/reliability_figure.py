"""Reliability diagrams (before / after the folded temperature, per source) from a conversion report.

    python -m benchmarks.reliability_figure --report runs/X/convert/conversion_report.json \\
        --out reports/domain/reliability.png

The numbers are the ones ``python -m convert`` measured on the test split
(``probability_calibration`` in its report); this only draws them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys


def draw(report: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cal = report["probability_calibration"]
    if cal is None:
        raise ValueError("the report has no probability_calibration (converted with --domain off?)")
    groups = cal["per_source"]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4), squeeze=False)
    for ax, (name, g) in zip(axes[0], groups.items()):
        for key, colour in (("before", "tab:red"), ("after", "tab:blue")):
            r = g[key]
            pts = [(c, a) for c, a in zip(r["confidence"], r["accuracy"]) if c is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=colour,
                    label=f"{key} (ECE {100 * r['ece']:.2f} %)")
        ax.plot([0.5, 1], [0.5, 1], "k--", lw=0.8)
        ax.set(title=f"{name}: n={g['n']}, T={cal['temperature']:.3g}", xlabel="confidence (top class)",
               ylabel="accuracy", xlim=(0.5, 1.0), ylim=(0.0, 1.02))
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.reliability_figure", description=__doc__.splitlines()[0])
    p.add_argument("--report", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    print(draw(json.loads(args.report.read_text()), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
