"""How close two sets of logits are: the numbers a bundle records for every exported graph.

    python -c "import numpy as np; from carscope.export.parity import compare; a = np.eye(3); print(compare(a, a + 1e-6))"
"""

from __future__ import annotations

from typing import Any

import numpy as np

FP32_MAX_REL_ERROR = 1e-3  # fp32 graphs differ from eager PyTorch by kernel order only (~1e-6 relative)
INT8_MAX_DROP_POINTS = 1.0  # int8 may cost at most this much test top-1 (percentage points) without --force
INT8_OOD_MAX_TPR_DROP = 0.03  # int8 may lose at most this much of the test split's in-distribution rate
INT8_OOD_MAX_AUROC_DROP = 0.02  # ... and of the AUROC against the synthetic frames
FP16_MIN_AGREEMENT = 0.99  # fp16 on CUDA must agree with PyTorch fp32 on this share of top-1 answers
_SLACK = 1e-9  # float noise: rates are means over photos, so a drop of exactly a limit must not fail it


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def compare(reference: np.ndarray, candidate: np.ndarray, *, temperature: float = 1.0,
            targets: np.ndarray | None = None) -> dict[str, Any]:
    """max |Δlogit|, relative error (per photo |Δ|∞ / |reference|∞, worst photo), probability error,
    top-1 agreement, and both top-1 accuracies when `targets` are given."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {candidate.shape}")
    n = len(reference)
    diff = np.abs(reference - candidate)
    scale = np.maximum(np.abs(reference).max(axis=1), 1e-12)
    top_ref, top_cand = reference.argmax(axis=1), candidate.argmax(axis=1)
    out: dict[str, Any] = {
        "photos": n,
        "max_abs_logit_diff": float(diff.max()) if n else 0.0,
        "mean_abs_logit_diff": float(diff.mean()) if n else 0.0,
        "max_rel_error": float((diff.max(axis=1) / scale).max()) if n else 0.0,
        "max_abs_prob_diff": float(np.abs(softmax(reference, temperature) - softmax(candidate, temperature)).max())
        if n else 0.0,
        "top1_agreement": float((top_ref == top_cand).mean()) if n else 1.0,
        "top1_disagreements": int((top_ref != top_cand).sum()),
    }
    if targets is not None and n:
        targets = np.asarray(targets)
        out["top1_reference"] = float((top_ref == targets).mean())
        out["top1_candidate"] = float((top_cand == targets).mean())
    return out


def compare_features(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """How close two sets of penultimate features are: max |Δ|, and the worst photo's relative error
    (|Δ|∞ / |reference|∞), the same measure as the logits'."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        raise ValueError(f"feature shapes differ: {reference.shape} vs {candidate.shape}")
    if not len(reference):
        return {"photos": 0, "dim": int(reference.shape[1]) if reference.ndim == 2 else 0,
                "max_abs_diff": 0.0, "max_rel_error": 0.0}
    diff = np.abs(reference - candidate)
    scale = np.maximum(np.abs(reference).max(axis=1), 1e-12)
    return {"photos": int(len(reference)), "dim": int(reference.shape[1]), "max_abs_diff": float(diff.max()),
            "max_rel_error": float((diff.max(axis=1) / scale).max())}


def fp32_passes(p: dict[str, Any], max_rel_error: float | None = None) -> bool:
    """The fp32 parity gate: every top-1 equal and the worst photo's relative error within `max_rel_error`
    (default FP32_MAX_REL_ERROR, read at call time), for the logits and, when the graph returns them, for the
    features (`p["features"]`, from `compare_features`). An export that fails it is not written."""
    limit = FP32_MAX_REL_ERROR if max_rel_error is None else max_rel_error
    feats_ok = "features" not in p or p["features"]["max_rel_error"] <= limit
    return p["top1_agreement"] >= 1.0 and p["max_rel_error"] <= limit and feats_ok


def int8_failures(top1_drop_points: float) -> list[str]:
    """The int8 gate on accuracy: why int8 is refused (empty: it passes). The limits are read at call time."""
    if top1_drop_points > INT8_MAX_DROP_POINTS + _SLACK:
        return [f"top-1 drops {top1_drop_points:.2f} points > {INT8_MAX_DROP_POINTS:g}"]
    return []


def int8_ood_failures(tpr_fp32: float, tpr_int8: float, auroc_fp32: float, auroc_int8: float) -> list[str]:
    """The int8 gate on the OOD score: the test split's in-distribution rate at each graph's own threshold, and
    the AUROC against the synthetic frames, may each drop by at most their limit."""
    failures = []
    if tpr_fp32 - tpr_int8 > INT8_OOD_MAX_TPR_DROP + _SLACK:
        failures.append(f"OOD in-distribution rate drops {tpr_fp32:.1%} -> {tpr_int8:.1%}")
    if auroc_fp32 - auroc_int8 > INT8_OOD_MAX_AUROC_DROP + _SLACK:
        failures.append(f"OOD AUROC drops {auroc_fp32:.3f} -> {auroc_int8:.3f}")
    return failures


def fp16_passes(top1_agreement: float) -> bool:
    """The fp16 gate: top-1 agreement with PyTorch fp32 of at least FP16_MIN_AGREEMENT."""
    return top1_agreement >= FP16_MIN_AGREEMENT - _SLACK


def summary(p: dict[str, Any]) -> str:
    """One line for logs and errors."""
    s = (f"{p['photos']} photos, top-1 agreement {p['top1_agreement']:.2%} ({p['top1_disagreements']} differ), "
         f"max |Δlogit| {p['max_abs_logit_diff']:.2e}, max rel. error {p['max_rel_error']:.2e}")
    if "top1_reference" in p:
        s += f", top-1 {p['top1_reference']:.2%} -> {p['top1_candidate']:.2%}"
    if "features" in p:
        s += f"; features max rel. error {p['features']['max_rel_error']:.2e}"
    return s
