"""`carscope bench recipe`: the seed's training recipe against carscope's, from the same pretrained weights, on the
same photos, for the same number of epochs, with the from-scratch baseline beside them.

    carscope bench recipe --out benchmarks/results/mine                  # ~4 min on 2 cores
    carscope bench recipe --data demo-work/dataset --epochs 30 --img-size 128 --out results/recipe

The model-year classifier, trained three ways:
- carscope: `carscope train model --arch efficientnet_lite0 --weights efficientnet_lite0` with train's defaults (the
  head alone for one epoch, then the whole network with the backbone at 0.1x the rate; AdamW, warmup and cosine,
  label smoothing, TrivialAugment; the best epoch on val; temperature fitted on val), run through the real CLI;
- seed: the recipe of the seed's model classifier, as its public repository records it, from the same weights: the
  backbone frozen, one new linear layer on the pooled features, Adam 1e-3, StepLR (30 epochs, x0.5), batch 128, random
  crop + flip + colour jitter, fp32, the last epoch kept, no calibration; evaluated as the seed evaluated, with the same
  random transforms on the test photos (several draws: the figure moves from draw to draw), and with the
  deterministic centre crop, so the recipe and its test-time crop are told apart;
- scratch: `carscope train model --arch cpunet` (the CPU default, no weights), same size and epochs.
The seed's loop runs here, in torch, on the carscope run's own splits.parquet and preprocessing spec: the three see
the same train, val and test photos (checked), and the two pretrained ones start from the same head initialisation.

Photos come from --data, or a showroom (6 makes x 4 models x 2 years; the latest year's 24 model-years are the
classes) written into the work dir. OOD figures are not measured here: `carscope bench ood` needs an exported
bundle, a view run and a model run; run it on a bundle made from either recipe.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from carscope.benchmarks.common import describe_code

ARCH = "efficientnet_lite0"  # timm's, with the installed package's ImageNet weights (carscope/train/weights.py)
WEIGHTS = "efficientnet_lite0"
SCRATCH_ARCH = "cpunet"  # carscope/train/models.py CPU_DEFAULT_ARCH when this was written; named, so figures keep meaning
# The seed's model classifier (seed-facts.md): Adam 1e-3, StepLR(30 epochs, x0.5), batch 128, resize 400 then random
# crop 350 (the spec's resize/crop, 0.875, is the same fraction), flip, colour jitter at train AND test time.
SEED_LR, SEED_STEP_EPOCHS, SEED_GAMMA, SEED_BATCH = 1e-3, 30, 0.5, 128
SEED_JITTER = 0.2  # the seed's strength is not recorded; 0.2 is carscope's own from-scratch default
TEST_DRAW_SEED = 7_000_003  # the random test-time transforms' stream: not one that training draws
RECIPES = ("carscope", "seed", "scratch")


def add_arguments(p) -> None:
    p.add_argument("--data", default=None, help="a dataset (default: write a showroom's into the work dir)")
    p.add_argument("--epochs", type=int, default=20, help="epochs of every recipe (default: %(default)s)")
    p.add_argument("--img-size", type=int, default=96, help="train/eval crop in px (default: %(default)s)")
    p.add_argument("--makes", type=int, default=6, help="the written showroom's makes (default: %(default)s)")
    p.add_argument("--models-per-make", type=int, default=4, help="... models per make (default: %(default)s)")
    p.add_argument("--photos", type=int, default=24,
                   help="... exterior photos per model-year (default: %(default)s)")
    p.add_argument("--test-draws", type=int, default=5,
                   help="passes over the test photos with the seed's random test-time transforms (default: %(default)s)")
    p.add_argument("--carscope-args", default="",
                   help="extra `carscope train` options for carscope's recipe only, e.g. '--ema' (default: none)")
    p.add_argument("--seed", type=int, default=0, help="the runs' --seed (default: %(default)s)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of every recipe (default: train's choice, once, for all three)")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers of every recipe (default: train's, 1 per 2 cores, max 4)")
    p.add_argument("--workdir", default=None, help="keep the dataset and runs here (default: a temp dir, removed)")


def _say(msg: str) -> None:
    print(f"bench recipe: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ photos
def _dataset(args, work: Path) -> tuple[Path, dict[str, Any]]:
    if args.data:
        return Path(args.data), {"source": str(args.data)}
    from carscope.showroom.offline import write_dataset

    config = {"makes": args.makes, "models_per_make": args.models_per_make, "years": (2022, 2023),
              "photos": args.photos, "mixed_fraction": 0.0}  # every gallery tabbed: every photo has its view
    t0 = time.perf_counter()
    root = write_dataset(work / "dataset", width=320, threads=2, **config)
    return root, {"source": "showroom (carscope.showroom.offline.write_dataset, 320 px)", **config,
                  "years": "2022-2023", "write_s": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------ carscope's runs
def _train_cli(key: str, argv: list[str], run_dir: Path, out: Path, say=None) -> dict[str, Any]:
    """`carscope train model ARGV` in its own process: what a user runs. Its report, its curve and its time.
    `say`: the calling benchmark's progress line (default this one's)."""
    from carscope.common.errors import CarscopeError

    cmd = [sys.executable, "-m", "carscope", "train", "model", *argv, "--out", str(run_dir), "--no-progress"]
    (say or _say)(f"{key}: carscope {' '.join(cmd[3:])}")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (out / f"recipe_{key}.log").write_text(proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CarscopeError(f"{key}: carscope train failed (exit {proc.returncode}: {tail}); log in {out / f'recipe_{key}.log'}")
    report = json.loads((run_dir / "report.json").read_text())
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    test = report["test"]
    if not test:
        raise CarscopeError(f"{key}: the run has no test photos (a larger dataset, or --data with more per class)")
    return {"command": "carscope " + " ".join(shlex.quote(a) for a in cmd[3:]),
            "test": {"n": test["n"], "top1": test["top1"], "top5": test["top5"], "ece": test["ece_after"],
                     "ece_uncalibrated": test["ece_before"], "nll": test["nll_calibrated"]},
            "val_top1": report["val"]["top1"], "best_epoch": report["best_epoch"],
            "temperature": report["temperature"], "train_seconds": report["train_seconds"], "wall_s": wall,
            "load": [load, os.getloadavg()[0]],
            "amp": report["amp"], "preprocess": report["preprocess"], "labels": report["labels"],
            "weights": [line.removeprefix("train: ").removeprefix("weights: ") for line in proc.stderr.splitlines()
                        if line.startswith(("train: weights: ", "train: left out: "))],
            "curve": [{"epoch": h["epoch"], "phase": h["phase"], "val_top1": h["val_top1"],
                       "train_loss": h["train_loss"], "elapsed_s": h["elapsed_s"]} for h in history]}


# ------------------------------------------------------------------------------------------ the seed's recipe
def _seed_preset(crop: int):
    """The seed's transform on a uint8 CHW square of the spec's resize: random crop, flip, colour jitter (it used
    the same one on its test set and in its app)."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomCrop(crop), v2.RandomHorizontalFlip(),
                       v2.ColorJitter(SEED_JITTER, SEED_JITTER, SEED_JITTER)])


