"""``python -m train.reproduce`` (``make reproduce``): BR35H -> trained model -> every artifact.

Stages, each skipped when its output is already there and newer than its input, so a rerun
reuses finished work and an interrupted run resumes (training itself resumes mid-stage):

1. data      decode every image and verify ``SHA256SUMS`` (stops here, with where to put the
             data, when BR35H is absent)
2. train     the preset on the protocol's committed manifest (``PROTOCOLS``); ``multi-paper``
             warm-starts from the ``paper`` run's model (trained first when missing)
3. evaluate  test-split report with the paper's figures (written by the train stage)
4. convert   TFLite fp32/fp16/dynamic/int8 + ONNX, each evaluated and gated, Android bundle
5. release   (paper and multi-paper protocols, gate passed) copy the shipped artifacts into
             ``models/`` under the protocol's name; the multi-source model is the edge runtime's
             default and its Android bundle is ``models/android/``
6. summary   accuracy of each artifact with its interval, sizes, where the files are

Benchmarks are a separate, deliberate step (``make benchmark``): they need a quiet machine.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
import json
from pathlib import Path
import sys
import time

from .paths import REPO_ROOT, DataNotFoundError, data_root


@dataclass(frozen=True)
class Protocol:
    """One row of the protocol table: what to train on, how, and under which name it ships."""

    manifest: str  # under splits/
    preset: str
    released_as: str | None = None  # file-name prefix under models/; None = never released
    init_from: str | None = None  # protocol whose model.keras this one starts from
    test_sources: tuple[str, ...] = ()  # gate on these sources' test rows (convert --test-source)
    convert_args: tuple[str, ...] = ()  # further ``python -m convert`` options chosen for this model


PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol("br35h-paper.csv", "cpu", released_as="br35h-mobilenetv2"),
    "grouped": Protocol("br35h-grouped.csv", "cpu"),
    # The released paper model extended to BR35H + Nickparvar by a short balanced fine-tune; held
    # to the paper's bar on BR35H's 600 test images (its Nickparvar test rows are scored apart).
    # 1280 whitened directions: chosen on val + the OOD dev set (reports/domain/multi-select).
    "multi-paper": Protocol("multi-paper.csv", "multi-ft", released_as="multisource-mobilenetv2",
                            init_from="paper", test_sources=("br35h",), convert_args=("--domain-dims", "1280")),
}


@dataclass(frozen=True)
class ReproduceConfig:
    protocol: str = "paper"
    preset: str | None = None  # None: the protocol's preset
    runs_dir: Path = REPO_ROOT / "runs"
    data: str | None = None
    skip_convert: bool = False
    reports_dir: Path = REPO_ROOT / "reports"
    models_dir: Path = REPO_ROOT / "models"
    release: bool = False

    @property
    def spec(self) -> Protocol:
        return PROTOCOLS[self.protocol]

    @property
    def preset_name(self) -> str:
        return self.preset or self.spec.preset

    @property
    def manifest(self) -> Path:
        return REPO_ROOT / "splits" / self.spec.manifest

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / f"{self.preset_name}-{self.protocol}"


def _fresh(output: Path, *inputs: Path) -> bool:
    """True when ``output`` exists and is newer than every existing input."""
    return output.exists() and all(output.stat().st_mtime >= i.stat().st_mtime for i in inputs if i.exists())


def stage_data(cfg: ReproduceConfig) -> None:
    from .data.scan import scan

    result = scan(data_root(cfg.data), progress=True)
    print(f"[data] {result.summary()}")
    if not result.ok:
        raise SystemExit("[data] the dataset has problems (listed above); fix them before training")


def _arg(path: Path) -> str:
    """A path as passed to a stage CLI, and so as written into its reports: relative to the
    working directory when inside it, so committed reports do not carry one machine's checkout."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def stage_train(cfg: ReproduceConfig) -> None:
    """Train + evaluate (resuming a partial run), then publish the report for committing."""
    from . import __main__ as train_cli
    from .report import publish_run_report

    model = cfg.run_dir / "model.keras"
    if model.exists() and _fresh(cfg.run_dir / "report.json", model):
        print(f"[train] {model} and its report exist; skipping")
    else:
        args = ["--manifest", _arg(cfg.manifest), "--preset", cfg.preset_name, "--run", _arg(cfg.run_dir)]
        if (cfg.run_dir / "state.json").exists():
            args.append("--resume")
        elif cfg.spec.init_from:
            base = replace(cfg, protocol=cfg.spec.init_from, preset=None, release=False)
            if not (base.run_dir / "model.keras").exists():
                print(f"[train] {cfg.protocol} starts from the {base.protocol} model: training that first")
                stage_train(base)
            args += ["--init", _arg(base.run_dir / "model.keras")]
        if cfg.data:
            args += ["--data", cfg.data]
        if train_cli.main(args) != 0:
            raise SystemExit("[train] failed")
    print(f"[train] report published to {publish_run_report(cfg.run_dir, cfg.reports_dir / 'train' / cfg.run_dir.name)}")


def stage_convert(cfg: ReproduceConfig) -> list[str]:
    from convert.__main__ import main as convert_main

    out = cfg.run_dir / "convert"
    if _fresh(out / "conversion_report.json", cfg.run_dir / "model.keras"):
        print(f"[convert] {out} is up to date; skipping")
        return json.loads((out / "conversion_report.json").read_text()).get("gate_failures", [])
    args = ["--model", _arg(cfg.run_dir / "model.keras"), "--manifest", _arg(cfg.manifest), "--out", _arg(out)]
    for source in cfg.spec.test_sources:
        args += ["--test-source", source]
    args += list(cfg.spec.convert_args)
    if cfg.data:
        args += ["--data", cfg.data]
    convert_main(args)
    return json.loads((out / "conversion_report.json").read_text()).get("gate_failures", [])


