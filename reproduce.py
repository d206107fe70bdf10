"""``python -m reproduce`` (``make reproduce``): data -> trained model -> every artifact -> ``models/``.

The one orchestrator, on top of the packages it drives (``train`` below it, ``convert`` below
that, ``edge_runtime`` at the bottom); it calls their library functions with config objects.

Stages, each skipped when a stamp of its inputs matches (sha256 of the manifest, of the model it
starts from, and the stage's whole config), so an edit to a preset retrains while a rerun reuses
finished work; an interrupted training resumes mid-stage. The first failing stage stops the run
with its reason (exit 1; 2 when the data is missing):

1. data      decode every image and verify ``SHA256SUMS``
2. train     the preset on the protocol's committed manifest (``PROTOCOLS``); a protocol with
             ``init_from`` warm-starts from that protocol's model (trained first when missing);
             the test-split report is published to ``reports/train/``
3. convert   TFLite fp32/fp16/dynamic/int8 + ONNX, each evaluated and gated, Android bundle
4. release   (released protocols, gate passed) every shipped copy, written here and only here:
             ``models/<name>-*``, the default model's ``models/android/`` bundle, the links in
             ``edge_runtime/models/`` and ``models/RELEASE.json`` with every copy's sha256
5. summary   accuracy of each artifact with its interval, sizes, where the files are

Benchmarks are a separate, deliberate step (``make benchmark``): they need a quiet machine.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
import hashlib
import json
import os
from pathlib import Path
import shutil
import sys
import time

from convert.config import ConvertConfig, GateConfig
from convert.domain import DomainConfig
from convert.views import ViewConfig
from edge_runtime.default_model import RELEASED_NAME
from train.paths import REPO_ROOT, DataNotFoundError, data_root
from train.presets import TrainConfig, get_preset
from train.report import sha256_file

RELEASE_MANIFEST = "RELEASE.json"


@dataclass(frozen=True)
class Protocol:
    """One row of the protocol table: what to train on, how, and under which name it ships."""

    manifest: str  # under splits/
    preset: str
    released_as: str | None = None  # file-name prefix under models/; None = never released
    init_from: str | None = None  # protocol whose model.keras this one starts from
    test_sources: tuple[str, ...] = ()  # gate on these sources' test rows only (others scored apart)
    domain: DomainConfig = field(default_factory=DomainConfig)  # in-model domain check, chosen per model

    @property
    def paper(self) -> bool:
        """The paper's bar (>= 99.33 % within tolerance) applies to the paper's split."""
        return "paper" in self.manifest

    def convert_config(self) -> ConvertConfig:
        return ConvertConfig(gate=GateConfig(paper_protocol=self.paper), domain=self.domain,
                             test_sources=self.test_sources)


#: The domain check of every protocol: 1280 whitened directions (each released model chose it on
#: its own val split and the OOD dev set: reports/domain/paper-select, reports/domain/multi-select)
#: and the view gate (reports/domain/views): "unknown" for views the val split does not show the
#: model judges.
CHECKED = DomainConfig(dims=1280, views=ViewConfig())

PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol("br35h-paper.csv", "cpu", released_as="br35h-mobilenetv2", domain=CHECKED),
    "grouped": Protocol("br35h-grouped.csv", "cpu"),
    # The released paper model extended to BR35H + Nickparvar by a short balanced fine-tune; held
    # to the paper's bar on BR35H's 600 test images (its Nickparvar test rows are scored apart).
    "multi-paper": Protocol("multi-paper.csv", "multi-ft", released_as="multisource-mobilenetv2",
                            init_from="paper", test_sources=("br35h",), domain=CHECKED),
    # Both sources, near-duplicate groups never crossing train/val/test: trained from ImageNet
    # (a warm start from the paper model would leak, its training set spans these test groups).
    "multi-grouped": Protocol("multi-grouped.csv", "multi", domain=CHECKED),
}

#: The released model the edge runtime and the Android bundle default to.
DEFAULT_RELEASE = "multisource-mobilenetv2"


class StageError(RuntimeError):
    """A stage could not finish; the message names the stage and the reason."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"[{stage}] failed: {reason}")
        self.stage, self.reason = stage, reason


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
    package_models_dir: Path = REPO_ROOT / "edge_runtime" / "models"

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

    @property
    def train_config(self) -> TrainConfig:
        return get_preset(self.preset_name)

    def base(self) -> "ReproduceConfig | None":
        """The run this protocol warm-starts from, with the same folders."""
        if not self.spec.init_from:
            return None
        return replace(self, protocol=self.spec.init_from, preset=None, release=False)


# --- freshness by hash -----------------------------------------------------------------------


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot stamp a {type(obj).__name__}")


