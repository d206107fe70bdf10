"""The multi-source data report: how much of Nickparvar is BR35H, how duplicated Nickparvar is
within itself, and what each multi-source protocol holds, per split x source x class.

``python -m train.data multi-report`` writes ``multi_source.json`` and ``multi_source.md`` into
``--out`` (default ``reports/data``). Numbers come from the same scan + grouping the manifests
are written from (:func:`train.data.multi.group_sources`), so the report and ``splits/`` agree.

Two ways of counting "a twin of BR35H" are reported, because they answer different questions:

* **direct**: the image itself matches some BR35H image (pairwise), under this project's rule
  (NCC >= ``min_ncc`` in any of the four views) and under the rule the data notes of the
  Nickparvar copy use (raw-image pHash <= 10 bits with NCC >= 0.90, or NCC >= 0.97), under which
  they count 1876 Nickparvar images as near-twins of BR35H;
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

#: The overlap with BR35H the data notes of the Nickparvar copy state (counted under
#: :class:`ReadmeRule`), for the comparison table.
README_FIGURES = {
    "twins_of_br35h": 1876,
    "independent": {"glioma": 1620, "meningioma": 1544, "pituitary": 1757, "notumor": 222},
    "independent_notumor": {"Training": 190, "Testing": 32},
    "meningioma_twins": 57,
}


@dataclass(frozen=True)
class ReadmeRule:
    """The cross-source twin rule the Nickparvar copy's data notes use: raw 64x64 view, no mirror,
    no crop; pHash <= 10 bits with NCC >= 0.90, or NCC >= 0.97 alone."""

    max_hamming: int = 10
    min_ncc_with_hash: float = 0.90
    min_ncc_alone: float = 0.97


def direct_twins(ms: MultiSource, cfg: DedupConfig = DedupConfig(), rule: ReadmeRule = ReadmeRule(),
                 against: Sequence | None = None, block: int = 1024) -> dict[str, dict[str, bool]]:
    """Per Nickparvar path: does it match some BR35H image directly, by our rule / the README's?

    ``against``: the BR35H fingerprints to compare with (default: the labelled images of the
    scan). One (block, len(against)) score matrix per view at a time, so memory stays small."""
    scans = {s.source: s for s in ms.scans}
    if against is None:
        bfp = scans[BR35H.name].fingerprints
        against = [bfp[r.path] for r in scans[BR35H.name].scan.labelled()]
    nk = [r.path for r in scans[NICKPARVAR.name].scan.labelled()]
    nfp = scans[NICKPARVAR.name].fingerprints
    ours, readme = np.zeros(len(nk), bool), np.zeros(len(nk), bool)
    if not against:
        return {"ours": dict(zip(nk, ours.tolist())), "readme": dict(zip(nk, readme.tolist()))}
    b_thumbs = np.stack([f.thumbs for f in against]).astype(np.float32)  # (B, 4, D)
    b_hash = np.array([f.hashes[0] for f in against], np.uint64)
    for start in range(0, len(nk), block):
        chunk = nk[start : start + block]
        n_thumbs = np.stack([nfp[p].thumbs for p in chunk]).astype(np.float32)
        n_hash = np.array([nfp[p].hashes[0] for p in chunk], np.uint64)
        hit = np.zeros((len(chunk), len(against)), bool)
        for _, vi, vj in cfg.views():  # same view pairs as the grouping (mirroring is symmetric)
            hit |= n_thumbs[:, vi] @ b_thumbs[:, vj].T >= cfg.min_ncc
        raw = n_thumbs[:, 0] @ b_thumbs[:, 0].T
        ham = np.bitwise_count(n_hash[:, None] ^ b_hash[None, :])
        rd = ((ham <= rule.max_hamming) & (raw >= rule.min_ncc_with_hash)) | (raw >= rule.min_ncc_alone)
        ours[start : start + len(chunk)] = hit.any(axis=1)
        readme[start : start + len(chunk)] = rd.any(axis=1)
    return {"ours": dict(zip(nk, ours.tolist())), "readme": dict(zip(nk, readme.tolist()))}


def pred_fingerprints(ms: MultiSource, cfg: DedupConfig = DedupConfig()) -> list:
    """Fingerprints of BR35H's unlabelled ``pred/`` images (no manifest uses them, but they are
    BR35H: the README's twin count includes them)."""
    from .dedup import fingerprint
    from .scan import scan

    root = {s.source: s for s in ms.scans}[BR35H.name].root
    if not (root / "pred").is_dir():
        return []
    out = []
    scan(root, folders={"pred": None}, on_image=lambda rec, rgb: out.append(fingerprint(rgb, cfg)))
    return out


