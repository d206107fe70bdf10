"""Balanced epoch draws and scanner augmentation: shares, determinism, identity when off."""

import numpy as np
import pytest

from train.sampling import epoch_order, sample_weights


def test_label_balance_gives_each_class_half():
    y = np.array([0] * 10 + [1] * 90)
    w = sample_weights(y, None, "label")
    assert w[y == 0].sum() == pytest.approx(0.5) and w[y == 1].sum() == pytest.approx(0.5)
    assert np.allclose(w[y == 1], w[y == 1][0])  # uniform within a class


def test_label_source_balance_splits_each_class_between_its_sources():
    y = np.array([1] * 100 + [1] * 10 + [0] * 40)
    src = ["a"] * 100 + ["b"] * 10 + ["a"] * 40
    w = sample_weights(y, src, "label_source")
    assert w[:100].sum() == pytest.approx(0.25) and w[100:110].sum() == pytest.approx(0.25)
    assert w[110:].sum() == pytest.approx(0.5)  # one source in class 0: it carries the whole half


def test_unknown_mode_and_mismatched_sources_are_refused():
    with pytest.raises(ValueError, match="balance must be"):
        sample_weights(np.array([0, 1]), None, "classes")
    with pytest.raises(ValueError, match="sources"):
        sample_weights(np.array([0, 1]), ["a"], "label_source")


def test_epoch_order_is_a_permutation_without_samples_and_a_weighted_draw_with():
    assert sorted(epoch_order(50, seed=3)) == list(range(50))
    y = np.array([0] * 20 + [1] * 980)
    draw = epoch_order(len(y), seed=7, samples=2000, weights=sample_weights(y, None, "label"))
    share = (y[draw] == 0).mean()
    assert 0.45 < share < 0.55  # 20 normals drawn as often as 980 tumours (with repeats)
    assert np.array_equal(draw, epoch_order(len(y), seed=7, samples=2000, weights=sample_weights(y, None, "label")))
    few = epoch_order(1000, seed=1, samples=300)
    assert len(set(few.tolist())) == 300  # enough weighted images: no repeats


@pytest.mark.slow
def test_scanner_augment_changes_intensities_keeps_range_and_is_identity_when_not_training():
    from train.augment import scanner_augment_class

    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    aug = scanner_augment_class()(gamma=0.3, bias_field=0.3, noise=8.0, lowres=1.0, seed=1)
    out = np.asarray(aug(x, training=True))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255
    assert np.abs(out - x).mean() > 1.0
    assert np.array_equal(np.asarray(aug(x, training=False)), x)
    off = scanner_augment_class()(seed=1)
    assert np.allclose(np.asarray(off(x, training=True)), x, atol=1e-3)


@pytest.mark.slow
def test_dataset_follows_an_explicit_order_with_repeats_and_scanner_augment_reproducibly():
    from train.datasets import make_dataset
    from train.presets import get_preset

    aug = get_preset("multi").augment
    x = np.random.default_rng(0).integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
    y = np.array([0, 1] * 3)
    order = np.array([0, 0, 5, 2])
    first = [(np.asarray(a), np.asarray(b)) for a, b in make_dataset(x, y, 3, 5, aug, order=order)]
    again = [(np.asarray(a), np.asarray(b)) for a, b in make_dataset(x, y, 3, 5, aug, order=order)]
    assert [len(b) for _, b in first] == [3, 1]
    assert np.array_equal(np.concatenate([b for _, b in first]).argmax(1), y[order])
    assert all(np.array_equal(a, c) for (a, _), (c, _) in zip(first, again))
