"""`carscope bench accuracy`: a bundle's accuracy through onnxruntime on its runs' test split, per variant.

    carscope bench accuracy --bundle demo-work/bundle --data demo-work/dataset --out benchmarks/results/mine

For each model of the bundle (model-year and view) and each variant that runs here (fp32, int8; fp16 where
CUDA is lent): top-1, top-5, a per-class precision/recall/F1 report and a confusion-matrix PNG. The test split
is the one recorded in bundle.json (the run's splits.parquet, checked against its sha256), or --splits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def add_arguments(p) -> None:
    p.add_argument("--bundle", required=True, help="bundle directory (carscope export)")
    p.add_argument("--data", default=None, help="dataset the runs were trained on (default: recorded in the bundle)")
    p.add_argument("--splits", default=None, help="the model run's splits.parquet (default: recorded in the bundle)")
    p.add_argument("--view-splits", default=None, help="the view run's splits.parquet (default: recorded)")
    p.add_argument("--model-run", default=None, help="take the model run's splits from this run directory")
    p.add_argument("--view-run", default=None, help="take the view run's splits from this run directory")
    p.add_argument("--max-photos", type=int, default=None, help="evaluate at most this many test photos per model")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    from carscope.crawler.dataset import load as load_dataset
    from carscope.export.bundle import load as load_bundle

    bundle = load_bundle(args.bundle)  # verifies every file's sha256: a tampered bundle stops here
    data = args.data or bundle.meta.get("source", {}).get("data")
    if not data:
        from carscope.common.errors import CarscopeError

        raise CarscopeError("the bundle records no dataset; pass --data")
    dataset = load_dataset(data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"bundle": str(Path(args.bundle).resolve()), "data": str(dataset.root), "models": {}}
    md = [f"## accuracy: {args.bundle} on {dataset.root} (test split, onnxruntime)", "",
          "| model | variant | provider | photos | top-1 | top-5 | macro F1 |", "|---|---|---|---:|---:|---:|---:|"]
    from carscope.export.photos import SPLITS_FILE

    overrides = {"model": args.splits or (args.model_run and str(Path(args.model_run) / SPLITS_FILE)),
                 "view": args.view_splits or (args.view_run and str(Path(args.view_run) / SPLITS_FILE))}
    for key, override in overrides.items():
        res = _evaluate_model(bundle.models[key], key, dataset, override, args, out_dir)
        result["models"][key] = res
        for variant, r in res.get("variants", {}).items():
            if "skipped" in r:
                md.append(f"| {key} | {variant} | - | - | {r['skipped']} | | |")
                continue
            top5 = f"{r['top5']:.2%}" if r["top5_k"] == 5 else f"n/a ({r['top5_k']} classes)"
            md.append(f"| {key} | {variant} | {r['provider'].replace('ExecutionProvider', '')} | {r['photos']} | "
                      f"{r['top1']:.2%} | {top5} | {r['macro_f1']:.3f} |")
        if res.get("note"):
            md.append(f"\n{key}: {res['note']}\n")
    levels = [(v, r["levels"]) for v, r in result["models"]["model"].get("variants", {}).items() if "levels" in r]
    if levels:
        md += ["", "Model classifier at each level (calibrated; model: any of its years; answered: serve's rule at "
               f"confidence {levels[0][1]['min_confidence']:.0%} with the bundle's {levels[0][1]['groups']} group(s) "
               "of model-years it cannot tell apart):", "",
               "| variant | model-year top-1 / ECE | model top-1 / ECE | make top-1 / ECE | answered | right at its level |",
               "|---|---:|---:|---:|---:|---:|"]
        for variant, lv in levels:
            md.append(f"| {variant} | " + " | ".join(f"{lv[k]['top1']:.2%} / {lv[k]['ece']:.3f}"
                                                     for k in ("model_year", "model", "make")) +
                      f" | {lv['answered']['sure']:.1%} | {lv['answered']['sure_and_right']:.1%} |")
    return result, "\n".join(md) + "\n"


def _evaluate_model(entry, key: str, dataset, override, args, out_dir: Path) -> dict[str, Any]:
    import numpy as np

    from carscope.common.errors import CarscopeError
    from carscope.export.bundle import sha256_file
    from carscope.export.photos import read_splits, split_photos

    source = entry.meta.get("source", {})
    splits_path = Path(override or source.get("splits", ""))
    note = ""
    if not splits_path.is_file():
        if key == "model":
            raise CarscopeError(f"the model run's splits.parquet ({splits_path or 'not recorded'}) is not there; "
                                f"pass --splits")
        return {"note": f"skipped: splits {splits_path} not found (pass --view-splits)", "variants": {}}
    if source.get("splits_sha256") and sha256_file(splits_path) != source["splits_sha256"]:
        note = f"{splits_path} changed since the export (sha256 differs)"
    test = split_photos(splits_path, dataset, "test", entry.labels, read_splits(splits_path))
    if args.max_photos:
        test = test.iloc[:args.max_photos]
    if test.empty:
        raise CarscopeError(f"no test-split photos of '{key}' found in {dataset.root}")
    targets = test["target"].to_numpy()
    arrays = list(_batches(test["file"].tolist(), entry.input_spec))
    res: dict[str, Any] = {"splits": str(splits_path), "photos": len(test), "note": note, "variants": {}}
    for variant in entry.variants():
        session, provider, why = _session(entry, variant, args.threads)
        if session is None:
            res["variants"][variant] = {"skipped": why}
            continue
        name = session.get_inputs()[0].name
        logits = np.concatenate([session.run(None, {name: a})[0] for a in arrays])
        metrics = _metrics(logits, targets, entry.labels)
        if key == "model":
            metrics["levels"] = _levels(entry, logits, targets, dataset)
        png = out_dir / f"accuracy_{key}_{variant}_confusion.png"
        _confusion_png(metrics.pop("confusion"), entry.labels, png, f"{key} {variant}: top-1 {metrics['top1']:.2%}")
        res["variants"][variant] = {"provider": provider, "photos": len(test), **metrics, "confusion_png": png.name}
    return res


def _levels(entry, logits, targets, dataset) -> dict[str, Any]:
    """Top-1 and ECE at the model-year, model and make level of the calibrated probabilities, and what serve's rule
    answers with the bundle's groups at its default confidence (carscope/common/levels.py)."""
    from carscope.common.levels import Hierarchy, answered, level_metrics
    from carscope.export.parity import softmax
    from carscope.serve.config import ServeConfig

    h = Hierarchy.from_table(entry.labels, dataset.specs, entry.levels.get("groups"))
    probs = softmax(logits, entry.temperature)
    threshold = ServeConfig().min_confidence
    return {**level_metrics(probs, targets, h), "groups": len(h.groups), "min_confidence": threshold,
            "answered": answered(probs, targets, h, threshold)}


