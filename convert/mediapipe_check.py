"""Independent proof that MediaPipe Tasks takes our ``.tflite`` as is (metadata, labels, uint8 input).

Run it in a throw-away venv *without* TensorFlow (MediaPipe's wheel does not sit well next to
TF 2.21, so it is not a project dependency); it imports nothing from this project:

    python3.11 -m venv /tmp/mp && /tmp/mp/bin/pip install mediapipe==1.2.2
    /tmp/mp/bin/python convert/mediapipe_check.py runs/X/convert/android/model.tflite [crop.png ...]

Prints the categories MediaPipe reads from the metadata for a dark and a bright flat image (or
for the given pre-cropped images); exits 1 if the labels are not ("no", "yes"). A model with the
domain check has a second head: it must be head 1 with the single category ``in_domain`` and a
score in [-1, 1] (printed as ``domain``; negative = the view gate's refusal, so MediaPipe must
pass negative scores through unfiltered), else exit 1.
"""

from __future__ import annotations

import sys

import numpy as np


def main(argv: list[str]) -> int:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    model, images = argv[0], argv[1:]
    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=2)
    with vision.ImageClassifier.create_from_options(opts) as clf:
        inputs = [(p, mp.Image.create_from_file(p)) for p in images] or [
            (f"flat {v}", mp.Image(image_format=mp.ImageFormat.SRGB, data=np.full((224, 224, 3), v, np.uint8)))
            for v in (40, 220)]
        seen, heads, domain_ok = set(), set(), True
        for name, img in inputs:
            result = clf.classify(img).classifications
            heads.add(len(result))
            cats = result[0].categories
            seen |= {c.category_name for c in cats}
            line = f"{name} {[(c.category_name, round(c.score, 4)) for c in cats]}"
            if len(result) > 1:
                dom = result[1].categories
                domain_ok &= (len(dom) == 1 and dom[0].category_name == "in_domain" and -1.0 <= dom[0].score <= 1.0)
                line += f" domain {[(c.category_name, round(c.score, 4)) for c in dom]}"
            print(line)
    print(f"mediapipe {mp.__version__}: labels from metadata {sorted(seen)}; heads {sorted(heads)}")
    return 0 if seen == {"no", "yes"} and domain_ok and heads <= {1, 2} else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
