"""The run format written by `carscope train` and read by `carscope export` (the contract).

    runs/<task>/
      last.pt, best.pt   self-describing checkpoints (keys below)
      config.json        the resolved arguments
      splits.parquet     sha256, path, label, split (train/val/test), source
      metrics.jsonl      one line per epoch
      report.json        test metrics, per-class precision/recall/F1/support, calibration
      report.md, curves.png, confusion.png

A checkpoint is a plain dict saved with torch.save and loadable with `weights_only=True` (tensors,
numbers, strings, lists and dicts only: no pickled classes, no numpy arrays):

    format_version  int
    task            "view" | "model"
    arch            factory name (carscope/train/models.py), e.g. "resnet18"
    arch_kwargs     dict passed to the factory besides num_classes (head_hidden, dropout, ...)
    labels          list[str]: index -> label ("exterior"/"interior", or model_ids like 2023_acme_roadster)
    preprocess      the preprocessing spec (below); the one definition train, export and serve all use
    temperature     float, fitted on the validation split; calibrated probs = softmax(logits / T)
    model           state_dict (the EMA weights when EMA was on: what was evaluated is what is saved)
    epoch           last finished epoch (0-based), and optimizer / scheduler / scaler / rng / ema state for --resume
    args            dict of the resolved command-line arguments
    metrics         dict: the epoch's val metrics (best.pt: the best ones), plus test metrics when known

The preprocessing spec (eval/inference; training adds augmentation on top):

    {"resize": 146,              # shorter side resized to this, with Pillow's `interpolation` (antialiased)
     "crop": 128,                # then a centre crop of crop x crop
     "interpolation": "bilinear",  # or "bicubic": the arch's pretrained config (timm archs), models.preprocess_config
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],   # on RGB in [0, 1]
     "layout": "NCHW", "color": "RGB", "dtype": "float32",
     "jpeg_draft": True}         # JPEGs decoded at the smallest 1/2^k scale still >= resize (carscope/imaging.py);
                                 # absent in older checkpoints: decoded at full size
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError

FORMAT_VERSION = 1
TASKS = ("view", "model")
VIEW_LABELS = ["exterior", "interior"]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
REQUIRED_KEYS = ("format_version", "task", "arch", "labels", "preprocess", "temperature", "model")


def make_preprocess_spec(img_size: int, resize_ratio: float = 0.875,
                         config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The eval preprocessing for a model trained at `img_size` (timm's crop_pct convention: resize = img_size /
    resize_ratio). `config` is the arch's carscope/train/models.py `preprocess_config`: its interpolation, mean
    and std, and its resize rounding (timm floors; carscope's own archs round). Without one: bilinear, the
    ImageNet mean and std, rounded, as for every run before timm archs."""
    config = config or {}
    scaled = img_size / resize_ratio
    resize = math.floor(scaled) if config.get("resize_rounding") == "floor" else int(round(scaled))
    return {
        "resize": int(resize),
        "crop": int(img_size),
        "interpolation": str(config.get("interpolation", "bilinear")),
        "mean": [float(v) for v in config.get("mean", IMAGENET_MEAN)],
        "std": [float(v) for v in config.get("std", IMAGENET_STD)],
        "layout": "NCHW",
        "color": "RGB",
        "dtype": "float32",
        "jpeg_draft": True,
    }


def save(state: dict[str, Any], path: str | os.PathLike) -> None:
    """torch.save to a temp file in the same directory, then rename: a kill never leaves half a checkpoint."""
    import torch

    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint lacks {missing}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint; CarscopeError with a one-line reason if it is not one of ours."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CarscopeError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CarscopeError(f"{path} is not a readable carscope checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CarscopeError(f"{path} is not a carscope checkpoint (missing keys)")
    if state["format_version"] > FORMAT_VERSION:
        raise CarscopeError(f"{path} has format {state['format_version']}; this carscope reads up to {FORMAT_VERSION}")
    return state


def find_checkpoint(run_dir: str | os.PathLike, which: str = "best") -> Path:
    """best.pt (or last.pt) of a run directory, with a clear error when the run has none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CarscopeError(f"run directory {run_dir} does not exist")
    for name in (f"{which}.pt", "last.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise CarscopeError(f"run directory {run_dir} has no checkpoint ({which}.pt / last.pt); train it first")


def load_run(run_dir: str | os.PathLike, task: str | None = None, which: str = "best") -> dict[str, Any]:
    """The checkpoint of a run, checked to be of `task` when given."""
    ckpt_path = find_checkpoint(run_dir, which)
    state = load(ckpt_path)
    if task is not None and state["task"] != task:
        raise CarscopeError(f"{run_dir} is a '{state['task']}' run, expected a '{task}' run")
    state["path"] = str(ckpt_path)
    return state


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    p = Path(run_dir) / "config.json"
    return json.loads(p.read_text()) if p.exists() else {}
