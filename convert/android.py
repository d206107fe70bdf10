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

    return {"input": spec(it.get_input_details()[0]), "output": spec(it.get_output_details()[0])}


def write_bundle(out: str | Path, tflite: bytes, labels: Sequence[str], info: BundleInfo, crop: CropConfig,
                 evaluation: dict) -> Path:
    """``out/`` with the four files, and ``out.zip`` next to it (stored, not deflated)."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MODEL_FILE).write_bytes(tflite)
    (out / LABELS_FILE).write_text("\n".join(labels) + "\n")
    (out / NOTE_FILE).write_text(integration_note(info, crop))
    manifest = {
        "name": info.name, "version": info.version, "author": info.author, "licence": info.licence,
        "files": {n: sha256(out / n) for n in (MODEL_FILE, LABELS_FILE, NOTE_FILE)},
        "tensors": tensor_spec(tflite),
        "labels": list(labels),
        "positive_label": labels[-1],
        "decision_threshold": info.threshold,
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


def integration_note(info: BundleInfo, crop: CropConfig) -> str:
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
4. Decide "tumour" when the score of label `yes` >= {info.threshold} (`model.json` -> `decision_threshold`).
5. Check at startup that the sha256 of the asset equals `model.json` -> `files` (guards against a
   stale or recompressed asset). Research use only; not a medical device.
"""