def _batches(files, spec):
    """Photos as served: carscope/serve/preprocess.py's numpy/Pillow preprocessing (held to train's by a test)."""
    import numpy as np

    from carscope.export.photos import open_rgb
    from carscope.serve.preprocess import Preprocessor

    pre = Preprocessor(spec)
    for start in range(0, len(files), 32):
        yield np.stack([pre(open_rgb(f, spec)) for f in files[start:start + 32]])


def _session(entry, variant: str, threads):
    from carscope.export.onnx_export import cpu_session

    if variant == "fp16":
        from carscope.export.quantize import cuda_session

        sess, why = cuda_session(entry.path("fp16"))
        return sess, "CUDAExecutionProvider", why and why.replace("not validated: ", "")
    return cpu_session(entry.path(variant), threads=threads or os.cpu_count()), "CPUExecutionProvider", None


def _metrics(logits, targets, labels) -> dict[str, Any]:
    import numpy as np

    n, k = logits.shape
    order = np.argsort(-logits, axis=1)
    top1 = order[:, 0]
    topk = min(5, k)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (targets, top1), 1)
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0
    return {
        "top1": float((top1 == targets).mean()),
        "top5": float((order[:, :topk] == targets[:, None]).any(axis=1).mean()),
        "top5_k": topk,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {labels[i]: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                                  "f1": round(float(f1[i]), 4), "support": int(support[i])} for i in range(k)},
        "confusion": confusion,
    }


def _confusion_png(confusion, labels, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    k = len(labels)
    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=float), where=rows > 0)
    size = min(4 + 0.25 * k, 24)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if k <= 60:  # beyond that the names are unreadable anyway
        ax.set_xticks(range(k), labels, rotation=90, fontsize=6 if k > 20 else 8)
        ax.set_yticks(range(k), labels, fontsize=6 if k > 20 else 8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
