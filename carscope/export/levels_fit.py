"""The export's levels stage: which model-years the model classifier cannot tell apart, from its held-out photos.

    python -c "from carscope.export.levels_fit import fit_levels; help(fit_levels)"

The groups come from the val split's calibrated probabilities through the exported fp32 graph (never from a
catalog's truth): two model-years of one model join when their photos trade enough probability
(carscope/common/levels.py, `confusable_groups`). The figures say what the groups buy on the test split: top-1 at
the model-year, model and make level, and what serve's rule answers at the served threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carscope.common.levels import DEFAULT_JOIN, Hierarchy, answered, confusable_groups_chunked, level_metrics
from carscope.export.parity import softmax

BLOCK_CELLS = 10_000_000  # photos x classes of val probabilities in float64 at once (80 MB)
SERVE_THRESHOLD = 0.5  # serve's --min-confidence default, which the figures are stated at


def fit_levels(session, photos: dict, spec: dict, labels: list[str], dataset, temperature: float, *,
               test_logits, test_targets, val_logits=None, join: float = DEFAULT_JOIN,
               log: Callable[[str], Any] = print) -> dict[str, Any]:
    """The bundle's "levels" entry. `val_logits`: the val split's fp32 logits when an earlier stage has them."""
    import numpy as np

    from carscope.export.onnx_export import run_all
    from carscope.export.photos import batches

    h = Hierarchy.from_table(labels, dataset.specs)
    source = "val" if len(photos["val"]) else "test"
    held = photos[source]
    if val_logits is None or source != "val":
        val_logits = run_all(session, batches(held["file"].tolist(), spec))[0]
    logits, targets = np.asarray(val_logits), held["target"].to_numpy()
    rows = max(1, BLOCK_CELLS // max(1, logits.shape[1]))  # softmaxed a block of rows at a time (19,000 classes)
    groups, found = confusable_groups_chunked(((logits[i:i + rows], targets[i:i + rows])
                                               for i in range(0, len(logits), rows)), h, join, temperature=temperature)
    h.set_groups(groups)
    test_probs = softmax(np.asarray(test_logits), temperature)
    figures = {"test": level_metrics(test_probs, np.asarray(test_targets), h),
               "answered_test": answered(test_probs, np.asarray(test_targets), h, SERVE_THRESHOLD),
               "threshold": SERVE_THRESHOLD}
    grouped = sum(len(g) for g in groups)
    log(f"model: {len(groups)} group(s) of model-years that {len(held)} {source} photos cannot tell apart "
        f"({grouped} of {len(labels)} classes); test top-1 model-year {figures['test']['model_year']['top1']:.1%}, "
        f"model {figures['test']['model']['top1']:.1%}, make {figures['test']['make']['top1']:.1%}; at confidence "
        f"{SERVE_THRESHOLD:.0%} {figures['answered_test']['sure']:.1%} answered, "
        f"{figures['answered_test']['sure_and_right']:.1%} right at their level")
    return {"groups": groups, "join": join, "source": source, "photos": int(len(held)), "pairs": found["pairs"],
            "figures": figures}
