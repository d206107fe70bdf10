"""``python -m benchmarks [--out reports/benchmarks] [--save-baseline | --compare] [suite options]``

Runs the latency and accuracy suites (every other option goes to pytest, which defines them in
``benchmarks/conftest.py``: --artifacts, --keras, --threads, --rounds, --tolerance, ...), measures
the vector-unit floor, and writes the report. Exit status is pytest's: 1 when an accuracy
assertion failed (the report is written anyway, so the failure is visible in it).

This parser knows only its own options; what the suite options resolved to (the artifacts
folder the floor needs) is read back from pytest's config, so there is one parser per option.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import shlex
import sys

import pytest

from edge_runtime.timing import load_average

from .artifacts import discover
from .floor import floor
from .report import write

HERE = Path(__file__).resolve().parent


class _SuiteOptions:
    """A pytest plugin that keeps the ``--artifacts`` folder pytest resolved (None: pytest never
    got as far as configuring, e.g. a usage error)."""

    def __init__(self) -> None:
        self.artifacts: Path | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self.artifacts = config.getoption("--artifacts")


def _floor_model(folder: Path | None) -> Path | None:
    """The int8 ``.tflite`` in ``folder``, else any ``.tflite``, else None."""
    tflite = [a for a in discover(folder) if a.runtime == "litert"] if folder and folder.is_dir() else []
    return next((a.path for a in tflite if a.precision == "int8"), tflite[0].path if tflite else None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # allow_abbrev=False: an abbreviation must not capture a pytest option (``--co`` is not ``--compare``).
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0], allow_abbrev=False,
                                 epilog="Every other option goes to pytest (suite options: benchmarks/conftest.py).")
    ap.add_argument("--out", type=Path, default=HERE.parent / "reports/benchmarks")
    ap.add_argument("--save-baseline", action="store_true", help="also store this run as the --benchmark-compare baseline")
    ap.add_argument("--compare", action="store_true", help="compare against the stored baseline (pytest-benchmark table)")
    ap.add_argument("--baseline", type=Path, default=HERE.parent / "reports/benchmarks/baseline",
                    help="pytest-benchmark storage for --save-baseline / --compare (the committed one by default)")
    ap.add_argument("--no-floor", action="store_true", help="skip compiling and running benchmarks/peak.c")
    args, rest = ap.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    storage = f"file://{args.baseline.resolve()}"
    cmd = [str(HERE / "test_latency.py"), str(HERE / "test_accuracy.py"), "-p", "no:cacheprovider", "-ra",
           f"--rootdir={HERE.parent}", f"--benchmark-json={args.out / 'latency.json'}", "--benchmark-sort=name",
           f"--benchmark-storage={storage}", f"--results={args.out}", *rest]
    if args.save_baseline:
        cmd.append("--benchmark-save=baseline")
    if args.compare:
        cmd.append("--benchmark-compare")
    suite = _SuiteOptions()
    status = int(pytest.main(cmd, plugins=[suite]))
    model = _floor_model(suite.artifacts)
    if model is not None and not args.no_floor:
        (args.out / "floor.json").write_text(json.dumps(floor(model), indent=2) + "\n")
    loadavg = ", ".join(f"{v:.2f}" for v in load_average() or [])
    print(f"report: {write(args.out, 'python -m benchmarks ' + shlex.join(argv))} (load average at end: {loadavg})")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
