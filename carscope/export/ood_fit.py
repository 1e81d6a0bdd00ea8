"""The export's OOD stage: fit the model classifier's out-of-distribution score on its exported graph's features.

    python -c "from carscope.export.ood_fit import OOD_MAX_FIT_PHOTOS, OOD_SYNTHETIC_FRAMES; \
print(OOD_MAX_FIT_PHOTOS, OOD_SYNTHETIC_FRAMES)"

The features come from onnxruntime fp32, the graph that is served: the train split's to fit on, the val split's to
set the threshold, the test split's and generic synthetic frames' to measure it. `fit_ood` writes the score's
arrays file into the bundle and returns its entry; `OodFit.variant` gives a quantised graph its own threshold and
the figures the int8 gate (carscope/export/parity.py) judges. The scores themselves are carscope/export/ood.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carscope.common.errors import CarscopeError
from carscope.export.bundle import sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from carscope.export.graph import Checked, Graph

OOD_SYNTHETIC_FRAMES = 200  # generic synthetic frames (carscope/train/negatives.py, seeds no training run draws)
OOD_SYNTHETIC_SEED = 1_000_000_007
OOD_MAX_FIT_PHOTOS = 20_000  # train photos the score is fitted on, at most (10x ResNet50's 2,048 features)
# The unknown-model threshold keeps this share of held-out photos of known model-years: a photo of a car the catalog
# does not hold scores like the least typical tenth of known ones (benchmarks/results/*-levels-*: the trade-off)
DEFAULT_UNKNOWN_TPR = 0.90


class OodFit:
    """The fitted OOD score of the model classifier: its bundle entry, and the int8 check against it."""

    def __init__(self, entry: dict[str, Any], scorer, tpr: float, files: dict[str, list[str]], synthetic: list,
                 fp32_scores: dict[str, Any], val_logits=None, unknown_tpr: float | None = None):
        self.entry, self.scorer, self.tpr = entry, scorer, tpr
        self.files, self.synthetic, self.fp32_scores = files, synthetic, fp32_scores
        self.val_logits, self.unknown_tpr = val_logits, unknown_tpr  # the levels stage reuses the val logits

    def variant(self, session, test_features, spec) -> dict[str, Any]:
        """A quantised graph's own threshold (its val features) and its figures against fp32's."""
        import numpy as np

        from carscope.export import parity
        from carscope.export.onnx_export import run_all
        from carscope.export.ood import auroc, threshold_at
        from carscope.export.photos import batches, image_batches

        val = self.scorer.score(run_all(session, batches(self.files["val"], spec))[1])
        test = self.scorer.score(test_features)
        syn = self.scorer.score(run_all(session, image_batches(self.synthetic, spec))[1])
        threshold = threshold_at(val, self.tpr)
        unknown = threshold_at(val, self.unknown_tpr) if self.unknown_tpr else None
        ref = self.fp32_scores
        tpr_ref, tpr_q = float((ref["test"] <= ref["threshold"]).mean()), float((test <= threshold).mean())
        au_ref, au_q = auroc(ref["test"], ref["synthetic"]), auroc(test, syn)
        agree = float(np.mean(np.concatenate([(test > threshold) == (ref["test"] > ref["threshold"]),
                                              (syn > threshold) == (ref["synthetic"] > ref["threshold"])])))
        failures = parity.int8_ood_failures(tpr_ref, tpr_q, au_ref, au_q)
        gate = {"test_tpr_fp32": round(tpr_ref, 4), "test_tpr": round(tpr_q, 4),
                "auroc_synthetic_fp32": round(au_ref, 4), "auroc_synthetic": round(au_q, 4),
                "decision_agreement_vs_fp32": round(agree, 4), "failures": failures,
                "line": (f"in-distribution kept {tpr_ref:.1%} fp32 -> {tpr_q:.1%} int8, AUROC vs synthetic "
                         f"{au_ref:.3f} -> {au_q:.3f}, decisions agree with fp32 on {agree:.1%}")}
        return {"threshold": threshold, "gate": gate,
                **({"unknown_threshold": unknown} if unknown is not None else {})}


def fit_ood(graph: Graph, checked: Checked, photos: dict, tmp: Path, *, method: str, tpr: float,
            log: Callable[[str], Any], unknown_tpr: float | None = DEFAULT_UNKNOWN_TPR) -> OodFit:
    """Fit the OOD score(s) on the train split's fp32 ONNX features, set the threshold on the val split (the
    test split when there is no val), measure on the test split and synthetic frames; write the arrays file.

    `photos` holds the run's "train", "val" and "test" splits; `method` is "auto" (the better of the two) or one
    of carscope/export/ood.py's. `unknown_tpr` sets the second, tighter threshold: a car photo scoring above it
    is answered "a car, but not one I know" (None: no such check)."""
    import numpy as np

    from carscope.export import ood as oodmod
    from carscope.export.onnx_export import median_ms, run_all
    from carscope.export.photos import batches, image_batches
    from carscope.train.negatives import draw_negative

    key, spec, session = graph.key, graph.spec, checked.session
    eager_test, fp32_test = checked.eager_features, checked.fp32_features
    train = photos["train"]
    if train.empty:
        raise CarscopeError("the model run has no train-split photos in the dataset to fit the OOD score on")
    if len(train) > OOD_MAX_FIT_PHOTOS:  # the same share of every class: the seed's 200,000 would take hours on a CPU
        share = OOD_MAX_FIT_PHOTOS / len(train)
        keep = [i for _, g in train.groupby("target")
                for i in g.sample(n=min(len(g), max(2, round(len(g) * share))), random_state=0).index]
        train = train.loc[sorted(keep)].reset_index(drop=True)
    val = photos["val"] if len(photos["val"]) else photos["test"]
    files = {"train": train["file"].tolist(), "val": val["file"].tolist()}
    t0 = time.perf_counter()
    train_f = run_all(session, batches(files["train"], spec))[1]
    val_logits, val_f = run_all(session, batches(files["val"], spec))
    synthetic = [draw_negative(OOD_SYNTHETIC_SEED + i, int(spec["resize"])) for i in range(OOD_SYNTHETIC_FRAMES)]
    syn_f = run_all(session, image_batches(synthetic, spec))[1]
    sets = {"val": val_f, "test": fp32_test, "synthetic": syn_f}
    compared: dict[str, Any] = {}
    fitted = {}
    for m in (("mahalanobis", "knn") if method == "auto" else (method,)):
        scorer = oodmod.fit(m, train_f, train["target"].to_numpy())
        val_s = scorer.score(val_f)
        threshold = oodmod.threshold_at(val_s, tpr)
        test_s, syn_s = scorer.score(fp32_test), scorer.score(syn_f)
        compared[m] = {"threshold": threshold, "test_tpr": round(float((test_s <= threshold).mean()), 4),
                       "auroc_synthetic": round(oodmod.auroc(test_s, syn_s), 4),
                       "fpr95_synthetic": round(oodmod.fpr_at_tpr(test_s, syn_s, 0.95), 4),
                       "bytes": scorer.nbytes}
        fitted[m] = (scorer, threshold, val_s)
    # auto: the higher AUROC against the synthetic frames; within 0.005 Mahalanobis, whose cost does not grow
    # with the training set (knn's bank does)
    chosen = max(compared, key=lambda m: (compared[m]["auroc_synthetic"] + (0.005 if m == "mahalanobis" else 0)))
    scorer, threshold, val_s = fitted[chosen]
    fname = f"{key}.ood.npz"
    scorer.save(tmp / fname)
    test_s = scorer.score(fp32_test)
    eager_s = scorer.score(eager_test)
    x1 = fp32_test[:1]
    entry = {
        "method": chosen, "file": fname, "sha256": sha256_file(tmp / fname), "output": "features",
        "dim": int(train_f.shape[1]), "bytes": scorer.nbytes, "threshold": threshold, "tpr": tpr,
        **({"unknown_threshold": oodmod.threshold_at(val_s, unknown_tpr), "unknown_tpr": unknown_tpr}
           if unknown_tpr else {}),
        "fit": {"split": "train", "photos": int(len(train_f)), "source": "onnxruntime fp32"},
        "threshold_split": "val" if len(photos["val"]) else "test",
        "figures": oodmod.figures(scorer, threshold, sets),
        "compared": compared,
        "parity": {"photos": int(len(test_s)),
                   "max_abs_score_diff": float(np.abs(eager_s - test_s).max()) if len(test_s) else 0.0,
                   "decisions_equal": bool(((eager_s > threshold) == (test_s > threshold)).all())},
        "score_ms_batch1": round(median_ms(lambda: scorer.score(x1), 50), 4),
        "fit_s": round(time.perf_counter() - t0, 2),
    }
    test_rate = entry["figures"]["test"]["flagged"]
    aurocs = ", ".join(f"{m} AUROC {c['auroc_synthetic']:.3f}" for m, c in compared.items())
    log(f"{key}: OOD score {chosen} ({aurocs}"
        f" vs {OOD_SYNTHETIC_FRAMES} synthetic frames): threshold {threshold:.4g} keeps {tpr:.0%} of "
        f"{len(val_f)} val photos; flags {test_rate:.1%} of test photos, "
        f"{entry['figures']['synthetic']['flagged']:.1%} of synthetic frames; {scorer.nbytes / 1e6:.2f} MB, "
        f"{entry['score_ms_batch1']:.3f} ms per photo")
    return OodFit(entry, scorer, tpr, files, synthetic,
                  {"test": test_s, "synthetic": scorer.score(syn_f), "threshold": threshold},
                  val_logits=val_logits if len(photos["val"]) else None, unknown_tpr=unknown_tpr)
