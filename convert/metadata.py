"""TFLite metadata (standard schema) written without tflite-support, the way its
``MetadataPopulator`` does it, so MediaPipe Tasks and Android Studio's model binding read it:

* the ``ModelMetadata`` flatbuffer (file identifier ``M001``) goes into a new model buffer,
  referenced by a ``TFLITE_METADATA`` entry of the model's ``metadata`` list;
* associated files (``labels.txt``) are appended to the ``.tflite`` as an uncompressed zip.

The model takes raw 0..255 RGB (scaling is inside), hence NormalizationOptions mean 0, std 1.
"""

from __future__ import annotations

from dataclasses import dataclass
import io
from typing import Sequence
import zipfile

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from convert._vendor import metadata_schema_py_generated as md
from convert.config import BundleInfo

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
#: Largest schema version among the fields written (none newer than the 1.0.0 base schema).
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
DOMAIN_LABELS_FILE = "domain_labels.txt"
DOMAIN_LABELS = b"in_domain\n"


class MetadataError(ValueError):
    """A model lacks metadata or carries metadata this module cannot read."""


def build_metadata(info: BundleInfo, input_range: tuple[float, float] = (0.0, 255.0),
                   domain_output: bool = False) -> bytes:
    """The ``ModelMetadata`` flatbuffer of a single-input image classifier.

    ``domain_output``: the model has a second output, the domain score (``convert.domain``).
    MediaPipe Tasks treats every output as a classification head and refuses a model whose
    metadata describes fewer outputs than it has, so it gets its own entry, with a one-line
    label file (:data:`DOMAIN_LABELS_FILE`): an app sees it as head 1, category ``in_domain``.
    """
    norm = md.NormalizationOptionsT()
    norm.mean, norm.std = [0.0], [1.0]
    unit = md.ProcessUnitT()
    unit.optionsType, unit.options = md.ProcessUnitOptions.NormalizationOptions, norm
    image_props = md.ImagePropertiesT()
    image_props.colorSpace = md.ColorSpaceType.RGB
    image_content = md.ContentT()
    image_content.contentPropertiesType, image_content.contentProperties = md.ContentProperties.ImageProperties, image_props
    image = md.TensorMetadataT()
    image.name = "image"
    image.description = ("Brain crop resized to the input size, RGB, raw pixel values 0..255 "
                         "(normalisation mean 0, std 1: the model scales internally).")
    image.content, image.processUnits = image_content, [unit]
    image.stats = _stats(*input_range)

    labels = md.AssociatedFileT()
    labels.name, labels.type = LABELS_FILE, md.AssociatedFileType.TENSOR_AXIS_LABELS
    labels.description = "Class labels, one per line, in output order."
    out_content = md.ContentT()
    out_content.contentPropertiesType, out_content.contentProperties = (md.ContentProperties.FeatureProperties,
                                                                        md.FeaturePropertiesT())
    probs = md.TensorMetadataT()
    probs.name, probs.description = "probability", "Probability of each class (softmax)."
    probs.content, probs.stats, probs.associatedFiles = out_content, _stats(0.0, 1.0), [labels]

    outputs = [probs]
    if domain_output:
        dom_labels = md.AssociatedFileT()
        dom_labels.name, dom_labels.type = DOMAIN_LABELS_FILE, md.AssociatedFileType.TENSOR_AXIS_LABELS
        dom_labels.description = "The domain score's single category."
        dom_content = md.ContentT()
        dom_content.contentPropertiesType, dom_content.contentProperties = (md.ContentProperties.FeatureProperties,
                                                                            md.FeaturePropertiesT())
        dom = md.TensorMetadataT()
        dom.name = "domain_score"
        dom.description = ("How much the input resembles the training data, in (0, 1], higher = more alike. "
                           "Below the contract's domain threshold the class scores must not be used.")
        dom.content, dom.stats, dom.associatedFiles = dom_content, _stats(0.0, 1.0), [dom_labels]
        outputs.append(dom)
    sub = md.SubGraphMetadataT()
    sub.inputTensorMetadata, sub.outputTensorMetadata = [image], outputs
    meta = md.ModelMetadataT()
    meta.name, meta.description, meta.version = info.name, info.description, info.version
    meta.author, meta.license = info.author, info.licence
    meta.subgraphMetadata, meta.minParserVersion = [sub], MIN_PARSER_VERSION
    b = flatbuffers.Builder(1024)
    b.Finish(meta.Pack(b), file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _stats(lo: float, hi: float):
    s = md.StatsT()
    s.min, s.max = [float(lo)], [float(hi)]
    return s


def embed(tflite: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """A copy of ``tflite`` carrying ``metadata`` and the associated ``files`` (replaces old ones)."""
    return pack_graph(tflite, metadata) + zip_files(files)


def pack_graph(tflite: bytes, metadata: bytes) -> bytes:
    """The flatbuffer of ``tflite`` (any appended zip dropped) with ``metadata`` as its
    ``TFLITE_METADATA`` buffer."""
    model = tfl.ModelT.InitFromPackedBuf(_model_part(tflite), 0)
    _probabilities_first(model)
    model.buffers = list(model.buffers or [])
    buf = tfl.BufferT()
    buf.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers.append(buf)
    entry = tfl.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m) != METADATA_NAME] + [entry]
    b = flatbuffers.Builder(len(tflite) + len(metadata) + 1024)
    b.Finish(model.Pack(b), file_identifier=MODEL_IDENTIFIER)
    return bytes(b.Output())


