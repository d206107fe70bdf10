"""The multi-source data report: how much of Nickparvar is BR35H, how duplicated Nickparvar is
within itself, and what each multi-source protocol holds, per split x source x class.

``python -m train.data multi-report`` writes ``multi_source.json`` and ``multi_source.md`` into
``--out`` (default ``reports/data``). Numbers come from the same scan + grouping the manifests
are written from (:func:`train.data.multi.group_sources`), so the report and ``splits/`` agree.

Two ways of counting "a twin of BR35H" are reported, because they answer different questions:

* **direct**: the image itself matches some BR35H image (pairwise), under this project's rule
  (NCC >= ``min_ncc`` in any of the four views) and under the rule ``../shared/README.md`` quotes
  (raw-image pHash <= 10 bits with NCC >= 0.90, or NCC >= 0.97), which is how its 1876 was counted;
* **grouped**: the image's near-duplicate group holds a BR35H image. This is what the protocols
  use, since a chain of near-copies (e.g. adjacent slices) carries the same leakage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import json
from pathlib import Path
import time
from typing import Sequence

import numpy as np

from edge_runtime.machine import describe

from .dedup import DedupConfig
from .manifest import ManifestRow, read_manifest
from .multi import MANIFEST_NAMES, MultiSource, Protocol, external, grouped, members, paper_plus
from .sources import BR35H, NICKPARVAR
from .splits import crossing_groups

#: The figures ``../shared/README.md`` states for Nickparvar vs BR35H, for the comparison table.
README_FIGURES = {
    "twins_of_br35h": 1876,
    "independent": {"glioma": 1620, "meningioma": 1544, "pituitary": 1757, "notumor": 222},
    "independent_notumor": {"Training": 190, "Testing": 32},
    "meningioma_twins": 57,
}


@dataclass(frozen=True)
class ReadmeRule:
    """The cross-source twin rule of ``../shared/README.md`` (raw 64x64 view, no mirror, no crop)."""

    max_hamming: int = 10
    min_ncc_with_hash: float = 0.90
    min_ncc_alone: float = 0.97


def direct_twins(ms: MultiSource, cfg: DedupConfig = DedupConfig(), rule: ReadmeRule = ReadmeRule(),
                 block: int = 1024) -> dict[str, dict[str, bool]]:
    """Per Nickparvar path: does it match some BR35H image directly, by our rule / the README's?

    One (block, 3000) score matrix per view at a time, so memory stays small."""
    scans = {s.source: s for s in ms.scans}
    br = [r.path for r in scans[BR35H.name].scan.labelled()]
    nk = [r.path for r in scans[NICKPARVAR.name].scan.labelled()]
    bfp, nfp = scans[BR35H.name].fingerprints, scans[NICKPARVAR.name].fingerprints
    b_thumbs = np.stack([bfp[p].thumbs for p in br]).astype(np.float32)  # (B, 4, D)
    b_hash = np.array([bfp[p].hashes[0] for p in br], np.uint64)
    ours, readme = np.zeros(len(nk), bool), np.zeros(len(nk), bool)
    for start in range(0, len(nk), block):
        chunk = nk[start : start + block]
        n_thumbs = np.stack([nfp[p].thumbs for p in chunk]).astype(np.float32)
        n_hash = np.array([nfp[p].hashes[0] for p in chunk], np.uint64)
        hit = np.zeros((len(chunk), len(br)), bool)
        for _, vi, vj in cfg.views():  # same view pairs as the grouping (mirroring is symmetric)
            hit |= n_thumbs[:, vi] @ b_thumbs[:, vj].T >= cfg.min_ncc
        raw = n_thumbs[:, 0] @ b_thumbs[:, 0].T
        ham = np.bitwise_count(n_hash[:, None] ^ b_hash[None, :])
        rd = ((ham <= rule.max_hamming) & (raw >= rule.min_ncc_with_hash)) | (raw >= rule.min_ncc_alone)
        ours[start : start + len(chunk)] = hit.any(axis=1)
        readme[start : start + len(chunk)] = rd.any(axis=1)
    return {"ours": dict(zip(nk, ours.tolist())), "readme": dict(zip(nk, readme.tolist()))}


def _by_part_class(keys: Sequence[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """``[(part, class), ...]`` -> ``{part: {class: n}}`` plus a ``total`` part."""
    out: dict[str, dict[str, int]] = {}
    for (part, cls), n in sorted(Counter(keys).items()):
        out.setdefault(part, {})[cls] = n
    tot = Counter(cls for _, cls in keys)
    out["total"] = dict(sorted(tot.items()))
    return out


def overlap(ms: MultiSource, direct: dict[str, dict[str, bool]]) -> dict:
    """Nickparvar vs BR35H and Nickparvar vs itself, counted per part (Training/Testing) and class."""
    groups = members(ms.images)
    has_br = {g for g, m in groups.items() if any(x.source == BR35H.name for x in m)}
    nick = [im for im in ms.images if im.source == NICKPARVAR.name]
    pc = lambda ims: _by_part_class([(im.part, im.class_name) for im in ims])  # noqa: E731
    in_br = [im for im in nick if im.group in has_br]
    indep = [im for im in nick if im.group not in has_br]
    only_via_group = [im for im in in_br if not direct["ours"][im.path]]
    readme_twins = [im for im in nick if direct["readme"][im.path]]

    # within Nickparvar: groups without BR35H members
    nick_groups = {g: m for g, m in groups.items() if g not in has_br}
    multi = {g: m for g, m in nick_groups.items() if len(m) > 1}
    parts_of = {g: {x.part for x in m} for g, m in groups.items()}
    testing = [im for im in nick if im.part == "Testing"]
    leak = [im for im in testing if "Training" in parts_of[im.group]]
    exact = Counter(im.sha256 for im in nick)
    tiers = _leak_tiers(ms, leak)

    # BR35H: committed BR35H-only groups joined into one cross-source group through Nickparvar copies
    br_old = {r.path: r.group for r in read_manifest(Path(__file__).resolve().parents[2] / "splits" / "br35h-paper.csv")}
    cross_to_old: dict[int, set[int]] = {}
    for im in ms.images:
        if im.source == BR35H.name and im.path in br_old:
            cross_to_old.setdefault(im.group, set()).add(br_old[im.path])
    bridged = {g: s for g, s in cross_to_old.items() if len(s) > 1}
    return {
        "nickparvar_images": pc(nick),
        "twins_of_br35h_grouped": pc(in_br),
        "twins_of_br35h_direct_our_rule": pc([im for im in nick if direct["ours"][im.path]]),
        "twins_of_br35h_direct_readme_rule": pc(readme_twins),
        "twins_of_br35h_only_through_group": pc(only_via_group),
        "independent_of_br35h_grouped": pc(indep),
        "independent_of_br35h_readme_rule": pc([im for im in nick if not direct["readme"][im.path]]),
        "within_nickparvar": {
            "groups_without_br35h": len(nick_groups),
            "multi_image_groups_without_br35h": len(multi),
            "images_in_them": sum(len(m) for m in multi.values()),
            "largest": max((len(m) for m in multi.values()), default=0),
            "groups_mixing_tumour_types": sum(len({x.class_name for x in m}) > 1 for m in groups.values()
                                              if any(x.source == NICKPARVAR.name for x in m)),
            "exact_duplicate_files": sum(n - 1 for n in exact.values() if n > 1),
            "testing_images_with_a_training_twin": pc(leak),
            "testing_twins_by_closeness": {k: pc(v) for k, v in tiers.items()},
        },
        "br35h_groups_bridged_by_nickparvar": {
            "cross_source_groups": len(bridged),
            "br35h_groups_joined": sum(len(s) for s in bridged.values()),
        },
    }


def _leak_tiers(ms: MultiSource, leak: Sequence) -> dict[str, list]:
    """Split Testing/ images with a Training/ twin by how close the closest Training/ image is:
    a byte copy, near-identical (raw NCC >= 0.97), or only similar (the 0.93 rule, any view, or
    a chain in the group; typical of neighbouring slices of one patient rather than copies)."""
    scan = {s.source: s for s in ms.scans}[NICKPARVAR.name]
    train = [r for r in scan.scan.labelled() if NICKPARVAR.part_of(r.path) == "Training"]
    train_sha = {r.sha256 for r in train}
    out: dict[str, list] = {"byte copy": [], "near-identical (raw NCC >= 0.97)": [], "similar only": []}
    if not leak or not train:
        return out
    t = np.stack([scan.fingerprints[r.path].thumbs[0] for r in train]).astype(np.float32)
    q = np.stack([scan.fingerprints[im.path].thumbs[0] for im in leak]).astype(np.float32)
    best = (q @ t.T).max(axis=1)
    for im, b in zip(leak, best):
        key = "byte copy" if im.sha256 in train_sha else "near-identical (raw NCC >= 0.97)" if b >= 0.97 else "similar only"
        out[key].append(im)
    return out


def protocol_summary(p: Protocol, committed: Path | None) -> dict:
    rows = p.rows
    out = {
        "rows": len(rows),
        "counts": p.counts(),
        "labels": {s: dict(sorted(Counter(r.label for r in rows if r.split == s).items())) for s in ("train", "val", "test")},
        "left_out": p.dropped_counts(),
        "groups_on_two_sides": len(crossing_groups(rows)),
        "matches_committed_manifest": bool(committed and committed.is_file() and read_manifest(committed) == rows),
    }
    if p.name == "paper":
        out["nickparvar_trainval_sharing_a_group_with_br35h_test"] = paper_leaks(rows)
    return out


def paper_leaks(rows: Sequence[ManifestRow]) -> int:
    """Nickparvar train/val rows whose group id is also a BR35H test row's (must be 0)."""
    br_test = {r.group for r in rows if r.source == BR35H.name and r.split == "test"}
    return sum(r.source == NICKPARVAR.name and r.split in ("train", "val") and r.group in br_test for r in rows)


