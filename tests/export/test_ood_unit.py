"""The out-of-distribution score's arithmetic (carscope/export/ood.py, carscope/export/bundle.py's OodScorer), without an export:
fast, and what `make mutate` runs against carscope/export/ood.py."""

from __future__ import annotations

import numpy as np
import pytest

from carscope.common.errors import CarscopeError
from carscope.export import ood as oodmod
from carscope.export.bundle import OodScorer


def _clusters(n=300, d=16, classes=3, seed=0, centres=None):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, d)) * 4 if centres is None else centres
    y = rng.integers(0, classes, n)
    return centres[y] + rng.normal(0, 0.5, (n, d)), y, centres


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_in_distribution_scores_lower_than_far_points(method):
    x, y, centres = _clusters()
    scorer = oodmod.fit(method, x, y)
    held, _, _ = _clusters(n=100, seed=1, centres=centres)  # same clusters, new draws
    rng = np.random.default_rng(2)
    far = rng.normal(0, 1, (100, x.shape[1])) * 4  # directions none of the classes has
    s_in, s_out = scorer.score(held), scorer.score(far)
    assert np.median(s_in) < np.median(s_out)
    assert oodmod.auroc(s_in, s_out) > 0.95


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_saved_scorer_scores_the_same(tmp_path, method):
    x, y, _ = _clusters()
    scorer = oodmod.fit(method, x, y)
    scorer.save(tmp_path / "ood.npz")
    again = OodScorer.load(tmp_path / "ood.npz")
    assert again.method == method
    np.testing.assert_allclose(again.score(x[:20]), scorer.score(x[:20]), rtol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        again.score(x[:2, :5])  # the wrong width is an error, not a silent broadcast


def test_knn_bank_is_capped_per_class():
    x, y, _ = _clusters(n=1000)
    scorer = oodmod.fit("knn", x, y, max_bank=100)
    assert len(scorer.bank) <= 100 and scorer.arrays["bank"].dtype == np.float16  # what the bundle stores
    # the k-th neighbour: a bank photo itself scores ~0 with k=1
    assert scorer.score(scorer.bank[:5].astype(np.float32)).max() < 1e-3


def test_threshold_keeps_the_stated_share():
    scores = np.arange(100, dtype=float)
    t = oodmod.threshold_at(scores, 0.95)
    assert (scores <= t).mean() == pytest.approx(0.95)
    assert oodmod.threshold_at(scores, 0.98) == 97
    with pytest.raises(CarscopeError):
        oodmod.threshold_at(scores, 0)
    with pytest.raises(CarscopeError):
        oodmod.threshold_at([], 0.95)


def test_auroc_and_fpr():
    assert oodmod.auroc([0, 1, 2], [3, 4]) == 1.0
    assert oodmod.auroc([3, 4], [0, 1]) == 0.0
    assert oodmod.auroc([1, 1], [1, 1]) == 0.5  # ties count half
    assert oodmod.fpr_at_tpr(np.arange(100), np.array([50, 200, 300]), 0.95) == pytest.approx(1 / 3)


def test_unknown_method_and_too_few_photos():
    with pytest.raises(CarscopeError, match="unknown OOD method"):
        oodmod.fit("cosine", np.ones((5, 3)), np.zeros(5))
    with pytest.raises(CarscopeError, match="at least 2"):
        oodmod.fit("knn", np.ones((1, 3)), np.zeros(1))




def test_mahalanobis_is_the_textbook_distance_under_the_shrunk_covariance():
    """score = min_c (x - mu_c)^T S^-1 (x - mu_c) on L2-normalised x, S the Ledoit-Wolf covariance of the
    class-centred train features: the whitening matrix and the whitened means stored in the bundle give exactly
    the textbook quantity."""
    x, y, _ = _clusters(n=400, d=8, classes=3)
    scorer = oodmod.fit("mahalanobis", x, y)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    mus = np.stack([xn[y == c].mean(axis=0) for c in range(3)])
    cov, shrink = oodmod._ledoit_wolf(xn - mus[y])
    inv = np.linalg.inv(cov)
    q = np.random.default_rng(5).normal(0, 1, (7, 8))
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    want = np.min([np.einsum("ij,jk,ik->i", qn - m, inv, qn - m) for m in mus], axis=0)
    np.testing.assert_allclose(scorer.score(q), want, rtol=2e-3)
    assert float(scorer.arrays["shrinkage"]) == pytest.approx(shrink)


def test_ledoit_wolf_shrinks_more_with_fewer_photos():
    rng = np.random.default_rng(0)
    many, _ = oodmod._ledoit_wolf(rng.normal(0, 1, (5000, 10)) * np.arange(1, 11))
    _, s_many = oodmod._ledoit_wolf(rng.normal(0, 1, (5000, 10)) * np.arange(1, 11))
    cov_few, s_few = oodmod._ledoit_wolf(rng.normal(0, 1, (8, 10)) * np.arange(1, 11))
    assert 0 <= s_many < 0.05 < s_few <= 1
    # with many photos the estimate is the sample covariance: the variances 1..100 come back
    np.testing.assert_allclose(np.diag(many), np.arange(1, 11) ** 2, rtol=0.1, atol=0.5)
    assert np.linalg.eigvalsh(cov_few).min() > 0  # fewer photos than features: still invertible
    assert oodmod._ledoit_wolf(np.zeros((5, 3)))[1] == 1.0  # nothing to go on: all shrinkage


def test_mahalanobis_with_fewer_photos_than_features_stays_finite():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, (6, 32)), np.array([0, 0, 0, 1, 1, 1])
    s = oodmod.fit("mahalanobis", x, y).score(rng.normal(0, 1, (4, 32)))
    assert np.isfinite(s).all() and (s >= 0).all()


