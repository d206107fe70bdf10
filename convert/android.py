"""The Android asset bundle: int8 model (metadata inside), labels, a manifest the app can
trust (sha256 of each file, the real input tensor, crop parameters, threshold, accuracy of this
exact file) and a short integration note; also zipped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import shutil
import zipfile
from typing import Sequence

from convert.config import BundleInfo
from edge_runtime.config import CropConfig

MODEL_FILE = "model.tflite"
MANIFEST_FILE = "model.json"
NOTE_FILE = "INTEGRATION.md"
LABELS_FILE = "labels.txt"


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tensor_spec(tflite: bytes) -> dict:
    """Input and output tensors as the interpreter sees them (not as we meant them to be)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite)

    def spec(d: dict) -> dict:
        scale, zp = d["quantization"]
        return {"name": d["name"], "shape": [int(v) for v in d["shape"]], "dtype": d["dtype"].__name__,
                "quantization": {"scale": float(scale), "zero_point": int(zp)} if scale else None}

    outs = [spec(d) for d in it.get_output_details()]
    return {"input": spec(it.get_input_details()[0]), "output": outs[0], "outputs": outs}


def write_bundle(out: str | Path, tflite: bytes, labels: Sequence[str], info: BundleInfo, crop: CropConfig,
                 evaluation: dict, contract: dict | None = None) -> Path:
    """``out/`` with the four files, and ``out.zip`` next to it (stored, not deflated).

    ``contract``: the model's contract (also inside the ``.tflite``); its operating points and
    domain threshold are copied into ``model.json`` so an app need not unzip the model."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MODEL_FILE).write_bytes(tflite)
    (out / LABELS_FILE).write_text("\n".join(labels) + "\n")
    domain = (contract or {}).get("domain")
    (out / NOTE_FILE).write_text(integration_note(info, crop, domain))
    manifest = {
        "name": info.name, "version": info.version, "author": info.author, "licence": info.licence,
        "files": {n: sha256(out / n) for n in (MODEL_FILE, LABELS_FILE, NOTE_FILE)},
        "tensors": tensor_spec(tflite),
        "labels": list(labels),
        "positive_label": labels[-1],
        "decision_threshold": info.threshold,
        "operating_points": (contract or {}).get("operating_points"),
        "temperature": (contract or {}).get("temperature"),
        "domain": None if domain is None else {
            "output_index": 1, "output_name": "domain_score", "mediapipe_head_index": 1, "category": "in_domain",
            "threshold": domain["threshold"], "rule": "in domain when domain_score >= threshold; else answer 'unknown'",
            "val_accepted": domain["val_accepted"],
            "view_gate": None if not domain.get("view_gate") else {
                "refused_when": domain["view_gate"]["refused_when"], "supported": domain["view_gate"]["supported"],
                "views": domain["view_gate"]["views"]}},
        "contract": None if contract is None else {"file": "contract.json (inside model.tflite's metadata zip)",
                                                   "schema": contract.get("schema")},
        "preprocessing": {
            "crop": crop.to_dict(), "crop_fingerprint": crop.fingerprint(),
            "color": "RGB", "pixel_range": [0, 255], "normalisation": {"mean": 0.0, "std": 1.0},
        },
        "evaluation": evaluation,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    with zipfile.ZipFile(out.with_suffix(".zip"), "w", compression=zipfile.ZIP_STORED) as z:
        for f in sorted(out.iterdir()):  # stored: an unpacked asset must be byte-identical and mappable
            z.write(f, f"{out.name}/{f.name}")
    return out


def integration_note(info: BundleInfo, crop: CropConfig, domain: dict | None = None) -> str:
    return f"""# Android integration ({info.name} {info.version})

1. Copy `{MODEL_FILE}` and `{LABELS_FILE}` to `app/src/main/assets/` and keep them uncompressed
   (the runtime memory-maps the model): in `build.gradle(.kts)` add
   `androidResources {{ noCompress += "tflite" }}` (older AGP: `aaptOptions {{ noCompress "tflite" }}`).
2. Crop first, exactly as in training (`model.json` -> `preprocessing.crop`): grayscale, Gaussian blur
   {crop.blur_ksize}x{crop.blur_ksize}, threshold > {crop.threshold}, erode x{crop.erode_iterations},
   dilate x{crop.dilate_iterations} (3x3), crop to the extreme points of the largest contour, resize to
   {crop.size}x{crop.size} ({crop.resample}). Skipping the crop changes the input distribution the
   reported accuracy was measured on.
3. MediaPipe Tasks (`com.google.mediapipe:tasks-vision`):
   ```kotlin
   val options = ImageClassifier.ImageClassifierOptions.builder()
       .setBaseOptions(BaseOptions.builder().setModelAssetPath("{MODEL_FILE}").build())
       .setRunningMode(RunningMode.IMAGE)
       .setMaxResults(2)          // both classes; decide on the "yes" score
       .build()
   val classifier = ImageClassifier.createFromOptions(context, options)
   val result = classifier.classify(BitmapImageBuilder(croppedBitmap).build())
   ```
   Labels and normalisation (mean 0, std 1: raw 0..255 pixels, the model scales internally) come
   from the metadata inside the model; no extra options are needed.
4. Decide "tumour" when the score of label `yes` >= {info.threshold} (`model.json` -> `decision_threshold`;
   other thresholds chosen on validation: `model.json` -> `operating_points`).
{_domain_step(domain)}5. Check at startup that the sha256 of the asset equals `model.json` -> `files` (guards against a
   stale or recompressed asset). Research use only; not a medical device.
"""


def _domain_step(domain: dict | None) -> str:
    if domain is None:
        return ""
    return f"""   **Domain check first**: the model has a second output, `domain_score` (MediaPipe: head index 1,
   category `in_domain`: `result.classificationResult().classifications()[1].categories()[0].score()`).
   When it is below {domain["threshold"]:.6g} (`model.json` -> `domain.threshold`; chosen to accept
   {100 * domain["accept_target"]:.0f} % of in-domain validation crops) the input does not look like the
   training data: show "unknown / not assessable", not the class. The same threshold and the crop
   parameters are in `contract.json` inside `{MODEL_FILE}` (its metadata zip), with the sha256 of the graph.
{_view_step(domain.get("view_gate"))}"""


def _view_step(gate: dict | None) -> str:
    if not gate:
        return ""
    return f"""   **View gate**: a *negative* `domain_score` means the slice's view is not one this model was
   validated on (it judges {", ".join(gate["supported"])} slices; `model.json` -> `domain.view_gate`):
   show "unknown: view not supported, send another slice of the scan". Its magnitude is the domain
   score the slice would have had, should the app knowingly accept every view.
"""
