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


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # not Linux: the platform module's answers stand
        return ""


def machine_info() -> dict:
    """CPU model, architecture, cores (and how many this process may use), RAM, OS, Python."""
    cpu = cpu_model(_read("/proc/cpuinfo")) or platform.processor() or platform.machine()
    ram_gib = None
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            ram_gib = round(int(line.split()[1]) / 2**20, 1)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "arch": platform.machine(), "cores": os.cpu_count(), "cores_usable": usable,
            "ram_gib": ram_gib, "os": platform.platform(), "python": platform.python_version()}


def describe(info: dict | None = None) -> str:
    """One line for Markdown reports: ``AMD EPYC (x86_64), 2 cores, 23.5 GiB, Python 3.11.7``."""
    m = info or machine_info()
    ram = f", {m['ram_gib']} GiB" if m.get("ram_gib") else ""
    return f"{m['cpu']} ({m['arch']}), {m['cores']} cores{ram}, Python {m['python']}"


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
