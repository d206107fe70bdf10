"""Peak memory of decode + crop per pixel, the numbers behind ``edge_runtime/budget.py``.

For each pixel format, a synthetic ``--side`` x ``--side`` image is classified in a fresh
subprocess; the growth of peak RSS (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) over the loaded-model baseline, divided by the
pixel count, is compared with :func:`edge_runtime.budget.estimate_bytes`. The estimate must not
be below the measurement (it is what refuses images on a 1 GB device).

    .venv/bin/python -m benchmarks.decode_memory            # writes reports/edge/decode_memory.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

from benchmarks.cpu_features import vector_features
from edge_runtime.budget import estimate_bytes
from edge_runtime.machine import machine_info

REPO = Path(__file__).resolve().parent.parent
# Runs with cwd=REPO, which ``python -c`` puts first on sys.path: this checkout's edge_runtime.
_CHILD = """
import json
from edge_runtime import Classifier
from edge_runtime.image_io import DecodeConfig
clf = Classifier({model!r}, 1, decode=DecodeConfig(memory_budget_mb=1 << 20, draft=False))
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
base = status("VmRSS")
pred = clf.classify({path!r})
print(json.dumps({{"base_kib": base, "peak_kib": status("VmHWM")}}))
"""


def _image(kind: str, side: int) -> Image.Image:
    yy, xx = np.mgrid[0:side, 0:side]
    inside = ((yy - side / 2) / (side * 0.4)) ** 2 + ((xx - side / 2) / (side * 0.35)) ** 2 <= 1
    gray = np.where(inside, 120, 0).astype(np.uint8)
    if kind == "I;16":
        return Image.fromarray(gray.astype(np.uint16) * 200)
    if kind == "L":
        return Image.fromarray(gray)
    rgb = Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))
    return rgb.convert("RGBA") if kind == "RGBA" else rgb


def measure(side: int, model: Path) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, ext in (("RGB", "jpg"), ("L", "jpg"), ("I;16", "png"), ("RGBA", "png")):
            path = Path(tmp) / f"img.{ext}"
            _image(kind, side).save(path)
            code = _CHILD.format(model=str(model), path=str(path))
            out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            measured = (r["peak_kib"] - r["base_kib"]) * 1024 / side**2
            rows.append({"mode": kind, "file": ext, "side": side, "measured_bytes_per_pixel": round(measured, 1),
                         "estimate_bytes_per_pixel": estimate_bytes(side, side, kind) / side**2})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=4000)
    ap.add_argument("--model", type=Path, default=REPO / "tests" / "assets" / "tiny_int8.tflite")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "edge" / "decode_memory.md")
    args = ap.parse_args()
    rows = measure(args.side, args.model)
    m = machine_info()
    lines = ["# Decode + crop peak memory per pixel", "",
             f"Command: `python -m benchmarks.decode_memory --side {args.side}`  ",
             f"Machine: {m['cpu']} ({m['arch']}, {m['cores']} cores; {vector_features()}), Python {m['python']}", "",
             "Peak RSS growth while classifying one synthetic image, over the baseline with the model loaded.",
             "The runtime refuses an image when the estimate exceeds `--memory-budget-mb` (default 320).", "",
             "| mode | file | side | measured B/px | estimate B/px |", "|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['file']} | {r['side']} | {r['measured_bytes_per_pixel']} | {r['estimate_bytes_per_pixel']:.0f} |"
              for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"machine": m, "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
