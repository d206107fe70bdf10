"""The CPU's vector features, for the machine line of a report (numbers depend on them)."""

from __future__ import annotations

from pathlib import Path

_INTERESTING = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8",
                "asimd", "asimddp", "sve", "neon")


def vector_features() -> str:
    """e.g. ``sse4_2 avx avx2 fma`` (``unknown`` when /proc/cpuinfo has no flags line)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags = set(value.split())
            return " ".join(f for f in _INTERESTING if f in flags) or "none of " + ", ".join(_INTERESTING)
    return "unknown"
