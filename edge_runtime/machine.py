"""What machine a number came from: every report and benchmark names it with this.

Standard library only, so the device can call it too. On x86 the CPU is ``model name``; on a
Raspberry Pi or Jetson, ``/proc/cpuinfo`` names the board (``Model`` / ``Hardware``) instead.
"""

from __future__ import annotations

import os
from pathlib import Path
import platform


def cpu_model(cpuinfo: str) -> str | None:
    """The CPU (x86: ``model name``) or board (Raspberry Pi, Jetson: ``Model``/``Hardware``)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields.get("model name") or fields.get("Model") or fields.get("Hardware")


#: Vector features that decide which int8/float kernels a runtime can use, per architecture, as
#: ``/proc/cpuinfo`` spells them (x86 ``flags``; ARM ``Features``). ``avx512_vnni``/``avx_vnni``: int8
#: dot products accumulate in int32 (without them x86 int8 kernels add pairs in saturating int16);
#: ``amx_*``: tile matrix units. ARM: ``asimd`` = NEON, ``asimddp`` = SDOT/UDOT, ``i8mm`` = SMMLA.
VECTOR_FEATURES: dict[str, tuple[str, ...]] = {
    "x86": ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
            "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"),
    "arm": ("neon", "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2"),
}


def vector_features(cpuinfo: str, arch: str | None = None) -> list[str]:
    """The entries of ``VECTOR_FEATURES`` this CPU has, from ``/proc/cpuinfo`` text.

    x86 lists them under ``flags``, ARM under ``Features`` (32-bit ARM kernels say ``neon``,
    64-bit ones ``asimd``; both mean NEON). The first such line counts (every core is alike on the
    machines this runs on). Empty when the text has neither (not Linux).
    """
    arch = (arch or platform.machine()).lower()
    family = "x86" if arch in ("x86_64", "amd64", "i386", "i686", "x86") else "arm"
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            have = set(value.split())
            return [f for f in VECTOR_FEATURES[family] if f in have]
    return []


def isa_level(features: list[str]) -> str:
    """A short name for the int8-relevant vector level, used to label latency/accuracy by machine type."""
    f = set(features)
    if "amx_int8" in f:
        return "x86-64 AMX"
    if "avx512_vnni" in f:
        return "x86-64 AVX-512 VNNI"
    if "avx_vnni" in f:
        return "x86-64 AVX-VNNI"
    if "avx512f" in f:
        return "x86-64 AVX-512 (no VNNI)"
    if "avx2" in f:
        return "x86-64 AVX2" + ("+FMA" if "fma" in f else "") + " (no VNNI)"
    if "i8mm" in f:
        return "ARM NEON+dotprod+i8mm"
    if "asimddp" in f:
        return "ARM NEON+dotprod"
    if f & {"asimd", "neon"}:
        return "ARM NEON"
    return "unknown"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # not Linux: the platform module's answers stand
        return ""


def machine_info() -> dict:
    """CPU model, its vector features and level, architecture, cores (and how many this process
    may use), RAM, OS, Python."""
    cpuinfo = _read("/proc/cpuinfo")
    cpu = cpu_model(cpuinfo) or platform.processor() or platform.machine()
    features = vector_features(cpuinfo)
    ram_gib = None
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            ram_gib = round(int(line.split()[1]) / 2**20, 1)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "vector_features": features, "isa_level": isa_level(features),
            "arch": platform.machine(), "cores": os.cpu_count(), "cores_usable": usable,
            "ram_gib": ram_gib, "os": platform.platform(), "python": platform.python_version()}


def describe(info: dict | None = None) -> str:
    """One line for Markdown reports:
    ``AMD EPYC (x86_64; x86-64 AVX2+FMA (no VNNI): avx2 fma), 2 cores, 23.5 GiB, Python 3.11.7``.
    (An ``info`` recorded before vector features were, says ``features not recorded``.)"""
    m = info or machine_info()
    ram = f", {m['ram_gib']} GiB" if m.get("ram_gib") else ""
    if "vector_features" in m:
        isa = f"; {m.get('isa_level', '?')}: {' '.join(m['vector_features']) or 'none found'}"
    else:
        isa = "; vector features not recorded"
    return f"{m['cpu']} ({m['arch']}{isa}), {m['cores']} cores{ram}, Python {m['python']}"


def package_versions(names) -> dict[str, str | None]:
    """Installed version of each distribution in ``names``; None for one that is not installed."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
