"""Image sources: where each dataset lives, which files it labels, and how its classes map to ours.

Why a registry: a second dataset (Nickparvar's 4-class "Brain Tumor MRI Dataset") has another
layout (``Training|Testing/<tumour type>/``) and other class names, and it contains most of
BR35H's normals. Every stage that turns a manifest row into pixels, or a folder into rows, asks
the row's :class:`Source` instead of assuming BR35H, so manifests can mix sources while their
paths stay relative to each source's own root (no machine-specific absolute paths in git).

The model's label space stays binary (``edge_runtime.config.LABELS``): every tumour type maps
to ``yes``, ``notumor`` to ``no``. The original class is kept in manifests (column ``class``) so
results can be broken down by tumour type.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Mapping

from train.paths import SHARED_DEFAULT, DataNotFoundError


@dataclass(frozen=True)
class Source:
    """Attributes:
        name: the value of the manifest's ``source`` column and the folder name under ``../shared/data``.
        env: environment variable that overrides the default root.
        folders: labelled sub-folder (relative, POSIX) -> original class; what :func:`scan` lists.
        class_to_label: original class -> binary label (``yes``/``no``).
        help: where to get the data, appended to the "not found" message.
    """

    name: str
    env: str
    folders: Mapping[str, str]
    class_to_label: Mapping[str, str]
    help: str = ""

    def root(self, explicit: str | Path | None = None, *, must_exist: bool = True) -> Path:
        """``explicit`` > ``$<env>`` > ``../shared/data/<name>``; checks the labelled folders exist."""
        raw = explicit or os.environ.get(self.env) or SHARED_DEFAULT / "data" / self.name
        root = Path(raw).expanduser().resolve()
        if must_exist:
            missing = [f for f in self.folders if not (root / f).is_dir()]
            if missing:
                raise DataNotFoundError(
                    f"source {self.name!r} not found in {root} (missing folder(s) {', '.join(missing)}); "
                    f"pass its folder explicitly or set ${self.env}. {self.help}".rstrip()
                )
        return root

    def class_of(self, path: str) -> str:
        """Original class of a labelled file from its relative path (``Training/glioma/x.jpg`` -> ``glioma``)."""
        folder = path.rsplit("/", 1)[0]
        try:
            return self.folders[folder]
        except KeyError:
            raise ValueError(f"{self.name}: {path!r} is not in a labelled folder ({', '.join(self.folders)})") from None

    def label_of(self, cls: str) -> str:
        try:
            return self.class_to_label[cls]
        except KeyError:
            raise ValueError(f"{self.name}: unknown class {cls!r} (known: {', '.join(self.class_to_label)})") from None

    def part_of(self, path: str) -> str:
        """The dataset's own partition of a file (Nickparvar ``Training``/``Testing``); ``""`` when flat."""
        folder = path.rsplit("/", 1)[0]
        return folder.split("/", 1)[0] if "/" in folder else ""

    def scan_folders(self) -> dict[str, str]:
        """``folder -> label`` in the form :func:`train.data.scan.scan` takes."""
        return {f: self.label_of(c) for f, c in self.folders.items()}


_BR35H_HELP = (
    "It is published on Kaggle as 'Br35H :: Brain Tumor Detection 2020' "
    "(kaggle datasets download -d ahmedhamada0/brain-tumor-detection)."
)
_NICKPARVAR_HELP = (
    "It is Kaggle's 'Brain Tumor MRI Dataset' (masoudnickparvar/brain-tumor-mri-dataset); "
    "see ../shared/README.md for the copy this project uses."
)
_TUMOURS = ("glioma", "meningioma", "pituitary")

BR35H = Source("br35h", "BR35H_DATA", {"yes": "yes", "no": "no"}, {"yes": "yes", "no": "no"}, _BR35H_HELP)
NICKPARVAR = Source(
    "nickparvar",
    "NICKPARVAR_DATA",
    {f"{part}/{c}": c for part in ("Training", "Testing") for c in (*_TUMOURS, "notumor")},
    {**{t: "yes" for t in _TUMOURS}, "notumor": "no"},
    _NICKPARVAR_HELP,
)
SOURCES: dict[str, Source] = {s.name: s for s in (BR35H, NICKPARVAR)}
DEFAULT_SOURCE = BR35H.name


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r} (known: {', '.join(SOURCES)})") from None


RootSpec = str | Path | Mapping[str, str | Path | None] | None


def source_roots(spec: RootSpec = None) -> dict[str, str | Path | None]:
    """Explicit roots per source from what CLIs and callers pass as ``data_root``.

    A plain path is BR35H's root (what ``--data`` always meant); a mapping names roots per
    source. Sources not named resolve through their environment variable or default.
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        for name in spec:
            get_source(name)
        return dict(spec)
    return {BR35H.name: spec}


class RootResolver:
    """Resolves each source's root once, on first use, so a BR35H-only manifest never needs
    Nickparvar on disk and a missing source fails with its own message."""

    def __init__(self, spec: RootSpec = None) -> None:
        self._explicit = source_roots(spec)
        self._roots: dict[str, Path] = {}

    def __call__(self, source: str) -> Path:
        if source not in self._roots:
            self._roots[source] = get_source(source).root(self._explicit.get(source))
        return self._roots[source]