def _figures(logits, targets) -> dict[str, float]:
    import torch

    from carscope.train.evaluation import expected_calibration_error, topk_accuracy

    return {"n": int(len(targets)), "top1": topk_accuracy(logits, targets, 1), "top5": topk_accuracy(logits, targets, 5),
            "ece": expected_calibration_error(torch.softmax(logits, 1), targets),
            "nll": float(torch.nn.functional.cross_entropy(logits, targets))}


def _logits(model, batches, norm, device):
    """fp32 logits of (uint8 NCHW, targets) batches, as carscope's evaluate computes them."""
    import torch

    from carscope.train.hardware import true_fp32

    model.eval()
    out, ys = [], []
    with torch.inference_mode(), true_fp32():
        for x, y in batches:
            out.append(model(norm(x.to(device))).float().cpu())
            ys.append(y)
    return torch.cat(out), torch.cat(ys)


def _centre(prepared, split: str, batch: int):
    from carscope.train.data import eval_batches

    return ((x, y) for _, x, y in eval_batches(prepared.caches[split], prepared.targets[split], batch))


def _seed(args, data: Path, run_dir: Path, work: Path, device, workers: int, keep: dict | None = None
          ) -> dict[str, Any]:
    """The seed's recipe from the same weights on the carscope run's splits, in its preprocessing spec. `keep`
    (a dict) receives the trained model, its labels and the spec, for a caller that measures more of it."""
    import numpy as np
    import torch

    from carscope.common.errors import CarscopeError
    from carscope.train.data import TrainImages, epoch_sampler, load_prepared, open_cache
    from carscope.train.models import create_model, head_parameters, load_backbone_weights
    from carscope.train.presets import Normalizer
    from carscope.train.recipe import backbone_eval, set_frozen

    t_wall, load = time.perf_counter(), os.getloadavg()[0]
    report = json.loads((run_dir / "report.json").read_text())
    spec = report["preprocess"]  # the carscope run's own: same resize, crop, interpolation, mean and std
    prepared = load_prepared(run_dir, work / "seed-cache", spec, data, workers=workers)
    if prepared.labels != report["labels"]:
        raise CarscopeError("the seed's recipe read other classes from the carscope run's splits")
    labels = prepared.labels
    preset = _seed_preset(spec["crop"])

    torch.manual_seed(args.seed)  # as train does before create_model: the same head initialisation as carscope's
    model = create_model(ARCH, len(labels), dropout=0.0)  # one linear layer on the pooled features
    info = load_backbone_weights(model, WEIGHTS, ARCH)
    set_frozen(model, ARCH, True)
    model.to(device)
    head = head_parameters(model, ARCH)
    optimizer = torch.optim.Adam(head, lr=SEED_LR)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=SEED_STEP_EPOCHS, gamma=SEED_GAMMA)
    criterion = torch.nn.CrossEntropyLoss()
    norm = Normalizer(spec["mean"], spec["std"], device)
    dataset = TrainImages(prepared.caches["train"], prepared.targets["train"], preset, args.seed)
    sampler = epoch_sampler(len(dataset), world=1, rank=0, seed=args.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=SEED_BATCH, sampler=sampler, num_workers=workers,
                                         persistent_workers=workers > 0,
                                         generator=torch.Generator().manual_seed(args.seed))
    curve, steps = [], 0
    t_train = time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        model.train()
        backbone_eval(model, ARCH)  # frozen means its BatchNorm statistics too: a fixed feature extractor
        loss_sum, n = 0.0, 0
        for x, y in loader:
            x, y = norm(x.to(device)), y.to(device)
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum, n, steps = loss_sum + loss.item() * len(y), n + len(y), steps + 1
        scheduler.step()  # per epoch, as StepLR(step_size=30 epochs) is meant
        val_logits, val_y = _logits(model, _centre(prepared, "val", 2 * SEED_BATCH), norm, device)
        curve.append({"epoch": epoch, "phase": "head", "val_top1": _figures(val_logits, val_y)["top1"],
                      "train_loss": loss_sum / max(n, 1), "elapsed_s": time.perf_counter() - t_train})
        _say(f"seed: epoch {epoch + 1}/{args.epochs}: train loss {curve[-1]['train_loss']:.4f} | val top1 "
             f"{curve[-1]['val_top1']:.3f} (centre crop) | lr {optimizer.param_groups[0]['lr']:.2g}")
    train_seconds = time.perf_counter() - t_train

    if keep is not None:
        keep.update(model=model, labels=labels, spec=spec)
    centre = _figures(*_logits(model, _centre(prepared, "test", 2 * SEED_BATCH), norm, device))
    # The test photos as squares of the spec's resize, for the seed's test-time random crop (a cache dir of its own:
    # the train cache's file has the same name)
    test = prepared.table[prepared.table["split"] == "test"]
    ref, ok = open_cache(work / "seed-test-cache", "train", spec, [str(data / p) for p in test["path"]],
                         list(test["sha256"]), workers=workers)
    if not ok.all():
        raise CarscopeError("a test photo no longer decodes")
    targets = prepared.targets["test"]
    draws_ds = TrainImages(ref, targets, preset, TEST_DRAW_SEED)
    draws = []
    for d in range(args.test_draws):
        batches = ((torch.stack([draws_ds[(i, d)][0] for i in range(s, min(s + 2 * SEED_BATCH, len(targets)))]),
                    torch.as_tensor(targets[s:s + 2 * SEED_BATCH], dtype=torch.long))
                   for s in range(0, len(targets), 2 * SEED_BATCH))
        draws.append(_figures(*_logits(model, batches, norm, device)))
    random = {k: float(np.mean([d[k] for d in draws])) for k in ("top1", "top5", "ece", "nll")}
    random.update({"n": centre["n"], "draws": len(draws), "top1_min": min(d["top1"] for d in draws),
                   "top1_max": max(d["top1"] for d in draws), "per_draw": draws})
    return {"recipe": {"arch": ARCH, "weights": WEIGHTS, "trainable": "the linear head only (backbone frozen, "
                       "BatchNorm statistics fixed)", "optimizer": f"Adam lr {SEED_LR:g}",
                       "scheduler": f"StepLR {SEED_STEP_EPOCHS} epochs x{SEED_GAMMA:g}", "batch_size": SEED_BATCH,
                       "augmentation": f"random crop {spec['crop']} of {spec['resize']}, flip, colour jitter "
                                       f"{SEED_JITTER:g}, at train and test time",
                       "precision": "fp32", "kept": "the last epoch", "calibration": "none"},
            "test": random, "test_centre": centre, "train_seconds": train_seconds,
            "wall_s": time.perf_counter() - t_wall, "load": [load, os.getloadavg()[0]], "steps": steps,
            "trainable_params": int(sum(p.numel() for p in head)),
            "weights": [line.removeprefix("weights: ") for line in info["lines"]], "curve": curve}


