"""Labels from folder names, so a user can check a model on their own scans without a manifest.

Public MRI collections come in two layouts: binary (``yes/``, ``no/``: BR35H) and by tumour
type (``glioma/``, ``meningioma/``, ``pituitary/``, ``notumor/``: Nickparvar, SARTAJ, figshare).
The model answers tumour yes/no, so a tumour-type folder means ``yes``; the folder name is kept
as the image's *original class* so a report can say which tumour types the model misses.

Rules, applied to the folders between the root and the file (and the root's own name, so
``evaluate data/no`` works too), case-insensitively:

* a component in :data:`YES_NAMES` means ``yes``, one in :data:`NO_NAMES` means ``no``;
* the component nearest to the file is the original class (``Training/glioma/x.jpg`` -> glioma);
* components that disagree (``yes/normal/x.jpg``) are an error naming the file: guessing would
  put a wrong label into a sensitivity figure;
* a file with no labelling component (``pred/x.jpg``) is an error too, unless the caller asks to
  skip such files: then they are skipped and *counted*, and every report states the count.

Only image files are considered (:func:`~.inputs.images_in`); ``SHA256SUMS`` or notes are not data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .inputs import images_in

YES_NAMES = frozenset({"yes", "tumor", "tumour", "glioma", "meningioma", "pituitary"})
NO_NAMES = frozenset({"no", "notumor", "no_tumor", "normal"})


class LabelError(ValueError):
    """A file's label cannot be derived from its folders; the message names the file(s) and why."""


@dataclass(frozen=True)
class LabelledPath:
    """``label`` is ``yes``/``no``; ``original_class`` the (lower-cased) folder it came from."""

    path: Path
    label: str
    original_class: str


@dataclass(frozen=True)
class LabelledTree:
    """The labelled images of a folder tree, and the files skipped for want of a label."""

    root: Path
    items: tuple[LabelledPath, ...]
    unlabelled: tuple[Path, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        """Images per original class, in sorted order."""
        out: dict[str, int] = {}
        for it in self.items:
            out[it.original_class] = out.get(it.original_class, 0) + 1
        return dict(sorted(out.items()))


def label_of_name(name: str) -> str | None:
    """``yes``/``no`` for a labelling folder name, None for any other name."""
    n = name.lower()
    return "yes" if n in YES_NAMES else "no" if n in NO_NAMES else None


def label_from_parts(parts: Sequence[str], where: str) -> tuple[str, str] | None:
    """``(label, original_class)`` from folder names (outermost first); None when none labels.

    ``where`` names the file in the error raised when the components disagree.
    """
    found = [(p.lower(), label_of_name(p)) for p in parts if label_of_name(p) is not None]
    if not found:
        return None
    labels = {lab for _, lab in found}
    if len(labels) > 1:
        names = ", ".join(f"{name!r} -> {lab}" for name, lab in found)
        raise LabelError(f"{where}: its folders give conflicting labels ({names})")
    return found[-1][1], found[-1][0]


def label_tree(root: str | Path, skip_unlabelled: bool = False) -> LabelledTree:
    """Every image under ``root`` with its label; see the module docstring for the rules.

    Raises :class:`LabelError` listing the files without a label (unless ``skip_unlabelled``)
    and for any file whose folders conflict; ``NotADirectoryError`` when ``root`` is no folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    items, unlabelled = [], []
    for path in images_in(root):
        parts = (root.resolve().name, *path.relative_to(root).parts[:-1])
        got = label_from_parts(parts, str(path))
        if got is None:
            unlabelled.append(path)
        else:
            items.append(LabelledPath(path, got[0], got[1]))
    if unlabelled and not skip_unlabelled:
        shown = "\n".join(f"  {p}" for p in unlabelled[:10])
        more = f"\n  ... and {len(unlabelled) - 10} more" if len(unlabelled) > 10 else ""
        raise LabelError(
            f"{len(unlabelled)} image(s) under {root} are in no labelling folder "
            f"(yes: {', '.join(sorted(YES_NAMES))}; no: {', '.join(sorted(NO_NAMES))}); "
            f"move them or skip them explicitly:\n{shown}{more}")
    if not items:
        raise LabelError(f"{root}: no labelled image found (need folders named like yes/no or glioma/notumor)")
    return LabelledTree(root, tuple(items), tuple(unlabelled))
