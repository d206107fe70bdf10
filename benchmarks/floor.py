"""The physical bound: how fast this CPU's vector units could run the model if nothing else
(memory, im2col, requantisation, threading) cost anything.

floor = multiply-accumulates in the graph / peak MACs per second of the vector units.

- MACs are counted from the ``.tflite`` itself (CONV_2D: output elements x kh x kw x cin;
  DEPTHWISE_CONV_2D: output elements x kh x kw; FULLY_CONNECTED: batch x out x in), so the
  paper head is included and a different architecture is counted right.
- Peak per core is **measured** where possible (``peak.c``: VPDPBUSD / VFMADD231PS throughput,
  needs a C compiler and AVX-512 VNNI), because a KVM guest's ``cpu MHz`` is the nominal TSC
  rate, not the boost clock the core actually runs at. Otherwise it is **nominal**: MACs per
  cycle per core from the table below x the reported clock, labelled as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import shutil
import subprocess
import tempfile

import numpy as np

PEAK_SOURCE = Path(__file__).with_name("peak.c")

#: (required cpu flags, vendor substring, int8 MACs/cycle/core, fp32 FMAs/cycle/core, why).
NOMINAL = (
    (("avx512_vnni",), "AMD", 64, 16, "Zen 4: 512-bit ops on 2x256-bit pipes, 1 VPDPBUSD zmm (64 MACs) or 1 FMA zmm per cycle"),
    (("avx512_vnni",), "Intel", 128, 32, "Xeon with 2 AVX-512 FMA ports: 2 VPDPBUSD zmm per cycle"),
    (("avx2",), "", 32, 16, "AVX2 without VNNI: VPMADDUBSW + VPMADDWD, ~32 effective int8 MACs; 2 FMA ymm"),
    (("asimddp",), "", 32, 8, "Armv8.2 dot product (e.g. Cortex-A76, Pi 5): 2 SDOT q-reg (16 MACs) per cycle; 2 FMA q-reg"),
    (("asimd",), "", 16, 8, "Armv8 NEON without dot product (e.g. Cortex-A72, Pi 4): SMLAL 8 lanes x 2 per cycle"),
)


@dataclass(frozen=True)
class Peak:
    """Per-core vector peak in GMAC/s and where the number comes from."""

    int8_gmacs: float
    fp32_gmacs: float
    source: str


def count_macs(model: Path) -> dict:
    """MACs per inference by op type, from the graph's tensor shapes (batch 1)."""
    from edge_runtime.interpreter import find_backend

    it = find_backend().interpreter_cls(model_path=str(model))
    it.allocate_tensors()
    shapes = {t["index"]: tuple(int(s) for s in t["shape"]) for t in it.get_tensor_details()}
    macs = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 0, "FULLY_CONNECTED": 0}
    for op in it._get_ops_details():  # noqa: SLF001 - the only shape-level graph view an interpreter offers
        name = op["op_name"]
        if name not in macs:
            continue
        out, w = shapes[int(op["outputs"][0])], shapes[int(op["inputs"][1])]
        if name == "CONV_2D":  # w: (cout, kh, kw, cin)
            macs[name] += int(np.prod(out)) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # w: (1, kh, kw, cout)
            macs[name] += int(np.prod(out)) * w[1] * w[2]
        else:  # w: (out, in)
            macs[name] += int(np.prod(out)) * w[1]
    return {**macs, "total": sum(macs.values())}


def cpu_info() -> dict:
    """Vendor, flags and clock (MHz) from Linux; empty values elsewhere."""
    info = {"vendor": "", "flags": [], "mhz": None}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = (s.strip() for s in line.partition(":"))
        if key == "vendor_id" and not info["vendor"]:
            info["vendor"] = "AMD" if "AMD" in value else "Intel" if "Intel" in value else value
        elif key in ("flags", "Features") and not info["flags"]:
            info["flags"] = value.split()
        elif key == "cpu MHz" and info["mhz"] is None:
            info["mhz"] = float(value)
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_freq.is_file():
        info["mhz"] = int(max_freq.read_text()) / 1000
    return info


def nominal_peak(info: dict) -> Peak | None:
    """Table entry for these flags x the reported clock; None when unknown."""
    if not info["mhz"]:
        return None
    for flags, vendor, int8, fp32, why in NOMINAL:
        if all(f in info["flags"] for f in flags) and vendor in info["vendor"]:
            ghz = info["mhz"] / 1000
            return Peak(int8 * ghz, fp32 * ghz, f"nominal: {int8} int8 MACs + {fp32} fp32 FMAs per cycle "
                                                 f"({why}) x {ghz:.3f} GHz reported clock")
    return None


#: peak.c mode per instruction set: (required flag, argument, what it runs).
PEAK_MODES = (("avx512_vnni", "vnni", "VPDPBUSD zmm / VFMADD231PS zmm"),
              ("avx2", "avx2", "VPMADDWD ymm (int8 widened to 16 bits, XNNPACK's exact AVX2 path) / VFMADD231PS ymm"))


def measured_peak(info: dict) -> Peak | None:
    """Compile and run :data:`PEAK_SOURCE` in the mode of this CPU's best instruction set; None
    without a compiler or on a CPU with neither AVX-512 VNNI nor AVX2."""
    cc = shutil.which("cc") or shutil.which("gcc")
    mode = next(((arg, what) for flag, arg, what in PEAK_MODES if flag in info["flags"]), None)
    if cc is None or mode is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "peak"
        subprocess.run([cc, "-O2", str(PEAK_SOURCE), "-o", str(exe)], check=True, capture_output=True)
        out = json.loads(subprocess.run([str(exe), mode[0]], check=True, capture_output=True, text=True).stdout)
    return Peak(out["int8_gmacs"], out["fp32_gmacs"],
                f"measured: benchmarks/peak.c {mode[0]}, best of 20 passes of 12 independent {mode[1]} chains, 1 core")


def floor(model: Path, measure: bool = True) -> dict:
    """MACs of ``model`` and the floor in ms per image at 1 core and at all cores."""
    info = cpu_info()
    macs = count_macs(model)
    peaks = {k: p for k, p in (("measured", measured_peak(info) if measure else None), ("nominal", nominal_peak(info)))
             if p is not None}
    cores = os.cpu_count() or 1
    from edge_runtime.machine import isa_level, vector_features

    features = vector_features("flags: " + " ".join(info["flags"]))
    result = {"model": str(model), "macs": macs, "cores": cores, "cpu_mhz_reported": info["mhz"],
              "vector_features": features, "isa_level": isa_level(features), "peaks": {}}
    for kind, p in peaks.items():
        result["peaks"][kind] = {
            **asdict(p),
            "int8_floor_ms_1core": macs["total"] / (p.int8_gmacs * 1e9) * 1e3,
            "int8_floor_ms_all_cores": macs["total"] / (p.int8_gmacs * 1e9 * cores) * 1e3,
            "fp32_floor_ms_1core": macs["total"] / (p.fp32_gmacs * 1e9) * 1e3,
        }
    return result