def inputs_digest(parts: dict) -> str:
    """sha256 of the canonical JSON of a stage's inputs (file hashes and configs, no paths that
    differ between checkouts), so equal inputs give equal stamps on every machine."""
    text = json.dumps(parts, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _stamp_path(folder: Path, stage: str) -> Path:
    return folder / f"{stage}.inputs.json"


def read_stamp(folder: Path, stage: str) -> str | None:
    path = _stamp_path(folder, stage)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["digest"]
    except (ValueError, KeyError) as exc:
        raise StageError(stage, f"{path}: unreadable inputs stamp ({exc}); delete it to redo the stage") from None


def write_stamp(folder: Path, stage: str, parts: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = _stamp_path(folder, stage)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"digest": inputs_digest(parts), "inputs": parts}, indent=2, sort_keys=True,
                              default=_json_default) + "\n")
    os.replace(tmp, path)


def train_inputs(cfg: ReproduceConfig) -> dict:
    base = cfg.base()
    return {"manifest_sha256": sha256_file(cfg.manifest), "config": cfg.train_config.to_dict(),
            "init_sha256": sha256_file(base.run_dir / "model.keras") if base else None}


def convert_inputs(cfg: ReproduceConfig) -> dict:
    labels = cfg.spec.domain.views.labels
    return {"manifest_sha256": sha256_file(cfg.manifest), "model_sha256": sha256_file(cfg.run_dir / "model.keras"),
            "config": cfg.spec.convert_config().to_dict(),
            "view_labels_sha256": sha256_file(REPO_ROOT / labels) if labels else None}


def _set_aside(folder: Path, why: str) -> Path:
    """Move a run folder whose inputs changed out of the way instead of deleting finished work."""
    dest = folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(dest)
    print(f"[train] {folder}: {why}; kept as {dest}")
    return dest


# --- stages ----------------------------------------------------------------------------------