def _by_part_class(keys: Sequence[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """``[(part, class), ...]`` -> ``{part: {class: n}}`` plus a ``total`` part."""
    out: dict[str, dict[str, int]] = {}
    for (part, cls), n in sorted(Counter(keys).items()):
        out.setdefault(part, {})[cls] = n
    tot = Counter(cls for _, cls in keys)
    out["total"] = dict(sorted(tot.items()))
    return out


def overlap(ms: MultiSource, direct: dict[str, dict[str, bool]], paper_rows: Sequence[ManifestRow],
            direct_pred: dict[str, dict[str, bool]] | None = None) -> dict:
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
    br_old = {r.path: r.group for r in paper_rows if r.source == BR35H.name}
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
        "twins_only_of_br35h_pred_readme_rule": pc([im for im in nick if direct_pred and direct_pred["readme"][im.path]
                                                    and not direct["readme"][im.path]]),
        "twins_only_of_br35h_pred_our_rule": pc([im for im in nick if direct_pred and direct_pred["ours"][im.path]
                                                 and not (im.group in has_br)]),
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


NEAR, MIRRORED = "near-identical (NCC >= 0.97)", "mirrored copy (NCC >= 0.97 only mirrored)"


def _leak_tiers(ms: MultiSource, leak: Sequence) -> dict[str, list]:
    """Split Testing/ images with a Training/ twin by how close the closest Training/ image is:
    a byte copy; near-identical (NCC >= 0.97 in the raw or crop view: re-encoded or re-framed);
    a left-right mirrored copy (>= 0.97 only against the mirror: augmentation copies); or only
    similar (0.93-0.97, or a chain in the group; what neighbouring slices of one patient look like)."""
    scan = {s.source: s for s in ms.scans}[NICKPARVAR.name]
    train = [r for r in scan.scan.labelled() if NICKPARVAR.part_of(r.path) == "Training"]
    train_sha = {r.sha256 for r in train}
    out: dict[str, list] = {"byte copy": [], NEAR: [], MIRRORED: [], "similar only": []}
    if not leak or not train:
        return out
    t = np.stack([scan.fingerprints[r.path].thumbs for r in train]).astype(np.float32)
    q = np.stack([scan.fingerprints[im.path].thumbs for im in leak]).astype(np.float32)
    best = {"plain": np.full(len(leak), -1.0, np.float32), "mirrored": np.full(len(leak), -1.0, np.float32)}
    for name, vi, vj in DedupConfig().views():
        kind = "mirrored" if name.endswith("mirrored") else "plain"
        best[kind] = np.maximum(best[kind], (q[:, vi] @ t[:, vj].T).max(axis=1))
    for k, im in enumerate(leak):
        if im.sha256 in train_sha:
            key = "byte copy"
        elif best["plain"][k] >= 0.97:
            key = NEAR
        elif best["mirrored"][k] >= 0.97:
            key = MIRRORED
        else:
            key = "similar only"
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
    direct_pred = direct_twins(ms, against=pred_fingerprints(ms))
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
        "overlap": overlap(ms, direct, paper_rows, direct_pred),
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


def _agreement(r: dict, cls: Sequence[str]) -> list[str]:
    """Our counts against the data notes' figures (:data:`README_FIGURES`), every number taken
    from the report."""
    o, rf = r["overlap"], r["readme_figures"]
    total = lambda d: sum(d.values())  # noqa: E731
    rd, pred = o["twins_of_br35h_direct_readme_rule"], o["twins_only_of_br35h_pred_readme_rule"]
    both = {c: rd["total"].get(c, 0) + pred["total"].get(c, 0) for c in cls}
    readme_twins = {c: o["nickparvar_images"]["total"].get(c, 0) - rf["independent"][c] for c in cls}
    ours_g, ours_pred = o["twins_of_br35h_grouped"], o["twins_only_of_br35h_pred_our_rule"]
    ind = o["independent_of_br35h_grouped"]
    return [
        "### Agreement with `../shared/README.md`",
        "",
        "| Nickparvar twins of BR35H | " + " | ".join(cls) + " | total |",
        "|---|" + "---|" * (len(cls) + 1),
        f"| README's figures (class size minus its independent count) | {_cls_row(readme_twins, cls)} |",
        f"| README rule, against BR35H yes/ + no/ | {_cls_row(rd['total'], cls)} |",
        f"| README rule, only against BR35H's unlabelled pred/ | {_cls_row(pred['total'], cls)} |",
        f"| README rule, against all of BR35H (sum) | {_cls_row(both, cls)} |",
        "",
        f"- Re-implemented here, the README's rule gives {total(both)} twins against all of BR35H, per class "
        f"{_per_class(both, cls)}, against the README's {rf['twins_of_br35h']} ({_per_class(readme_twins, cls)}). "
        f"The README counted twins of BR35H's 60 unlabelled `pred/` images too: {total(pred['total'])} Nickparvar images "
        f"({_per_class(pred['total'], cls)}) match only those. No manifest uses `pred/`, so no model here has seen them "
        f"or their twins, and the protocols treat these images as independent (our rule: "
        f"{total(ours_pred['total'])} Nickparvar images outside every BR35H group match a `pred/` image).",
        f"- The README's \"57 meningioma\" is the `Training/` part: the rule finds {rd.get('Training', {}).get('meningioma', 0)} there "
        f"and {rd.get('Testing', {}).get('meningioma', 0)} in `Testing/` (its per-class independent count, "
        f"{rf['independent']['meningioma']}, implies {readme_twins['meningioma']} in all).",
        f"- Our grouping finds {total(ours_g['total'])} ({_per_class(ours_g['total'], cls)}) against yes/ + no/, "
        f"{total(ours_g['total']) - total(rd['total']):+d} on the README rule there: the mirrored and brain-crop views "
        f"and the 0.93 threshold add pairs the raw-view rule misses, and a group also takes images linked to BR35H only "
        f"through another Nickparvar image ({total(o['twins_of_br35h_only_through_group']['total'])}).",
        f"- Independent no-tumour images: {ind.get('Training', {}).get('notumor', 0)} + {ind.get('Testing', {}).get('notumor', 0)} "
        f"(Training + Testing) here against the README's {rf['independent_notumor']['Training']} + "
        f"{rf['independent_notumor']['Testing']}: the difference is the `pred/` twins above "
        f"({pred.get('Training', {}).get('notumor', 0)} + {pred.get('Testing', {}).get('notumor', 0)} by the README rule).",
        "",
    ]


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
        *_agreement(r, cls),
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
    lines += ["`multi_source_pairs.png`: Nickparvar images beside their closest BR35H image (first rows), and Nickparvar "
              "`Testing/` images merged with `Training/` without being copies beside their closest `Training/` image.", "",
              "## Timings", "", *[f"- {k}: {v} s" for k, v in r["timings"].items()], ""]
    return "\n".join(lines)


def pairs_montage(ms: MultiSource, n_rows: int = 4, seed: int = 0):
    """Pictures a person can check: rows of (Nickparvar image, its closest BR35H image) for
    cross-source twins, then (Nickparvar ``Testing/`` image, its closest ``Training/`` image) for
    a random sample of the ``Testing/`` images dropped as twins of ``Training/`` (byte copies left
    out: nothing to check there). The number is the best-view NCC."""
    from PIL import Image as PILImage

    from .report import THUMB, _grid, _thumb

    _blank = lambda: PILImage.new("RGB", (THUMB, THUMB), "white")  # noqa: E731

    rng = np.random.default_rng(seed)
    scans = {s.source: s for s in ms.scans}
    nscan, bscan = scans[NICKPARVAR.name], scans[BR35H.name]
    groups = members(ms.images)
    has_br = {g for g, m in groups.items() if any(x.source == BR35H.name for x in m)}
    nick = [im for im in ms.images if im.source == NICKPARVAR.name]
    train = [r.path for r in nscan.scan.labelled() if NICKPARVAR.part_of(r.path) == "Training"]
    brs = [r.path for r in bscan.scan.labelled()]

    def closest(path: str, pool: list[str], pool_scan) -> tuple[str, float]:
        q = nscan.fingerprints[path].thumbs
        best, where = -2.0, pool[0]
        for vi, vj in ((0, 0), (0, 1), (2, 2), (2, 3)):
            t = np.stack([pool_scan.fingerprints[p].thumbs[vj] for p in pool])
            sc = t @ q[vi]
            if sc.max() > best:
                best, where = float(sc.max()), pool[int(sc.argmax())]
        return where, best

    def pick(cands: list, k: int) -> list:
        return [cands[i] for i in sorted(rng.choice(len(cands), min(k, len(cands)), replace=False))] if cands else []

    pairs = []
    for kind in ("notumor", "meningioma"):
        for im in pick([im for im in nick if im.group in has_br and im.class_name == kind], n_rows):
            other, ncc = closest(im.path, brs, bscan)
            pairs.append([(_thumb(nscan.root, im.path), f"N {im.path.split('/')[-1]}"),
                          (_thumb(bscan.root, other), f"B {other.split('/')[-1]} {ncc:.2f}")])
    train_sha = {r.sha256 for r in nscan.scan.labelled() if NICKPARVAR.part_of(r.path) == "Training"}
    parts_of = {g: {x.part for x in m} for g, m in groups.items()}
    similar = [im for im in nick if im.part == "Testing" and im.group not in has_br and "Training" in parts_of[im.group]
               and im.sha256 not in train_sha]
    for im in pick(similar, 4 * n_rows):
        other, ncc = closest(im.path, train, nscan)
        pairs.append([(_thumb(nscan.root, im.path), f"{im.class_name[:4]} {im.path.split('/')[-1]}"),
                      (_thumb(nscan.root, other), f"Tr {other.split('/')[-1]} {ncc:.2f}")])
    if not pairs:
        return _grid([[(_blank(), "")]], "No cross-source or Testing/Training near-duplicates found")
    rows = [pairs[i] + pairs[i + 1] if i + 1 < len(pairs) else pairs[i] for i in range(0, len(pairs), 2)]
    return _grid(rows, "Pairs: Nickparvar | closest BR35H (rows 1-4); Nickparvar Testing | closest Training, "
                       "not byte copies (rest). Number: best-view NCC")


def write_multi_report(ms: MultiSource, paper_rows: Sequence[ManifestRow], out: Path, seed: int = 42,
                       splits_dir: Path | None = None, timings: dict | None = None, pictures: bool = True) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    report = build_multi_report(ms, paper_rows, seed, splits_dir, timings)
    if pictures:
        t = time.perf_counter()
        pairs_montage(ms).save(out / "multi_source_pairs.png", optimize=True)
        report["timings"]["pictures_s"] = round(time.perf_counter() - t, 1)
    (out / "multi_source.json").write_text(json.dumps(report, indent=2) + "\n")
    md = to_markdown(report)
    (out / "multi_source.md").write_text(md)
    print(md)
    return report
