"""The runtime's API: ``Classifier(model).classify(path)`` -> :class:`Prediction`.

One object holds the interpreter (threads fixed at construction) and the crop parameters;
each call decodes, crops in numpy, runs the model and times every stage, so latency numbers
from a device always say where the time went.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
import time
import warnings

import numpy as np

from .config import LABELS, TUMOUR_INDEX, CropBox, CropConfig
from .contract import Contract, load_contract
from .crop import crop_image
from .default_model import default_model
from .image_io import DecodeConfig, load_image
from .interpreter import DEFAULT_THREADS, Backend, ModelError, TFLiteModel
from .selftest import check_scores, self_test
from .unknown import DomainRule, verdict

#: The label of an answer the model must not give: the input is not like its training data.
UNKNOWN = "unknown"


class NonFiniteScoreError(ArithmeticError):
    """The model gave no valid probabilities for one image: that image gets an error, never
    a label (``argmax`` of NaN is 0, which would read as "no tumour")."""


class NoContractWarning(UserWarning):
    """The model carries no contract: it runs, but without a domain check (``in_domain`` absent)."""


@dataclass(frozen=True)
class Timings:
    """Milliseconds per stage of one prediction, and the interpreter threads they ran with."""

    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    num_threads: int

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.preprocess_ms + self.inference_ms


@dataclass(frozen=True)
class Prediction:
    """One image's answer. ``score`` is the probability of a tumour (``LABELS[1]``).

    ``box.fallback`` is True when no brain was found (or the input is degenerate, see
    ``crop.degenerate``): such an input is never in domain.
    ``in_domain``: the model's domain check accepted the crop (``domain_score`` >= the threshold
    in the model's contract); False for a degenerate input; None when the model carries no
    contract or no domain output (then nothing says whether the answer may be trusted).
    ``label`` is ``"unknown"`` whenever ``in_domain`` is False; the scores are still given.
    ``unknown_reason`` says why (:mod:`.unknown`): ``"no_brain_found"``, ``"view_not_supported"``
    (the model's view gate refused the slice's view: ``domain_score`` is negative) or
    ``"out_of_domain"``; None when the label is a
    real answer.
    """

    path: str | None
    label: str
    score: float
    scores: tuple[float, float]
    box: CropBox
    timings: Timings = field(compare=False)
    in_domain: bool | None = None
    domain_score: float | None = None
    unknown_reason: str | None = None

    @property
    def no_brain_found(self) -> bool:
        return self.box.fallback

    def to_record(self) -> dict:
        """Flat JSON-ready dict: the CLI's JSONL/CSV row."""
        return {
            "path": self.path,
            "label": self.label,
            "score": round(self.score, 6),
            "score_no": round(self.scores[0], 6),
            "score_yes": round(self.scores[1], 6),
            "box": list(self.box.as_tuple()),
            "no_brain_found": self.box.fallback,
            "in_domain": self.in_domain,
            "domain_score": None if self.domain_score is None else round(self.domain_score, 6),
            "unknown_reason": self.unknown_reason,
            **{k: round(v, 3) for k, v in asdict(self.timings).items() if k.endswith("_ms")},
            "num_threads": self.timings.num_threads,
            "error": None,
        }


