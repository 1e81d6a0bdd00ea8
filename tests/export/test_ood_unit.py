"""The out-of-distribution score's arithmetic (export/ood.py, export/bundle.py's OodScorer), without an export:
fast, and what `make mutate` runs against export/ood.py."""

from __future__ import annotations

import numpy as np
import pytest

from carscope.errors import CarscopeError
from export import ood as oodmod
from export.bundle import OodScorer


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


