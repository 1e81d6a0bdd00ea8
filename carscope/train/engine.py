"""The training loop: main(args), fit, train_one_epoch, evaluate (torchvision references style).

    carscope train view --data dataset --out runs/view
    python -c "from carscope.train import train; print(train({'task': 'view', 'data': 'dataset', 'out': 'runs/view'}))"
    torchrun --nproc-per-node 2 -m carscope train view --data dataset --out runs/view

The device, precision and process group are decided once in `setup()` (carscope/train/hardware.py) and passed
down. One code path serves the CPU and CUDA, one process or many (DDP: DistributedSampler, rank 0 writes, metrics
reduced over ranks).

The recipe: AdamW (or SGD) in four parameter groups (head/backbone x decay/no-decay), linear warmup then
cosine per step, label smoothing, gradient clipping, optional EMA; with --weights (or after
--pretrain-all-years) the head trains alone for --freeze-epochs, then everything with the backbone at
--backbone-lr-scale. Mixed precision: bf16 autocast where the hardware has it (CUDA, or CPUs with AVX512-BF16/
AMX: ~2x), else fp16 + GradScaler on CUDA; channels_last. Evaluation always runs in fp32 on the exact eval
crop, so the reported numbers are what export and serve compute. Every epoch writes last.pt (a calibrated,
usable model with the optimizer, scheduler, scaler and RNG state), so --resume continues the same curve.

This file reads top to bottom: main(args) -> fit (one stage's epochs) -> train_one_epoch -> evaluate -> the
final report. Around it: the options (options.py), the device and ranks (hardware.py), the recipe (recipe.py),
the data (loaders.py) and the stages before the real run, pretraining and view cleaning (stages.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError
from carscope.train import checkpoint
from carscope.train.data import Prepared, eval_batches, say
from carscope.train.hardware import (
    Context,
    barrier,
    on_main,
    rng_state,
    set_rng_state,
    setup,
    sync_buffers,
    true_fp32,
)
from carscope.train.loaders import load_data, train_loader
from carscope.train.options import check_args, default_args, jsonable_args, resolve_task_defaults, resume_args
from carscope.train.outliers import mixed_loss
from carscope.train.recipe import (
    EMA,
    backbone_eval,
    build_optimizer,
    build_scheduler,
    load_scaler_state,
    set_frozen,
)
from carscope.train.report import METRICS_FILE
from carscope.train.stages import Stopped, clean_view, prepare_run_dir, pretrain


# ------------------------------------------------------------------------------------------ the run
def main(args) -> dict[str, Any]:
    """Train one run (the CLI and `train.train` both land here). Returns a summary of the run."""
    if isinstance(args, dict):
        args = default_args(**args)
    args = argparse.Namespace(**vars(args))  # our own copy: stages below modify it
    resume_state = resume_args(args) if args.resume else None  # before setup(): the recipe picks amp etc.
    resolve_task_defaults(args)
    check_args(args)
    if not Path(args.data).is_dir():  # fail fast, before torch is even imported
        raise CarscopeError(f"dataset {args.data} does not exist or is not a directory")
    ctx = setup(args)
    try:
        return _main(ctx, args, resume_state)
    finally:
        if ctx.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _main(ctx: Context, args, resume_state) -> dict[str, Any]:
    run_dir = prepare_run_dir(ctx, args)
    if resume_state is not None and resume_state.get("finished"):
        say(f"{run_dir} already finished ({resume_state['epoch'] + 1} epochs); nothing to do")
        return _summary(run_dir, args)
    if ctx.main and not args.resume:
        from carscope.train.report import write_json

        write_json({"args": jsonable_args(args), "world_size": ctx.world, "device": str(ctx.device),
                    "amp": str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "off",
                    "channels_last": ctx.channels_last}, run_dir / "config.json")
    if args.pretrain_all_years and args.task == "model":
        try:
            pretrain(ctx, args, run_dir, resume_state, fit)
        except Stopped:
            return {"run_dir": str(run_dir), "stopped": True}
    cleaned = False
    if args.task == "view" and getattr(args, "clean_folds", 0) and getattr(args, "negatives", 0) and not args.resume:
        if ctx.world > 1:
            if ctx.main:
                say("--clean-folds: skipped under torchrun (run the view task in one process to clean its labels)")
        else:
            clean_view(ctx, args, run_dir, fit)
            cleaned = True
    stopped = fit(ctx, args, run_dir, resume_state,
                  reuse_splits=bool(args.resume or args.pretrain_all_years or cleaned))
    if stopped:
        return {"run_dir": str(run_dir), "stopped": True}
    return _summary(run_dir, args)


def fit(ctx: Context, args, run_dir: Path, resume_state=None, *, label_mode: str = "model_year",
        years: str = "target", exclude: dict[str, str] | None = None, keep_cache: bool = False,
        reuse_splits: bool = False) -> bool:
    """Train, checkpoint, calibrate and report one stage into run_dir. Returns True when --stop-after hit."""
    import torch

    from carscope.train.evaluation import fit_temperature, mean_cross_entropy
    from carscope.train.models import create_model, is_timm_arch, load_backbone_weights, preprocess_config
    from carscope.train.presets import Normalizer
    from carscope.train.report import read_metrics, write_json

    spec = checkpoint.make_preprocess_spec(args.img_size, args.crop_pct, preprocess_config(args.arch))
    if years == "target" and getattr(args, "all_years", False):
        years = "all"
    prepared = load_data(ctx, args, run_dir, spec, reuse=reuse_splits, label_mode=label_mode, years=years,
                         exclude=exclude)
    labels = prepared.labels
    if resume_state is not None and list(resume_state["labels"]) != labels:
        raise CarscopeError(f"--resume: the classes of {run_dir}/splits.parquet differ from the checkpoint's")
    if ctx.main:
        counts = {**prepared.counts, "classes": len(labels),
                  **{f"{s}_images": prepared.size(s) for s in ("train", "val", "test")}}
        if prepared.counts:
            say(f"data: {len(labels)} classes; train {prepared.size('train')}, val {prepared.size('val')}, "
                f"test {prepared.size('test')} photos; sources {prepared.counts.get('sources')}"
                + (f"; {prepared.counts['corrupt_skipped']} corrupt skipped" if prepared.counts.get("corrupt_skipped") else ""))
            write_json(counts, run_dir / "data.json")
    pretrained = bool(args.weights)
    freeze_epochs = args.freeze_epochs if args.freeze_epochs is not None else (1 if pretrained else 0)
    backbone_scale = args.backbone_lr_scale if args.backbone_lr_scale is not None else (0.1 if pretrained else 1.0)
    arch_kwargs: dict[str, Any] = {"dropout": args.dropout}
    if args.head_hidden:
        arch_kwargs["head_hidden"] = list(args.head_hidden)
    if is_timm_arch(args.arch):  # a ViT's position grid is built for the run's size
        arch_kwargs["img_size"] = args.img_size

    torch.manual_seed(args.seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    model = create_model(args.arch, len(labels), **arch_kwargs)
    if args.weights and resume_state is None:
        info = load_backbone_weights(model, args.weights, args.arch)
        if ctx.main:
            for line in info["lines"]:  # what loaded, and what was left out and why
                say(line)
    model.to(ctx.device)
    if ctx.channels_last:
        model.to(memory_format=torch.channels_last)
    ema = None
    if args.ema:
        ema = EMA(model, args.ema_decay)
    loader, sampler = train_loader(ctx, args, prepared)
    optimizer = build_optimizer(model, args.arch, args, backbone_scale)
    steps_per_epoch = len(loader)
    scheduler = build_scheduler(optimizer, args.epochs * steps_per_epoch,
                                max(1, int(round(args.warmup_epochs * steps_per_epoch))))
    scaler = torch.amp.GradScaler(ctx.device.type if ctx.device.type == "cuda" else "cpu", enabled=ctx.use_scaler)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    mix = _mix_outliers(args, labels, ctx.rank)
    normalizer = Normalizer(spec["mean"], spec["std"], ctx.device, ctx.channels_last)

    start_epoch, best = 0, {"top1": -1.0, "loss": float("inf"), "epoch": -1, "temperature": 1.0}
    torch.manual_seed(args.seed + ctx.rank)  # dropout streams
    if resume_state is not None:
        model.load_state_dict(resume_state.get("train_model") or resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        load_scaler_state(scaler, resume_state.get("scaler"))
        if ema is not None and resume_state.get("ema") is not None:
            ema.load_state_dict(resume_state["ema"])
        set_rng_state(ctx, resume_state.get("rng", {}), args.seed)
        start_epoch = int(resume_state["epoch"]) + 1
        best = dict(resume_state.get("best", best))
        if ctx.main:
            say(f"resuming {run_dir} at epoch {start_epoch + 1}/{args.epochs}")
            history = [h for h in read_metrics(run_dir) if h["epoch"] < start_epoch]  # drop epochs not checkpointed
            (run_dir / METRICS_FILE).write_text("".join(json.dumps(h) + "\n" for h in history))
    elif ctx.main:
        (run_dir / METRICS_FILE).write_text("")

    def base_state(eval_model, epoch: int, temperature: float, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"format_version": checkpoint.FORMAT_VERSION, "task": args.task if label_mode == "model_year" else "model",
                "label_mode": label_mode, "arch": args.arch, "arch_kwargs": arch_kwargs, "labels": list(labels),
                "preprocess": spec, "temperature": float(temperature),
                "model": {k: v.detach().clone().contiguous() for k, v in eval_model.state_dict().items()},
                "epoch": epoch, "args": jsonable_args(args), "metrics": metrics}

    ddp_model, ddp_frozen = None, None
    t_start = time.perf_counter()
    ran = 0
    for epoch in range(start_epoch, args.epochs):
        frozen = epoch < freeze_epochs
        if ddp_model is None or ddp_frozen != frozen:  # DDP must be rebuilt when the trainable set changes
            set_frozen(model, args.arch, frozen)
            train_model = model
            if ctx.world > 1:
                train_model = torch.nn.parallel.DistributedDataParallel(
                    model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
            if args.compile:
                train_model = torch.compile(train_model)
            ddp_model, ddp_frozen = train_model, frozen
        sampler.set_epoch(epoch)
        desc = f"{'pretrain ' if label_mode != 'model_year' else ''}{args.task} {epoch + 1}/{args.epochs}"
        train_metrics = train_one_epoch(ctx, model, ddp_model, loader, criterion, optimizer, scheduler, scaler, ema,
                                        normalizer, args, epoch, frozen=frozen, desc=desc, mix=mix)
        eval_model = ema.module if ema is not None else model
        sync_buffers(ctx, eval_model)  # every rank evaluates rank 0's model, the one that is saved
        val_logits, val_targets = evaluate(ctx, eval_model, prepared.caches["val"], prepared.targets["val"],
                                           normalizer, args.batch_size, len(labels))
        val = {"val_loss": mean_cross_entropy(val_logits, val_targets),
               "val_top1": float((val_logits.argmax(1) == val_targets).float().mean()),
               "val_top5": float((val_logits.topk(min(5, len(labels)), 1).indices == val_targets[:, None]).any(1)
                                 .float().mean())}
        temperature = fit_temperature(val_logits, val_targets)
        improved = (val["val_top1"], -val["val_loss"]) > (best["top1"], -best["loss"])
        if improved:
            best = {"top1": val["val_top1"], "loss": val["val_loss"], "epoch": epoch, "temperature": temperature}
        record = {"epoch": epoch, "phase": "head" if frozen else "full",
                  "lr": max(g["lr"] for g in optimizer.param_groups), **train_metrics, **val,
                  "temperature": temperature, "elapsed_s": time.perf_counter() - t_start}
        rng = rng_state(ctx)  # collective under DDP: every rank calls it
        if ctx.main:
            # The epoch's metrics line first, then its checkpoints: a stop between the two leaves a line for an
            # epoch last.pt does not have, which --resume drops and redoes (the other order lost the line)
            with open(run_dir / METRICS_FILE, "a") as f:
                f.write(json.dumps(record) + "\n")
            metrics = {k: v for k, v in record.items()}
            state = base_state(eval_model, epoch, temperature, metrics)
            if improved:
                checkpoint.save(state, run_dir / "best.pt")
            state.update({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                          "scaler": scaler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                          "train_model": model.state_dict() if ema is not None else None, "rng": rng, "best": best,
                          "finished": False})
            checkpoint.save(state, run_dir / "last.pt")
            say(f"epoch {epoch + 1}/{args.epochs} {record['phase']}: train loss {record['train_loss']:.4f} "
                f"acc {record['train_top1']:.3f} | val loss {val['val_loss']:.4f} top1 {val['val_top1']:.3f} "
                f"top5 {val['val_top5']:.3f} | {record['train_img_per_s']:.1f} img/s, "
                f"{record['train_seconds']:.1f} s{' *' if improved else ''}")
        ran += 1
        if args.stop_after is not None and ran >= args.stop_after and epoch + 1 < args.epochs:
            barrier(ctx)
            if ctx.main:
                say(f"stopping after {ran} epochs as asked (--stop-after); continue with --resume")
            return True
    # The final word: the best epoch's weights on val (temperature) and test, written into report and best.pt.
    # Rank 0 alone: the others have nothing left to contribute and wait at the barrier below.
    barrier(ctx)
    on_main(ctx, lambda: _finish(dataclasses.replace(ctx, rank=0, world=1), args, run_dir, prepared, normalizer,
                                  arch_kwargs, label_mode, time.perf_counter() - t_start))
    if ctx.main and not keep_cache and not args.keep_cache and not args.cache_dir:
        shutil.rmtree(run_dir / "cache", ignore_errors=True)
    return False


# ------------------------------------------------------------------------------------- train / eval
def _mix_outliers(args, labels: list[str], rank: int):
    """The model task's cross-make CutMix outliers (`--mix-outliers`), or None."""
    if not getattr(args, "mix_outliers", 0.0) or args.task != "model":
        return None
    from carscope.common.levels import Hierarchy
    from carscope.train.evaluation import class_hierarchy
    from carscope.train.outliers import MixOutliers

    h = class_hierarchy(args.data, labels) or Hierarchy.from_specs(labels, {})  # no makes: every class its own
    return MixOutliers(h.make_of, args.mix_outliers, args.seed * 1000 + rank)