def build_multi_report(ms: MultiSource, paper_rows: Sequence[ManifestRow], seed: int = 42,
                       splits_dir: Path | None = None, timings: dict | None = None) -> dict:
    timings = dict(timings or {})
    t = time.perf_counter()
    direct = direct_twins(ms)
    timings["direct_twins_s"] = time.perf_counter() - t
    labels = [im.label for im in ms.images]
    protos = {"external": external(ms.images), "paper": paper_plus(ms.images, paper_rows, seed=seed),
              "grouped": grouped(ms.images, seed=seed)}
    return {
        "machine": describe(),
        "command": "python -m train.data multi-report",
        "seed": seed,
        "sources": {
            s.source: {"root": str(s.root), "images": len(s.scan.labelled()), "integrity_ok": s.scan.ok,
                       "checksums_present": s.scan.checksums_present,
                       "issues": [{"path": i.path, "kind": i.kind, "reason": i.reason} for i in s.scan.issues]}
            for s in ms.scans
        },
        "grouping": {"config": DedupConfig().to_dict(), **ms.groups.stats(labels),
                     "groups_spanning_sources": sum(len({x.source for x in m}) > 1 for m in members(ms.images).values())},
        "overlap": overlap(ms, direct),
        "readme_figures": README_FIGURES,
        "protocols": {name: protocol_summary(p, (splits_dir / f"{MANIFEST_NAMES[name]}.csv") if splits_dir else None)
                      for name, p in protos.items()},
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }


