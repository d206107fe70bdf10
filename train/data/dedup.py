"""Near-duplicate groups: candidate pairs, confirmed by cross-correlation, union-find.

BR35H is full of the same slice saved several times: re-encoded, resized, re-windowed, with a
different black border or text overlay, and **mirrored** left-right (augmentation copies). A
random split then puts twins on both sides and the test score measures memory, not
generalisation. Groups are what the ``grouped`` split keeps together.

A pair is a duplicate when the zero-mean, unit-norm 64x64 grayscale thumbnails of the two
images correlate at >= ``min_ncc`` (0.93) (normalised cross-correlation, NCC), in any of four views:
whole image, whole image vs the other one mirrored, brain crop (the paper's crop box, what the
model sees), brain crop vs mirrored brain crop. Candidates for that test come from either

* ``candidates="phash"``: 64-bit DCT pHash at Hamming distance <= ``max_hamming`` (with
  ``max_hamming=4, min_ncc=0.95, use_crop=False, mirrored=False`` this is the rule BR35H's
  data notes use, under which its 3000 labelled images fall into about 1100 groups), or
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
        """The rule BR35H's data notes use (about 1100 groups): raw-image pHash <= 4, NCC >= 0.95."""
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


def ncc_pairs(a: np.ndarray, b: np.ndarray, min_ncc: float, block: int = 512) -> np.ndarray:
    """Pairs ``i < j`` whose unit-norm thumbnails ``a_i . b_j >= min_ncc``.

    Only the upper triangle is multiplied (half the work of the full (N, N) product; 10 000
    images across two sources are 50M products of 4096 floats per view) and one block of rows
    at a time, so memory stays at ``block x N`` scores (20 MB for 10 000 images) on top of the
    two contiguous (N, 4096) float32 views.
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    out = [np.zeros((0, 2), np.int64)]
    for start in range(0, len(a), block):
        i, j = np.nonzero(a[start : start + block] @ b[start:].T >= min_ncc)
        i, j = i + start, j + start
        keep = i < j
        out.append(np.stack([i[keep], j[keep]], axis=1).astype(np.int64))
    return np.concatenate(out)


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


# --- several sources at once ------------------------------------------------------------------

#: Bump when ``fingerprint`` changes in a way ``DedupConfig``/``CropConfig`` do not capture.
FINGERPRINT_VERSION = "fp-1"
KEY_SEP = ":"


def source_key(source: str, path: str) -> str:
    """The name of an image across sources (``nickparvar:Training/glioma/x.jpg``): paths are only
    unique within a source, groups are computed over all sources together."""
    return f"{source}{KEY_SEP}{path}"


def split_key(key: str) -> tuple[str, str]:
    source, path = key.split(KEY_SEP, 1)
    return source, path


class FingerprintCache:
    """Fingerprints by file sha256, one ``.npz`` per source under ``<cache>/fingerprints/<config key>/``.

    Why: the cross-source report and the manifests need the fingerprints of 10 000 images; the
    decode is cheap next to the crop search and resizes, so a rerun with the same bytes and the
    same configs reuses them. Keyed by content (sha256), never by path, so a changed file is
    fingerprinted again; the scan (decode + ``SHA256SUMS``) still runs every time.
    """

    def __init__(self, cfg: DedupConfig, crop: CropConfig, cache_root: str | Path | None = None) -> None:
        import hashlib
        import json

        from train.paths import cache_dir

        blob = json.dumps([cfg.to_dict(), crop.fingerprint(), FINGERPRINT_VERSION], sort_keys=True).encode()
        self.dir = cache_dir(cache_root) / "fingerprints" / hashlib.sha256(blob).hexdigest()[:16]

    def load(self, source: str) -> dict[str, Fingerprint]:
        path = self.dir / f"{source}.npz"
        if not path.is_file():
            return {}
        with np.load(path) as z:  # each z[...] access decompresses the whole array: read each once
            shas, hashes, thumbs = z["sha256"], z["hashes"], z["thumbs"]
        return {str(h): Fingerprint(hashes[i], thumbs[i]) for i, h in enumerate(shas)}

    def save(self, source: str, fps: dict[str, Fingerprint]) -> Path:
        import os

        self.dir.mkdir(parents=True, exist_ok=True)
        shas = sorted(fps)
        tmp = self.dir / f"{source}.{os.getpid()}.tmp.npz"
        np.savez(
            tmp,
            sha256=np.array(shas),
            hashes=np.stack([fps[h].hashes for h in shas]) if shas else np.zeros((0, 4), np.uint64),
            thumbs=np.stack([fps[h].thumbs for h in shas]) if shas else np.zeros((0, 4, 0), np.float32),
        )
        os.replace(tmp, self.dir / f"{source}.npz")
        return self.dir / f"{source}.npz"


    def groups_path(self, keys: Sequence[str], shas: Sequence[str]) -> Path:
        import hashlib

        blob = "\n".join(f"{k}\0{h}" for k, h in zip(keys, shas)).encode()
        return self.dir / f"groups-{hashlib.sha256(blob).hexdigest()[:20]}.npz"

    def save_groups(self, path: Path, result: DedupResult) -> None:
        import json
        import os

        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, paths=np.array(result.paths), groups=result.groups,
                 exact=np.array(result.exact_pairs, dtype=str).reshape(-1, 2), pairs=np.array(json.dumps(result.pairs)))
        os.replace(tmp, path)

    @staticmethod
    def load_groups(path: Path) -> DedupResult:
        import json

        with np.load(path) as z:
            return DedupResult([str(p) for p in z["paths"]], z["groups"].astype(np.int64),
                               [(str(a), str(b)) for a, b in z["exact"]], json.loads(str(z["pairs"])))


@dataclass(frozen=True)
class SourceScan:
    """One source's scan (records, integrity issues) and the fingerprint of each labelled record."""

    source: str
    root: Path
    scan: "ScanResult"  # noqa: F821 (train.data.scan, imported lazily)
    fingerprints: dict[str, Fingerprint]  # by relative path