def train_one_epoch(ctx: Context, model, train_model, loader, criterion, optimizer, scheduler, scaler, ema,
                    normalizer, args, epoch: int, *, frozen: bool, desc: str, mix=None) -> dict[str, float]:
    """One pass over this rank's share of the training split; returns metrics summed over every rank. `mix`
    (carscope/train/outliers.py) replaces a share of each batch with outliers before it leaves the host."""
    import torch
    from tqdm import tqdm

    model.train()
    if frozen:
        backbone_eval(model, args.arch)
    # loss * n and correct stay on the device; n is counted on the host (len(y) is known there): nothing in the
    # step waits for the GPU (tests/train/test_gpu_paths.py counts the host syncs)
    sums = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    n_seen = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, leave=False, disable=True if not ctx.main or args.no_progress else None,  # None: off when not a TTY
               file=sys.stderr,
               mininterval=0.5, dynamic_ncols=True)
    params = [p for p in model.parameters() if p.requires_grad]
    for step, (x, y) in enumerate(bar):
        soft = mixed = None
        if mix is not None:
            x, soft, mixed = mix(x, y)
            soft, mixed = soft.to(ctx.device, non_blocking=True), mixed.to(ctx.device, non_blocking=True)
        x = normalizer(x.to(ctx.device, non_blocking=True))
        y = y.to(ctx.device, non_blocking=True)
        with torch.autocast(ctx.device.type, dtype=ctx.amp_dtype or torch.float32, enabled=ctx.amp_dtype is not None):
            logits = train_model(x)
            loss = (criterion(logits.float(), y) if mix is None else
                    mixed_loss(logits.float(), y, soft, mixed, args.label_smoothing))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if args.clip_grad_norm > 0:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(params, args.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(model)
        with torch.no_grad():
            sums += torch.stack([loss.detach().double() * len(y), (logits.argmax(1) == y).sum().double()])
        n_seen += len(y)
        if not bar.disable and (step % 5 == 0 or step == len(loader) - 1):
            s = sums.tolist()  # a device sync every few steps only, and only with a progress bar on a terminal
            bar.set_postfix(loss=f"{s[0] / n_seen:.3f}", acc=f"{s[1] / n_seen:.3f}",
                            img_s=f"{n_seen * ctx.world / (time.perf_counter() - start):.1f}")
    bar.close()
    totals = torch.cat([sums, torch.tensor([float(n_seen)], dtype=torch.float64).to(ctx.device)])
    if ctx.world > 1:
        torch.distributed.all_reduce(totals)
    loss_sum, correct, n = totals.tolist()  # waits for the epoch's last kernels: the clock is read after it
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / max(n, 1), "train_top1": correct / max(n, 1), "train_images": int(n),
            "train_img_per_s": n / seconds, "train_seconds": seconds}


