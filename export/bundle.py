"""The bundle format written by `carscope export` and read by `carscope serve` (the contract; no torch).

    bundle/
      bundle.json        see below
      view.onnx          interior/exterior classifier
      model.onnx         model-year classifier (fp32); model.int8.onnx / model.fp16.onnx optional
      specs.parquet      the served classes' rows of the dataset's specs.parquet
      thumbs/<label>/<exterior|interior>_<n>.jpg   a few train-split photos per served class

bundle.json:
    {"format_version": 1, "created_at": ISO-8601, "tools": {"torch": ..., "onnx": ..., "onnxruntime": ...},
     "models": {
        "view":  {"file": "view.onnx", "sha256": ..., "task": "view", "arch": ..., "labels": [...],
                  "input": {"name": "input", "resize", "crop", "interpolation", "mean", "std", "layout",
                            "color", "dtype", "jpeg_draft"},  # the preprocessing spec of train/checkpoint.py
                  "output": {"name": "logits", "kind": "logits"},
                  "temperature": 1.3,                    # calibrated probs = softmax(logits / temperature)
                  "metrics": {...}, "parity": {...},
                  "variants": {"int8": {"file": ..., "sha256": ..., "metrics": {...}}, "fp16": {...}}},
        "model": {... same keys ...}},
     "thumbs": {"<label>": {"exterior": ["thumbs/..jpg", ...], "interior": [...]}},
     "specs": "specs.parquet"}

What export/pipeline.py records besides (readers may ignore any of it):
    per model   "parity": {"photos", "split": "test", "provider", "max_abs_logit_diff", "mean_abs_logit_diff",
                           "max_rel_error", "max_abs_prob_diff", "top1_agreement", "top1_disagreements",
                           "top1_reference", "top1_candidate", "batch1_max_abs_logit_diff"}   # ORT fp32 vs PyTorch
                "export": {"exporter": "dynamo" | "torchscript", "fallback_reason", "opset", "dynamic_batch", ...}
                "graph": {"chosen": "optimise_at_load" | "offline_optimised", "measured": {...}}
                "source": {"run", "checkpoint", "checkpoint_sha256", "splits", "splits_sha256", ...}
                "refused": {"int8": {"reason", "metrics"}}      # a variant asked for but not kept
    int8        "metrics": {"split": "test", "photos", "top1_fp32", "top1_int8", "top1_drop_points",
                            "top1_agreement_vs_fp32", ...}, "quantization": {...}, "forced": bool
    fp16        "validation": {"validated": false, "reason": "not validated: no CUDA"} or the parity numbers
    top level   "source": {"data", ...}, "options": {...}, "export_s"

    python -c "from export.bundle import load; print(load('bundle').models['model'].labels[:5])"
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carscope.errors import CarscopeError

FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
MODEL_KEYS = ("view", "model")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class ModelEntry:
    key: str
    root: Path
    meta: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def input_spec(self) -> dict[str, Any]:
        return dict(self.meta["input"])

    @property
    def temperature(self) -> float:
        return float(self.meta.get("temperature", 1.0))

    def path(self, variant: str = "fp32") -> Path:
        """File of a variant: fp32 (the default), int8 or fp16."""
        return self.root / self._variant(variant)["file"]

    def variants(self) -> list[str]:
        return ["fp32", *self.meta.get("variants", {})]

    def _variant(self, variant: str) -> dict[str, Any]:
        if variant == "fp32":
            return self.meta
        try:
            return self.meta["variants"][variant]
        except KeyError:
            raise CarscopeError(f"bundle has no {variant} variant of '{self.key}' (have: {', '.join(self.variants())})") from None

    def verify(self, variant: str = "fp32") -> None:
        entry = self._variant(variant)
        path = self.root / entry["file"]
        if not path.is_file():
            raise CarscopeError(f"bundle file {entry['file']} is missing")
        if sha256_file(path) != entry["sha256"]:
            raise CarscopeError(f"bundle file {entry['file']} does not match its sha256 in {BUNDLE_JSON} (tampered or corrupt)")


@dataclass
class Bundle:
    root: Path
    meta: dict[str, Any]
    models: dict[str, ModelEntry] = field(default_factory=dict)

    @property
    def specs_path(self) -> Path:
        return self.root / self.meta.get("specs", "specs.parquet")

    def specs(self):
        import pandas as pd

        return pd.read_parquet(self.specs_path) if self.specs_path.exists() else pd.DataFrame()

    def thumbs(self, label: str) -> dict[str, list[str]]:
        return self.meta.get("thumbs", {}).get(label, {})

    def verify(self, variants: tuple[str, ...] = ("fp32",)) -> None:
        for entry in self.models.values():
            for v in variants:
                if v in entry.variants():
                    entry.verify(v)


def load(root: str | os.PathLike, *, verify: bool = True) -> Bundle:
    """Read and check a bundle; CarscopeError with a one-line reason when it is missing, broken or tampered."""
    root = Path(root)
    meta_path = root / BUNDLE_JSON
    if not meta_path.is_file():
        raise CarscopeError(f"{root} is not a carscope bundle ({BUNDLE_JSON} missing; run `carscope export`)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CarscopeError(f"{meta_path} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CarscopeError(f"bundle format {meta['format_version']} is newer than this carscope reads ({FORMAT_VERSION})")
    models = {}
    for key in MODEL_KEYS:
        m = meta.get("models", {}).get(key)
        if not m or not {"file", "sha256", "labels", "input"} <= set(m):
            raise CarscopeError(f"{meta_path} lacks a complete '{key}' model entry")
        models[key] = ModelEntry(key, root, m)
    bundle = Bundle(root=root, meta=meta, models=models)
    if verify:
        bundle.verify(variants=tuple(v for v in ("fp32", "int8", "fp16")))
    return bundle


def write_meta(meta: dict[str, Any], root: str | os.PathLike) -> None:
    path = Path(root) / BUNDLE_JSON
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
