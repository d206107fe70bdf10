"""Near-duplicate groups: candidate pairs, confirmed by cross-correlation, union-find.

BR35H is full of the same slice saved several times: re-encoded, resized, re-windowed, with a
different black border or text overlay, and **mirrored** left-right (augmentation copies). A
random split then puts twins on both sides and the test score measures memory, not
generalisation. Groups are what the ``grouped`` split keeps together.

A pair is a duplicate when the zero-mean, unit-norm 64x64 grayscale thumbnails of the two
images correlate at >= ``min_ncc`` (0.93) (normalised cross-correlation, NCC), in any of four views:
whole image, whole image vs the other one mirrored, brain crop (the paper's crop box, what the
model sees), brain crop vs mirrored brain crop. Candidates for that test come from either

* ``candidates="phash"``: 64-bit DCT pHash at Hamming distance <= ``max_hamming`` (the rule
  ``../shared/README.md`` quotes; with ``use_crop=False, mirrored=False`` it reproduces its
  ~1100 groups), or
* ``candidates="all"`` (default): every pair. Measured on BR35H, pHash misses twins: of the
  pairs with whole-image NCC >= 0.95, a quarter are more than 4 bits apart and some 240 are
  28-34 bits apart (near-symmetric, low-contrast T2 slices whose low DCT coefficients sit at
  the median, so their bits flip). Exhaustive NCC is one (N, 4096) matmul per view: 0.5 s for
  3000 images.

We err on the side of merging (union of all views), since a twin across train and test is
the error that matters; on BR35H no group mixes labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_runtime.config import CropConfig

VIEWS = ("raw", "raw_mirrored", "crop", "crop_mirrored")


@dataclass(frozen=True)
class DedupConfig:
    """Attributes:
        dct_size: side of the grayscale image the pHash DCT runs on (32, as standard pHash).
        max_hamming: pHash candidate pairs differ in at most this many of the 64 bits.
        thumb_size: side of the grayscale thumbnails NCC is computed on.
        min_ncc: a candidate pair is a duplicate when its thumbnails correlate at least this much.
            0.93, not the README's 0.95: re-windowed copies (a gamma-like contrast change, which
            NCC is not invariant to) of the same slice sit at 0.93-0.95. Measured on BR35H: at
            0.95 the grouped split still had test/train crop pairs at 32x32 NCC >= 0.95 and
            crop-pHash <= 4 bits; at 0.93 the closest such pair is 0.89 and none is <= 4 bits.
            At 0.90 a group starts to mix labels (unrelated slices), so 0.93 keeps a margin.
        candidates: ``"all"`` (every pair) or ``"phash"`` (pairs within ``max_hamming``).
        use_crop: also compare the brain crops (twins with different canvas/border/overlay).
        mirrored: also compare each image with the left-right mirror of the other.
    """

    dct_size: int = 32
    max_hamming: int = 4
    thumb_size: int = 64
    min_ncc: float = 0.93
    candidates: str = "all"
    use_crop: bool = True
    mirrored: bool = True

    def __post_init__(self) -> None:
        if self.candidates not in ("all", "phash"):
            raise ValueError(f"candidates must be 'all' or 'phash', got {self.candidates!r}")
        if not -1.0 <= self.min_ncc <= 1.0:
            raise ValueError(f"min_ncc must be in [-1, 1], got {self.min_ncc}")

    @classmethod
    def readme_rule(cls) -> "DedupConfig":
        """The rule ``../shared/README.md`` quotes: raw-image pHash <= 4, NCC >= 0.95."""
        return cls(min_ncc=0.95, candidates="phash", use_crop=False, mirrored=False)

    def views(self) -> list[tuple[str, int, int]]:
        """``(name, view of i, view of j)`` pairs to compare, indices into ``Fingerprint``."""
        out = [("raw", 0, 0)] + [("raw_mirrored", 0, 1)] * self.mirrored
        if self.use_crop:
            out += [("crop", 2, 2)] + [("crop_mirrored", 2, 3)] * self.mirrored
        return out

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Fingerprint:
    """Per image, for the views raw / raw mirrored / crop / crop mirrored (``VIEWS``):
    ``hashes`` (4,) uint64 pHashes and ``thumbs`` (4, thumb_size**2) float32 unit-norm thumbnails."""

    hashes: np.ndarray
    thumbs: np.ndarray


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _resize(gray: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)


def phash(gray: np.ndarray, cfg: DedupConfig = DedupConfig()) -> int:
    """Standard 64-bit DCT pHash: 8x8 low-frequency block of the 2-D DCT, bits = coefficient > median.

    The median is taken without the DC term (the mean brightness would otherwise dominate it).
    """
    import cv2

    d = cv2.dct(_resize(gray, cfg.dct_size))[:8, :8].ravel()
    return int(np.packbits(d > np.median(d[1:])).view(">u8")[0])


def thumbnail(gray: np.ndarray, cfg: DedupConfig = DedupConfig()) -> np.ndarray:
    """Zero-mean, unit-norm thumbnail: the dot product of two of them is their NCC."""
    t = _resize(gray, cfg.thumb_size).ravel()
    t -= t.mean()
    n = float(np.linalg.norm(t))
    return t / n if n > 0 else t


def fingerprint(rgb: np.ndarray, cfg: DedupConfig = DedupConfig(), crop: CropConfig = CropConfig()) -> Fingerprint:
    from .crop_cv import find_box

    gray = _gray(rgb)
    box = find_box(rgb, crop)
    cg = gray[box.top : box.bottom, box.left : box.right]
    views = (gray, gray[:, ::-1], cg, cg[:, ::-1])
    return Fingerprint(
        np.array([phash(v, cfg) for v in views], np.uint64),
        np.stack([thumbnail(v, cfg) for v in views]).astype(np.float32),
    )


def _upper_pairs(score_block, n: int, block: int = 512) -> np.ndarray:
    """Pairs ``i < j`` where ``score_block(rows)`` (a ``(len(rows), n)`` bool array) is True.

    Blocked so memory stays at ``block x n`` (3000 images: 9M pairs per view, < 1 s)."""
    out = [np.zeros((0, 2), np.int64)]
    for start in range(0, n, block):
        i, j = np.nonzero(score_block(slice(start, start + block)))
        i = i + start
        keep = i < j
        out.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(out)


def hamming_pairs(a: np.ndarray, b: np.ndarray, max_dist: int) -> np.ndarray:
    """Pairs ``i < j`` with ``popcount(a_i ^ b_j) <= max_dist`` (uint64 hashes)."""
    a, b = np.asarray(a, np.uint64), np.asarray(b, np.uint64)
    return _upper_pairs(lambda r: np.bitwise_count(a[r, None] ^ b[None, :]) <= max_dist, len(a))


def ncc_pairs(a: np.ndarray, b: np.ndarray, min_ncc: float) -> np.ndarray:
    """Pairs ``i < j`` whose unit-norm thumbnails ``a_i . b_j >= min_ncc``."""
    return _upper_pairs(lambda r: a[r] @ b.T >= min_ncc, len(a))


def confirm(pairs: np.ndarray, a: np.ndarray, b: np.ndarray, min_ncc: float) -> np.ndarray:
    """Keep the candidate pairs whose thumbnails ``a_i . b_j`` correlate at least ``min_ncc``."""
    ncc = np.einsum("ij,ij->i", a[pairs[:, 0]], b[pairs[:, 1]])
    return pairs[ncc >= min_ncc]


def stack_thumbs(fps: Sequence[Fingerprint] | np.ndarray) -> np.ndarray:
    """``(N, 4, thumb_size**2)`` thumbnails of ``fps`` (an array is returned as it is)."""
    if isinstance(fps, np.ndarray):
        return fps
    return np.stack([f.thumbs for f in fps]) if len(fps) else np.zeros((0, len(VIEWS), 0), np.float32)


def best_matches(query: Sequence[Fingerprint] | np.ndarray, reference: Sequence[Fingerprint] | np.ndarray,
                 cfg: DedupConfig = DedupConfig(), block: int = 1024) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """For each query image, its best NCC over every reference image and the views of ``cfg``.

    Either side may be fingerprints or their :func:`stack_thumbs` (stack a large reference set
    once when matching many small query batches against it).

    Returns ``(ncc, index, view)``: ``(Q,)`` float32 best correlation, ``(Q,)`` index of the
    reference image reaching it (-1 when ``reference`` is empty), and the view's name. A query
    is a near-twin of the reference set when ``ncc >= cfg.min_ncc``: the same test
    :func:`find_groups` applies to a pair, but across two sets and always exhaustive (the
    reference set is small enough for one matmul per view, and pHash misses twins).
    """
    nq = len(query)
    best = np.full(nq, -np.inf, np.float32)
    index = np.full(nq, -1, np.int64)
    view = np.full(nq, -1, np.int64)
    if nq == 0 or len(reference) == 0:
        return best, index, [""] * nq
    q_thumbs, r_thumbs = stack_thumbs(query), stack_thumbs(reference)
    views = cfg.views()
    for v, (_, vi, vj) in enumerate(views):
        r = r_thumbs[:, vj]
        for start in range(0, nq, block):
            s = q_thumbs[start:start + block, vi] @ r.T
            j = s.argmax(axis=1)
            val = s[np.arange(len(j)), j]
            better = val > best[start:start + block]
            sl = np.arange(start, start + len(j))[better]
            best[sl], index[sl], view[sl] = val[better], j[better], v
    return best, index, [views[v][0] for v in view]


def union_find(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component root of each of ``n`` items given the edge list ``pairs``."""
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


