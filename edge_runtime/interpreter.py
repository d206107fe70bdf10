"""The TFLite interpreter behind the runtime: which backend, how many threads, what the model expects.

Backend order: ``ai-edge-litert`` (maintained; 64-bit ARM and x86 wheels), ``tflite-runtime``
(frozen at 2.14 but the only wheel for 32-bit Raspberry Pi OS), then ``tensorflow.lite`` as a
last resort on a desktop. Everything the model needs (input size and dtype, quantization
scale / zero point of input and output) is read from the interpreter, never assumed, so float,
int8 and uint8 exports of the same network all work through one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib
import importlib.metadata
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: (backend name, module holding ``Interpreter``, distribution for the version) in preference order.
BACKENDS: tuple[tuple[str, str, str], ...] = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow", "tensorflow.lite", "tensorflow"),
)
#: XNNPACK runs single-threaded unless told at construction; 4 fits a Raspberry Pi 4/5.
DEFAULT_THREADS = max(1, min(4, os.cpu_count() or 1))
#: Hard ceiling for library callers (the CLI caps at the CPU count): hundreds of XNNPACK threads
#: exhaust a device's address space and abort natively instead of raising.
MAX_THREADS = 64
#: Which kernels run the graph (the interpreter's ``OpResolverType``): ``xnnpack`` = the default
#: (XNNPACK delegate for what it supports, optimized builtin kernels for the rest); ``builtin`` =
#: optimized builtin kernels only (XNNPACK off); ``reference`` = the plain reference kernels (slow;
#: the arithmetic every other kernel set is checked against).
RESOLVERS: dict[str, str] = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
                             "reference": "BUILTIN_REF"}


class ModelError(RuntimeError):
    """The model file is missing, unreadable, or does not follow the runtime's contract."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Backend:
    """A TFLite interpreter implementation found on this machine."""

    name: str
    version: str
    interpreter_cls: Callable[..., Any]


#: Backends whose wheels were all built against numpy 1.x (distribution -> first version that is not):
#: under numpy 2 they import, print a warning, then fail inside the interpreter constructor with
#: a ``SystemError`` traceback. tflite-runtime stopped at 2.14.
NUMPY1_ONLY: dict[str, tuple[int, ...]] = {"tflite-runtime": (2, 15)}


def _numpy_mismatch(dist: str) -> str | None:
    """Why ``dist`` cannot run with the installed numpy, or None when it can (or is not installed)."""
    if dist not in NUMPY1_ONLY or int(np.__version__.split(".")[0]) < 2:
        return None
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts >= NUMPY1_ONLY[dist]:
        return None
    return (f"{dist} {version} was built for numpy 1.x and cannot run under numpy {np.__version__}; "
            f"install numpy<2 next to it: pip install 'numpy<2'")