# ------------------------------------------------------------------------------------------ run
def run(args, out_dir) -> tuple[dict[str, Any], str]:
    import torch

    from carscope.common.errors import CarscopeError
    from carscope.train.hardware import cpu_threads

    if args.epochs < 1 or args.img_size < 16 or args.test_draws < 1:
        raise CarscopeError("--epochs and --test-draws must be >= 1, --img-size >= 16")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CarscopeError("--device cuda but no CUDA GPU is available here")
    if args.data and not Path(args.data).is_dir():
        raise CarscopeError(f"--data {args.data} is not a directory")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    threads = cpu_threads(args, 1, 0)  # decided once: the three recipes run under the same count
    workers = args.workers if args.workers is not None else min(4, max(1, (os.cpu_count() or 2) // 2))
    torch.set_num_threads(threads)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="carscope-bench-recipe-"))
    work.mkdir(parents=True, exist_ok=True)
    t0, code = time.perf_counter(), describe_code()  # the code at the start: what the runs will import
    try:
        data, data_info = _dataset(args, work)
        common = ["--data", str(data), "--img-size", str(args.img_size), "--epochs", str(args.epochs),
                  "--seed", str(args.seed), "--threads", str(threads), "--workers", str(workers),
                  "--device", args.device]
        runs = work / "runs"
        if runs.exists():
            shutil.rmtree(runs)
        recipes: dict[str, Any] = {}
        recipes["carscope"] = _train_cli("carscope", [*common, "--arch", ARCH, "--weights", WEIGHTS,
                                                      *shlex.split(args.carscope_args)], runs / "carscope", out)
        _say("seed: its recipe, from the same weights, on the carscope run's splits")
        recipes["seed"] = _seed(args, data, runs / "carscope", work, device, workers)
        recipes["scratch"] = _train_cli("scratch", [*common, "--arch", SCRATCH_ARCH], runs / "scratch", out)
        same = _same_split(runs / "carscope", runs / "scratch")
        if not same:
            raise CarscopeError("carscope's two runs split the photos differently; the comparison would not hold")
        for key in ("carscope", "scratch"):
            recipes[key].pop("labels")
        n_classes = len(json.loads((runs / "carscope" / "report.json").read_text())["labels"])
        counts = json.loads((runs / "carscope" / "data.json").read_text())
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {
        "code": code, "device": str(device), "torch_threads": threads, "workers": workers,
        "epochs": args.epochs, "img_size": args.img_size, "seed": args.seed, "data": data_info,
        "classes": n_classes, "photos": {s: counts.get(f"{s}_images") for s in ("train", "val", "test")},
        "same_split": same, "recipes": recipes, "total_wall_s": time.perf_counter() - t0,
        "ood": "not measured: `carscope bench ood` needs an exported bundle (a view run and a model run)"}
    _plot(result, out)
    return result, _markdown(result)