def _cls_row(d: dict, classes: Sequence[str]) -> str:
    return " | ".join(str(d.get(c, 0)) for c in classes) + f" | {sum(d.get(c, 0) for c in classes)}"


def _per_class(d: dict, classes: Sequence[str]) -> str:
    return ", ".join(f"{c} {d.get(c, 0)}" for c in classes)


def _integrity(source: dict) -> str:
    if source["integrity_ok"]:
        return "all decode and match SHA256SUMS" if source["checksums_present"] else "all decode; no SHA256SUMS"
    return f"{len(source['issues'])} problem(s)"


def to_markdown(r: dict) -> str:
    o, rf = r["overlap"], r["readme_figures"]
    cls = ("glioma", "meningioma", "pituitary", "notumor")
    g = r["grouping"]
    w = o["within_nickparvar"]
    lines = [
        "# Multi-source data report: BR35H + Nickparvar",
        "",
        f"Machine: {r['machine']}  ",
        f"Regenerate: `{r['command']}` (seed {r['seed']}); manifests: `python -m train.data multi-split`.",
        "",
        "## Sources and integrity",
        "",
        "| source | root | labelled images | integrity |",
        "|---|---|---|---|",
        *[f"| {k} | `{v['root']}` | {v['images']} | {_integrity(v)} |" for k, v in r["sources"].items()],
        *[f"- {k} {i['kind']} `{i['path']}`: {i['reason']}" for k, v in r["sources"].items() for i in v["issues"]],
        "",
        "## Cross-source near-duplicate groups",
        "",
        f"Rule (`train/data/dedup.py`, as for BR35H alone): all-pairs NCC >= {g['config']['min_ncc']} of 64x64 grayscale "
        "thumbnails in any of four views (raw, raw mirrored, brain crop, brain crop mirrored), union-find. "
        f"{g['images']} images -> {g['groups']} groups ({g['singleton_groups']} singletons, {g['multi_image_groups']} with >= 2 images "
        f"holding {g['images_in_multi_image_groups']}; largest {g['largest_group']}); {g['groups_spanning_sources']} groups span both sources; "
        f"groups mixing labels: {g['groups_mixing_labels']}; exact byte-duplicate pairs: {g['exact_duplicate_pairs']}.",
        "",
        "### Nickparvar images that are BR35H twins, per class (Training + Testing)",
        "",
        "| count | " + " | ".join(cls) + " | total |",
        "|---|" + "---|" * (len(cls) + 1),
        f"| all Nickparvar images | {_cls_row(o['nickparvar_images']['total'], cls)} |",
        f"| direct twin, README rule (pHash <= 10 & NCC >= 0.90, or NCC >= 0.97; raw view) | {_cls_row(o['twins_of_br35h_direct_readme_rule']['total'], cls)} |",
        f"| direct twin, our rule (NCC >= {g['config']['min_ncc']}, 4 views) | {_cls_row(o['twins_of_br35h_direct_our_rule']['total'], cls)} |",
        f"| **in a group with a BR35H image** (what the protocols use) | {_cls_row(o['twins_of_br35h_grouped']['total'], cls)} |",
        f"| of which only through the group (no direct match) | {_cls_row(o['twins_of_br35h_only_through_group']['total'], cls)} |",
        f"| README's figure: twins | ~{rf['meningioma_twins']} meningioma, rest notumor | | | | {rf['twins_of_br35h']} |",
        "",
        "### Independent of BR35H (no BR35H image in the group)",
        "",
        "| | " + " | ".join(cls) + " | total |",
        "|---|" + "---|" * (len(cls) + 1),
        *[f"| {part} | {_cls_row(o['independent_of_br35h_grouped'].get(part, {}), cls)} |" for part in ("Training", "Testing")],
        f"| **total (grouped)** | {_cls_row(o['independent_of_br35h_grouped']['total'], cls)} |",
        f"| total (README rule, direct) | {_cls_row(o['independent_of_br35h_readme_rule']['total'], cls)} |",
        f"| README's figures | {_cls_row(rf['independent'], cls)} |",
        "",
        f"Independent no-tumour images: Training {o['independent_of_br35h_grouped'].get('Training', {}).get('notumor', 0)}, "
        f"Testing {o['independent_of_br35h_grouped'].get('Testing', {}).get('notumor', 0)} "
        f"(README: {rf['independent_notumor']['Training']} + {rf['independent_notumor']['Testing']}).",
        "",
        "### Within Nickparvar",
        "",
        f"- Groups with no BR35H member: {w['groups_without_br35h']}; of these {w['multi_image_groups_without_br35h']} hold >= 2 images "
        f"({w['images_in_them']} images; largest {w['largest']}). Exact duplicate files: {w['exact_duplicate_files']}.",
        f"- Groups mixing tumour types (all label `yes`): {w['groups_mixing_tumour_types']}.",
        "- Nickparvar's own `Testing/` images with a near-duplicate in its `Training/`: "
        + ", ".join(f"{c} {w['testing_images_with_a_training_twin']['total'].get(c, 0)}" for c in cls)
        + f" (total {sum(w['testing_images_with_a_training_twin']['total'].values())} of "
        + f"{sum(o['nickparvar_images'].get('Testing', {}).values())}). By closeness to the closest `Training/` image: "
        + "; ".join(f"{k}: {sum(v['total'].values())} ({_per_class(v['total'], cls)})"
                    for k, v in w["testing_twins_by_closeness"].items()) + ".",
        f"- BR35H groups (committed, BR35H-only) joined into one cross-source group through Nickparvar copies: "
        f"{o['br35h_groups_bridged_by_nickparvar']['br35h_groups_joined']} groups into "
        f"{o['br35h_groups_bridged_by_nickparvar']['cross_source_groups']}.",
        "",
        "## Protocols (manifests in `splits/`)",
        "",
    ]
    for name, p in r["protocols"].items():
        lines += [f"### {name}: `splits/{MANIFEST_NAMES[name]}.csv` ({p['rows']} rows; equals the committed file: {p['matches_committed_manifest']})", "",
                  "| split | source | " + " | ".join(("glioma", "meningioma", "pituitary", "notumor / no", "yes (BR35H)")) + " | total |",
                  "|---|---|" + "---|" * 6]
        for split, by_src in p["counts"].items():
            for src, c in by_src.items():
                lines.append(f"| {split} | {src} | {c.get('glioma', 0)} | {c.get('meningioma', 0)} | {c.get('pituitary', 0)} | "
                             f"{c.get('notumor', c.get('no', 0))} | {c.get('yes', 0)} | {sum(c.values())} |")
        lines.append("")
        lines.append("Labels per split: " + "; ".join(f"{s} {v}" for s, v in p["labels"].items() if v) + ".  ")
        lines.append(f"Groups on two sides: {p['groups_on_two_sides']}"
                     + (f"; Nickparvar train/val images sharing a group with a BR35H test image: "
                        f"{p['nickparvar_trainval_sharing_a_group_with_br35h_test']}" if "nickparvar_trainval_sharing_a_group_with_br35h_test" in p else "") + ".")
        for reason, c in p["left_out"].items():
            lines.append(f"- left out, {reason}: {sum(c.values())} ({', '.join(f'{k} {v}' for k, v in c.items())})")
        lines.append("")
    lines += ["## Timings", "", *[f"- {k}: {v} s" for k, v in r["timings"].items()], ""]
    return "\n".join(lines)


def write_multi_report(ms: MultiSource, paper_rows: Sequence[ManifestRow], out: Path, seed: int = 42,
                       splits_dir: Path | None = None, timings: dict | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    report = build_multi_report(ms, paper_rows, seed, splits_dir, timings)
    (out / "multi_source.json").write_text(json.dumps(report, indent=2) + "\n")
    md = to_markdown(report)
    (out / "multi_source.md").write_text(md)
    print(md)
    return report
