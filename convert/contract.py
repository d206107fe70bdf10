"""Writing the model contract (``edge_runtime.contract`` reads it): into the ``.tflite`` as the
associated file ``contract.json`` and into the ONNX ``metadata_props``.

The thresholds are chosen per artifact on the **validation** split, from that artifact's own
outputs (an int8 model's domain scores and probabilities differ slightly from the float ones);
the temperature is the one folded into every artifact's graph.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from convert import metadata
from convert.config import BundleInfo
from convert.domain import accept_threshold
from convert.temperature import operating_points
from edge_runtime.config import CropConfig
from edge_runtime.contract import CONTRACT_FILE, ONNX_KEY, SCHEMA


def build(labels: Sequence[str], crop: CropConfig, info: BundleInfo, temperature: float,
          val_probs: np.ndarray | None, val_y: np.ndarray | None, val_domain: np.ndarray | None,
          accept: float, extra: dict | None = None, val_sources: Sequence[str] | None = None,
          view_gate: dict | None = None) -> dict:
    """The contract dict, without the ``graph`` entry (added when it is embedded).

    With ``val_sources`` the domain threshold accepts ``accept`` of *each* source's val crops
    (the lowest per-source threshold): one pooled quantile lets the larger source set the bar
    and refuses more of the smaller one's scans (measured: 4.3 % of BR35H test crops refused
    by a pooled threshold on BR35H + Nickparvar val). ``view_gate`` (views, which are supported,
    the val table) is recorded so an app can say why a score is negative."""
    if val_probs is not None and len(val_probs):
        points = operating_points(val_probs[:, 1], val_y, default=info.threshold)
    else:
        points = {"default": {"threshold": float(info.threshold), "val_sensitivity": None, "val_specificity": None}}
    domain = None
    if val_domain is not None:
        scores = np.asarray(val_domain).reshape(-1)
        # A negative score is the view gate's refusal (convert.views): refused by design, so the
        # threshold is chosen on the other crops (a Mahalanobis score c / (c + d) is > 0).
        gated = scores < 0
        if gated.all():
            raise ValueError("every val crop has a negative domain score (view gate): no threshold can be chosen")
        groups = {"all": ~gated}
        if val_sources is not None and len(set(val_sources)) > 1:
            src = np.asarray(val_sources)
            groups.update({str(s): (src == s) & ~gated for s in sorted(set(src.tolist())) if ((src == s) & ~gated).any()})
        per = {g: accept_threshold(scores[m], accept) for g, m in groups.items()}
        t = min(per.values())
        domain = {"threshold": t, "accept_target": accept, "val_n": int(len(scores)),
                  "val_accepted": float((scores >= t).mean()),
                  "val_accepted_per_source": {g: float((scores[m] >= t).mean()) for g, m in groups.items()},
                  "val_refused_by_view": float(gated.mean()),
                  "output": "domain_score", "higher_is_in_domain": True}
        if view_gate is not None:
            domain["view_gate"] = view_gate
    return {
        "schema": SCHEMA, "name": info.name, "version": info.version,
        "labels": list(labels), "positive_label": labels[-1],
        "crop": crop.to_dict(), "crop_fingerprint": crop.fingerprint(),
        "temperature": float(temperature),
        "operating_points": points,
        "domain": domain,
        "outputs": {"probability": 0, "domain_score": 1 if domain is not None else None},
        **(extra or {}),
    }


def embed_tflite(tflite: bytes, contract: dict, meta: bytes, files: dict[str, bytes]) -> bytes:
    """``tflite`` re-packed with ``meta`` and ``files`` plus ``contract.json``, whose ``graph``
    entry is the length and sha256 of the re-packed flatbuffer (everything before the zip)."""
    graph = metadata.pack_graph(tflite, meta)
    full = {**contract, "graph": {"sha256": hashlib.sha256(graph).hexdigest(), "bytes": len(graph)}}
    return graph + metadata.zip_files({**files, CONTRACT_FILE: (json.dumps(full, indent=2) + "\n").encode()})


def embed_onnx(path: str | Path, contract: dict) -> dict:
    """Store the contract in the ONNX file's ``metadata_props``; ``graph.sha256`` is the sha256 of
    the serialized graph (``model.graph.SerializeToString()``), which the props do not affect."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    full = {**contract, "graph": {"sha256": hashlib.sha256(model.graph.SerializeToString()).hexdigest(),
                                  "bytes": model.graph.ByteSize()}}
    props = [p for p in model.metadata_props if p.key != ONNX_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    model.metadata_props.add(key=ONNX_KEY, value=json.dumps(full))
    onnx.save(model, str(path))
    return full


def read_onnx(path: str | Path) -> dict | None:
    """The ONNX contract after checking its graph hash; None when absent; ValueError when altered."""
    import onnx

    model = onnx.load(str(path))
    text = next((p.value for p in model.metadata_props if p.key == ONNX_KEY), None)
    if text is None:
        return None
    d = json.loads(text)
    got = hashlib.sha256(model.graph.SerializeToString()).hexdigest()
    if got != d["graph"]["sha256"]:
        raise ValueError(f"{path}: graph sha256 {got[:16]}... differs from its contract's; refusing it")
    return d