def test_knn_uses_the_kth_neighbour_and_a_share_of_every_class():
    x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    q = np.array([[1.0, 0.0]])
    one = oodmod.fit("knn", x, np.array([0, 0, 1]), k=1).score(q)[0]
    two = oodmod.fit("knn", x, np.array([0, 0, 1]), k=2).score(q)[0]
    assert one == pytest.approx(0.0, abs=1e-3) and two == pytest.approx(1 - 0.8, abs=1e-3)
    assert oodmod.fit("knn", x, np.array([0, 0, 1]), k=9).k == 3  # k is capped at the bank
    xs, ys, _ = _clusters(n=600, classes=3)
    ys = np.where(np.arange(600) < 60, 2, np.where(np.arange(600) < 330, 0, 1))  # 60 / 270 / 270 photos
    bank = oodmod.fit("knn", xs, ys, max_bank=60, seed=3).bank
    assert len(bank) == 60
    # every class keeps its share: the small class still has neighbours in the bank
    kept = [sum(np.isclose(np.abs(xs[ys == c] / np.linalg.norm(xs[ys == c], axis=1, keepdims=True)
                                  @ bank.T).max(axis=0), 1, atol=1e-3)) for c in range(3)]
    assert kept[2] >= 4 and kept[0] >= 20 and kept[1] >= 20


def test_figures_per_set():
    x, y, centres = _clusters()
    scorer = oodmod.fit("mahalanobis", x, y)
    held, _, _ = _clusters(n=50, seed=4, centres=centres)
    far = np.random.default_rng(6).normal(0, 1, (30, x.shape[1])) * 4
    t = oodmod.threshold_at(scorer.score(held), 0.9)
    f = oodmod.figures(scorer, t, {"val": held, "test": held, "far": far, "empty": far[:0]})
    assert set(f) == {"val", "test", "far"}  # an empty set is left out
    assert f["test"]["photos"] == 50 and f["test"]["flagged"] == pytest.approx(0.1, abs=0.021)
    assert f["far"]["flagged"] > 0.9 and f["far"]["auroc_vs_test"] > 0.9
    assert "auroc_vs_test" not in f["val"] and "auroc_vs_test" not in f["test"]
    assert f["test"]["median_score"] == pytest.approx(float(np.median(scorer.score(held))))


def test_defaults():
    assert oodmod.DEFAULT_TPR == 0.95 and oodmod.DEFAULT_K == 1 and oodmod.MAX_BANK == 8192
    assert oodmod.threshold_at(np.arange(20.0)) == 18  # DEFAULT_TPR: 19 of 20 at or under


