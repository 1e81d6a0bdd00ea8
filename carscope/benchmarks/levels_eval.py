"""What `carscope bench levels` measures of one trained classifier: its outputs on every photo set, top-1 and ECE at
the three levels, per slice of the showroom's truth, what serve's rule answers, and how well each unknown-model
score tells photos of cars the catalog holds from cars it does not.

    python -c "from carscope.benchmarks.levels_eval import UNKNOWN_SCORES; print(UNKNOWN_SCORES)"

The level rule, the groups and the metrics are carscope/common/levels.py's, and the two feature scores are
carscope/export/ood.py's: the benchmark measures the code that serves, not a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carscope.export.parity import softmax

# msp: 1 - the top calibrated probability; maxlogit: minus the top logit (Vaze et al., 2022); energy: minus the
# log-sum-exp of the logits (Liu et al., 2020); mahalanobis, knn: export's feature scores (carscope/export/ood.py);
# class_cosine: 1 - cosine similarity to the predicted class's mean training feature (a per-class distance)
UNKNOWN_SCORES = ("msp", "maxlogit", "energy", "mahalanobis", "knn", "class_cosine")
SERVED_SCORES = ("mahalanobis", "knn")  # what a bundle's unknown-model check can use today


@dataclass
class Outputs:
    """A classifier's logits and penultimate features on one set of photos, with the photos' truth."""

    logits: np.ndarray
    features: np.ndarray | None
    targets: np.ndarray | None = None  # class indices (None: photos of cars the classifier does not know)
    truth: list[dict] = field(default_factory=list)  # per photo: pose, framing, part, conditions, ...


# ------------------------------------------------------------------------------------------ outputs
def torch_outputs(model, spec: dict, paths: list[str], shas: list[str], cache_dir: Path, *, device,
                  workers: int, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(logits, features) of a torch classifier on photos, through train's eval cache and normalisation."""
    import torch

    from carscope.common.errors import CarscopeError
    from carscope.export.onnx_export import with_features
    from carscope.train.data import eval_batches, open_cache
    from carscope.train.hardware import true_fp32
    from carscope.train.presets import Normalizer

    ref, ok = open_cache(cache_dir, "eval", spec, paths, shas, workers=workers, desc="decode")
    if not ok.all():
        raise CarscopeError(f"{int((~ok).sum())} photo(s) of {cache_dir.name} do not decode")
    wrapped = with_features(model.to(device).eval())
    norm = Normalizer(spec["mean"], spec["std"], device)
    logits, feats = [], []
    with torch.inference_mode(), true_fp32():
        for _, x, _ in eval_batches(ref, np.zeros(len(paths), np.int64), batch):
            lg, f = wrapped(norm(x.to(device)))
            logits.append(lg.float().cpu().numpy())
            feats.append(f.float().cpu().numpy())
    return np.concatenate(logits), np.concatenate(feats)


def colour_histograms(paths: list[str], bins: int = 8, size: int = 64) -> np.ndarray:
    """Each photo's RGB histogram (bins^3 cells, summing to 1) at `size` px: the trivial baseline's features."""
    from PIL import Image

    out = np.zeros((len(paths), bins ** 3), np.float32)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            a = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)) // (256 // bins)
        idx = (a[..., 0].astype(np.int64) * bins + a[..., 1]) * bins + a[..., 2]
        out[i] = np.bincount(idx.ravel(), minlength=bins ** 3) / idx.size
    return out


