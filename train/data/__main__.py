"""``python -m train.data {scan,split,crops,report,multi-split,multi-report}``: thin CLI over the library functions."""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from train.paths import REPO_ROOT, data_root

from .splits import PROTOCOLS

SPLITS_DIR = REPO_ROOT / "splits"


def manifest_name(protocol: str) -> Path:
    return SPLITS_DIR / f"br35h-{protocol}.csv"


def cmd_scan(a: argparse.Namespace) -> int:
    from .scan import scan

    result = scan(data_root(a.data), progress=True)
    print(result.summary())
    return 0 if result.ok else 1


def cmd_split(a: argparse.Namespace) -> int:
    from .dedup import dedup_folder
    from .manifest import write_manifest
    from .splits import Item, SplitConfig, counts, crossing_groups, leakage, split

    protocols = PROTOCOLS if a.protocol == "all" else (a.protocol,)
    if a.out and len(protocols) > 1:
        sys.exit("--out needs a single --protocol")
    result, dd = dedup_folder(data_root(a.data), progress=True)
    if not result.ok:
        print(result.summary(), file=sys.stderr)
        sys.exit("refusing to write split manifests over a dataset with problems (see above)")
    group = dict(zip(dd.paths, dd.groups.tolist()))
    items = [Item(r.path, r.sha256, r.label, group[r.path]) for r in result.labelled()]
    for protocol in protocols:
        rows = split(items, SplitConfig(protocol, a.seed))
        out = write_manifest(rows, a.out or manifest_name(protocol))
        print(f"{out}: {counts(rows)}; test images with a train twin: {leakage(rows)}; groups on two sides: {len(crossing_groups(rows))}")
    return 0


def cmd_crops(a: argparse.Namespace) -> int:
    from .cache import entry_dir, load_crops

    crops = load_crops(a.manifest, a.split, data_root=a.data)
    print(f"{len(crops)} crops in {entry_dir(a.manifest)} ({int(crops.fallback.sum())} without a brain region)")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .report import write_report

    report = write_report(data_root(a.data), Path(a.out), seed=a.seed)
    return 0 if report["integrity"]["ok"] else 1


def _multi_roots(a: argparse.Namespace) -> dict:
    return {"br35h": a.data, "nickparvar": a.nickparvar}


def cmd_multi_split(a: argparse.Namespace) -> int:
    import json

    from .manifest import read_manifest, write_manifest
    from .multi import MANIFEST_NAMES, MULTI_PROTOCOLS, external, grouped, group_sources, paper_plus
    from .splits import crossing_groups

    protocols = MULTI_PROTOCOLS if a.protocol == "all" else (a.protocol,)
    ms = group_sources(_multi_roots(a), progress=True)
    print(ms.summary())
    if not ms.ok:
        sys.exit("refusing to write manifests over sources with problems (see above)")
    out_dir = Path(a.out_dir)
    for protocol in protocols:
        if protocol == "external":
            proto = external(ms.images)
        elif protocol == "paper":
            proto = paper_plus(ms.images, read_manifest(a.paper_manifest), seed=a.seed)
        else:
            proto = grouped(ms.images, seed=a.seed)
        out = write_manifest(proto.rows, out_dir / f"{MANIFEST_NAMES[protocol]}.csv")
        print(f"{out}: {len(proto.rows)} rows; groups on two sides: {len(crossing_groups(proto.rows))}")
        print("  per split x source x class: " + json.dumps(proto.counts()))
        for reason, c in proto.dropped_counts().items():
            print(f"  left out ({reason}): {json.dumps(c)}")
    return 0


def cmd_multi_report(a: argparse.Namespace) -> int:
    import time

    from .manifest import read_manifest
    from .multi import group_sources
    from .multi_report import write_multi_report

    t = time.perf_counter()
    ms = group_sources(_multi_roots(a), progress=True)
    timings = {"scan_fingerprint_group_s": time.perf_counter() - t}
    report = write_multi_report(ms, read_manifest(a.paper_manifest), Path(a.out), seed=a.seed,
                                splits_dir=Path(a.splits_dir), timings=timings)
    return 0 if all(s["integrity_ok"] for s in report["sources"].values()) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.data", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan", help="decode every image and verify SHA256SUMS")
    s.add_argument("--data", help="BR35H folder (default: $BR35H_DATA or ../shared/data/br35h)")
    s.set_defaults(fn=cmd_scan)
    s = sub.add_parser("split", help="write split manifests (default: both protocols into splits/)")
    s.add_argument("--data")
    s.add_argument("--protocol", choices=(*PROTOCOLS, "all"), default="all")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--out", help="manifest path (default: splits/br35h-<protocol>.csv)")
    s.set_defaults(fn=cmd_split)
    s = sub.add_parser("crops", help="build (warm) the crop cache of a manifest")
    s.add_argument("--manifest", default=str(manifest_name("paper")))
    s.add_argument("--split", choices=("train", "val", "test"))
    s.add_argument("--data")
    s.set_defaults(fn=cmd_crops)
    s = sub.add_parser("report", help="data report: counts, sizes, integrity, duplicates, leakage")
    s.add_argument("--data")
    s.add_argument("--out", default=str(REPO_ROOT / "reports" / "data"))
    s.add_argument("--seed", type=int, default=42)
    s.set_defaults(fn=cmd_report)
    s = sub.add_parser("multi-split", help="multi-source manifests (BR35H + Nickparvar, cross-source groups)")
    s.add_argument("--data", help="BR35H folder (default: $BR35H_DATA or ../shared/data/br35h)")
    s.add_argument("--nickparvar", help="Nickparvar folder (default: $NICKPARVAR_DATA or ../shared/data/nickparvar)")
    s.add_argument("--protocol", choices=("external", "paper", "grouped", "all"), default="all")
    s.add_argument("--paper-manifest", default=str(manifest_name("paper")), help="BR35H rows of protocol 'paper'")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--out-dir", default=str(SPLITS_DIR))
    s.set_defaults(fn=cmd_multi_split)
    s = sub.add_parser("multi-report", help="multi-source report: cross-source twins, per class, protocols")
    s.add_argument("--data", help="BR35H folder (default: $BR35H_DATA or ../shared/data/br35h)")
    s.add_argument("--nickparvar", help="Nickparvar folder (default: $NICKPARVAR_DATA or ../shared/data/nickparvar)")
    s.add_argument("--paper-manifest", default=str(manifest_name("paper")))
    s.add_argument("--splits-dir", default=str(SPLITS_DIR), help="where the committed manifests are compared")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--out", default=str(REPO_ROOT / "reports" / "data"))
    s.set_defaults(fn=cmd_multi_report)
    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
