"""Where ``predict -o`` writes: checked before the model loads, locked, replaced atomically.

An output file is the product of a whole run, so it is handled as a unit:

- checked before anything runs: its folder must exist and be writable, it must not be a folder,
  not look like an image, and not be one of the inputs (``-o scan.jpg`` once overwrote a scan);
- written to a temporary file next to it, fsynced, and renamed over the target only when the
  run has finished, so a failed or interrupted rerun leaves the previous results intact (an
  interrupted run's partial results are kept beside it as ``NAME.partial``);
- guarded by an exclusive lock (``.NAME.lock`` next to it, ``flock``): a second concurrent run
  writing to the same output is refused instead of interleaving lines with the first.
"""

from __future__ import annotations

import os
from pathlib import Path
import tempfile
from typing import IO, Iterable

from .walk import is_image_name

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows; the runtime targets Linux devices
    fcntl = None


class OutputError(ValueError):
    """The output cannot be used; nothing was run (exit status 2)."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(output: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output that cannot be written or that would overwrite an input."""
    parent = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise OutputError(f"output {output} is a folder, not a file")
    if output.exists() and not output.is_file():  # a device or pipe would be replaced by a file
        raise OutputError(f"output {output} is not a regular file (omit -o to write to stdout)")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {parent} is not writable")
    if output.exists() and not os.access(output, os.W_OK):
        raise OutputError(f"output {output} is not writable")
    if is_image_name(output):
        raise OutputError(f"output {output} has an image extension; refusing to write results over an image")
    real = Path(os.path.realpath(output))
    for p in inputs:
        if Path(os.path.realpath(p)) == real or _same_file(p, output):
            raise OutputError(f"output {output} is also an input; refusing to overwrite it")


class OutputLock:
    """Exclusive, non-blocking ``flock`` on ``.NAME.lock`` beside ``target``; released on close
    (and by the kernel if the process dies, so a crash never leaves a stale lock)."""

    def __init__(self, target: Path) -> None:
        self.path = target.parent / f".{target.name}.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._fd)
                raise OutputError(f"{target} is being written by another br35h-edge process (lock {self.path})") from None

    def close(self) -> None:
        os.close(self._fd)  # closing the descriptor releases the flock


class AtomicOutput:
    """A text stream whose content replaces ``target`` only on success (``commit``).

    ``abort`` keeps what was written as ``NAME.partial`` (never over ``target``) and says where.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.lock = OutputLock(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
        self.tmp = Path(tmp)
        self.stream: IO[str] = os.fdopen(fd, "w", newline="", encoding="utf-8")

    def commit(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        if self.target.exists():
            os.chmod(self.tmp, self.target.stat().st_mode & 0o777)
        else:
            os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.target)
        self._sync_dir()
        self.lock.close()

    def abort(self) -> Path | None:
        """Keep partial results beside the target (``NAME.partial``); ``None`` if there were none."""
        self.stream.close()
        self.lock.close()
        if self.tmp.stat().st_size == 0:
            self.tmp.unlink()
            return None
        partial = self.target.with_name(self.target.name + ".partial")
        os.replace(self.tmp, partial)
        return partial

    def _sync_dir(self) -> None:
        try:
            fd = os.open(self.target.parent or ".", os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some filesystems cannot fsync a folder; the rename itself is still atomic
        finally:
            os.close(fd)