def fit_linear(x: np.ndarray, y: np.ndarray, classes: int, *, steps: int = 300, seed: int = 0):
    """A multinomial logistic regression on features (full batch, Adam, weight decay): returns logits(x')."""
    import torch

    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.as_tensor(np.array(y, dtype=np.int64))
    layer = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(layer.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(layer(xt), yt).backward()
        opt.step()

    def logits(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return layer(torch.as_tensor((z - mean) / std, dtype=torch.float32)).numpy()
    return logits


# ------------------------------------------------------------------------------------------ figures
def slice_figures(probs: np.ndarray, targets: np.ndarray, truth: list[dict], h) -> dict[str, dict[str, Any]]:
    """Top-1 at the three levels per slice of the truth: each pose, framing, close-up part and condition."""
    from carscope.common.levels import level_metrics

    keys: dict[str, list[int]] = {}
    for i, t in enumerate(truth):
        for name in (f"pose:{t.get('pose')}", f"framing:{t.get('framing')}",
                     *(f"condition:{c}" for c in (t.get("conditions") or ["none"])),
                     *([f"part:{t['part']}"] if t.get("part") else [])):
            keys.setdefault(name, []).append(i)
    out = {}
    for name in sorted(keys):
        idx = np.array(keys[name])
        m = level_metrics(probs[idx], targets[idx], h)
        out[name] = {"n": int(len(idx)), **{lvl: round(m[lvl]["top1"], 4) for lvl in ("model_year", "model", "make")}}
    return out


def unknown_scores(train: Outputs, sets: dict[str, Outputs], temperature: float) -> dict[str, dict[str, np.ndarray]]:
    """Each UNKNOWN_SCORES score of each set (larger: less like a known model-year)."""
    from carscope.export.ood import fit

    out: dict[str, dict[str, np.ndarray]] = {m: {} for m in UNKNOWN_SCORES}
    have_feats = train.features is not None
    fitted = {}
    if have_feats:
        for m in ("mahalanobis", "knn"):
            fitted[m] = fit(m, train.features, train.targets)
        unit = train.features / np.maximum(np.linalg.norm(train.features, axis=1, keepdims=True), 1e-12)
        means = np.stack([unit[train.targets == c].mean(0) if (train.targets == c).any() else np.zeros(unit.shape[1])
                          for c in range(train.logits.shape[1])])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    for name, o in sets.items():
        lg = np.asarray(o.logits, np.float64)
        out["msp"][name] = 1 - softmax(lg, temperature).max(axis=1)
        out["maxlogit"][name] = -lg.max(axis=1)
        top = lg.max(axis=1, keepdims=True)
        out["energy"][name] = -(np.log(np.exp(lg - top).sum(axis=1)) + top[:, 0])
        if have_feats:
            for m, scorer in fitted.items():
                out[m][name] = np.asarray(scorer.score(o.features), np.float64)
            f = o.features / np.maximum(np.linalg.norm(o.features, axis=1, keepdims=True), 1e-12)
            out["class_cosine"][name] = 1 - (f * means[lg.argmax(axis=1)]).sum(axis=1)
    return {m: v for m, v in out.items() if v}


def unknown_figures(scores: dict[str, dict[str, np.ndarray]], probs: dict[str, np.ndarray], test_targets, h,
                    threshold: float, tpr: float) -> dict[str, Any]:
    """Per score: AUROC of each unknown set against the known test photos, and at the threshold that keeps `tpr`
    of the val photos, the share of each unknown set still answered sure (at any level) and the share of known test
    photos answered sure and right at some level."""
    from carscope.common.levels import answered
    from carscope.export.ood import auroc, threshold_at

    out = {}
    for method, s in scores.items():
        cut = threshold_at(s["val"], tpr)
        row: dict[str, Any] = {"threshold": float(cut)}
        known = answered(probs["test"], test_targets, h, threshold, refused=s["test"] > cut)
        row["known_sure_and_right"] = round(known["sure_and_right"], 4)
        row["known_sure"] = round(known["sure"], 4)
        for name in s:
            if name in ("val", "test"):
                continue
            refused = s[name] > cut
            sure = np.array([not refused[i] and answers(probs[name][i], h, threshold) for i in range(len(refused))])
            row[name] = {"auroc": round(auroc(s["test"], s[name]), 4), "sure": round(float(sure.mean()), 4),
                         "photos": int(len(refused))}
        out[method] = row
    return out


def answers(p: np.ndarray, h, threshold: float) -> bool:
    """Does serve's level rule answer these probabilities at some level?"""
    from carscope.common.levels import decide

    return decide(p, h, threshold).level is not None
