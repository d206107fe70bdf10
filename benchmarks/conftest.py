"""Options and shared inputs of the benchmark suite (``pytest benchmarks ...``, or ``python -m benchmarks``).

Cases are generated from what exists: every artifact in ``--artifacts`` whose runtime is
installed (only LiteRT on a Pi), plus ``--keras`` when given. Anything missing - data,
artifacts, a runtime - becomes a skip that says what and where, never a silent pass.

pytest-benchmark times the rounds with :data:`TIMER`, the runtime's timing core, so the suite
reads the same clock as ``br35h-edge bench`` and ``benchmarks.edge_latency``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.artifacts import Artifact, classify, discover, runtime_available
from benchmarks.cases import latency_cases
from edge_runtime.timing import load_average

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
#: pytest-benchmark's ``--benchmark-timer``, set unless another was asked for explicitly.
TIMER = "edge_runtime.timing.now"
_PLUGIN_DEFAULT_TIMER = "time.perf_counter"
VERSIONS = ("numpy", "pillow", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow", "keras", "pytest-benchmark")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("br35h benchmarks")
    g.addoption("--artifacts", type=Path, default=REPO / "runs/cpu-paper/convert", help="folder of .tflite/.onnx files")
    g.addoption("--keras", type=Path, default=None, help="Keras model: desktop baseline (latency + accuracy)")
    g.addoption("--manifest", type=Path, default=REPO / "splits/br35h-paper.csv", help="protocol whose test split is asserted")
    g.addoption("--grouped-manifest", type=Path, default=REPO / "splits/br35h-grouped.csv", help="reported beside it")
    g.addoption("--data", type=Path, default=None, help="BR35H root (default $BR35H_DATA or ../shared/data/br35h)")
    g.addoption("--images", type=int, default=20, help="fixed test images every latency case cycles through")
    g.addoption("--threads", default=f"1,{os.cpu_count() or 1}", help="comma-separated interpreter thread counts")
    g.addoption("--rounds", type=int, default=200, help="timed rounds per case (one image each)")
    g.addoption("--warmup", type=int, default=20, help="untimed rounds before timing")
    g.addoption("--expected-accuracy", type=float, default=99.33, help="the paper's test accuracy, %%")
    g.addoption("--tolerance", type=float, default=0.5, help="allowed shortfall, percentage points")
    g.addoption("--results", type=Path, default=None, help="write accuracy.json here")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Point pytest-benchmark at :data:`TIMER` before its session reads the option (its own
    ``pytest_configure`` runs last)."""
    if getattr(config.option, "benchmark_timer", None) == _PLUGIN_DEFAULT_TIMER:  # absent: plugin disabled
        config.option.benchmark_timer = TIMER


def _artifacts(config: pytest.Config) -> list[Artifact] | str:
    """Artifacts whose runtime is installed, or the reason there are none."""
    folder: Path = config.getoption("--artifacts")
    found = discover(folder) if folder.is_dir() else []
    keras_path: Path | None = config.getoption("--keras")
    if keras_path is not None:
        if not keras_path.is_file():
            return f"--keras {keras_path}: no such file"
        found.append(classify(keras_path))
    usable = [a for a in found if runtime_available(a.runtime)]
    if not usable:
        return f"no runnable artifacts in {folder} (folder exists: {folder.is_dir()}; runtimes: {[a.runtime for a in found]})"
    return usable


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``artifact`` (accuracy) and ``case`` (latency) parameters from the options."""
    names = [n for n in ("artifact", "case") if n in metafunc.fixturenames]
    if not names:
        return
    found = _artifacts(metafunc.config)
    if isinstance(found, str):
        params = [pytest.param(None, id="none", marks=pytest.mark.skip(reason=found))]
    elif names[0] == "artifact":
        params = [pytest.param(a, id=a.label) for a in found]
    else:
        counts = sorted({int(t) for t in str(metafunc.config.getoption("--threads")).split(",")})
        params = [pytest.param(c, id=c.id) for c in latency_cases(found, counts)]
    metafunc.parametrize(names[0], params)


@pytest.fixture(scope="session")
def data_root(pytestconfig: pytest.Config) -> Path:
    from train.paths import DataNotFoundError, data_root as resolve

    try:
        return resolve(pytestconfig.getoption("--data"))
    except DataNotFoundError as exc:
        pytest.skip(f"BR35H absent: {exc}")


@pytest.fixture(scope="session")
def samples(pytestconfig: pytest.Config, data_root: Path):
    """The fixed latency inputs (see :mod:`benchmarks.images`)."""
    from benchmarks.images import fixed_rows, load_samples

    return load_samples(fixed_rows(pytestconfig.getoption("--manifest"), pytestconfig.getoption("--images")), data_root)


@pytest.fixture(scope="session")
def accuracy_log(pytestconfig: pytest.Config):
    """Accuracy records; written to ``--results/accuracy.json`` when the session ends."""
    records: list[dict] = []
    yield records
    out: Path | None = pytestconfig.getoption("--results")
    if out is not None and records:
        out.mkdir(parents=True, exist_ok=True)
        payload = {"expected_accuracy": pytestconfig.getoption("--expected-accuracy"),
                   "tolerance": pytestconfig.getoption("--tolerance"), "records": records}
        (out / "accuracy.json").write_text(json.dumps(payload, indent=2) + "\n")


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """CPU model and library versions next to every timing (a number without them cannot be compared)."""
    from edge_runtime.machine import machine_info as this_machine, package_versions

    versions = {k: v for k, v in package_versions(VERSIONS).items() if v}
    machine_info["br35h"] = {**this_machine(), "versions": versions, "loadavg_start": load_average()}
