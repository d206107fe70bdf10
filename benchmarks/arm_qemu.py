"""The shipped artifacts' outputs on ARM code paths without a Pi: aarch64 Python under qemu-user.

Runs the same test crops through the released TFLite files (LiteRT, XNNPACK) and the ONNX files
(onnxruntime; the int8 ONNX is quantized here with the release recipe) natively on this x86 CPU
and in an emulated aarch64 process, once per emulated core, and compares the outputs. This checks
the ARM kernels' arithmetic (NEON, dot product), not their speed (emulation is ~100x slower).

LiteRT and onnxruntime read ``/proc/cpuinfo`` to pick kernels; under qemu-user it is the host's
x86 file and both crash, so each run bind-mounts a matching ARM ``/proc/cpuinfo`` in a private
mount namespace (``unshare --mount``, needs root). Setup (Debian 12, once; see reports/edge/arm_qemu.md):

    apt-get install qemu-user-static && dpkg --add-architecture arm64 && apt-get update
    apt-get download python3.11-minimal:arm64 libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64 \\
        libc6:arm64 libexpat1:arm64 zlib1g:arm64 libffi8:arm64 libssl3:arm64 libbz2-1.0:arm64 \\
        liblzma5:arm64 libgcc-s1:arm64 libstdc++6:arm64 libsqlite3-0:arm64 libuuid1:arm64 \\
        libncursesw6:arm64 libtinfo6:arm64 libcrypt1:arm64 libzstd1:arm64
    for d in *.deb; do dpkg-deb -x $d ROOT; done
    pip install --target SITE --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 \\
        --only-binary=:all: --python-version 3.11 "numpy>=2,<2.5" pillow ai-edge-litert==2.3.0 onnxruntime==1.32.0
    python -m benchmarks.arm_qemu --root ROOT --site SITE --n 12 --out reports/edge/arm_qemu
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shlex
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from edge_runtime.machine import describe, machine_info

REPO = Path(__file__).resolve().parent.parent

#: Emulated cores: qemu CPU model and the /proc/cpuinfo lines a real one shows (Features, part).
CORES = {
    "cortex-a72 (Raspberry Pi 4: NEON, no dot product)": ("cortex-a72", "fp asimd evtstrm crc32 cpuid", "0xd08", "0x0", "3"),
    "cortex-a76 (Raspberry Pi 5: NEON + dot product)": (
        "cortex-a76", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        "0xd0b", "0x4", "1"),
}

WORKER = """
import json, sys, numpy as np
crops = np.load(sys.argv[1]); out = {}
for spec in json.loads(sys.argv[3]):
    name, path = spec["name"], spec["path"]
    if path.endswith(".tflite"):
        from edge_runtime.interpreter import TFLiteModel
        m = TFLiteModel(path, num_threads=1)
        out[name] = np.stack([m.scores(c) for c in crops])
    else:
        import onnxruntime as ort
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        out[name] = np.concatenate([s.run(None, {s.get_inputs()[0].name: c[None].astype(np.float32)})[0] for c in crops])
np.savez(sys.argv[2], **out)
"""


def cpuinfo_text(features: str, part: str, variant: str, revision: str, cores: int = 2) -> str:
    block = (f"processor\t: {{i}}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
             f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n")
    return "".join(block.replace("{i}", str(i)) for i in range(cores))


def run_arm(root: Path, site: Path, core: tuple, crops: Path, specs: list[dict], tmp: Path) -> dict:
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if qemu is None:
        raise RuntimeError("qemu-aarch64(-static) not found: apt-get install qemu-user-static")
    cpu, features, part, variant, revision = core
    info = tmp / f"cpuinfo-{cpu}"
    info.write_text(cpuinfo_text(features, part, variant, revision))
    worker, out = tmp / "worker.py", tmp / f"out-{cpu}.npz"
    worker.write_text(WORKER)
    inner = (f"mount --bind {shlex.quote(str(info))} /proc/cpuinfo && "
             f"QEMU_CPU={cpu} PYTHONPATH={shlex.quote(f'{site}:{REPO}')} {qemu} -L {shlex.quote(str(root))} "
             f"{shlex.quote(str(root / 'usr/bin/python3.11'))} {worker} {crops} {out} {shlex.quote(json.dumps(specs))}")
    proc = subprocess.run(["unshare", "--mount", "bash", "-c", inner], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"aarch64 run on {cpu} failed: {proc.stderr.strip()[-800:]}")
    z = np.load(out)
    return {k: z[k] for k in z.files}


def run_x86(crops: np.ndarray, specs: list[dict]) -> dict:
    from edge_runtime.interpreter import TFLiteModel

    out = {}
    for spec in specs:
        if spec["path"].endswith(".tflite"):
            m = TFLiteModel(spec["path"], num_threads=1)
            out[spec["name"]] = np.stack([m.scores(c) for c in crops])
        else:
            from convert.onnx_export import predict, session

            out[spec["name"]] = predict(session(spec["path"], "native", 1), crops.astype(np.float32), batch_size=1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.arm_qemu", description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="extracted arm64 Debian packages (python3.11 + libs)")
    ap.add_argument("--site", type=Path, required=True, help="pip --target folder with the aarch64 wheels")
    ap.add_argument("--manifest", type=Path, default=Path("splits/br35h-paper.csv"))
    ap.add_argument("--n", type=int, default=12, help="test crops, evenly spaced")
    ap.add_argument("--out", type=Path, default=Path("reports/edge/arm_qemu"))
    args = ap.parse_args(argv)
    from convert import calibration, onnx_export
    from convert.config import QuantizationConfig
    from train.data.cache import load_crops
    from train.data.manifest import read_manifest

    test = load_crops(args.manifest, split="test")
    step = max(1, len(test.x) // args.n)
    crops = np.ascontiguousarray(test.x[::step][: args.n]).astype(np.uint8)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        train = load_crops(args.manifest, split="train")
        chosen = calibration.select_calibration(read_manifest(args.manifest), QuantizationConfig())
        calib = calibration.pick_arrays(train.x, train.paths, chosen).astype(np.float32)
        int8_onnx = onnx_export.quantize_onnx_int8(REPO / "models/br35h-mobilenetv2.onnx", tmp / "model_int8.onnx", calib)
        specs = [{"name": "int8 TFLite (LiteRT)", "path": str(REPO / "models/br35h-mobilenetv2-int8.tflite")},
                 {"name": "fp16 TFLite (LiteRT)", "path": str(REPO / "models/br35h-mobilenetv2-fp16.tflite")},
                 {"name": "ONNX fp32 (onnxruntime)", "path": str(REPO / "models/br35h-mobilenetv2.onnx")},
                 {"name": "ONNX int8 u8u8, release recipe (onnxruntime)", "path": str(int8_onnx)}]
        np.save(tmp / "crops.npy", crops)
        x86 = run_x86(crops, specs)
        results = {}
        for label, core in CORES.items():
            arm = run_arm(args.root.resolve(), args.site.resolve(), core, tmp / "crops.npy", specs, tmp)
            results[label] = {s["name"]: {"max_score_diff_vs_x86": float(np.abs(arm[s["name"]] - x86[s["name"]]).max()),
                                          "class_changes_vs_x86": int((arm[s["name"]].argmax(1) != x86[s["name"]].argmax(1)).sum())}
                              for s in specs}
            print(label, json.dumps(results[label]))
    rep = {"command": "python -m benchmarks.arm_qemu " + shlex.join(sys.argv[1:] if argv is None else argv),
           "host": machine_info(), "n": len(crops), "step": step, "manifest": str(args.manifest),
           "qemu": subprocess.run([shutil.which("qemu-aarch64-static") or "qemu-aarch64", "--version"],
                                  capture_output=True, text=True).stdout.splitlines()[0],
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
    lines = ["# Shipped artifacts on ARM code paths (aarch64 under qemu-user) vs this x86 host", "",
             f"Host: {describe(rep['host'])}; {rep['qemu']}.  ", f"Command: `{rep['command']}`  ",
             f"{rep['n']} test crops of `{rep['manifest']}` (every {rep['step']}th), 1 thread, each artifact in its own "
             "runtime on both sides (LiteRT 2.3.0 with XNNPACK, onnxruntime 1.32.0). Checks arithmetic, not speed.", "",
             "| emulated core | artifact | max score diff vs x86 | class changes |", "|---|---|---:|---:|"]
    for label, rows in results.items():
        lines += [f"| {label} | {name} | {r['max_score_diff_vs_x86']:.4f} | {r['class_changes_vs_x86']} |"
                  for name, r in rows.items()]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
