"""`carscope train view|model`: train the interior/exterior or the car-model-year classifier from a crawl.

    carscope train view  --data dataset --out runs/view
    carscope train model --data dataset --out runs/model --view-run runs/view --pretrain-all-years
    torchrun --nproc-per-node 2 -m carscope train model --data dataset --out runs/model   # DDP
    carscope train model --data dataset --out runs/model --resume                         # continue a run

Writes the run directory of carscope/train/checkpoint.py (best.pt/last.pt, splits.parquet, metrics.jsonl, report.json,
report.md, curves.png, confusion.png, config.json). The same options work from Python:
`train.train({"task": "view", "data": ..., "out": ...})`.
"""

from __future__ import annotations

import argparse

from carscope.train.models import ARCHS, CPU_DEFAULT_ARCH

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
    g.add_argument("--arch", default=CPU_DEFAULT_ARCH, choices=ARCHS, help="architecture (default: %(default)s)")
    g.add_argument("--img-size", type=int, default=None,
                   help=f"train/eval crop size in px (default: view {TASK_DEFAULTS['view']['img_size']}, "
                        f"model {TASK_DEFAULTS['model']['img_size']})")
    g.add_argument("--crop-pct", type=float, default=1.0,
                   help="eval centre crop / resized shorter side (timm's crop_pct; 1.0 keeps the whole centre "
                        "square: the car reaches the photo's edges; 0.875 is the ImageNet habit)")
    g.add_argument("--weights", default=None, help="local torchvision state dict for the backbone (no downloads)")
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


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train the view or model classifier", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)


def run(args) -> int:
    from carscope.train.engine import main

    main(args)
    return 0