def evaluate(ctx: Context, model, cache, targets, normalizer, batch_size: int, n_classes: int):
    """(logits, targets) of a whole split in fp32 (what export and serve will compute), gathered over ranks."""
    import torch

    model.eval()
    idx_all, out = [], []
    with torch.inference_mode(), true_fp32():
        for idx, x, _ in eval_batches(cache, targets, batch_size * 2, rank=ctx.rank, world=ctx.world):
            out.append(model(normalizer(x.to(ctx.device, non_blocking=True))).float().cpu())
            idx_all.append(torch.as_tensor(idx))
    logits = torch.cat(out) if out else torch.zeros(0, n_classes)
    index = torch.cat(idx_all) if idx_all else torch.zeros(0, dtype=torch.long)
    if ctx.world > 1:
        parts = [None] * ctx.world
        torch.distributed.all_gather_object(parts, (index, logits))
        index = torch.cat([p[0] for p in parts])
        logits = torch.cat([p[1] for p in parts if len(p[1])])
    order = torch.argsort(index)
    if not bool((order == torch.arange(len(order))).all()):  # one rank's split comes in order: no second copy
        logits = logits[order]
    return logits, torch.as_tensor(targets, dtype=torch.long)


# ------------------------------------------------------------------------------------- the report
def _finish(ctx: Context, args, run_dir: Path, prepared: Prepared, normalizer, arch_kwargs, label_mode: str,
            train_seconds: float) -> None:
    """Reload best.pt, fit the temperature on val, evaluate test, write report.json/md and the plots."""
    import torch

    from carscope.train.evaluation import (
        class_hierarchy,
        classification_report,
        fit_temperature,
        level_report,
    )
    from carscope.train.models import create_model
    from carscope.train.report import confusion_view, plot_confusion, plot_curves, read_metrics, write_report

    best_state = checkpoint.load(run_dir / "best.pt")
    labels = prepared.labels
    eval_model = create_model(args.arch, len(labels), **arch_kwargs)
    eval_model.load_state_dict(best_state["model"])
    eval_model.to(ctx.device)
    if ctx.channels_last:
        eval_model.to(memory_format=torch.channels_last)
    val_logits, val_targets = evaluate(ctx, eval_model, prepared.caches["val"], prepared.targets["val"],
                                       normalizer, args.batch_size, len(labels))
    temperature = fit_temperature(val_logits, val_targets)
    report_val = classification_report(val_logits, val_targets, labels, temperature)
    report_test = None
    if prepared.size("test"):
        test_logits, test_targets = evaluate(ctx, eval_model, prepared.caches["test"], prepared.targets["test"],
                                             normalizer, args.batch_size, len(labels))
        report_test = classification_report(test_logits, test_targets, labels, temperature)
    if args.task == "model":  # top-1 and ECE at the model-year, model and make level
        h = class_hierarchy(args.data, labels)  # the dataset's specs, read once for both splits
        report_val["levels"] = level_report(h, val_logits, val_targets, temperature)
        if report_test:
            report_test["levels"] = level_report(h, test_logits, test_targets, temperature)
    history = read_metrics(run_dir)
    summary_metrics = {"val_top1": report_val["top1"], "val_top5": report_val["top5"], "val_loss": report_val["loss"],
                       "val_ece_before": report_val["ece_before"], "val_ece_after": report_val["ece_after"]}
    if report_test:
        summary_metrics.update({"test_top1": report_test["top1"], "test_top5": report_test["top5"],
                                "test_loss": report_test["loss"], "test_ece_before": report_test["ece_before"],
                                "test_ece_after": report_test["ece_after"]})
    best_state.pop("path", None)
    best_state["temperature"] = temperature
    best_state["metrics"] = {**best_state.get("metrics", {}), **summary_metrics}
    checkpoint.save(best_state, run_dir / "best.pt")
    last = checkpoint.load(run_dir / "last.pt")
    last["finished"] = True
    checkpoint.save(last, run_dir / "last.pt")
    data_counts = json.loads((run_dir / "data.json").read_text()) if (run_dir / "data.json").exists() else {}
    report = {"task": args.task, "label_mode": label_mode, "arch": args.arch, "img_size": args.img_size,
              "labels": labels, "temperature": temperature, "best_epoch": best_state["epoch"],
              "epochs": args.epochs, "train_seconds": train_seconds, "device": str(ctx.device),
              "world_size": ctx.world, "amp": str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "off",
              "preprocess": best_state["preprocess"], "data": data_counts, "val": report_val, "test": report_test,
              "summary": summary_metrics}
    write_report(run_dir, report)
    plot_curves(run_dir, history)
    shown = report_test or report_val
    matrix, shown_labels, which = confusion_view(shown, labels)
    plot_confusion(run_dir, matrix, shown_labels,
                   title=f"{args.task} {'test' if report_test else 'val'} confusion (row-normalised), "
                         f"top-1 {shown['top1']:.3f}" + (f"\n{which}" if which else ""))
    say(f"done: best epoch {best_state['epoch'] + 1}, val top1 {report_val['top1']:.4f}"
        + (f", test top1 {report_test['top1']:.4f} top5 {report_test['top5']:.4f}" if report_test else "")
        + f", T={temperature:.3f}, ECE {shown['ece_before']:.4f} -> {shown['ece_after']:.4f}; {run_dir}")


def _summary(run_dir: Path, args) -> dict[str, Any]:
    report_path = run_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return {"run_dir": str(run_dir), "task": args.task, "arch": args.arch, "img_size": args.img_size,
            "checkpoint": str(run_dir / "best.pt"), "labels": len(report.get("labels", [])),
            "best_epoch": report.get("best_epoch"), "temperature": report.get("temperature"),
            "train_seconds": report.get("train_seconds"), **report.get("summary", {})}