class Classifier:
    """Brain-tumour classifier over a TFLite model (float, int8 or uint8 input/output).

    The model's contract (``edge_runtime.contract``, embedded in the file) supplies the crop,
    the decision threshold of ``operating_point`` and the domain threshold; a model whose graph
    does not match its contract is refused (:class:`~.contract.ContractError`). A model without
    a contract (older releases, the test models) still runs, with a :class:`NoContractWarning`,
    the given ``crop``, argmax decisions, and ``in_domain`` None: refusing it would break every
    deployment of the earlier release at once, while the warning and the absent field say
    plainly that nothing vouches for the input's domain.

    Args:
        model: ``.tflite`` path; ``None`` = the released model (see :mod:`.default_model`).
        num_threads: interpreter threads, fixed for the object's life (recorded in ``info``).
        crop: the preprocessing for a model without a contract (with one, the contract's is used;
            a different explicit ``crop`` is an error).
        backend: a specific :class:`~.interpreter.Backend`; default = first available.
        decode: decode limits and options; default: ``DecodeConfig(max_pixels=crop.max_pixels)``.
        operating_point: ``default``, ``sensitivity`` or ``specificity`` (from the contract).

    Raises:
        ModelError: the model cannot be loaded, breaks the contract, or fails the self-test
            (non-finite or impossible scores on built-in inputs, see :mod:`.selftest`).
    """

    def __init__(self, model: str | Path | None = None, num_threads: int = DEFAULT_THREADS,
                 crop: CropConfig = CropConfig(), backend: Backend | None = None,
                 decode: DecodeConfig | None = None, operating_point: str = "default",
                 accept_all_views: bool = False) -> None:
        path = Path(model) if model is not None else default_model()
        self.contract: Contract | None = load_contract(path) if path.is_file() else None
        self.operating_point = operating_point
        if self.contract is None:
            if path.is_file():
                warnings.warn(NoContractWarning(
                    f"{path}: the model carries no contract (contract.json): running WITHOUT a domain check "
                    "(in_domain is absent), with default crop parameters and argmax decisions"), stacklevel=2)
            if operating_point != "default":
                raise ValueError(f"operating point {operating_point!r} needs a model with a contract; {path} has none")
            self.threshold = None
        else:
            if crop != CropConfig() and crop != self.contract.crop:
                raise ValueError(f"{path}: crop {crop} differs from the model's contract {self.contract.crop}")
            if tuple(self.contract.labels) != LABELS:
                raise ModelError(path, f"contract labels {self.contract.labels} are not {LABELS}")
            crop = self.contract.crop
            self.threshold = self.contract.threshold(operating_point)
        self.crop = crop
        self.model = TFLiteModel(path, num_threads, backend, crop.size)
        if self.contract is not None and self.contract.domain_threshold is not None and not self.model.has_domain_output:
            raise ModelError(path, "the contract has a domain threshold but the model has no domain output")
        self.decode = decode or DecodeConfig(max_pixels=crop.max_pixels)
        self.domain_rule: DomainRule | None = DomainRule.of(self.contract, accept_all_views)
        self_test(self.model, crop.size)

    @property
    def info(self) -> dict:
        return {**self.model.describe(), "crop_fingerprint": self.crop.fingerprint(),
                "contract": None if self.contract is None else {
                    "graph_sha256": self.contract.graph_sha256, "operating_point": self.operating_point,
                    "threshold": self.threshold, "domain_threshold": self.contract.domain_threshold,
                    "view_gate": self.contract.view_gate,
                    "accept_all_views": bool(self.domain_rule and self.domain_rule.accept_all_views)}}

    def classify_array(self, rgb: np.ndarray, path: str | None = None, decode_ms: float = 0.0) -> Prediction:
        """Classify an already decoded ``H x W x 3`` uint8 RGB image."""
        t0 = time.perf_counter()
        image, box = crop_image(rgb, self.crop)
        t1 = time.perf_counter()
        scores, domain_score = self.model.run(image)
        t2 = time.perf_counter()
        problem = check_scores(scores)
        if problem:
            raise NonFiniteScoreError(f"model output unusable for this image: {problem}")
        s = (float(scores[0]), float(scores[1]))
        in_domain, reason = verdict(box.fallback, domain_score, self.domain_rule)
        if in_domain is False:
            label = UNKNOWN
        elif self.threshold is None:
            label = LABELS[int(np.argmax(scores))]
        else:
            label = LABELS[TUMOUR_INDEX] if s[TUMOUR_INDEX] >= self.threshold else LABELS[1 - TUMOUR_INDEX]
        return Prediction(
            path=path,
            label=label,
            score=s[TUMOUR_INDEX],
            scores=s,
            box=box,
            timings=Timings(decode_ms, (t1 - t0) * 1e3, (t2 - t1) * 1e3, self.model.num_threads),
            in_domain=in_domain,
            domain_score=domain_score,
            unknown_reason=reason,
        )

    def classify(self, path: str | Path) -> Prediction:
        """Decode and classify one file; raises :class:`~.image_io.ImageDecodeError` on bad input.

        With draft decoding the crop is found on the reduced image; ``box`` is reported in the
        file's full-size pixel coordinates either way.
        """
        t0 = time.perf_counter()
        decoded = load_image(path, self.decode)
        pred = self.classify_array(decoded.rgb, str(path), (time.perf_counter() - t0) * 1e3)
        if decoded.scale == 1.0:
            return pred
        return replace(pred, box=_scale_box(pred.box, decoded.rgb.shape, decoded.size))


def _scale_box(box: CropBox, reduced_shape: tuple[int, ...], size: tuple[int, int]) -> CropBox:
    """A box on a reduced decode, mapped to full-size coordinates (clipped to the image)."""
    sx, sy = size[0] / reduced_shape[1], size[1] / reduced_shape[0]
    return CropBox(min(size[0], round(box.left * sx)), min(size[1], round(box.top * sy)),
                   min(size[0], round(box.right * sx)), min(size[1], round(box.bottom * sy)), box.fallback)