def released(prefix: str = "br35h-mobilenetv2", android_bundle: bool = True) -> dict[str, str]:
    """Run-folder artifact -> released name under ``models/``. The paper model keeps its
    historical names (``conversion_report.*``); other models prefix every file."""
    names = {
        "convert/model_int8.tflite": f"{prefix}-int8.tflite",
        "convert/model_fp16.tflite": f"{prefix}-fp16.tflite",
        "convert/model.onnx": f"{prefix}.onnx",
        "convert/conversion_report.md": "conversion_report.md" if prefix == "br35h-mobilenetv2" else f"{prefix}_conversion_report.md",
        "convert/conversion_report.json": "conversion_report.json" if prefix == "br35h-mobilenetv2" else f"{prefix}_conversion_report.json",
    }
    if android_bundle:
        names["convert/android"] = "android"
    return names


#: The paper model's release (kept for callers and tests that name it).
RELEASED = released()


def stage_release(cfg: ReproduceConfig) -> Path:
    """Copy the shipped artifacts of ``cfg.run_dir`` into ``cfg.models_dir`` under the protocol's
    name. The Android bundle is the default model's: the multi-source one once it ships."""
    import shutil

    cfg.models_dir.mkdir(parents=True, exist_ok=True)
    prefix = cfg.spec.released_as or "br35h-mobilenetv2"
    bundle = cfg.protocol == "multi-paper" or not (cfg.models_dir / "multisource-mobilenetv2-int8.tflite").exists()
    files = released(prefix, android_bundle=bundle)
    for src, name in files.items():
        path, dest = cfg.run_dir / src, cfg.models_dir / name
        if path.is_dir():
            shutil.copytree(path, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(path, dest)
    print(f"[release] {', '.join(files.values())} -> {cfg.models_dir}")
    return cfg.models_dir


def summary(cfg: ReproduceConfig) -> str:
    rep = json.loads((cfg.run_dir / "report.json").read_text())
    lines = [f"== {cfg.preset_name} preset on the {cfg.protocol} protocol: {cfg.run_dir} =="]
    m = rep.get("metrics", {})
    if m:
        ci = m.get("accuracy_ci95") or []
        ci_txt = f" (95 % CI {100 * ci[0]:.2f}-{100 * ci[1]:.2f})" if len(ci) == 2 else ""
        lines.append(f"keras     accuracy {100 * m['accuracy']:.2f}% ({m.get('correct')}/{m.get('n')}){ci_txt}")
    conv = cfg.run_dir / "convert" / "conversion_report.json"
    if conv.exists():
        from .metrics import clopper_pearson

        c = json.loads(conv.read_text())
        for name, a in c["artifacts"].items():
            am = a["metrics"]
            k = round(am["accuracy"] * am["n"])
            lo, hi = clopper_pearson(k, am["n"])
            lines.append(f"{name:<22} accuracy {100 * am['accuracy']:.2f}% ({k}/{am['n']}, CI {100 * lo:.2f}-{100 * hi:.2f})"
                         f"  agreement {100 * am['agreement']:.2f}%  {a['bytes'] / 2**20:.1f} MiB")
        lines.append("latency: `make benchmark` (needs a quiet machine) -> reports/benchmarks/README.md")
        lines.append(f"Android bundle: {cfg.run_dir / 'convert' / 'android.zip'}")
    lines.append(f"reports: {cfg.run_dir / 'report.md'}" + (f", {cfg.run_dir / 'convert' / 'conversion_report.md'}"
                                                           if conv.exists() else ""))
    return "\n".join(lines)


def run(cfg: ReproduceConfig) -> int:
    t0 = time.time()
    try:
        stage_data(cfg)
    except DataNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    stage_train(cfg)
    failures = [] if cfg.skip_convert else stage_convert(cfg)
    if cfg.release and not cfg.skip_convert:
        if failures:
            print("[release] skipped: the gate failed, models/ keeps the previous release", file=sys.stderr)
        else:
            stage_release(cfg)
    print(summary(cfg))
    print(f"wall time of this invocation: {time.time() - t0:.0f}s")
    for f in failures:
        print(f"GATE FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.reproduce", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="paper")
    p.add_argument("--preset", help="override the protocol's preset")
    p.add_argument("--runs-dir", type=Path, default=ReproduceConfig.runs_dir)
    p.add_argument("--data", help="BR35H folder (default: $BR35H_DATA or ../shared/data/br35h)")
    p.add_argument("--skip-convert", action="store_true")
    p.add_argument("--reports-dir", type=Path, default=ReproduceConfig.reports_dir,
                   help="where run reports are published for committing (default: reports/)")
    p.add_argument("--models-dir", type=Path, default=ReproduceConfig.models_dir)
    p.add_argument("--release", action=argparse.BooleanOptionalAction, default=None,
                   help="copy the shipped artifacts to --models-dir (default: on for released protocols)")
    a = p.parse_args(argv)
    release = a.release if a.release is not None else PROTOCOLS[a.protocol].released_as is not None
    return run(ReproduceConfig(a.protocol, a.preset, a.runs_dir, a.data, a.skip_convert, a.reports_dir,
                               a.models_dir, release))


if __name__ == "__main__":
    sys.exit(main())