def _same_split(a: Path, b: Path) -> bool:
    import pandas as pd

    def split(run: Path):
        t = pd.read_parquet(run / "splits.parquet")
        return sorted(zip(t["sha256"], t["split"], t["label"], strict=True))

    return split(a) == split(b)


# ------------------------------------------------------------------------------------------ report
ROWS = (("carscope", "test", "carscope: head, then all at 0.1x backbone rate; calibrated"),
        ("seed", "test", "seed: frozen backbone, linear head; random test crop (as it evaluated)"),
        ("seed", "test_centre", "seed: the same model, centre test crop"),
        ("scratch", "test", f"scratch: carscope's recipe, {SCRATCH_ARCH}, no weights; calibrated"))


def _markdown(r: dict[str, Any]) -> str:
    rs = r["recipes"]
    seed = rs["seed"]["test"]
    lines = ["## The seed's recipe against carscope's, from the same weights", "",
             f"The model-year classifier: {r['classes']} classes; train / val / test {r['photos']['train']} / "
             f"{r['photos']['val']} / {r['photos']['test']} photos ({r['data']['source']}), the same split for "
             f"every recipe ({'checked' if r['same_split'] else 'DIFFERENT'}); {r['epochs']} epochs each at "
             f"{r['img_size']} px; {ARCH} from `--weights {WEIGHTS}` (ImageNet); device {r['device']}, "
             f"{r['torch_threads']} torch threads, {r['workers']} DataLoader worker(s).", "",
             "| recipe | test top-1 | test top-5 | ECE | training s | wall s |", "|---|---:|---:|---:|---:|---:|"]
    for key, which, name in ROWS:
        t, rec = rs[key][which], rs[key]
        top1 = f"{t['top1']:.2%}"
        if key == "seed" and which == "test":
            top1 += f" ({t['top1_min']:.2%}–{t['top1_max']:.2%} over {t['draws']} draws)"
        lines.append(f"| {name} | {top1} | {t['top5']:.2%} | {t['ece']:.3f} | {rec['train_seconds']:.0f} | "
                     f"{rec['wall_s']:.0f} |")
    c = rs["carscope"]
    lines += ["", f"ECE: 15 bins, on the served probabilities: carscope's after its temperature (before it: "
              f"carscope {c['test']['ece_uncalibrated']:.3f}, scratch {rs['scratch']['test']['ece_uncalibrated']:.3f}); "
              f"the seed had no calibration. The seed's random-crop figures are means over {seed['draws']} passes "
              "over the test photos with its random crop, flip and colour jitter.",
              f"Training s: the epochs' loop with its per-epoch validation; wall s: the whole run (caches, model, "
              f"test). Precision: carscope's runs {c['amp']} (train's `--amp auto`: bf16 where the CPU has it "
              f"natively), the seed's loop fp32, as the seed trained. Load average before / after each run (other work on the machine slows the seconds): "
              + ", ".join(f"{k} {rs[k]['load'][0]:.1f} / {rs[k]['load'][1]:.1f}" for k in RECIPES) + ". "
              f"The seed took {rs['seed']['steps']} optimizer steps of batch {SEED_BATCH} over "
              f"{rs['seed']['trainable_params']:,} parameters; its StepLR halves the rate every "
              f"{SEED_STEP_EPOCHS} epochs{' (never, in this run)' if r['epochs'] <= SEED_STEP_EPOCHS else ''}.",
              f"carscope kept epoch {c['best_epoch'] + 1} (best on val), T = {c['temperature']:.2f}; the seed kept "
              f"its last epoch.", f"Weights, both pretrained recipes: {c['weights'][0]}.",
              f"OOD: {r['ood']}.", "", "![top-1, top-5 and ECE per recipe](recipe_figures.png)"]
    return "\n".join(lines) + "\n"


