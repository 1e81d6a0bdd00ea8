"""What a run writes for people: report.json, report.md (a classification report table), curves.png,
confusion.png. Every file is written to a temp name and renamed.

    python -c "from carscope.train.report import plot_curves; plot_curves('runs/view')"
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"  # one JSON line per epoch, written by the engine as it trains


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(obj: dict[str, Any], path: Path) -> None:
    _atomic_write_text(Path(path), json.dumps(_json_safe(obj), indent=2, default=str) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    p = Path(run_dir) / METRICS_FILE
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def markdown_report(report: dict[str, Any]) -> str:
    """report.md: the headline numbers, the data counts, and a per-class table like sklearn's report."""
    test = report.get("test") or {}
    val = report.get("val") or {}
    lines = [f"# {report['task']} classifier: {report['arch']} at {report['img_size']} px", ""]
    lines += ["| split | n | top-1 | top-5 | loss | ECE before T | ECE after T |", "|---|---|---|---|---|---|---|"]
    for name, m in (("val", val), ("test", test)):
        if m:
            lines.append(f"| {name} | {m['n']} | {m['top1']:.4f} | {m['top5']:.4f} | {m['loss']:.4f} | "
                         f"{m['ece_before']:.4f} | {m['ece_after']:.4f} |")
    leveled = [(name, m["levels"]) for name, m in (("val", val), ("test", test)) if m and m.get("levels")]
    if leveled:
        lines += ["", "At each level (calibrated; model: any of its years; carscope/common/levels.py):", "",
                  "| split | model-year top-1 / ECE | model top-1 / ECE | make top-1 / ECE |", "|---|---|---|---|"]
        for name, lv in leveled:
            lines.append(f"| {name} | " + " | ".join(f"{lv[k]['top1']:.4f} / {lv[k]['ece']:.4f}"
                                                   for k in ("model_year", "model", "make")) + " |")
    best = report.get("best_epoch")
    lines += ["", f"Temperature (fitted on val): {report['temperature']:.4f}. Best epoch (by val top-1): "
              f"{best + 1 if best is not None else '?'} of {report.get('epochs')}. "
              f"Training time: {report.get('train_seconds', 0):.1f} s on {report.get('device')}.", ""]
    data = report.get("data", {})
    if data:
        lines += ["## Data", ""]
        for key, value in data.items():
            lines.append(f"- {key}: {value}")
        lines.append("")
    if test:
        lines += ["## Test split, per class", "", "| class | precision | recall | f1 | support |",
                  "|---|---|---|---|---|"]
        for label, m in test["per_class"].items():
            lines.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
        for name in ("macro_avg", "weighted_avg"):
            m = test[name]
            lines.append(f"| **{name.replace('_', ' ')}** | {m['precision']:.3f} | {m['recall']:.3f} | "
                         f"{m['f1']:.3f} | {m['support']} |")
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, report: dict[str, Any]) -> None:
    run_dir = Path(run_dir)
    write_json(report, run_dir / "report.json")
    _atomic_write_text(run_dir / "report.md", markdown_report(report))


def _savefig(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def plot_curves(run_dir: Path, history: list[dict[str, Any]] | None = None) -> None:
    """curves.png: loss and top-1, train and val, per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    history = history if history is not None else read_metrics(run_dir)
    if not history:
        return
    ep = [h["epoch"] + 1 for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(ep, [h["val_loss"] for h in history], "o-", label="val")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (train: label-smoothed, augmented)")
    ax1.legend()
    ax2.plot(ep, [h["train_top1"] for h in history], "o-", label="train (augmented)")
    ax2.plot(ep, [h["val_top1"] for h in history], "o-", label="val")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("top-1 accuracy")
    ax2.set_ylim(0, 1.02)
    ax2.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    _savefig(fig, run_dir / "curves.png")
    plt.close(fig)


PLOT_CLASSES_MAX = 60  # classes drawn in confusion.png; above, the ones with the most confused photos


def confusion_view(split: dict, labels: list[str], k: int = PLOT_CLASSES_MAX) -> tuple[list[list[int]], list[str], str]:
    """What confusion.png draws for a split of report.json: every class when there are at most `k`; else the `k`
    classes in the most confused pairs (true or predicted), with their diagonal from the per-class recall. Reads the
    dense matrix or, above evaluation.DENSE_CONFUSION_MAX classes, the confused pairs."""
    import numpy as np

    n = len(labels)
    if "confusion" in split and n <= k:
        return split["confusion"], labels, ""
    if "confusion" in split:
        cm = np.asarray(split["confusion"])
        off = cm - np.diag(np.diag(cm))
        ii, jj = np.nonzero(off)
        pairs = sorted(([int(i), int(j), int(off[i, j])] for i, j in zip(ii, jj, strict=True)), key=lambda t: -t[2])
    else:
        pairs = split.get("confusion_pairs", [])
    chosen: list[int] = []
    for t, p, _ in pairs:
        for c in (t, p):
            if c not in chosen and len(chosen) < k:
                chosen.append(c)
    for c in range(n):  # too few confused classes: fill with the first others
        if len(chosen) >= min(k, n):
            break
        if c not in chosen:
            chosen.append(c)
    chosen.sort()
    where = {c: i for i, c in enumerate(chosen)}
    sub = np.zeros((len(chosen), len(chosen)), dtype=np.int64)
    per_class = split.get("per_class", {})
    for c in chosen:
        m = per_class.get(labels[c], {})
        sub[where[c], where[c]] = round(m.get("recall", 0.0) * m.get("support", 0))
    for t, p, count in pairs:
        if t in where and p in where:
            sub[where[t], where[p]] = count
    return sub.tolist(), [labels[c] for c in chosen], f"{len(chosen)} of {n} classes, the most confused"


def plot_confusion(run_dir: Path, confusion: list[list[int]], labels: list[str], title: str = "") -> None:
    """confusion.png, row-normalised (recall on the diagonal). The figure grows with the class count so each
    cell stays ~0.2 inch and every label is legible at 50+ classes; counts are printed when they fit. Give it
    confusion_view's matrix: at 19,000 classes the whole one would be a 4,000-inch figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.asarray(confusion, dtype=float)
    n = len(labels)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = max(5.0, 0.22 * n + 2.5)
    font = 8 if n <= 30 else 6
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=90, fontsize=font)
    ax.set_yticklabels(labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion (row-normalised)")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=font,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    _savefig(fig, Path(run_dir) / "confusion.png")
    plt.close(fig)
