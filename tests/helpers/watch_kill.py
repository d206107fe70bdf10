"""Run ``br35h-edge watch --once`` and SIGKILL it at a chosen ledger write (fault injection).

    python -m tests.helpers.watch_kill FOLDER LOG MODEL KILL_AT MODE     # from the repository root

``KILL_AT``: the 1-based ``os.write`` on the log at which the process dies (0 = never);
``MODE``: ``before`` (nothing of that record written), ``torn`` (half of its bytes written),
``after`` (written, killed before fsync). The test chooses these from a seeded generator, so
every run kills at the same points.
"""

from __future__ import annotations

import os
import signal
import sys

from edge_runtime import ledger
from edge_runtime.cli import main


def _install(kill_at: int, mode: str) -> None:
    real_write = os.write
    count = 0

    def write(fd: int, data: bytes) -> int:
        nonlocal count
        count += 1
        if count != kill_at:
            return real_write(fd, data)
        if mode == "torn":
            real_write(fd, data[: max(1, len(data) // 2)])
        elif mode == "after":
            real_write(fd, data)
        os.kill(os.getpid(), signal.SIGKILL)
        return 0  # not reached

    ledger.os.write = write  # only the ledger's writes; the module's ``os`` is the real one otherwise


if __name__ == "__main__":
    folder, log, model, kill_at, mode = sys.argv[1:6]
    if int(kill_at):
        ledger.os = type(os)("os_proxy")
        ledger.os.__dict__.update(os.__dict__)
        _install(int(kill_at), mode)
    sys.exit(main(["watch", folder, "-o", log, "--once", "--model", model, "--threads", "1"]))
