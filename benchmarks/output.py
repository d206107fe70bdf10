"""Where a benchmark's result goes: ``OUT.json`` (everything) and ``OUT.md`` (the table people read).

One writer so every benchmark records the load average at its end the same way: on a shared
machine the load beside a number says how far to trust it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable


def write_report(rep: dict, out: Path, markdown: Callable[[dict], str]) -> str:
    """Add ``loadavg_end``, write ``out.json`` and ``out.md``; returns the Markdown."""
    rep["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
    text = markdown(rep)
    out.with_suffix(".md").write_text(text)
    return text