def test_ledoit_wolf_by_hand():
    """Centred rows (1,0), (-1,0), (0,2), (0,-2): S = diag(0.5, 2), mu = 1.25, delta = 0.5625, beta = 0.53125,
    shrinkage 17/18, covariance (1/18) S + (17/18) mu I."""
    cov, shrink = oodmod._ledoit_wolf(np.array([[1.0, 0], [-1, 0], [0, 2], [0, -2]]))
    assert shrink == pytest.approx(17 / 18)
    np.testing.assert_allclose(cov, np.diag([0.5 / 18 + 17 / 18 * 1.25, 2 / 18 + 17 / 18 * 1.25]), atol=1e-12)


def test_edges_of_threshold_auroc_fpr_and_figures():
    scores = np.array([3.0, 1.0, 2.0, 4.0])
    assert oodmod.threshold_at(scores, 1.0) == 4.0  # every photo kept: the largest
    assert np.isnan(oodmod.auroc([], [1.0])) and np.isnan(oodmod.auroc([1.0], []))
    assert oodmod.fpr_at_tpr(scores, np.array([4.0, 5.0]), 1.0) == 0.5  # a tie at the threshold is kept
    assert np.isnan(oodmod.fpr_at_tpr(scores, np.array([]), 0.95))
    x, y, _ = _clusters(n=60)
    scorer = oodmod.fit("knn", x, y)
    top = float(scorer.score(x).max())
    f = oodmod.figures(scorer, top, {"test": x})
    assert f["test"]["flagged"] == 0.0  # at the threshold is not flagged


def test_knn_bank_edges():
    x, y, _ = _clusters(n=50)
    full = oodmod.fit("knn", x, y, max_bank=50)  # exactly the cap: every photo, in order
    np.testing.assert_allclose(full.bank, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-3)
    capped = oodmod.fit("knn", *_clusters(n=500)[:2], max_bank=40)
    assert len(np.unique(capped.arrays["bank"], axis=0)) == len(capped.bank)  # drawn without replacement
    assert oodmod.fit("mahalanobis", x[:2], np.array([0, 1])).dim == x.shape[1]  # two photos are enough


def test_the_tpr_must_be_a_share():
    scores = np.arange(10.0)
    assert oodmod.threshold_at(scores, 1.0) == 9.0
    for bad in (0.0, -0.1, 1.0001, 1.5, 2.0):
        with pytest.raises(CarscopeError, match="--ood-tpr must be in \\(0, 1\\]"):
            oodmod.threshold_at(scores, bad)


def test_a_capped_bank_keeps_every_class_and_no_photo_twice():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 6))
    y = np.repeat(np.arange(10), 3)  # ten classes of 3: a bank of 10 keeps one of each, not 2 of the first five
    bank = oodmod.fit("knn", x, y, max_bank=10).bank
    kept = {int(np.argmin(np.linalg.norm(oodmod._normalise(x) - b, axis=1))) for b in bank.astype(np.float64)}
    assert len(bank) == 10 and {i // 3 for i in kept} == set(range(10))
    # a share near 100% (20 of each 20, then the cap): drawn with replacement, repeats would be certain
    x, y = rng.normal(size=(60, 6)), np.repeat(np.arange(3), 20)
    bank = oodmod.fit("knn", x, y, max_bank=59).arrays["bank"]
    assert len(bank) == 59 and len(np.unique(bank, axis=0)) == 59


def test_ledoit_wolf_shrinkage_is_at_most_one():
    # a covariance almost exactly a multiple of the identity, from 4 spiky photos: the raw estimate of the
    # shrinkage is far above 1 (about 2,500); the covariance used is the identity target, not past it
    x = np.array([[1, 0], [-1, 0], [0, 1.01], [0, -1.01]], float)
    cov, shrink = oodmod._ledoit_wolf(x)
    assert shrink == 1.0
    np.testing.assert_allclose(cov, np.trace(x.T @ x / 4) / 2 * np.eye(2))
