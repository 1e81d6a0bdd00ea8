"""Metrics on logits: top-k, per-class precision/recall/F1, confusion, calibration (temperature, ECE).

    python -c "import torch; from carscope.train.evaluation import fit_temperature; \
print(fit_temperature(torch.randn(100, 5) * 4, torch.randint(0, 5, (100,))))"

Pure functions on CPU tensors (the training loop gathers logits from every rank first), no I/O.
"""

from __future__ import annotations

from typing import Any


def topk_accuracy(logits, targets, k: int) -> float:
    k = min(k, logits.shape[1])
    if len(targets) == 0:
        return float("nan")
    top = logits.topk(k, dim=1).indices
    return float((top == targets[:, None]).any(dim=1).double().mean())


def expected_calibration_error(probs, targets, n_bins: int = 15) -> float:
    """ECE: |accuracy - confidence| averaged over equal-width confidence bins, weighted by bin size."""
    if len(targets) == 0:
        return float("nan")
    conf, pred = probs.max(dim=1)
    return calibration_error(conf, pred == targets, n_bins)


def confidences(logits, temperature: float = 1.0):
    """max softmax(logits / T) per photo, a chunk of rows at a time: never a second photos x classes array."""
    import torch

    rows = max(1, CHUNK_CELLS // max(1, logits.shape[1]))
    return torch.cat([torch.softmax(logits[i:i + rows].float() / temperature, dim=1).amax(dim=1)
                      for i in range(0, len(logits), rows)]) if len(logits) else torch.zeros(0)


def mean_cross_entropy(logits, targets, temperature: float = 1.0) -> float:
    """The mean NLL of softmax(logits / T), a chunk of rows at a time (no photos x classes log-softmax copy)."""
    import torch

    if len(targets) == 0:
        return float("nan")
    rows = max(1, CHUNK_CELLS // max(1, logits.shape[1]))
    total = sum(float(torch.nn.functional.cross_entropy(logits[i:i + rows].float() / temperature,
                                                        targets[i:i + rows], reduction="sum"))
                for i in range(0, len(targets), rows))
    return total / len(targets)


def calibration_error(conf, correct, n_bins: int = 15) -> float:
    """ECE from each photo's confidence and whether its top class was right."""
    import torch

    if len(conf) == 0:
        return float("nan")
    correct = correct.float()
    edges = torch.linspace(0, 1, n_bins + 1)
    ece = torch.zeros(())
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.float().mean() * (conf[inside].mean() - correct[inside].mean()).abs()
    return float(ece)


FIT_CELLS_MAX = 50_000_000  # photos x classes the temperature is fitted on (200 MB of float32)
CHUNK_CELLS = 20_000_000  # photos x classes softmaxed at once when confidences are computed


def fit_temperature(logits, targets, *, max_iter: int = 200, cells_max: int = FIT_CELLS_MAX) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T) on held-out data (Guo et al. 2017).

    Optimised over log T so T stays positive; clamped to [0.05, 20] so a tiny or perfectly separated
    validation set cannot send it to a degenerate extreme. One number needs few photos: past `cells_max` photos x
    classes it is fitted on evenly spaced rows (at least 2,000), not on every one (19,000 val photos x 19,000
    classes are 1.5 GB, and every LBFGS step would copy them several times)."""
    import torch

    logits, targets = logits.detach().float(), targets.detach().long()
    rows = max(2000, cells_max // max(1, logits.shape[1]))
    if len(targets) > rows:
        keep = torch.linspace(0, len(targets) - 1, rows).round().long()
        logits, targets = logits[keep], targets[keep]
    if len(targets) < 2 or not bool(torch.isfinite(logits).all()):  # nothing to fit, or a diverged model's logits
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    try:
        opt.step(closure)
    except RuntimeError:  # the line search overflowed (logits so extreme that no finite T is better)
        return 1.0
    t = float(log_t.detach().exp())
    if not (t == t) or t in (float("inf"),):  # NaN / inf: keep the identity
        return 1.0
    return min(max(t, 0.05), 20.0)


DENSE_CONFUSION_MAX = 200  # classes; above, report.json keeps the confused pairs, never an n x n matrix
CONFUSION_PAIRS_MAX = 5000  # the most frequent confused (true, predicted) pairs kept above DENSE_CONFUSION_MAX


def confusion_matrix(preds, targets, n: int):
    import torch

    cm = torch.zeros(n, n, dtype=torch.long)
    cm.index_put_((targets, preds), torch.ones_like(targets), accumulate=True)
    return cm  # rows: true class, columns: predicted


def confusion_pairs(preds, targets, n: int) -> list[list[int]]:
    """The off-diagonal cells of the confusion matrix that are not zero, as [true, predicted, count], most frequent
    first: O(photos) time and memory at any class count (19,000 classes make a 2.9 GB dense matrix)."""
    import torch

    wrong = preds != targets
    if not bool(wrong.any()):
        return []
    keys, counts = torch.unique(targets[wrong].long() * n + preds[wrong].long(), return_counts=True)
    order = torch.argsort(counts, descending=True, stable=True)
    return [[int(k) // n, int(k) % n, int(c)] for k, c in zip(keys[order].tolist(), counts[order].tolist(), strict=True)]


def classification_report(logits, targets, labels: list[str], temperature: float = 1.0) -> dict[str, Any]:
    """Everything report.json holds about one split: accuracy, top-5, loss, ECE, per-class P/R/F1/support."""
    import torch

    n = len(labels)
    preds = logits.argmax(dim=1)
    targets = targets.long()
    # per-class counts by bincount: linear in the photos, never an n x n matrix (19,000 classes)
    tp = torch.bincount(targets[preds == targets], minlength=n).double()
    support = torch.bincount(targets, minlength=n).double()
    predicted = torch.bincount(preds, minlength=n).double()
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    per_class = {
        label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])}
        for i, label in enumerate(labels)
    }
    present = support > 0
    total = float(support.sum())
    conf_raw, conf_cal = confidences(logits, 1.0), confidences(logits, temperature)
    right = preds == targets
    return {
        "n": int(len(targets)),
        "top1": topk_accuracy(logits, targets, 1),
        "top5": topk_accuracy(logits, targets, 5),
        "loss": mean_cross_entropy(logits, targets),
        "nll_calibrated": mean_cross_entropy(logits, targets, temperature),
        "ece_before": calibration_error(conf_raw, right),
        "ece_after": calibration_error(conf_cal, right),
        "macro_avg": {"precision": float(precision[present].mean()) if present.any() else 0.0,
                      "recall": float(recall[present].mean()) if present.any() else 0.0,
                      "f1": float(f1[present].mean()) if present.any() else 0.0, "support": int(total)},
        "weighted_avg": {"precision": float((precision * support).sum() / max(total, 1)),
                         "recall": float((recall * support).sum() / max(total, 1)),
                         "f1": float((f1 * support).sum() / max(total, 1)), "support": int(total)},
        "per_class": per_class,
        **confusion_fields(preds, targets, n),
    }


def confusion_fields(preds, targets, n: int) -> dict[str, Any]:
    """report.json's confusion: the dense matrix up to DENSE_CONFUSION_MAX classes; above, the most frequent
    confused pairs ([true, predicted, count], at most CONFUSION_PAIRS_MAX) and how many distinct pairs there were."""
    if n <= DENSE_CONFUSION_MAX:
        return {"confusion": confusion_matrix(preds, targets, n).tolist()}
    pairs = confusion_pairs(preds, targets, n)
    return {"confusion_pairs": pairs[:CONFUSION_PAIRS_MAX], "confusion_pairs_total": len(pairs)}


def class_hierarchy(data, labels: list[str]):
    """Each class's make, model and year (carscope/common/levels.py) from the dataset's specs table, read once;
    None when the table names no make and model for any class."""
    from carscope.common.levels import Hierarchy
    from carscope.crawler.dataset import load

    specs = load(data).specs
    if not {"model_id", "make", "model", "year"} <= set(specs.columns) or \
            not specs["model_id"].astype(str).isin(labels).any():
        return None
    return Hierarchy.from_table(labels, specs)


def level_report(h, logits, targets, temperature: float) -> dict[str, Any] | None:
    """Top-1 and ECE at the model-year, model (any of its years) and make level of the calibrated probabilities;
    None without a hierarchy (`class_hierarchy`)."""
    from carscope.common.levels import level_metrics

    if h is None:
        return None
    return level_metrics(logits.float().numpy(), targets.numpy(), h, temperature=temperature)