def _probabilities_first(model) -> None:
    """Put a two-output model's class probabilities (the wider output) first, the domain score second.

    The converter orders outputs as it likes (the domain score came out first), but MediaPipe
    numbers its classification heads by output position and pairs them with the metadata's
    output entries in order: the classifier must stay head 0, as in the one-output model.
    """
    for sub in model.subgraphs or []:
        outs = list(sub.outputs if sub.outputs is not None else [])
        if len(outs) == 2:
            width = [int(np.prod(sub.tensors[i].shape)) for i in outs]
            sub.outputs = [o for _, o in sorted(zip(width, outs), key=lambda t: -t[0])]


def zip_files(files: dict[str, bytes]) -> bytes:
    """The uncompressed zip TFLite metadata appends for associated files (empty when none)."""
    if not files:
        return b""
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return zipped.getvalue()


def _name(m) -> str:
    return m.name.decode() if isinstance(m.name, bytes) else str(m.name)


def _model_part(tflite: bytes) -> bytes:
    """The flatbuffer without any appended zip (a flatbuffer ignores trailing bytes, so as is)."""
    if tflite[4:8] != MODEL_IDENTIFIER:
        raise MetadataError(f"not a TFLite flatbuffer (identifier {tflite[4:8]!r}, expected {MODEL_IDENTIFIER!r})")
    return tflite


def read(tflite: bytes):
    """The ``ModelMetadataT`` embedded in a ``.tflite``; MetadataError when there is none."""
    model = tfl.Model.GetRootAs(_model_part(tflite), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            if not md.ModelMetadata.ModelMetadataBufferHasIdentifier(data, 0):
                raise MetadataError(f"{METADATA_NAME} buffer lacks the {METADATA_IDENTIFIER!r} identifier")
            return md.ModelMetadataT.InitFromPackedBuf(data, 0)
    raise MetadataError(f"model has no {METADATA_NAME} entry")


def associated_files(tflite: bytes) -> dict[str, bytes]:
    """Files packed into the model's trailing zip (empty when there is none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite)) as z:
            return {n: z.read(n) for n in z.namelist()}
    except zipfile.BadZipFile:
        return {}


def labels_file(labels: Sequence[str]) -> bytes:
    return ("\n".join(labels) + "\n").encode()


@dataclass(frozen=True)
class MetadataSummary:
    """The fields a deployer (and the tests) check, decoded to plain Python."""

    name: str
    version: str
    labels: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    color_space: str


def summarize(tflite: bytes) -> MetadataSummary:
    meta = read(tflite)
    sub = meta.subgraphMetadata[0]
    image, probs = sub.inputTensorMetadata[0], sub.outputTensorMetadata[0]
    norm = next(u.options for u in image.processUnits if u.optionsType == md.ProcessUnitOptions.NormalizationOptions)
    label_name = next(f.name.decode() for f in probs.associatedFiles
                      if f.type == md.AssociatedFileType.TENSOR_AXIS_LABELS)
    files = associated_files(tflite)
    if label_name not in files:
        raise MetadataError(f"metadata names {label_name} but the model's zip holds {sorted(files)}")
    spaces = {v: k for k, v in vars(md.ColorSpaceType).items() if not k.startswith("_")}
    return MetadataSummary(
        name=meta.name.decode(), version=meta.version.decode(),
        labels=tuple(files[label_name].decode().split()),
        mean=tuple(float(v) for v in norm.mean), std=tuple(float(v) for v in norm.std),
        color_space=spaces[image.content.contentProperties.colorSpace],
    )