def _plot(r: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["carscope", "seed\n(random test crop)", "seed\n(centre crop)", "scratch\n(cpunet)"]
    vals = [r["recipes"][key][which] for key, which, _ in ROWS]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.26
    for j, (metric, colour) in enumerate((("top1", "#2b6cb0"), ("top5", "#63b3ed"), ("ece", "#dd6b20"))):
        xs = [i + (j - 1) * width for i in range(len(vals))]
        bars = ax1.bar(xs, [v[metric] for v in vals], width, label={"top1": "test top-1", "top5": "test top-5",
                                                                    "ece": "ECE"}[metric], color=colour)
        ax1.bar_label(bars, fmt="%.2f", fontsize=7)
    ax1.set_xticks(range(len(vals)), names, fontsize=8)
    ax1.set_ylim(0, 1.22)
    ax1.set_title(f"{r['classes']} model-years, {r['epochs']} epochs at {r['img_size']} px")
    ax1.legend(fontsize=8, loc="upper center", ncol=3)
    for key, style in (("carscope", "-"), ("seed", "--"), ("scratch", ":")):
        curve = r["recipes"][key]["curve"]
        ax2.plot([h["epoch"] + 1 for h in curve], [h["val_top1"] for h in curve], style, marker=".", label=key)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val top-1 (centre crop)")
    ax2.set_ylim(0, 1.02)
    ax2.legend(fontsize=8)
    ax2.set_title("validation top-1 per epoch")
    fig.tight_layout()
    fig.savefig(out / "recipe_figures.png", dpi=110)
    plt.close(fig)