@dataclass(frozen=True)
class DedupResult:
    """``groups[i]`` is the group of ``paths[i]``; groups are numbered 0.. in the order of their
    first path in natural order, so the numbering is stable for a given set of files."""

    paths: list[str]
    groups: np.ndarray  # (N,) int64
    exact_pairs: list[tuple[str, str]]
    pairs: dict[str, int]  # confirmed pairs per view (a pair found in two views counts in both)

    def members(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for p, g in zip(self.paths, self.groups):
            out.setdefault(int(g), []).append(p)
        return out

    def stats(self, labels: Sequence[str | None] | None = None) -> dict:
        sizes = np.bincount(self.groups)
        s = {
            "images": len(self.paths),
            "groups": int(len(sizes)),
            "singleton_groups": int((sizes == 1).sum()),
            "multi_image_groups": int((sizes > 1).sum()),
            "images_in_multi_image_groups": int(sizes[sizes > 1].sum()),
            "largest_group": int(sizes.max()) if len(sizes) else 0,
            "exact_duplicate_pairs": len(self.exact_pairs),
            "confirmed_pairs_per_view": dict(self.pairs),
        }
        if labels is not None:
            per_group: dict[int, set] = {}
            for g, lab in zip(self.groups, labels):
                per_group.setdefault(int(g), set()).add(lab)
            s["groups_mixing_labels"] = sum(len(v) > 1 for v in per_group.values())
        return s


def find_groups(paths: Sequence[str], fps: Sequence[Fingerprint], sha256: Sequence[str], cfg: DedupConfig = DedupConfig()) -> DedupResult:
    """Group ``paths`` (any order) into near-duplicate groups; see the module docstring."""
    from .scan import natural_key

    if not (len(paths) == len(fps) == len(sha256)):
        raise ValueError(f"paths, fingerprints and sha256 differ in length: {len(paths)}, {len(fps)}, {len(sha256)}")
    order = sorted(range(len(paths)), key=lambda i: natural_key(paths[i]))
    paths = [paths[i] for i in order]
    fps = [fps[i] for i in order]
    sha = [sha256[i] for i in order]

    first_with: dict[str, int] = {}
    exact = []
    for i, h in enumerate(sha):
        if h in first_with:
            exact.append((first_with[h], i))
        else:
            first_with[h] = i
    exact_arr = np.array(exact, dtype=np.int64).reshape(-1, 2)

    hashes = np.stack([f.hashes for f in fps]) if fps else np.zeros((0, 4), np.uint64)
    thumbs = np.stack([f.thumbs for f in fps]) if fps else np.zeros((0, 4, cfg.thumb_size**2), np.float32)
    found = {}
    for name, vi, vj in cfg.views():
        a, b = thumbs[:, vi], thumbs[:, vj]
        if cfg.candidates == "all":
            found[name] = ncc_pairs(a, b, cfg.min_ncc)
        else:
            found[name] = confirm(hamming_pairs(hashes[:, vi], hashes[:, vj], cfg.max_hamming), a, b, cfg.min_ncc)
    roots = union_find(len(paths), np.concatenate([exact_arr, *found.values()]))
    # roots are the smallest index of each component and paths are in natural order, so
    # numbering roots in increasing order numbers groups by their first path.
    _, groups = np.unique(roots, return_inverse=True)
    return DedupResult(
        paths,
        groups.astype(np.int64),
        [(paths[a], paths[b]) for a, b in exact],
        {k: int(len(v)) for k, v in found.items()},
    )


def dedup_folder(root: str | Path, cfg: DedupConfig = DedupConfig(), progress: bool = False):
    """Scan the labelled images of ``root`` (one decode each) and group them.

    Returns ``(ScanResult, DedupResult)``; the scan's issues say whether the groups can be trusted.
    """
    from .scan import scan

    fps: dict[str, Fingerprint] = {}
    result = scan(root, include_pred=False, on_image=lambda rec, rgb: fps.__setitem__(rec.path, fingerprint(rgb, cfg)), progress=progress)
    lab = result.labelled()
    return result, find_groups([r.path for r in lab], [fps[r.path] for r in lab], [r.sha256 for r in lab], cfg)
