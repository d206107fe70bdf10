"""Build the out-of-domain image set the domain check is measured on; nothing of it is committed.

    python -m benchmarks.ood_set --out /tmp/ood-eval              # evaluation set (seed 0)
    python -m benchmarks.ood_set --out /tmp/ood-dev --split dev   # method-selection set

Two sources, both reproducible offline:

- images bundled **inside** the scikit-image wheel (``skimage.data`` functions that need no
  download; the images' own terms are in each function's docstring and in :data:`SKIMAGE_IMAGES`:
  mostly public domain and CC0): natural photos, text and documents, microscopy, retinal fundus,
  a CT phantom. They are read at run time, never copied
  into the repository;
- images generated here: rendered text pages and screenshots (Pillow's default font), logos,
  charts, blank / constant / noise / gradient / checkerboard images, and tiny images.

``dev`` holds only generated images, drawn with other seeds and parameters than ``eval``; the
skimage images are all in ``eval``, so nothing a method or threshold is chosen on is scored.
Categories: ``natural``, ``document`` (text, documents, screenshots, logos, charts),
``medical`` (non-MRI medical images), ``synthetic`` (blank, constant, noise, gradient,
pattern), ``tiny`` (a side under 32 px) and ``phantom`` (a CT head phantom: an ellipse of
brain-like intensity; borderline, reported apart). Writes ``CATEGORY/NAME.png`` and ``index.csv``.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CATEGORIES = ("natural", "document", "medical", "synthetic", "tiny", "phantom")

#: (skimage.data function, category, terms as the function's docstring gives them)
SKIMAGE_IMAGES = (
    ("astronaut", "natural", "NASA, public domain"),
    ("camera", "natural", "CC0, Lav Varshney"),
    ("coffee", "natural", "CC0, Rachel Michetti"),
    ("chelsea", "natural", "CC0, Stefan van der Walt"),
    ("rocket", "natural", "NASA, public domain"),
    ("coins", "natural", "Brooklyn Museum, no known copyright restrictions"),
    ("moon", "natural", "public domain"),
    ("hubble_deep_field", "natural", "NASA, public domain"),
    ("gravel", "natural", "CC0, by the scikit-image team"),
    ("grass", "natural", "CC0, by the scikit-image team"),
    ("brick", "natural", "CC0, by the scikit-image team"),
    ("horse", "natural", "CC0, openclipart"),
    ("clock", "natural", "public domain, Stefan van der Walt"),
    ("text", "document", "public domain (Wikipedia)"),
    ("page", "document", "skimage sample (scanned page)"),
    ("logo", "document", "scikit-image logo, BSD-3"),
    ("retina", "medical", "CC0, M. Haggstrom (fundus photograph)"),
    ("microaneurysms", "medical", "CC0, A. Maier (fundus crop with lesions)"),
    ("immunohistochemistry", "medical", "skimage sample (IHC-stained colon tissue)"),
    ("cell", "medical", "skimage sample (quantitative phase microscopy)"),
    ("shepp_logan_phantom", "phantom", "public domain (generated CT phantom)"),
)


@dataclass(frozen=True)
class Item:
    name: str
    category: str
    source: str
    image: np.ndarray  # H x W x 3 uint8


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = ((a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


def skimage_items() -> Iterator[Item]:
    import skimage.data as data

    for name, category, terms in SKIMAGE_IMAGES:
        yield Item(name, category, f"skimage.data.{name} ({terms})", _rgb(getattr(data, name)()))
    faces = data.lfw_subset()  # 200 LFW faces, 25 x 25 float: the portraits
    for i in range(0, 200, 10):
        face = Image.fromarray(_rgb(faces[i])).resize((150, 150), Image.BICUBIC)
        yield Item(f"lfw_face_{i:03d}", "natural", "skimage.data.lfw_subset (Labeled Faces in the Wild)", np.asarray(face))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


_WORDS = ("patient report scan result normal follow up tumour contrast image quality department "
          "invoice total amount date signature page summary table figure method results the of and").split()


def _text_page(rng: np.random.Generator, w: int, h: int, dark: bool) -> np.ndarray:
    bg, fg = ((20, 20, 20), (230, 230, 230)) if dark else ((250, 250, 248), (15, 15, 15))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    size = int(rng.integers(10, 28))
    y = int(rng.integers(5, 30))
    while y < h - size:
        line = " ".join(rng.choice(_WORDS, int(rng.integers(3, 12))))
        d.text((int(rng.integers(5, 40)), y), line, fill=fg, font=_font(size))
        y += int(size * rng.uniform(1.2, 1.8))
    return np.asarray(img)


def _screenshot(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 256, 3)))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, w, 28), fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
    d.text((8, 6), "Viewer - study " + str(int(rng.integers(1000, 9999))), fill=(255, 255, 255), font=_font(14))
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(35, h - 40))
        d.rectangle((x0, y0, x0 + int(rng.integers(40, 200)), y0 + int(rng.integers(20, 80))),
                    fill=tuple(int(v) for v in rng.integers(0, 256, 3)), outline=(0, 0, 0))
        d.text((x0 + 4, y0 + 4), " ".join(rng.choice(_WORDS, 2)), fill=(0, 0, 0), font=_font(12))
    return np.asarray(img)


def _logo(rng: np.random.Generator, s: int) -> np.ndarray:
    img = Image.new("RGB", (s, s), (255, 255, 255) if rng.random() < 0.7 else (0, 0, 0))
    d = ImageDraw.Draw(img)
    c = tuple(int(v) for v in rng.integers(0, 256, 3))
    r = s * rng.uniform(0.2, 0.4)
    d.ellipse((s / 2 - r, s / 2 - r, s / 2 + r, s / 2 + r), fill=c)
    d.text((s * 0.2, s * 0.8), "ACME " + str(int(rng.integers(10, 99))), fill=(90, 90, 90), font=_font(int(s / 10)))
    return np.asarray(img)


def _chart(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    n = int(rng.integers(4, 10))
    for i in range(n):
        bh = int(rng.integers(10, h - 40))
        d.rectangle((20 + i * (w - 40) // n, h - 20 - bh, 20 + (i + 1) * (w - 40) // n - 6, h - 20),
                    fill=tuple(int(v) for v in rng.integers(0, 200, 3)))
    d.line((20, h - 20, w - 10, h - 20), fill=(0, 0, 0), width=2)
    return np.asarray(img)


def generated_items(seed: int) -> Iterator[Item]:
    """Generated images; ``seed`` changes every random choice (dev and eval use different ones)."""
    rng = np.random.default_rng(seed)
    src = f"generated (seed {seed})"
    for i in range(8):
        w, h = int(rng.integers(300, 800)), int(rng.integers(300, 800))
        yield Item(f"text_page_{i}", "document", src, _text_page(rng, w, h, dark=i % 4 == 3))
    for i in range(6):
        yield Item(f"screenshot_{i}", "document", src, _screenshot(rng, int(rng.integers(400, 900)), int(rng.integers(300, 700))))
    for i in range(4):
        yield Item(f"logo_{i}", "document", src, _logo(rng, int(rng.integers(128, 400))))
    for i in range(3):
        yield Item(f"chart_{i}", "document", src, _chart(rng, int(rng.integers(300, 600)), int(rng.integers(200, 500))))
    for v in (0, 255, int(rng.integers(20, 60)), int(rng.integers(60, 200))):
        yield Item(f"constant_{v}", "synthetic", src, np.full((int(rng.integers(100, 600)), int(rng.integers(100, 600)), 3), v, np.uint8))
    for i in range(3):
        s = (int(rng.integers(150, 500)), int(rng.integers(150, 500)))
        yield Item(f"noise_uniform_{i}", "synthetic", src, rng.integers(0, 256, (*s, 3), dtype=np.uint8))
        g = np.clip(rng.normal(rng.uniform(60, 190), rng.uniform(10, 60), s), 0, 255).astype(np.uint8)
        yield Item(f"noise_gauss_gray_{i}", "synthetic", src, _rgb(g))
    for i, kind in enumerate(("horizontal", "vertical", "diagonal", "radial")):
        h, w = int(rng.integers(150, 500)), int(rng.integers(150, 500))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        f = {"horizontal": xx / w, "vertical": yy / h, "diagonal": (xx / w + yy / h) / 2,
             "radial": 1 - np.hypot(yy - h / 2, xx - w / 2) / np.hypot(h / 2, w / 2)}[kind]
        lo, hi = sorted(rng.uniform(0, 255, 2))
        yield Item(f"gradient_{kind}", "synthetic", src, _rgb((lo + (hi - lo) * f).astype(np.uint8)))
    cell = int(rng.integers(8, 40))
    yield Item("checkerboard", "synthetic", src, _rgb(((np.indices((300, 300)) // cell).sum(0) % 2 * 255).astype(np.uint8)))
    for h, w in ((1, 1), (2, 2), (1, 500), (500, 1), (8, 8), (16, 16), (24, 30)):
        yield Item(f"tiny_{h}x{w}", "tiny", src, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def build(split: str = "eval") -> list[Item]:
    if split == "eval":
        return list(skimage_items()) + list(generated_items(seed=0))
    if split == "dev":
        return list(generated_items(seed=1000))
    raise ValueError(f"split must be 'eval' or 'dev', got {split!r}")


def write(items: list[Item], out: str | Path) -> Path:
    out = Path(out)
    rows = []
    for it in items:
        path = out / it.category / f"{it.name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(it.image).save(path)
        rows.append({"path": str(path.relative_to(out)), "category": it.category, "source": it.source,
                     "height": it.image.shape[0], "width": it.image.shape[1]})
    with open(out / "index.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out / "index.csv"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ood_set", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--split", choices=("eval", "dev"), default="eval")
    args = p.parse_args(argv)
    try:
        items = build(args.split)
    except ImportError as exc:
        print(f"error: {exc}; install scikit-image (pip install '.[bench]')", file=__import__("sys").stderr)
        return 2
    index = write(items, args.out)
    counts = {c: sum(i.category == c for i in items) for c in CATEGORIES}
    print(f"{len(items)} images -> {index}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
