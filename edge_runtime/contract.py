"""The model's contract, read from the model file itself: labels, crop parameters, decision
thresholds and operating points, the domain-check threshold, the folded-in temperature, and the
sha256 of the graph it belongs to.

Why in the file: two shipped models with different crops or thresholds can then never be mixed
up by a deployment that pairs a model with the wrong settings, and nothing in the runtime is
hard-coded for one model.

Where: ``contract.json`` is an associated file in the zip appended to the ``.tflite`` (the
same zip TFLite metadata uses for ``labels.txt``, which MediaPipe reads; a flatbuffer ignores
trailing bytes), so it is read with :mod:`zipfile` alone. It records the length and sha256 of
the flatbuffer bytes before the zip; a model whose graph does not hash to that value was
corrupted or swapped and is refused (:class:`ContractError`). The ONNX export carries the same
JSON in its ``metadata_props`` under :data:`ONNX_KEY` (read there by ``convert``, not here: the
device runtime runs TFLite only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import io
import json
from pathlib import Path
import zipfile

from .config import CropConfig
from .interpreter import ModelError

CONTRACT_FILE = "contract.json"
ONNX_KEY = "br35h_edge_contract"
SCHEMA = "br35h-edge/contract/1"
#: Operating points every contract carries (thresholds on the tumour probability).
OPERATING_POINTS = ("default", "sensitivity", "specificity")


class ContractError(ModelError):
    """The model carries a contract that is unreadable or does not match its graph."""


@dataclass(frozen=True)
class Contract:
    """What a model promises and needs; see ``convert.contract`` for how each field is chosen.

    ``operating_points`` maps a name to a threshold on P(tumour): ``default`` (0.5 unless the
    converter was told otherwise), ``sensitivity`` (>= 99 % sensitivity on validation),
    ``specificity`` (>= 99 % specificity on validation). ``domain_threshold`` is the lowest
    ``domain_score`` still accepted (chosen to accept 99 % of in-domain validation crops);
    None when the model has no domain output. ``view_gate``: the model negates the domain score
    of a slice in a view its validation did not cover (``domain.view_gate``, whose
    ``refused_when`` must say ``domain_score < 0``); False for a model without a view gate.
    """

    labels: tuple[str, ...]
    crop: CropConfig
    operating_points: dict[str, float]
    domain_threshold: float | None
    temperature: float
    graph_sha256: str
    graph_bytes: int
    raw: dict = field(compare=False, repr=False)
    view_gate: bool = False

    def threshold(self, operating_point: str = "default") -> float:
        if operating_point not in self.operating_points:
            raise ValueError(f"unknown operating point {operating_point!r}; "
                             f"this model has {sorted(self.operating_points)}")
        return self.operating_points[operating_point]

    @classmethod
    def from_dict(cls, d: dict, where: str = "contract") -> "Contract":
        try:
            if d.get("schema") != SCHEMA:
                raise ValueError(f"schema {d.get('schema')!r}, expected {SCHEMA!r}")
            points = {str(k): float(v["threshold"]) for k, v in d["operating_points"].items()}
            missing = [p for p in OPERATING_POINTS if p not in points]
            if missing:
                raise ValueError(f"operating points {missing} missing")
            dom = d.get("domain")
            gate = None if dom is None else dom.get("view_gate")
            return cls(labels=tuple(d["labels"]), crop=CropConfig(**d["crop"]), operating_points=points,
                       domain_threshold=None if dom is None else float(dom["threshold"]),
                       temperature=float(d["temperature"]), graph_sha256=str(d["graph"]["sha256"]),
                       graph_bytes=int(d["graph"]["bytes"]), raw=d,
                       view_gate=_view_gate(gate))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContractError(where, f"unreadable {CONTRACT_FILE}: {exc!r}") from exc


def _view_gate(gate: dict | None) -> bool:
    """A view gate this runtime can read: one whose refusals are the negative scores."""
    if gate is None:
        return False
    if gate["refused_when"] != "domain_score < 0":
        raise ValueError(f"view_gate.refused_when {gate['refused_when']!r}, expected 'domain_score < 0'")
    return True


def graph_part(data: bytes) -> bytes:
    """The ``.tflite`` bytes before any appended zip (the whole file when there is none)."""
    return data[:_zip_start(data)]


def _zip_start(data: bytes) -> int:
    """Offset of the appended zip: end-of-central-directory says where the central directory is
    relative to the archive, the real position gives the prefix (what :mod:`zipfile` does)."""
    eocd = data.rfind(b"PK\x05\x06")
    if eocd < 0:
        return len(data)
    cd_size = int.from_bytes(data[eocd + 12:eocd + 16], "little")
    cd_offset = int.from_bytes(data[eocd + 16:eocd + 20], "little")
    start = eocd - cd_size - cd_offset
    return start if 0 <= start <= eocd else len(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_tflite_contract(data: bytes, where: str | Path = "model") -> Contract | None:
    """The verified contract of a ``.tflite``'s bytes; None when it carries none.

    Raises :class:`ContractError` when the contract is unreadable or the graph's length or sha256
    differ from what it records (a corrupted, truncated or swapped model).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if CONTRACT_FILE not in z.namelist():
                return None
            text = z.read(CONTRACT_FILE)
    except zipfile.BadZipFile:
        return None
    except (zipfile.LargeZipFile, OSError, RuntimeError) as exc:  # CRC errors are RuntimeError/BadZipFile
        raise ContractError(where, f"unreadable metadata zip: {exc}") from exc
    try:
        contract = Contract.from_dict(json.loads(text), str(where))
    except json.JSONDecodeError as exc:
        raise ContractError(where, f"{CONTRACT_FILE} is not JSON: {exc}") from exc
    graph = graph_part(data)
    if len(graph) != contract.graph_bytes:
        raise ContractError(where, f"graph is {len(graph)} bytes, the contract expects {contract.graph_bytes}: "
                                   "the model file was altered; refusing to run it")
    got = sha256(graph)
    if got != contract.graph_sha256:
        raise ContractError(where, f"graph sha256 {got[:16]}... differs from the contract's "
                                   f"{contract.graph_sha256[:16]}...: the model file was altered; refusing to run it")
    return contract


def load_contract(path: str | Path) -> Contract | None:
    """:func:`read_tflite_contract` of a file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(path, f"cannot read model: {exc}") from exc
    return read_tflite_contract(data, path)
