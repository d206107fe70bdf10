"""Where the released model is looked for when no ``--model`` is given.

Order: ``$BR35H_EDGE_MODEL``, the copy shipped inside the package (``edge_runtime/models/``,
declared as package data), then ``models/`` at the root of a source checkout. No silent
fallback to some other ``.tflite``: a deployer must know which model answered.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The default: the multi-source model (BR35H + Nickparvar), with its domain check and contract.
#: The paper reproduction ships beside it as ``br35h-mobilenetv2-int8.tflite`` (pass ``--model``).
RELEASED_NAME = "multisource-mobilenetv2-int8.tflite"
MODEL_ENV = "BR35H_EDGE_MODEL"
_PACKAGE_DIR = Path(__file__).resolve().parent


class ModelNotFoundError(FileNotFoundError):
    """No model given and the released one is not installed; the message lists where we looked."""


def candidates() -> list[Path]:
    return [_PACKAGE_DIR / "models" / RELEASED_NAME, _PACKAGE_DIR.parent / "models" / RELEASED_NAME]


def default_model() -> Path:
    """``$BR35H_EDGE_MODEL`` (must exist), else the first existing candidate, else an error."""
    if os.environ.get(MODEL_ENV):
        path = Path(os.environ[MODEL_ENV]).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"${MODEL_ENV} points to {path}, which is not a file")
        return path
    looked = candidates()
    for path in looked:
        if path.is_file():
            return path
    raise ModelNotFoundError(
        "no model given and the released model is not installed; pass --model PATH.tflite "
        f"or set ${MODEL_ENV}. Looked in: " + ", ".join(str(p) for p in looked)
    )