def _arg(path: Path) -> Path:
    """A path as handed to a stage, and so as written into its reports: relative to the working
    directory when inside it, so committed reports do not carry one machine's checkout."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return Path(path)


def stage_data(cfg: ReproduceConfig) -> None:
    from train.data.scan import scan

    result = scan(data_root(cfg.data), progress=True)
    print(f"[data] {result.summary()}")
    if not result.ok:
        raise StageError("data", "the dataset has problems (listed above); fix them before training")


def stage_train(cfg: ReproduceConfig) -> Path:
    """Train + evaluate (resuming a partial run with the same inputs), then publish the report."""
    from train import pipeline as train_pipeline
    from train.report import publish_run_report

    base = cfg.base()
    if base is not None and not (base.run_dir / "model.keras").exists():
        print(f"[train] {cfg.protocol} starts from the {base.protocol} model: training that first")
        stage_train(base)
    run, model = cfg.run_dir, cfg.run_dir / "model.keras"
    parts = train_inputs(cfg)
    stamp = read_stamp(run, "train") if run.exists() else None
    fresh = stamp == inputs_digest(parts)
    if fresh and model.exists() and (run / "report.json").exists():
        print(f"[train] {run}: inputs unchanged, model and report exist; skipping")
    else:
        if run.exists() and not fresh and any(run.iterdir()):
            _set_aside(run, "inputs changed since it was trained" if stamp else "no inputs stamp (made by an older version)")
        write_stamp(run, "train", parts)
        try:
            train_pipeline.run(cfg.train_config, _arg(cfg.manifest), _arg(run), data_root=cfg.data,
                               resume=(run / "state.json").exists(),
                               init=_arg(base.run_dir / "model.keras") if base else None)
        except DataNotFoundError:
            raise
        except Exception as exc:  # the stage's own reason, then stop: nothing after it can run
            raise StageError("train", f"{type(exc).__name__}: {exc}") from exc
    dest = publish_run_report(run, cfg.reports_dir / "train" / run.name)
    print(f"[train] report published to {dest}")
    return model


def stage_convert(cfg: ReproduceConfig) -> list[str]:
    """Convert, evaluate and gate every format; returns the gate failures (empty = passed)."""
    from convert import pipeline as convert_pipeline

    out = cfg.run_dir / "convert"
    parts = convert_inputs(cfg)
    report = out / "conversion_report.json"
    if read_stamp(out, "convert") == inputs_digest(parts) and report.exists():
        print(f"[convert] {out}: inputs unchanged; skipping")
        return json.loads(report.read_text()).get("gate_failures", [])
    command = f"python -m reproduce --protocol {cfg.protocol}" + (f" --preset {cfg.preset}" if cfg.preset else "")
    try:
        result = convert_pipeline.run(_arg(cfg.run_dir / "model.keras"), _arg(cfg.manifest), _arg(out),
                                      cfg.spec.convert_config(),
                                      data_root=cfg.data, command=command)
    except Exception as exc:
        raise StageError("convert", f"{type(exc).__name__}: {exc}") from exc
    write_stamp(out, "convert", parts)
    if cfg.spec.released_as is None:  # unreleased runs keep their conversion report under reports/
        dest = cfg.reports_dir / "convert"
        dest.mkdir(parents=True, exist_ok=True)
        for suffix in (".json", ".md"):
            shutil.copy2(out / f"conversion_report{suffix}", dest / f"{cfg.run_dir.name}_conversion_report{suffix}")
    return result.failures


def released(prefix: str = "br35h-mobilenetv2", android_bundle: bool = True) -> dict[str, str]:
    """Run-folder artifact -> released name under ``models/``. The paper model keeps its
    historical report names (``conversion_report.*``); other models prefix every file."""
    report = "conversion_report" if prefix == "br35h-mobilenetv2" else f"{prefix}_conversion_report"
    names = {
        "convert/model_int8.tflite": f"{prefix}-int8.tflite",
        "convert/model_fp16.tflite": f"{prefix}-fp16.tflite",
        "convert/model.onnx": f"{prefix}.onnx",
        "convert/conversion_report.md": f"{report}.md",
        "convert/conversion_report.json": f"{report}.json",
    }
    if android_bundle:
        names["convert/android"] = "android"
    return names


#: The paper model's release (kept for callers and tests that name it).
RELEASED = released()


def _files_of(root: Path, name: str) -> dict[str, dict]:
    path = root / name
    paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p.relative_to(root)): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in paths}


def write_release_manifest(models_dir: Path, package_models_dir: Path, out: Path | None = None) -> Path:
    """``models/RELEASE.json``: every shipped file with its sha256, which model is the default,
    and the copies that must equal it (Android bundle, the runtime package's links)."""
    entries: dict[str, dict] = {}
    for name, spec in PROTOCOLS.items():
        prefix = spec.released_as
        if prefix is None or not (models_dir / f"{prefix}-int8.tflite").exists():
            continue
        files: dict[str, dict] = {}
        for dest in released(prefix, android_bundle=False).values():
            files.update(_files_of(models_dir, dest))
        entries[prefix] = {"protocol": name, "files": files}
    default = DEFAULT_RELEASE if DEFAULT_RELEASE in entries else next(iter(entries), None)
    copies = {}
    if default is not None:
        int8 = f"{default}-int8.tflite"
        copies["android/model.tflite"] = int8
        for prefix in entries:
            copies[os.path.relpath(package_models_dir / f"{prefix}-int8.tflite", models_dir)] = f"{prefix}-int8.tflite"
    manifest = {"default": default, "runtime_default_file": RELEASED_NAME, "models": entries,
                "android": _files_of(models_dir, "android") if (models_dir / "android").is_dir() else {},
                "copies": copies}
    path = out or models_dir / RELEASE_MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def stage_release(cfg: ReproduceConfig) -> Path:
    """Write every shipped copy of ``cfg.run_dir``'s artifacts, then the release manifest.

    The Android bundle and the runtime's default belong to the multi-source model once it is
    released; until then the paper model provides them."""
    cfg.models_dir.mkdir(parents=True, exist_ok=True)
    prefix = cfg.spec.released_as or "br35h-mobilenetv2"
    bundle = prefix == DEFAULT_RELEASE or not (cfg.models_dir / f"{DEFAULT_RELEASE}-int8.tflite").exists()
    files = released(prefix, android_bundle=bundle)
    for src, name in files.items():
        path, dest = cfg.run_dir / src, cfg.models_dir / name
        if not path.exists():
            raise StageError("release", f"{path}: missing; convert the run first")
        if path.is_dir():
            shutil.copytree(path, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(path, dest)
    link = cfg.package_models_dir / f"{prefix}-int8.tflite"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(cfg.models_dir / f"{prefix}-int8.tflite", link.parent))
    manifest = write_release_manifest(cfg.models_dir, cfg.package_models_dir)
    print(f"[release] {', '.join(files.values())} -> {cfg.models_dir}; {link}; {manifest.name}")
    return cfg.models_dir


def summary(cfg: ReproduceConfig) -> str:
    from train.metrics import clopper_pearson

    rep = json.loads((cfg.run_dir / "report.json").read_text())
    lines = [f"== {cfg.preset_name} preset on the {cfg.protocol} protocol: {cfg.run_dir} =="]
    m = rep.get("metrics", {})
    if m:
        ci = m.get("accuracy_ci95") or []
        ci_txt = f" (95 % CI {100 * ci[0]:.2f}-{100 * ci[1]:.2f})" if len(ci) == 2 else ""
        lines.append(f"keras     accuracy {100 * m['accuracy']:.2f}% ({m.get('correct')}/{m.get('n')}){ci_txt}")
    conv = cfg.run_dir / "convert" / "conversion_report.json"
    if conv.exists():
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
        stage_train(cfg)
        failures = [] if cfg.skip_convert else stage_convert(cfg)
        if cfg.release and not cfg.skip_convert:
            if failures:
                print("[release] skipped: the gate failed, models/ keeps the previous release", file=sys.stderr)
            else:
                stage_release(cfg)
    except DataNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    except StageError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(summary(cfg))
    print(f"wall time of this invocation: {time.time() - t0:.0f}s")
    for f in failures:
        print(f"GATE FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m reproduce", description=__doc__,
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
                   help="write the shipped copies to --models-dir (default: on for released protocols)")
    a = p.parse_args(argv)
    release = a.release if a.release is not None else PROTOCOLS[a.protocol].released_as is not None
    return run(ReproduceConfig(a.protocol, a.preset, a.runs_dir, a.data, a.skip_convert, a.reports_dir,
                               a.models_dir, release))


if __name__ == "__main__":
    sys.exit(main())
