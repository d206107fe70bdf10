"""Near-duplicate grouping: pHash, all-pairs helpers, and twins that a raw-image hash misses."""

import io

import numpy as np
import pytest
from PIL import Image

from train.data.dedup import DedupConfig, find_groups, fingerprint, hamming_pairs, ncc_pairs, phash, union_find


def textured_mri(seed: int, size=(200, 170)) -> np.ndarray:
    """A brain-like ellipse filled with a random smooth texture: distinct seeds do not correlate."""
    rng = np.random.default_rng(seed)
    h, w = size
    tex = np.asarray(Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC), float)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - h / 2) / (h * 0.4)) ** 2 + ((xx - w / 2) / (w * 0.33)) ** 2 <= 1
    gray = np.where(inside, tex, 0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def variants() -> dict[str, np.ndarray]:
    a, b, c = textured_mri(1), textured_mri(2), textured_mri(3)
    return {
        "yes/y0.jpg": a,
        "yes/y1.jpg": jpeg(a, 60),  # re-encoded
        "yes/y2.jpg": np.asarray(Image.fromarray(a).resize((260, 300))),  # resized
        "yes/y3.jpg": np.pad(a, ((60, 10), (90, 5), (0, 0))),  # re-canvassed: raw view differs, crop same
        "yes/y4.jpg": a[:, ::-1].copy(),  # mirrored copy
        "no/no0.jpg": b,
        "no/no1.jpg": c,
    }


def group_of(result, path):
    return int(result.groups[result.paths.index(path)])


def test_phash_stable_under_reencoding_and_far_for_other_images():
    a, b = textured_mri(1)[:, :, 0], textured_mri(2)[:, :, 0]
    ha, hb, hj = phash(a), phash(b), phash(jpeg(textured_mri(1), 50)[:, :, 0])
    assert 0 <= ha < 2**64
    assert bin(ha ^ hj).count("1") <= 4
    assert bin(ha ^ hb).count("1") > 10


def test_pair_helpers_match_brute_force():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, 300, dtype=np.uint64)
    h[10] = h[20] ^ np.uint64(0b101)  # distance 2
    got = {tuple(p) for p in hamming_pairs(h, h, 2)}
    brute = {(i, j) for i in range(300) for j in range(i + 1, 300) if bin(int(h[i]) ^ int(h[j])).count("1") <= 2}
    assert got == brute and (10, 20) in got
    t = rng.normal(size=(100, 16)).astype(np.float32)
    t[7] = t[3] + 0.01
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    sims = t @ t.T
    assert {tuple(p) for p in ncc_pairs(t, t, 0.9)} == {(i, j) for i in range(100) for j in range(i + 1, 100) if sims[i, j] >= 0.9}


def test_union_find_components():
    roots = union_find(6, np.array([[4, 5], [0, 2], [2, 4]]))
    assert roots.tolist() == [0, 1, 0, 3, 0, 0]


@pytest.fixture(scope="module")
def fps():
    return {p: fingerprint(rgb) for p, rgb in variants().items()}


def test_default_rule_groups_every_kind_of_twin(fps):
    paths = list(fps)
    result = find_groups(paths, [fps[p] for p in paths], paths)
    twins = {group_of(result, f"yes/y{i}.jpg") for i in range(5)}
    assert len(twins) == 1
    assert len({next(iter(twins)), group_of(result, "no/no0.jpg"), group_of(result, "no/no1.jpg")}) == 3
    # groups are numbered by their first path in natural order: no/no0 -> 0, no/no1 -> 1, yes/y0 -> 2
    assert result.paths[:2] == ["no/no0.jpg", "no/no1.jpg"]
    assert [group_of(result, p) for p in ("no/no0.jpg", "no/no1.jpg", "yes/y0.jpg")] == [0, 1, 2]
    stats = result.stats(["no" if p.startswith("no") else "yes" for p in result.paths])
    assert stats["groups"] == 3 and stats["singleton_groups"] == 2 and stats["images_in_multi_image_groups"] == 5
    assert stats["groups_mixing_labels"] == 0


def test_readme_rule_misses_mirrored_and_recanvassed_twins(fps):
    paths = list(fps)
    result = find_groups(paths, [fps[p] for p in paths], paths, DedupConfig.readme_rule())
    g0 = group_of(result, "yes/y0.jpg")
    assert group_of(result, "yes/y1.jpg") == g0 and group_of(result, "yes/y2.jpg") == g0
    assert group_of(result, "yes/y4.jpg") != g0
    assert group_of(result, "yes/y3.jpg") != g0
    assert set(result.pairs) == {"raw"}


def test_exact_duplicates_are_grouped_even_without_visual_match(fps):
    paths = ["no/no0.jpg", "no/no1.jpg"]
    result = find_groups(paths, [fps[p] for p in paths], ["same", "same"])
    assert result.exact_pairs == [("no/no0.jpg", "no/no1.jpg")]
    assert result.groups.tolist() == [0, 0]


def test_config_and_input_validation(fps):
    with pytest.raises(ValueError, match="candidates"):
        DedupConfig(candidates="bogus")
    with pytest.raises(ValueError, match="differ in length"):
        find_groups(["a", "b"], [fps["yes/y0.jpg"]], ["x", "y"])