def scan_source(
    source: str,
    root: str | Path,
    cfg: DedupConfig = DedupConfig(),
    crop: CropConfig = CropConfig(),
    cache_root: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> SourceScan:
    """Scan ``source``'s labelled folders under ``root`` (integrity against its ``SHA256SUMS``)
    and fingerprint every decodable image, reusing cached fingerprints of identical bytes."""
    from .scan import scan
    from .sources import get_source

    src = get_source(source)
    cache = FingerprintCache(cfg, crop, cache_root) if use_cache else None
    known = cache.load(source) if cache else {}
    by_sha: dict[str, Fingerprint] = {}
    fps: dict[str, Fingerprint] = {}

    def on_image(rec, rgb) -> None:
        fp = known.get(rec.sha256) or by_sha.get(rec.sha256) or fingerprint(rgb, cfg, crop)
        by_sha[rec.sha256] = fps[rec.path] = fp

    result = scan(root, folders=src.scan_folders(), on_image=on_image, progress=progress)
    if cache and set(by_sha) - set(known):
        cache.save(source, {**known, **by_sha})
    return SourceScan(source, Path(root), result, fps)


def find_groups_multi(scans: Sequence[SourceScan], cfg: DedupConfig = DedupConfig(),
                      cache: FingerprintCache | None = None) -> DedupResult:
    """Near-duplicate groups over the labelled images of several sources together.

    The same rule as :func:`find_groups` (it is :func:`find_groups` on the union), with paths
    turned into :func:`source_key` names; group ids are therefore unique across sources and
    numbered by first member in (source, natural path) order, sources in the order given.
    Nickparvar's copies were resized to 224x224 without keeping the aspect ratio; the crop
    views (and the raw views, which are squashed to a square thumbnail anyway) compare the
    same content regardless of that stretch.

    With ``cache`` (the one the fingerprints came from, so its key covers both configs) the
    result is stored next to the fingerprints, keyed by every (source, path, sha256): the
    all-pairs products over 10 000 images take minutes on two cores and a rerun over the same
    bytes gives the same groups.
    """
    keys, fps, shas = [], [], []
    for s in scans:
        for rec in s.scan.labelled():
            keys.append(source_key(s.source, rec.path))
            fps.append(s.fingerprints[rec.path])
            shas.append(rec.sha256)
    if len(set(keys)) != len(keys):
        raise ValueError("a source was given twice")
    stored = cache.groups_path(keys, shas) if cache else None
    if stored is not None and stored.is_file():
        return cache.load_groups(stored)
    # find_groups orders by natural key; keep the sources in the given order ahead of that
    rank = {s.source: i for i, s in enumerate(scans)}
    ordered = sorted(range(len(keys)), key=lambda i: rank[split_key(keys[i])[0]])
    prefixed = [f"{rank[split_key(keys[i])[0]]:02d}{KEY_SEP}{keys[i]}" for i in ordered]
    res = find_groups(prefixed, [fps[i] for i in ordered], [shas[i] for i in ordered], cfg)
    strip = lambda k: k.split(KEY_SEP, 1)[1]  # noqa: E731
    result = DedupResult([strip(k) for k in res.paths], res.groups, [(strip(a), strip(b)) for a, b in res.exact_pairs], res.pairs)
    if stored is not None:
        cache.save_groups(stored, result)
    return result
