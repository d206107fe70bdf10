"""How often the degenerate-input rule (``edge_runtime.crop.degenerate``) fires on real MRI.

    python -m benchmarks.degenerate_check ../shared/data/br35h ../shared/data/nickparvar \\
        --out reports/domain/degenerate_check.json

It must fire on none of them: a real scan flagged "no brain found" is a refused answer. Also
prints the margins the rule's constants keep: the smallest image side, and the smallest gray
standard deviation among images whose crop box is the whole frame.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from edge_runtime.crop import FLAT_STD, MIN_SIDE, degenerate, find_box, to_gray
from edge_runtime.image_io import ImageDecodeError, load_rgb


def check(folders: list[Path]) -> dict:
    res = {"min_side_rule": MIN_SIDE, "flat_std_rule": FLAT_STD, "folders": {}}
    for folder in folders:
        n, fired, min_side, full_box, min_full_std, errors = 0, [], 10**9, 0, float("inf"), []
        for p in sorted(folder.rglob("*.jpg")):
            try:
                rgb = load_rgb(p)
            except ImageDecodeError as exc:
                errors.append(f"{p}: {exc.reason}")
                continue
            n += 1
            h, w = rgb.shape[:2]
            min_side = min(min_side, h, w)
            box = find_box(rgb)
            if box.as_tuple() == (0, 0, w, h):
                full_box += 1
                min_full_std = min(min_full_std, float(to_gray(rgb).std()))
            why = degenerate(rgb, box)
            if why:
                fired.append(f"{p}: {why}")
        res["folders"][str(folder)] = {"images": n, "degenerate": len(fired), "examples": fired[:20],
                                       "smallest_side": min_side, "whole_frame_boxes": full_box,
                                       "smallest_gray_std_of_whole_frame_box": min_full_std, "decode_errors": errors}
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.degenerate_check", description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    res = check(args.folders)
    text = json.dumps(res, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 1 if any(v["degenerate"] for v in res["folders"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
