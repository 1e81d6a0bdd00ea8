"""Fit the out-of-distribution score a bundle carries: how unlike the training photos a photo's features are.

    python -c "import numpy as np; from carscope.export.ood import fit; r = np.random.default_rng(0); \
s = fit('mahalanobis', r.normal(size=(500, 64)), r.integers(0, 5, 500)); print(s.method, s.score(r.normal(size=(3, 64))))"

The features are the model classifier's penultimate activations (the input of its last Linear layer), which the
exported graph returns beside the logits. Two scores, both fitted on the train split:
- `knn`: 1 - cosine similarity to the k-th nearest training photo (features L2-normalised; Sun et al., 2022,
  "Out-of-distribution detection with deep nearest neighbors"). The bank is at most `max_bank` photos, drawn at
  random per class, in float16.
- `mahalanobis`: the smallest squared Mahalanobis distance to a class mean under one shared covariance (Lee et
  al., 2018), on L2-normalised features, the covariance shrunk towards a scaled identity (Ledoit and Wolf, 2004).
  Stored as a whitening matrix W (D x D) and the whitened class means, so a photo costs one D x D product.
The threshold is set on held-out in-distribution photos (the val split) so that a stated share of them (the
true-positive rate, default 95%) scores at or under it. Scoring lives in carscope/export/bundle.py (`OodScorer`), the one
definition serve also uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from carscope.common.errors import CarscopeError
from carscope.export.bundle import OOD_METHODS, OodScorer

DEFAULT_TPR = 0.95
DEFAULT_K = 1
MAX_BANK = 8192  # knn: 8,192 x 2,048 float16 = 32 MiB at the seed's ResNet50 width


def fit(method: str, features: np.ndarray, targets: np.ndarray, *, k: int = DEFAULT_K, max_bank: int = MAX_BANK,
        seed: int = 0) -> OodScorer:
    """The scorer of `method` fitted on train-split `features` (N x D) with class indices `targets`."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise CarscopeError(f"the OOD score needs at least 2 train photos' features (got shape {x.shape})")
    x = _normalise(x)
    targets = np.asarray(targets)
    if method == "knn":
        rng = np.random.default_rng(seed)
        keep = np.arange(len(x))
        if len(x) > max_bank:  # the same share of every class, so that no class loses its neighbours
            keep = np.sort(np.concatenate([
                rng.choice(idx, max(1, round(len(idx) * max_bank / len(x))), replace=False)
                for idx in (np.flatnonzero(targets == c) for c in np.unique(targets))]))[:max_bank]
        arrays = {"bank": x[keep].astype(np.float16), "k": np.array(min(int(k), len(keep)), np.int64)}
    elif method == "mahalanobis":
        classes = np.unique(targets)
        means = np.stack([x[targets == c].mean(axis=0) for c in classes])
        centred = x - means[np.searchsorted(classes, targets)]
        cov, shrink = _ledoit_wolf(centred)
        vals, vecs = np.linalg.eigh(cov)
        vals = np.maximum(vals, max(float(vals.max()), 1e-12) * 1e-6)  # all-zero spread (photos at their means): finite
        whiten = (vecs / np.sqrt(vals)) @ vecs.T  # symmetric: cov^-1/2
        arrays = {"whiten": whiten.astype(np.float32), "means_w": (means @ whiten).astype(np.float32),
                  "shrinkage": np.array(shrink, np.float64)}
    else:
        raise CarscopeError(f"unknown OOD method '{method}' (choose from {', '.join(OOD_METHODS)})")
    return OodScorer(method, arrays)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrinkage of the covariance of centred rows `x`: (covariance, shrinkage in [0, 1])."""
    n, d = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / d
    delta = ((s - mu * np.eye(d)) ** 2).sum() / d
    x2 = x ** 2
    beta = ((x2.T @ x2) / n - s ** 2).sum() / (d * n)
    shrink = float(min(1.0, beta / delta)) if delta > 0 else 1.0
    return (1 - shrink) * s + shrink * mu * np.eye(d), shrink


def threshold_at(scores: np.ndarray, tpr: float = DEFAULT_TPR) -> float:
    """The score at or under which a share `tpr` of in-distribution photos fall."""
    if not 0 < tpr <= 1:
        raise CarscopeError(f"--ood-tpr must be in (0, 1], not {tpr}")
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    if not len(scores):
        raise CarscopeError("no held-out in-distribution photos to set the OOD threshold on")
    return float(scores[min(len(scores) - 1, int(np.ceil(tpr * len(scores))) - 1)])


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """P(an OOD photo scores above an in-distribution one), ties counted half (the Mann-Whitney U)."""
    a, b = np.asarray(in_scores, np.float64), np.asarray(out_scores, np.float64)
    if not len(a) or not len(b):
        return float("nan")
    both = np.concatenate([a, b])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    _, inv, counts = np.unique(both, return_inverse=True, return_counts=True)  # average ranks of ties
    sums = np.bincount(inv, ranks)
    ranks = (sums / counts)[inv]
    u = ranks[len(a):].sum() - len(b) * (len(b) + 1) / 2
    return float(u / (len(a) * len(b)))


def fpr_at_tpr(in_scores: np.ndarray, out_scores: np.ndarray, tpr: float = DEFAULT_TPR) -> float:
    """The share of OOD photos at or under the threshold that keeps `tpr` of in-distribution ones."""
    t = threshold_at(in_scores, tpr)
    return float((np.asarray(out_scores) <= t).mean()) if len(out_scores) else float("nan")


def figures(scorer: OodScorer, threshold: float, sets: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per set of features: photos, share flagged (score > threshold), median score; AUROC of each
    out-of-distribution set against `sets["test"]` (the held-out in-distribution photos)."""
    scores = {name: scorer.score(f) for name, f in sets.items() if len(f)}
    out: dict[str, Any] = {}
    for name, s in scores.items():
        out[name] = {"photos": int(len(s)), "flagged": float((s > threshold).mean()),
                     "median_score": float(np.median(s))}
        if name not in ("val", "test") and "test" in scores:
            out[name]["auroc_vs_test"] = round(auroc(scores["test"], s), 4)
    return out
