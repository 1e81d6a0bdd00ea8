"""The bundle format written by `carscope export` and read by `carscope serve` (the contract; no torch).

    bundle/
      bundle.json        see below
      view.onnx          interior/exterior classifier
      model.onnx         model-year classifier (fp32); model.int8.onnx / model.fp16.onnx optional
      model.ood.npz      the model classifier's out-of-distribution score (OodScorer's arrays); absent in older bundles
      specs.parquet      the served classes' rows of the dataset's specs.parquet
      specs.json         the same rows as JSON, what serve reads (no pandas); absent in older bundles
      thumbs/<label>/<exterior|interior>_<n>.jpg   a few train-split photos per served class

bundle.json:
    {"format_version": 1, "created_at": ISO-8601, "tools": {"torch": ..., "onnx": ..., "onnxruntime": ...},
     "models": {
        "view":  {"file": "view.onnx", "sha256": ..., "task": "view", "arch": ..., "labels": [...],
                  "input": {"name": "input", "resize", "crop", "interpolation", "mean", "std", "layout",
                            "color", "dtype", "jpeg_draft"},  # the preprocessing spec of carscope/train/checkpoint.py
                  "output": {"name": "logits", "kind": "logits"},
                  "temperature": 1.3,                    # calibrated probs = softmax(logits / temperature)
                  "metrics": {...}, "parity": {...},
                  "variants": {"int8": {"file": ..., "sha256": ..., "metrics": {...}}, "fp16": {...}}},
        "model": {... same keys ...}},
     "thumbs": {"<label>": {"exterior": ["thumbs/..jpg", ...], "interior": [...]}},
     "specs": "specs.parquet"}

What carscope/export/pipeline.py records besides (readers may ignore any of it):
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
    model       "output": {"name": "logits", "kind": "logits", "features": "features"}  # second graph output
                "ood": {"method": "mahalanobis" | "knn", "file": "model.ood.npz", "sha256", "output": "features",
                        "dim", "bytes", "threshold", "tpr", "threshold_split": "val", "fit": {...},
                        "figures": {"val"|"test"|"synthetic": {"photos", "flagged", "median_score", ...}},
                        "compared": {method: {...}}, "parity": {...},
                        "variants": {"int8": {"threshold", "unknown_threshold", "gate": {...}}}}
                        # a score above threshold: unfamiliar; above unknown_threshold ("unknown_tpr" of held-out
                        # photos under it; absent in older bundles): a car, but not a model the bundle knows
                "levels": {"groups": [[model_id, ...], ...], "join", "source": "val", "pairs": [...],
                           "figures": {...}}   # model-years held-out photos cannot tell apart (common/levels.py);
                                               # absent in older bundles: every model-year alone
    view        "labels" may hold a third class, "other": not a car photo (bundles before it have two)
    top level   "source": {"data", ...}, "options": {...}, "export_s"

    python -c "from carscope.export.bundle import load; print(load('bundle').models['model'].labels[:5])"
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError

FORMAT_VERSION = 1
SPECS_JSON = "specs.json"  # the specs rows as JSON, for serve (bundles made before it have specs.parquet only)
BUNDLE_JSON = "bundle.json"
MODEL_KEYS = ("view", "model")
OOD_METHODS = ("mahalanobis", "knn")
OTHER_LABEL = "other"  # the view classifier's "not a car photo" class (bundles made before it have none)


SCORE_CELLS = 4_000_000  # photos x classes (or bank photos) scored at once: 32 MB of float64 distances


class OodScorer:
    """The out-of-distribution score of one photo's features: larger is less like the training photos. The one
    definition: export fits it (carscope/export/ood.py) and records its threshold, serve and the benchmarks score with it.

    knn          arrays "bank" (N x D, L2-normalised train features, float16), "k":
                 score = 1 - the k-th largest cosine similarity to the bank
    mahalanobis  arrays "whiten" (D x D, W = shrunk shared covariance^-1/2), "means_w" (C x D, class means @ W):
                 score = min over classes of |x W - means_w[c]|^2, x L2-normalised
    """

    def __init__(self, method: str, arrays: dict[str, Any]):
        import numpy as np

        if method not in OOD_METHODS:
            raise CarscopeError(f"unknown OOD method '{method}' (this carscope knows {', '.join(OOD_METHODS)})")
        self.method = method
        self.arrays = dict(arrays)
        if method == "knn":
            self.bank = np.asarray(arrays["bank"], dtype=np.float32)
            # D x N, contiguous, made once: x @ bank.T through the transposed view took 7x as long (2 ms a photo
            # with the 8,192-photo bank, the most of a request at 2,100 classes)
            self.bank_t = np.ascontiguousarray(self.bank.T)
            self.k = int(arrays["k"])
            self.dim = self.bank.shape[1]
        else:
            self.whiten = np.ascontiguousarray(arrays["whiten"], dtype=np.float32)
            self.means_w = np.ascontiguousarray(arrays["means_w"], dtype=np.float32)
            self.means_w_t = np.ascontiguousarray(self.means_w.T, dtype=np.float64)  # converted once, not per call
            self.means_sq = (self.means_w.astype(np.float64) ** 2).sum(axis=1)
            self.dim = self.whiten.shape[0]

    def score(self, features) -> Any:
        """float64 scores of an (N, D) batch of features (any float dtype), SCORE_CELLS photos x classes (or bank
        photos) at a time: export scores 19,000 val photos against 19,000 class means, 2.9 GB per float64 array."""
        import numpy as np

        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features of shape {x.shape}; the OOD score expects (N, {self.dim})")
        width = self.bank_t.shape[1] if self.method == "knn" else self.means_w_t.shape[1]
        rows = max(1, SCORE_CELLS // max(1, width))
        if len(x) <= rows:
            return self._score(x)
        return np.concatenate([self._score(x[i:i + rows]) for i in range(0, len(x), rows)])

    def _score(self, x) -> Any:
        import numpy as np

        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if self.method == "knn":
            sims = x @ self.bank_t
            k = min(self.k, sims.shape[1])
            kth = np.partition(sims, sims.shape[1] - k, axis=1)[:, sims.shape[1] - k]
            return 1.0 - kth.astype(np.float64)
        # the D x D product in float32; the distances in float64: |z|^2 - 2 z.m + |m|^2 cancels when the whitened
        # norms are large (a narrow covariance), and in float32 that cost a tiny model's scores 1% against PyTorch
        z = (x @ self.whiten).astype(np.float64)
        d = (z ** 2).sum(axis=1, keepdims=True) - 2.0 * (z @ self.means_w_t) + self.means_sq
        return np.maximum(d.min(axis=1), 0.0)

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(a, "nbytes", 0) for a in self.arrays.values()))

    def save(self, path: str | os.PathLike) -> None:
        import numpy as np

        tmp = Path(str(path) + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, method=np.array(self.method), **self.arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> OodScorer:
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as exc:
            raise CarscopeError(f"the OOD file {Path(path).name} cannot be read ({type(exc).__name__})") from None
        method = str(arrays.pop("method", ""))
        try:
            return cls(method, arrays)
        except KeyError as exc:
            raise CarscopeError(f"the OOD file {Path(path).name} lacks {exc}") from None


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

    @property
    def ood(self) -> dict[str, Any] | None:
        """The model's out-of-distribution check ("ood" in bundle.json), or None for a bundle made without one."""
        return self.meta.get("ood") or None

    def ood_scorer(self) -> OodScorer | None:
        return OodScorer.load(self.root / self.ood["file"]) if self.ood else None

    def ood_threshold(self, variant: str = "fp32") -> float | None:
        """The threshold of the features `variant` returns (int8 has its own, fitted on its own features)."""
        if not self.ood:
            return None
        own = (self.ood.get("variants") or {}).get(variant) or {}
        return float(own.get("threshold", self.ood["threshold"]))

    def unknown_threshold(self, variant: str = "fp32") -> float | None:
        """The OOD score above which a car photo is "a car, but not one I know" (`unknown_model`): the score's
        quantile of held-out photos at `unknown_tpr`, tighter than `threshold`. None: the bundle has no such check
        (made before it, or without an OOD score)."""
        if not self.ood or self.ood.get("unknown_threshold") is None:
            return None
        own = (self.ood.get("variants") or {}).get(variant) or {}
        return float(own.get("unknown_threshold", self.ood["unknown_threshold"]))

    @property
    def levels(self) -> dict[str, Any]:
        """The answer levels ("levels" in bundle.json): the confusable groups of model-years found on held-out
        photos (carscope/common/levels.py); empty for a bundle made before them (every model-year alone)."""
        return self.meta.get("levels") or {}

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
        if variant == "fp32" and self.ood:
            ood_path = self.root / self.ood["file"]
            if not ood_path.is_file():
                raise CarscopeError(f"bundle file {self.ood['file']} is missing")
            if sha256_file(ood_path) != self.ood["sha256"]:
                raise CarscopeError(f"bundle file {self.ood['file']} does not match its sha256 in {BUNDLE_JSON}")


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

    def specs_rows(self) -> list[dict[str, Any]]:
        """The specs table as plain JSON rows: from specs.json without pandas or pyarrow (about 75 MB a serving
        process does not load), from specs.parquet for a bundle made before specs.json."""
        path = self.root / self.meta.get("specs_json", SPECS_JSON)
        if "specs_json" in self.meta and path.is_file():
            return json.loads(path.read_text())
        df = self.specs()
        return [{k: json_value(v) for k, v in row.items()} for row in df.to_dict(orient="records")]

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


def json_value(v: Any) -> Any:
    """A table cell as a plain JSON value: numpy and pandas scalars unwrapped, <NA>/NaN/inf -> None, a Timestamp as
    its ISO string, anything else as its string."""
    if v is None:
        return None
    if hasattr(v, "isoformat"):  # pandas.Timestamp, datetime
        try:
            text = v.isoformat()
        except ValueError:
            return None
        return None if text == "NaT" else text
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # numpy scalars
        try:
            v = v.item()
        except (ValueError, TypeError):
            pass
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, (str, int, float, bool)):
        return v
    try:
        if v != v:  # pandas.NA raises TypeError here
            return None
    except TypeError:
        return None
    return str(v)


def write_meta(meta: dict[str, Any], root: str | os.PathLike) -> None:
    path = Path(root) / BUNDLE_JSON
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