def find_backend(name: str | None = None) -> Backend:
    """The first importable backend in :data:`BACKENDS` order, or exactly ``name`` if given."""
    tried = []
    for backend, module, dist in BACKENDS:
        if name is not None and backend != name:
            continue
        mismatch = _numpy_mismatch(dist)
        if mismatch:
            tried.append(f"{backend} ({mismatch})")
            continue
        try:
            cls = importlib.import_module(module).Interpreter
        except ImportError as exc:
            tried.append(f"{backend} ({exc})")
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return Backend(backend, version, cls)
    if name is not None and not tried:
        raise ValueError(f"unknown backend {name!r}; choose from {[b[0] for b in BACKENDS]}")
    raise ImportError(
        "no TFLite interpreter found; install one: pip install ai-edge-litert "
        "(or tflite-runtime on 32-bit ARM). Tried: " + "; ".join(tried)
    )


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of one tensor: ``real = scale * (q - zero_point)``; scale 0 = float."""

    scale: float
    zero_point: int

    @property
    def is_quantized(self) -> bool:
        return self.scale != 0.0


class TFLiteModel:
    """One loaded ``.tflite`` with a fixed thread count; ``scores(image)`` runs it once.

    The contract checked at load: one input of shape (1, size, size, 3), one output of 2 class
    scores, and optionally a second output of 1 value, the domain score (told apart by shape,
    not position). A mismatch raises :class:`ModelError` before the first image is read.
    """

    def __init__(self, path: str | Path, num_threads: int = DEFAULT_THREADS, backend: Backend | None = None,
                 size: int = 224, resolver: str = "xnnpack") -> None:
        if not 1 <= num_threads <= MAX_THREADS:
            raise ValueError(f"num_threads must be between 1 and {MAX_THREADS}, got {num_threads}")
        if resolver not in RESOLVERS:
            raise ValueError(f"resolver must be one of {sorted(RESOLVERS)}, got {resolver!r}")
        self.path = Path(path)
        self.num_threads = num_threads
        self.resolver = resolver
        self.backend = backend or find_backend()
        if not self.path.is_file():
            raise ModelError(self.path, "model file not found")
        kwargs = {}
        if resolver != "xnnpack":  # the interpreter's default; only named when asked, so old interpreters work
            module = importlib.import_module(self.backend.interpreter_cls.__module__)
            kwargs["experimental_op_resolver_type"] = getattr(module.OpResolverType, RESOLVERS[resolver])
        try:
            self._interp = self.backend.interpreter_cls(model_path=str(self.path), num_threads=num_threads, **kwargs)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(self.path, f"not a valid TFLite model ({exc})") from exc
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        sizes = [int(np.prod(o["shape"])) for o in outputs]
        if len(inputs) != 1 or sorted(sizes) not in ([2], [1, 2]):
            raise ModelError(self.path, f"expected 1 input and 1 output of 2 class scores (plus optionally a 1-value "
                                        f"domain score), got {len(inputs)} input(s) and outputs of sizes {sizes}")
        self._in, self._out = inputs[0], outputs[sizes.index(2)]
        self._dom = outputs[sizes.index(1)] if 1 in sizes else None
        want = (1, size, size, 3)
        if tuple(self._in["shape"]) != want:
            raise ModelError(self.path, f"input shape {tuple(map(int, self._in['shape']))} does not match {want} (NHWC RGB)")
        self.input_dtype = np.dtype(self._in["dtype"])
        self.input_quant = Quantization(float(self._in["quantization"][0]), int(self._in["quantization"][1]))
        self.output_quant = Quantization(float(self._out["quantization"][0]), int(self._out["quantization"][1]))
        self.domain_quant = (None if self._dom is None else
                             Quantization(float(self._dom["quantization"][0]), int(self._dom["quantization"][1])))
        if self.input_dtype.kind in "iu" and not self.input_quant.is_quantized:
            raise ModelError(self.path, f"integer input {self.input_dtype} without quantization parameters")

    def _quantize(self, image: np.ndarray) -> np.ndarray:
        """Raw 0..255 RGB into the input tensor's dtype and scale."""
        x = image.astype(np.float32)[None]
        if self.input_dtype.kind == "f":
            return x.astype(self.input_dtype)
        q = self.input_quant
        info = np.iinfo(self.input_dtype)
        return np.clip(np.round(x / q.scale + q.zero_point), info.min, info.max).astype(self.input_dtype)

    @property
    def has_domain_output(self) -> bool:
        return self._dom is not None

    def scores(self, image: np.ndarray) -> np.ndarray:
        """Two float class scores for one ``size x size x 3`` uint8 RGB image."""
        return self.run(image)[0]

    def run(self, image: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Class scores and the domain score (None without a domain output) from one invoke."""
        self._interp.set_tensor(self._in["index"], self._quantize(image))
        self._interp.invoke()
        raw = self._interp.get_tensor(self._out["index"]).reshape(-1)
        probs = _dequantize(raw, self.output_quant)
        if self._dom is None:
            return probs, None
        return probs, float(_dequantize(self._interp.get_tensor(self._dom["index"]).reshape(-1), self.domain_quant)[0])

    def describe(self) -> dict:
        """What goes next to every timing: model, backend, threads, tensor types."""
        return {
            "model": str(self.path),
            "backend": self.backend.name,
            "backend_version": self.backend.version,
            "num_threads": self.num_threads,
            "resolver": self.resolver,
            "input_dtype": self.input_dtype.name,
            "input_quantization": [self.input_quant.scale, self.input_quant.zero_point],
            "output_quantization": [self.output_quant.scale, self.output_quant.zero_point],
        }


def _dequantize(raw: np.ndarray, q: Quantization) -> np.ndarray:
    return (raw.astype(np.float32) - q.zero_point) * q.scale if q.is_quantized else raw.astype(np.float32)
