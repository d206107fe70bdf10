"""``python -m convert --model runs/X/model.keras --manifest splits/br35h-paper.csv --out runs/X/convert``

Exits 1 (naming artifact and numbers) when an artifact fails the gate, 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import shlex
import sys

from convert.config import (BIAS_CORRECTION_DEFAULT, KEEP_FLOAT_DEFAULT, BundleInfo, ConvertConfig, GateConfig,
                            QuantizationConfig)
from convert.domain import DomainConfig
from convert.views import ViewConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m convert", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, type=Path, help="trained Keras 3 .keras file")
    p.add_argument("--manifest", required=True, type=Path, help="split manifest CSV (train -> calibration, test -> evaluation)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--data", default=None, help="BR35H root (default: $BR35H_DATA or ../shared/data/br35h)")
    p.add_argument("--tolerance", type=float, default=0.5, help="max accuracy drop vs Keras, points")
    p.add_argument("--paper-tolerance", type=float, default=0.5, help="max shortfall vs the paper's 99.33%%, points")
    p.add_argument("--paper-protocol", choices=("auto", "yes", "no"), default="auto",
                   help="apply the paper bar; auto = manifest file name contains 'paper'")
    p.add_argument("--calibration-size", type=int, default=300)
    p.add_argument("--calibration-seed", type=int, default=0)
    p.add_argument("--calibration-selection", choices=("random", "stratified", "groups"), default="stratified")
    p.add_argument("--int8-io", choices=("uint8", "int8"), default="uint8")
    p.add_argument("--denylist-node", action="append", default=[], help="keep this node float (repeatable)")
    p.add_argument("--bias-correction", action=argparse.BooleanOptionalAction, default=BIAS_CORRECTION_DEFAULT,
                   help="cancel the int8 weight-rounding shift in the BatchNorm means before the int8 exports "
                        f"(default: {'on' if BIAS_CORRECTION_DEFAULT else 'off'}; see reports/convert/int8_findings.md)")
    p.add_argument("--int8-keep-float", type=int, default=KEEP_FLOAT_DEFAULT, metavar="K",
                   help="keep the K convs most sensitive to int8 weight rounding (ranked automatically on train-split "
                        f"calibration images) float in the int8 TFLite; 0 = fully integer (default: {KEEP_FLOAT_DEFAULT}; "
                        "see reports/convert/int8_findings.md)")
    p.add_argument("--no-onnx-int8", action="store_true")
    p.add_argument("--version", default=BundleInfo.version, help="model version written to metadata and bundle")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--domain", choices=("auto", "on", "off"), default="auto",
                   help="in-model domain check + temperature + contract thresholds, chosen on the val split "
                        "(auto: when the manifest has val rows)")
    p.add_argument("--domain-dims", type=int, default=DomainConfig.dims, help="whitened principal directions kept")
    p.add_argument("--domain-accept", type=float, default=DomainConfig.accept,
                   help="share of in-domain val crops the domain threshold accepts")
    p.add_argument("--domain-fit-images", type=int, default=DomainConfig.max_fit_images,
                   help="train crops (evenly spaced) the domain check is fitted on")
    p.add_argument("--views", metavar="LABELS.csv", default=None,
                   help="hand-labelled slice views (e.g. splits/views.csv): add the view gate, which scores 0 "
                        "(unknown) every slice of a view the val split does not show the model judges")
    p.add_argument("--test-source", action="append", default=[], metavar="SOURCE",
                   help="evaluate and gate on the test rows of this source only (repeatable; default: all rows)")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> ConvertConfig:
    paper = {"yes": True, "no": False}.get(args.paper_protocol, "paper" in args.manifest.name)
    return ConvertConfig(
        quant=QuantizationConfig.for_int8(args.calibration_size, args.calibration_seed, args.calibration_selection,
                                          args.int8_io, tuple(args.denylist_node), args.bias_correction,
                                          args.int8_keep_float),
        gate=GateConfig(tolerance=args.tolerance, paper_tolerance=args.paper_tolerance, paper_protocol=paper),
        bundle=BundleInfo(version=args.version),
        onnx_int8=not args.no_onnx_int8,
        num_threads=args.threads,
        domain_mode=args.domain,
        domain=DomainConfig(dims=args.domain_dims, accept=args.domain_accept, max_fit_images=args.domain_fit_images,
                            views=ViewConfig(labels=args.views)),
        test_sources=tuple(args.test_source),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for flag, path in (("--model", args.model), ("--manifest", args.manifest)):
        if not path.is_file():
            print(f"error: {flag} {path}: no such file", file=sys.stderr)
            return 2
    from convert.pipeline import run

    command = "python -m convert " + shlex.join(sys.argv[1:] if argv is None else argv)
    result = run(args.model, args.manifest, args.out, config_from(args), data_root=args.data, command=command)
    print(f"report: {result.out_dir / 'conversion_report.md'}; bundle: {result.out_dir / 'android.zip'}")
    for line in result.failures:
        print(f"GATE FAILED: {line}", file=sys.stderr)
    return 1 if result.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
