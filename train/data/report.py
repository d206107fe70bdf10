"""The data report: what BR35H is (counts, sizes, modes), whether the copy is intact, how
duplicated it is, how much the paper's random split leaks, and pictures a person can check.

``python -m train.data report`` writes ``data_report.json``, ``data_report.md``,
``duplicate_groups.png`` and ``crop_stages.png`` into ``--out`` (default ``reports/data``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
import json
import os
import platform
from pathlib import Path
import subprocess
import time

import numpy as np
from PIL import Image, ImageDraw

from edge_runtime.config import CropConfig
from edge_runtime.image_io import load_rgb

from edge_runtime.machine import describe

from .dedup import DedupConfig, DedupResult, find_groups, fingerprint
from .manifest import read_manifest
from .scan import ImageRecord, natural_key, scan
from .splits import PROTOCOLS, Item, SplitConfig, counts, crossing_groups, leakage, split

THUMB = 120


def size_stats(records: list[ImageRecord], top: int = 8) -> dict:
    w = np.array([r.width for r in records])
    h = np.array([r.height for r in records])
    sizes = Counter(f"{r.width}x{r.height}" for r in records)
    return {
        "distinct_sizes": len(sizes),
        "width": {"min": int(w.min()), "median": float(np.median(w)), "max": int(w.max())},
        "height": {"min": int(h.min()), "median": float(np.median(h)), "max": int(h.max())},
        "top_sizes": dict(sizes.most_common(top)),
    }


def build_report(root: Path, seed: int = 42, progress: bool = True) -> tuple[dict, DedupResult, DedupResult, dict]:
    """Everything except the pictures. Returns ``(report, groups, readme-rule groups, fingerprints)``."""
    timings = {}
    t = time.perf_counter()
    fps: dict = {}
    result = scan(root, on_image=lambda rec, rgb: fps.__setitem__(rec.path, fingerprint(rgb)), progress=progress)
    timings["scan_decode_fingerprint_s"] = time.perf_counter() - t
    lab = sorted(result.labelled(), key=lambda r: natural_key(r.path))
    labels = [r.label for r in lab]
    args = ([r.path for r in lab], [fps[r.path] for r in lab], [r.sha256 for r in lab])
    t = time.perf_counter()
    dd = find_groups(*args)
    timings["dedup_s"] = time.perf_counter() - t
    t = time.perf_counter()
    readme = find_groups(*args, DedupConfig.readme_rule())
    timings["dedup_readme_rule_s"] = time.perf_counter() - t

    # Unlabelled pred/ images that are twins of labelled ones (default rule, all images together).
    everything = sorted(result.records, key=lambda r: natural_key(r.path))
    with_pred = find_groups([r.path for r in everything], [fps[r.path] for r in everything], [r.sha256 for r in everything])
    labelled_groups = {int(g) for p, g in zip(with_pred.paths, with_pred.groups) if not p.startswith("pred/")}
    pred_twins = sum(p.startswith("pred/") and int(g) in labelled_groups for p, g in zip(with_pred.paths, with_pred.groups))

    t = time.perf_counter()
    group = dict(zip(dd.paths, dd.groups.tolist()))
    readme_group = dict(zip(readme.paths, readme.groups.tolist()))
    items = [Item(r.path, r.sha256, r.label, group[r.path]) for r in lab]
    splits = {}
    for protocol in PROTOCOLS:
        rows = split(items, SplitConfig(protocol, seed))
        readme_rows = [replace(r, group=readme_group[r.path]) for r in rows]
        committed = Path(__file__).resolve().parents[2] / "splits" / f"br35h-{protocol}.csv"
        splits[protocol] = {
            "seed": seed,
            "counts": counts(rows),
            "test_with_train_twin": leakage(rows),
            "val_with_train_twin": leakage(rows, "val"),
            "test_with_train_twin_readme_rule": leakage(readme_rows),
            "groups_on_two_sides": len(crossing_groups(rows)),
            "matches_committed_manifest": committed.is_file() and read_manifest(committed) == rows,
        }
    timings["splits_s"] = time.perf_counter() - t

    by_folder = Counter(r.path.split("/", 1)[0] for r in result.records)
    report = {
        "dataset": str(root),
        "machine": describe(),
        "class_counts": {k: by_folder.get(k, 0) for k in ("yes", "no", "pred")},
        "image_sizes": {**size_stats(lab), "distinct_sizes_incl_pred": len({(r.width, r.height) for r in result.records})},
        "colour_modes": dict(Counter(r.mode for r in result.records)),
        "integrity": {
            "ok": result.ok,
            "checksums_present": result.checksums_present,
            "issues": {k: result.of_kind(k) for k in ("missing", "extra", "changed", "unreadable")},
            "reasons": {i.path: i.reason for i in result.issues},
        },
        "duplicates": {
            "config": DedupConfig().to_dict(),
            "readme_config": DedupConfig.readme_rule().to_dict(),
            "default_rule": dd.stats(labels),
            "readme_rule": readme.stats(labels),
            "pred_images_with_a_labelled_twin": int(pred_twins),
        },
        "splits": splits,
        "timings": timings,
    }
    return report, dd, readme, fps


def _thumb(root: Path, path: str, side: int = THUMB) -> Image.Image:
    img = Image.open(root / path).convert("RGB")
    img.thumbnail((side, side))
    canvas = Image.new("RGB", (side, side), "black")
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas


def _grid(rows: list[list[tuple[Image.Image, str]]], title: str, side: int = THUMB) -> Image.Image:
    cols = max(len(r) for r in rows)
    cap, head = 14, 20
    sheet = Image.new("RGB", (cols * (side + 4), head + len(rows) * (side + cap + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), title, fill="black")
    for i, row in enumerate(rows):
        y = head + i * (side + cap + 6)
        for j, (img, caption) in enumerate(row):
            sheet.paste(img, (j * (side + 4), y))
            draw.text((j * (side + 4) + 2, y + side + 1), caption, fill="black")
    return sheet


def duplicate_montage(root: Path, dd: DedupResult, readme: DedupResult, n_rows: int = 8, per_row: int = 6, seed: int = 0) -> Image.Image:
    """Rows of duplicate groups: half chosen at random, half among groups that only the
    crop/mirror views join (they span several readme-rule groups), the merges to doubt first."""
    rng = np.random.default_rng(seed)
    members = dd.members()
    readme_of = dict(zip(readme.paths, readme.groups.tolist()))
    multi = [g for g, m in members.items() if len(m) > 1]
    extra = [g for g in multi if len({readme_of[p] for p in members[g]}) > 1]
    chosen = list(rng.choice(extra, min(n_rows // 2, len(extra)), replace=False)) if extra else []
    rest = [g for g in multi if g not in chosen]
    chosen += list(rng.choice(rest, min(n_rows - len(chosen), len(rest)), replace=False)) if rest else []
    if not chosen:
        return _grid([[(Image.new("RGB", (THUMB, THUMB), "white"), "")]], "No near-duplicate groups found")
    rows = []
    for g in chosen:
        paths = members[int(g)]
        # Show members from different readme-rule groups first, so the row shows the extra merge.
        paths = sorted(paths, key=lambda p: (paths.index(p) > 0 and readme_of[p] == readme_of[paths[0]], natural_key(p)))
        rows.append([(_thumb(root, p), p.split("/")[-1]) for p in paths[:per_row]])
    return _grid(rows, "Near-duplicate groups (one row per group; first rows: merged only by crop/mirror views)")


def crop_stages(root: Path, paths: list[str], cfg: CropConfig = CropConfig()) -> Image.Image:
    """The paper's Fig. 4 for a few images: original, gray, threshold mask, box, final crop."""
    from .crop_cv import brain_mask, crop_image

    rows = []
    for p in paths:
        rgb = load_rgb(root / p, cfg.max_pixels)
        crop, box = crop_image(rgb, cfg)
        gray = Image.fromarray(rgb).convert("L").convert("RGB")
        mask = Image.fromarray(brain_mask(rgb, cfg)).convert("RGB")
        boxed = Image.fromarray(rgb.copy())
        ImageDraw.Draw(boxed).rectangle((box.left, box.top, box.right - 1, box.bottom - 1), outline=(255, 0, 0), width=max(2, rgb.shape[1] // 100))
        stages = [Image.fromarray(rgb), gray, mask, boxed, Image.fromarray(crop)]
        captions = [p.split("/")[-1], "gray", f"mask >{cfg.threshold}", "crop box", f"{cfg.size}x{cfg.size}"]
        row = []
        for img, c in zip(stages, captions):
            img.thumbnail((THUMB, THUMB))
            canvas = Image.new("RGB", (THUMB, THUMB), "black")
            canvas.paste(img, ((THUMB - img.width) // 2, (THUMB - img.height) // 2))
            row.append((canvas, c))
        rows.append(row)
    return _grid(rows, "Brain crop stages (paper Fig. 4)")


def to_markdown(r: dict) -> str:
    d, rd = r["duplicates"]["default_rule"], r["duplicates"]["readme_rule"]
    uc, rc = r["duplicates"]["config"], r["duplicates"]["readme_config"]
    sz = r["image_sizes"]
    lines = [
        "# BR35H data report",
        "",
        f"Dataset: `{r['dataset']}`  ",
        f"Machine: {r['machine']}  ",
        "Regenerate: `python -m train.data report` (or `make data-report`).",
        "",
        "## Contents",
        "",
        "| folder | images |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in r["class_counts"].items()],
        "",
        f"Colour modes as stored: {', '.join(f'{k}: {v}' for k, v in r['colour_modes'].items())}.  ",
        f"Image sizes (labelled images): {sz['distinct_sizes']} distinct ({sz['distinct_sizes_incl_pred']} with pred/); width {sz['width']['min']} / {sz['width']['median']:g} / "
        f"{sz['width']['max']} and height {sz['height']['min']} / {sz['height']['median']:g} / {sz['height']['max']} (min / median / max).  ",
        "Most common sizes: " + ", ".join(f"{k} ({v})" for k, v in sz["top_sizes"].items()) + ".",
        "",
        "## Integrity",
        "",
        ("All files decode and match `SHA256SUMS`." if r["integrity"]["ok"] else "Problems found:"),
        *[f"- {kind} `{p}`: {r['integrity']['reasons'][p]}" for kind, ps in r["integrity"]["issues"].items() for p in ps],
        "",
        "## Near-duplicates (labelled images)",
        "",
        "| rule | groups | singletons | images in multi-image groups | largest group | groups mixing labels |",
        "|---|---|---|---|---|---|",
        f"| README rule: raw pHash <= {rc['max_hamming']} bits, NCC >= {rc['min_ncc']} | {rd['groups']} | {rd['singleton_groups']} | {rd['images_in_multi_image_groups']} | {rd['largest_group']} | {rd['groups_mixing_labels']} |",
        f"| **used**: all-pairs NCC >= {uc['min_ncc']} on raw, crop and mirrored views | {d['groups']} | {d['singleton_groups']} | {d['images_in_multi_image_groups']} | {d['largest_group']} | {d['groups_mixing_labels']} |",
        "",
        f"Exact byte duplicates: {d['exact_duplicate_pairs']} pair(s). Confirmed pairs per view: "
        + ", ".join(f"{k} {v}" for k, v in d["confirmed_pairs_per_view"].items())
        + f". Unlabelled `pred/` images with a labelled twin: {r['duplicates']['pred_images_with_a_labelled_twin']} of {r['class_counts']['pred']}.",
        "",
        "The README rule misses re-canvassed twins (other border / overlay: same crop) and mirrored copies; "
        "see `duplicate_groups.png` (first rows are groups only the extra views join).",
        "",
        "## Splits (seed " + str(next(iter(r["splits"].values()))["seed"]) + ")",
        "",
        "| protocol | train | val | test | test images with a twin in train | (README-rule groups) | groups on two sides | = committed manifest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in r["splits"].items():
        c = {k: sum(v.values()) for k, v in s["counts"].items()}
        lines.append(
            f"| {name} | {c['train']} | {c['val']} | {c['test']} | {s['test_with_train_twin']} | "
            f"{s['test_with_train_twin_readme_rule']} | {s['groups_on_two_sides']} | {s['matches_committed_manifest']} |"
        )
    lines += ["", "## Timings", "", *[f"- {k}: {v:.1f} s" for k, v in r["timings"].items()], ""]
    return "\n".join(lines)


def write_report(root: Path, out: Path, seed: int = 42, progress: bool = True, pictures: bool = True) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    report, dd, readme, _ = build_report(root, seed, progress)
    if pictures:
        t = time.perf_counter()
        duplicate_montage(root, dd, readme).save(out / "duplicate_groups.png", optimize=True)
        examples = [p for p in ("yes/y0.jpg", "yes/y7.jpg", "no/no3.jpg", "no/no11.jpg") if p in dd.paths] or dd.paths[:3]
        crop_stages(root, examples).save(out / "crop_stages.png", optimize=True)
        report["timings"]["pictures_s"] = time.perf_counter() - t
    (out / "data_report.json").write_text(json.dumps(report, indent=2) + "\n")
    md = to_markdown(report)
    (out / "data_report.md").write_text(md)
    print(md)
    return report
