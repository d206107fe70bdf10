"""Peak resident memory of one case, measured in a fresh process.

Peak RSS (``VmHWM``) is a per-process high-water mark: measured inside the benchmark session it
would only ever grow and report the largest case for every later one. So each case runs once
more in its own interpreter - import the runtime, load the model, process one image end to end -
and reports its ``VmHWM``, next to the RSS after the imports alone, which says how much is the
model and its buffers rather than Python and the libraries. This is the number a device needs.

    python -m benchmarks.memory ARTIFACT --threads 1 --image scan.jpg   # prints JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys

REPO = Path(__file__).resolve().parent.parent


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(artifact: Path | None, threads: int | None, image: Path) -> dict:
    """Run in this process: imports, (model load,) one decode -> crop (-> inference)."""
    from edge_runtime import load_rgb
    from edge_runtime.crop import crop_image

    from .artifacts import classify, open_runner

    runner = None
    if artifact is not None:
        a = classify(artifact)
        if a.runtime == "litert":
            import ai_edge_litert.interpreter  # noqa: F401  (import cost belongs to the baseline)
        elif a.runtime == "onnxruntime":
            import onnxruntime  # noqa: F401
        else:
            import keras  # noqa: F401
        baseline = _status_kib("VmRSS")
        runner = open_runner(a, threads)
    else:
        baseline = _status_kib("VmRSS")
    crop = crop_image(load_rgb(image))[0]
    if runner is not None:
        runner(crop)
    return {"rss_after_imports_mib": baseline / 1024, "peak_rss_mib": _status_kib("VmHWM") / 1024}


def peak_rss(artifact: Path | None, threads: int | None, image: Path) -> dict:
    """:func:`measure` in a child process (see module docstring); raises if the child fails."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--image", str(image)]
    if artifact is not None:
        cmd += ["--artifact", str(artifact)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", type=Path, help="model file; omitted = decode + crop only")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--image", type=Path, required=True)
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.artifact, args.threads, args.image)))


if __name__ == "__main__":
    main()
