"""One frozen config per concern of the conversion stage: calibration/quantization and the gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from convert.domain import DomainConfig

Selection = Literal["random", "stratified", "groups"]
IoType = Literal["uint8", "int8"]

#: The paper's test accuracy (BR35H, its own split): the bar on the paper protocol.
PAPER_ACCURACY = 0.9933

#: How many of the most weight-rounding-sensitive convs the int8 TFLite keeps in float unless told
#: otherwise (0 = full integer; decided from the measurements in reports/convert/int8_findings.md).
KEEP_FLOAT_DEFAULT = 0

#: Whether int8 exports get the weight-rounding bias correction unless told otherwise
#: (decided from the measurements in reports/convert/int8_findings.md).
BIAS_CORRECTION_DEFAULT = False


@dataclass(frozen=True)
class QuantizationConfig:
    """How the full-integer model is calibrated and which nodes (if any) stay float.

    Attributes:
        calibration_size: images of the **train** split fed to the converter's calibrator.
        seed: makes the drawn file list reproducible (it is also written to calibration.txt).
        selection: ``random`` over all train rows; ``stratified`` equal per class;
            ``groups`` at most one image per near-duplicate group (BR35H is ~3x duplicated,
            so a random draw covers fewer distinct scans than its size suggests).
        io_type: integer type of the model's input/output tensors. ``uint8`` by default
            because MediaPipe Tasks / the TFLite Task Library accept only uint8 or float32
            image inputs; the calibrated uint8 input is then scale 1, zero point 0 = raw pixels.
        denylisted_ops / denylisted_nodes: kept in float (selective quantization via the
            quantization debugger); empty = every op integer, the shipped default.
        bias_correction: export the int8 artifacts from a copy of the model whose BatchNorm
            moving means cancel the mean shift of int8 weight rounding in the conv before them
            (``convert.bias_correction``, measured on the calibration images); the model stays
            fully integer and the float artifacts are unaffected.
        keep_float: keep the ``keep_float`` convs whose int8 weight rounding moves the logit margin
            most (``convert.sensitivity``, ranked in Keras on ``sensitivity_images`` of the
            calibration images) in float in the int8 TFLite; 0 = every op integer. The model then
            is **not** fully integer (float ops between dequantize/quantize; uint8 I/O stays).
            The ONNX int8 is not affected.
        sensitivity_images: calibration images (evenly spaced subset) the ranking runs on.
        float_tail: keep the classifier's logits -> softmax and the domain check float, with float
            outputs (set by the pipeline when the model carries the domain check; see
            ``convert.domain.tail_node_names``); the input stays ``io_type``.
    """

    calibration_size: int = 300
    seed: int = 0
    selection: Selection = "stratified"
    io_type: IoType = "uint8"
    denylisted_ops: tuple[str, ...] = ()
    denylisted_nodes: tuple[str, ...] = ()
    bias_correction: bool = BIAS_CORRECTION_DEFAULT
    keep_float: int = KEEP_FLOAT_DEFAULT
    sensitivity_images: int = 128
    float_tail: bool = False

    def __post_init__(self) -> None:
        if self.calibration_size < 1:
            raise ValueError(f"calibration_size must be >= 1, got {self.calibration_size}")
        if self.selection not in ("random", "stratified", "groups"):
            raise ValueError(f"unknown selection {self.selection!r}")
        if self.io_type not in ("uint8", "int8"):
            raise ValueError(f"io_type must be uint8 or int8, got {self.io_type!r}")
        if self.keep_float < 0:
            raise ValueError(f"keep_float must be >= 0, got {self.keep_float}")
        if self.sensitivity_images < 1:
            raise ValueError(f"sensitivity_images must be >= 1, got {self.sensitivity_images}")

    @classmethod
    def for_int8(cls, calibration_size: int = 300, seed: int = 0, selection: Selection = "stratified",
                 io_type: IoType = "uint8", denylisted_nodes: tuple[str, ...] = (),
                 bias_correction: bool = BIAS_CORRECTION_DEFAULT,
                 keep_float: int = KEEP_FLOAT_DEFAULT) -> "QuantizationConfig":
        return cls(calibration_size, seed, selection, io_type, (), tuple(denylisted_nodes), bias_correction, keep_float)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class OnnxInt8Recipe:
    """How the ONNX int8 twin is quantized (onnxruntime ``quantize_static``): format, tensor types,
    weight range, per-channel weights. uint8 activations and uint8 weights are the default because
    onnxruntime's x86 kernels without VNNI add uint8 x int8 pairs in saturating int16, so int8
    weights at full range make the result depend on the CPU; uint8 x uint8 goes through 16-bit
    products summed in int32 on every level (``convert.onnx_export``). Measured on the released
    model in reports/convert/onnx_int8_isa.md: full range int8 lost 4 test images on an AVX2 CPU,
    7-bit int8 weights (``reduce_range``) are CPU-independent but flip one image hard, uint8 x uint8
    is CPU-independent and agrees with float32 on every test image."""

    quant_format: Literal["QDQ", "QOperator"] = "QDQ"
    activation_type: Literal["int8", "uint8"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "uint8"
    reduce_range: bool = False
    per_channel: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


#: The shipped recipe: the same answers on every x86 level (see the class docstring).
DEFAULT_ONNX_RECIPE = OnnxInt8Recipe()
#: The recipe before: int8 activations and full-range int8 weights, whose result depends on VNNI.
FULL_RANGE_ONNX_RECIPE = OnnxInt8Recipe(activation_type="int8", weight_type="int8")
#: The other CPU-independent recipe measured: int8 with 7-bit weights.
REDUCE_RANGE_ONNX_RECIPE = OnnxInt8Recipe(activation_type="int8", weight_type="int8", reduce_range=True)


@dataclass(frozen=True)
class GateConfig:
    """When an artifact fails: accuracy more than ``tolerance`` points below the Keras model,
    or (paper protocol only) below ``paper_accuracy`` minus ``paper_tolerance`` points."""

    tolerance: float = 0.5  # percentage points
    paper_tolerance: float = 0.5
    paper_accuracy: float = PAPER_ACCURACY
    paper_protocol: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BundleInfo:
    """What the Android bundle and the TFLite metadata say about the model."""

    name: str = "BR35H brain-tumour classifier (MobileNetV2)"
    version: str = "0.1.0"
    author: str = "br35h-edge contributors"
    licence: str = "Apache-2.0"
    threshold: float = 0.5  # decision on P(yes)
    description: str = (
        "Binary brain-tumour classifier for axial MRI slices (BR35H). Input: the brain crop "
        "(see model.json crop parameters) resized to the input size, RGB, raw pixel values 0..255; "
        "scaling to [-1, 1] happens inside the model, so normalisation is mean 0, std 1. "
        "Output: probabilities for the labels in labels.txt order. Research use, not a medical device."
    )
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ConvertConfig:
    """Everything ``python -m convert`` decides; written into the report verbatim."""

    quant: QuantizationConfig = QuantizationConfig()
    gate: GateConfig = GateConfig()
    bundle: BundleInfo = BundleInfo()
    onnx_int8: bool = True
    onnx_recipe: OnnxInt8Recipe = DEFAULT_ONNX_RECIPE
    num_threads: int | None = None  # runtimes' threads when evaluating; None = their default
    # In-model domain check + temperature + contract thresholds, all chosen on the val split:
    # "auto" = when the manifest has val rows, "on" = required, "off" = plain classifier.
    domain_mode: str = "auto"
    domain: DomainConfig = field(default_factory=DomainConfig)
    # Evaluate and gate on the test rows of these sources only (empty = every test row): a
    # multi-source model is held to the paper's bar on BR35H's 600 test images, and its other
    # sources are scored apart (``python -m convert.external``).
    test_sources: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)
