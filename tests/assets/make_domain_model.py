"""Build ``tiny_domain_int8.tflite``: a tiny network carrying the real domain check and contract.

The runtime tests use it to check the gate both ways without TensorFlow: a BR35H slice is
accepted, a photo, a text page or noise is refused. It is made with the project's own code path
(``convert.domain.attach`` -> ``tflite_export`` int8 with the float tail -> ``convert.contract``),
fitted on BR35H crops; only the model (a few tens of KB) is committed, no image.

    .venv/bin/python -m tests.assets.make_domain_model   # needs TensorFlow and ../shared/data/br35h

Fit images: the first 80 of ``yes/`` and of ``no/`` in number order; validation (threshold): the
next 20 of each. The tests use other files (numbers 1400 and up).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import os
from pathlib import Path
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NAME = "tiny_domain_int8.tflite"


@dataclass
class Crops:
    x: np.ndarray
    y: np.ndarray


def crops(root: Path, ids: range) -> Crops:
    from edge_runtime.crop import crop_image
    from edge_runtime.image_io import load_rgb

    x, y = [], []
    for label, folder in ((1, "yes"), (0, "no")):
        files = files_of(root / folder)
        for i in ids:
            x.append(crop_image(load_rgb(files[i]))[0])
            y.append(label)
    return Crops(np.stack(x), np.array(y))


def files_of(folder: Path) -> list[Path]:
    """The folder's JPEGs in natural order of their number (``no12`` after ``no9``; case ignored)."""
    import re

    return sorted(folder.glob("*.jpg"), key=lambda p: int(re.sub(r"\D", "", p.stem) or -1))


def tiny_network(seed: int = 0):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((224, 224, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1, name="scale_to_pm1")(inp)
    x = layers.Conv2D(8, 5, strides=4, activation="relu")(x)
    x = layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(2, activation="softmax", name="classifier")(x)
    return keras.Model(inp, out, name="tiny_domain")


def build(root: Path, out: Path) -> Path:
    from convert import contract, domain, metadata, tflite_export
    from convert.calibration import representative_dataset
    from convert.config import BundleInfo, QuantizationConfig
    from edge_runtime.config import LABELS, CropConfig

    fit, val = crops(root, range(0, 80)), crops(root, range(80, 100))
    model = tiny_network()
    att = domain.attach(model, fit, val, domain.DomainConfig(dims=16))
    qcfg = QuantizationConfig(calibration_size=len(fit.y), float_tail=True)
    with tempfile.TemporaryDirectory() as tmp:
        saved = tflite_export.export_saved_model(att.model, Path(tmp) / "sm")
        conv = tflite_export.make_converter(saved, "int8", representative_dataset(fit.x.astype(np.float32)), qcfg)
        flat, _ = tflite_export.selective_int8(conv, qcfg)
    from convert.runtimes import TFLiteRunner

    probs, dom = TFLiteRunner(flat).predict_outputs(val.x.astype(np.float32))
    info = BundleInfo(name="tiny domain test model", version="0.0.1")
    c = contract.build(LABELS, CropConfig(), info, att.temperature, probs, val.y, dom, accept=0.95,
                       extra={"artifact": NAME, "note": "test asset: random conv features, not a classifier"})
    files = {metadata.LABELS_FILE: metadata.labels_file(LABELS), metadata.DOMAIN_LABELS_FILE: metadata.DOMAIN_LABELS}
    path = out / NAME
    path.write_bytes(contract.embed_tflite(flat, c, metadata.build_metadata(info, domain_output=True), files))
    print(f"{path}: {path.stat().st_size} bytes; domain threshold {c['domain']['threshold']:.4f}")
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "br35h")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = p.parse_args()
    build(args.data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
