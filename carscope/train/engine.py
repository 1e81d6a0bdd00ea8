"""The training loop: main(args), train_one_epoch, evaluate, load_data (torchvision references style).

    carscope train view --data dataset --out runs/view
    python -c "from carscope.train import train; print(train({'task': 'view', 'data': 'dataset', 'out': 'runs/view'}))"
    torchrun --nproc-per-node 2 -m carscope train view --data dataset --out runs/view

The device, precision and process group are decided once in `setup()` and passed down. One code path serves
the CPU and CUDA, one process or many (DDP: DistributedSampler, rank 0 writes, metrics reduced over ranks).

The recipe: AdamW (or SGD) in four parameter groups (head/backbone x decay/no-decay), linear warmup then
cosine per step, label smoothing, gradient clipping, optional EMA; with --weights (or after
--pretrain-all-years) the head trains alone for --freeze-epochs, then everything with the backbone at
--backbone-lr-scale. Mixed precision: bf16 autocast where the hardware has it (CUDA, or CPUs with AVX512-BF16/
AMX: ~2x), else fp16 + GradScaler on CUDA; channels_last. Evaluation always runs in fp32 on the exact eval
crop, so the reported numbers are what export and serve compute. Every epoch writes last.pt (a calibrated,
usable model with the optimizer, scheduler, scaler and RNG state), so --resume continues the same curve.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError
from carscope.train import checkpoint
from carscope.train.data import (
    SPLITS_FILE,
    Prepared,
    epoch_sampler,
    eval_batches,
    load_prepared,
    prepare,
    say,
)

METRICS_FILE = "metrics.jsonl"


# -------------------------------------------------------------------------------------------- setup
DIST_TIMEOUT_ENV = "CARSCOPE_DIST_TIMEOUT_S"  # the process group's collective timeout (default: torch's own)


@dataclass
class Context:
    """Where and how this process trains: decided once, passed everywhere."""

    device: Any
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    amp_dtype: Any = None  # torch.bfloat16 / torch.float16 / None
    use_scaler: bool = False
    channels_last: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def default_args(**overrides) -> argparse.Namespace:
    """The CLI's defaults with `overrides` applied (keys as in the Namespace: img_size, batch_size, ...)."""
    from carscope.train.cli import add_arguments

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


def _resolve_task_defaults(args) -> None:
    """Fill the options left at None: per task (size, epochs) and per starting point (augmentation)."""
    from carscope.train.cli import AUG_DEFAULTS, TASK_DEFAULTS

    defaults = {**TASK_DEFAULTS.get(args.task, {}), **AUG_DEFAULTS["pretrained" if args.weights else "scratch"]}
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def _check_args(args) -> None:
    from carscope.train.models import ARCHS

    if args.task not in checkpoint.TASKS:
        raise CarscopeError(f"task must be one of {', '.join(checkpoint.TASKS)}, got '{args.task}'")
    if args.arch not in ARCHS:
        raise CarscopeError(f"unknown arch '{args.arch}'; choose from {', '.join(ARCHS)}")
    checks = [(args.epochs >= 1, "--epochs must be >= 1"), (args.batch_size >= 1, "--batch-size must be >= 1"),
              (args.img_size >= 16, "--img-size must be >= 16"), (args.lr > 0, "--lr must be > 0"),
              (0 < args.val_frac < 0.5 and 0 <= args.test_frac < 0.5, "--val-frac/--test-frac must be in (0, 0.5)"),
              (0 <= args.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
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


def setup(args) -> Context:
    """Process group (under torchrun), device, threads, precision."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CarscopeError("--device cuda but no CUDA GPU is available here (use --device cpu or auto)")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        kw = {}
        if os.environ.get(DIST_TIMEOUT_ENV):
            kw["timeout"] = datetime.timedelta(seconds=float(os.environ[DIST_TIMEOUT_ENV]))
        if use_cuda:  # binding the device up front lets NCCL barriers and collectives skip a guess
            torch.distributed.init_process_group("nccl", device_id=device, **kw)
        else:
            torch.distributed.init_process_group("gloo", **kw)
    if not use_cuda or args.threads:
        torch.set_num_threads(_cpu_threads(args, int(os.environ.get("LOCAL_WORLD_SIZE", str(world))), rank))
    amp_dtype, use_scaler = _resolve_amp(args.amp, device)
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and args.arch != "tinynet")
    return Context(device=device, rank=rank, world=world, local_rank=local_rank, amp_dtype=amp_dtype,
                   use_scaler=use_scaler, channels_last=channels_last)


def _cpu_threads(args, local_world: int, rank: int) -> int:
    """Intra-op threads: the cores shared among this machine's processes. On a machine already busier than its
    cores (load average), one thread: OpenMP threads that wait at every barrier for a descheduled sibling run
    ~10x slower there than a single thread does (measured on 2 cores under a load of 10)."""
    cores = os.cpu_count() or 1
    if args.threads:
        return args.threads
    threads = max(1, cores // local_world)
    try:
        load = os.getloadavg()[0]
    except OSError:  # not on every platform
        load = 0.0
    if threads > 1 and load > cores + 1:
        if rank == 0:
            say(f"the machine is busy (load {load:.1f} on {cores} cores): 1 torch thread per process "
                f"(--threads N to override)")
        return 1
    return threads


def _cpu_has_bf16() -> bool:
    import torch

    try:  # AVX512-BF16 / AMX: oneDNN runs bf16 convolutions natively (about 2x fp32 on such CPUs)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def gpu_has_native_bf16(device) -> bool:
    """bf16 in hardware: compute capability 8.0 (Ampere) or newer. `torch.cuda.is_bf16_supported()` alone also
    says yes on Turing (T4, sm75) and Volta, where bf16 is emulated and slower than fp16 with a GradScaler."""
    import torch

    major, _minor = torch.cuda.get_device_capability(device)
    return major >= 8 and torch.cuda.is_bf16_supported(including_emulation=False)


def _resolve_amp(mode: str, device):
    import torch

    if mode == "off":
        return None, False
    if device.type == "cuda":
        if mode in ("auto", "bf16") and gpu_has_native_bf16(device):
            return torch.bfloat16, False
        if mode == "bf16":
            say("warning: this GPU has no bf16; using fp16 with a GradScaler")
        return torch.float16, True
    if mode == "fp16":
        raise CarscopeError("--amp fp16 needs a CUDA GPU; on the CPU use --amp bf16 or off")
    if mode == "bf16" or _cpu_has_bf16():
        return torch.bfloat16, False
    return None, False


def _barrier(ctx: Context) -> None:
    import torch.distributed as dist

    if ctx.world > 1:
        dist.barrier()


_MAIN_CALLS = [0]  # how many _on_main calls this process made: the same sequence on every rank


def _on_main(ctx: Context, fn):
    """Run fn on rank 0 only, while the other ranks wait for it; its error, of any kind, reaches every rank.

    The others wait by polling the process group's key-value store, not in a collective: rank 0 may take an hour
    to decode 200,000 photos into the cache, far past NCCL's watchdog timeout (10 minutes by default), which
    aborts a rank blocked in a collective. An exception on rank 0 is published before it propagates, so the
    other ranks end at once with its message instead of hanging until that timeout."""
    result, error = None, None
    _MAIN_CALLS[0] += 1
    key = f"carscope/on_main/{_MAIN_CALLS[0]}"
    if ctx.main:
        try:
            result = fn()
        except CarscopeError as exc:
            error = str(exc)
        except BaseException as exc:
            if ctx.world > 1:
                _store().set(key, json.dumps({"error": f"rank 0 failed: {type(exc).__name__}: {exc}"}))
            raise
        if ctx.world > 1:
            _store().set(key, json.dumps({"error": error}))
    elif ctx.world > 1:
        error = json.loads(_wait_key(key))["error"]
    if error:
        raise CarscopeError(error)
    return result


def _store():
    import torch.distributed.distributed_c10d as c10d

    return c10d._get_default_store()


def _wait_key(key: str, poll_s: float = 0.5) -> str:
    """The store's value for `key` once rank 0 has set it; polled, so no collective timeout applies."""
    store = _store()
    while not store.check([key]):
        time.sleep(poll_s)
    return store.get(key).decode()


# --------------------------------------------------------------------------------------------- data
def load_data(ctx: Context, args, run_dir: Path, spec, *, reuse: bool, label_mode: str = "model_year",
              years: str = "target", exclude: dict[str, str] | None = None) -> Prepared:
    """Rank 0 builds splits.parquet and the caches (or reuses them); the other ranks then open the same files."""
    from carscope.crawler.dataset import load as load_dataset

    cache_dir = Path(args.cache_dir) if args.cache_dir else run_dir / "cache"
    workers = args.workers if args.workers else 2

    def build():
        if reuse and (run_dir / SPLITS_FILE).exists():
            return load_prepared(run_dir, cache_dir, spec, Path(args.data), workers=workers)
        ds = load_dataset(args.data)
        return prepare(ds, task=args.task, run_dir=run_dir, cache_dir=cache_dir, spec=spec, args=args,
                       device=ctx.device, label_mode=label_mode, years=years, exclude=exclude)

    prepared = _on_main(ctx, build)  # the other ranks wait inside it (no collective: see _on_main)
    if not ctx.main:  # the caches exist now: this only maps them
        prepared = load_prepared(run_dir, cache_dir, spec, Path(args.data), workers=workers)
    if prepared.size("train") == 0 or prepared.size("val") == 0:
        raise CarscopeError("the split left no training or validation photos; the dataset is too small")
    return prepared


def _train_loader(ctx: Context, args, prepared: Prepared):
    import torch

    from carscope.train.data import TrainImages
    from carscope.train.presets import TrainPreset

    preset = TrainPreset(args.img_size, min_scale=args.min_scale, hflip=args.hflip, color_jitter=args.color_jitter,
                         auto_augment=args.auto_augment, random_erase=args.random_erase)
    dataset = TrainImages(prepared.caches["train"], prepared.targets["train"], preset, args.seed)
    sampler = epoch_sampler(len(dataset), world=ctx.world, rank=ctx.rank, seed=args.seed)
    workers = args.workers if args.workers is not None else min(4, max(1, (os.cpu_count() or 2) // (2 * ctx.world)))
    per_rank = math.ceil(len(dataset) / ctx.world)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, sampler=sampler, num_workers=workers,
        pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(args.seed),  # worker seeds must not draw from the global RNG
        drop_last=per_rank > args.batch_size,  # a last batch of 1-3 photos is all noise (and BatchNorm dislikes 1)
        prefetch_factor=4 if workers > 0 else None)
    return loader, sampler


# ---------------------------------------------------------------------------------------- optimizer
def build_optimizer(model, arch: str, args, backbone_lr_scale: float):
    """AdamW/SGD with four groups: head/backbone x decay/no-decay (no weight decay on norms and biases)."""
    import torch

    from carscope.train.models import head_parameters

    head_ids = {id(p) for p in head_parameters(model, arch)}
    groups: dict[tuple[bool, bool], list] = {(h, d): [] for h in (True, False) for d in (True, False)}
    for p in model.parameters():
        groups[(id(p) in head_ids, p.ndim > 1)].append(p)
    param_groups = []
    for (is_head, decay), params in groups.items():
        if params:
            param_groups.append({"params": params, "lr": args.lr * (1.0 if is_head else backbone_lr_scale),
                                 "weight_decay": args.weight_decay if decay else 0.0, "is_head": is_head})
    if args.opt == "sgd":
        return torch.optim.SGD(param_groups, lr=args.lr, momentum=args.momentum, nesterov=True)
    return torch.optim.AdamW(param_groups, lr=args.lr)


def build_scheduler(optimizer, total_steps: int, warmup_steps: int, min_ratio: float = 0.01):
    """Linear warmup then cosine to min_ratio of each group's LR, stepped per optimizer step."""
    import torch

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _set_frozen(model, arch: str, frozen: bool) -> None:
    """Head-only phase: backbone without gradients and its BatchNorm statistics fixed."""
    from carscope.train.models import head_parameters

    head_ids = {id(p) for p in head_parameters(model, arch)}
    for p in model.parameters():
        if id(p) not in head_ids:
            p.requires_grad_(not frozen)


def _backbone_eval(model, arch: str) -> None:
    from torch import nn

    from carscope.train.models import head_parameters

    head_ids = {id(p) for p in head_parameters(model, arch)}
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(id(p) in head_ids for p in m.parameters()):
            m.eval()


# ------------------------------------------------------------------------------------- train / eval
def train_one_epoch(ctx: Context, model, train_model, loader, criterion, optimizer, scheduler, scaler, ema,
                    normalizer, args, epoch: int, *, frozen: bool, desc: str) -> dict[str, float]:
    """One pass over this rank's share of the training split; returns metrics summed over every rank."""
    import torch
    from tqdm import tqdm

    model.train()
    if frozen:
        _backbone_eval(model, args.arch)
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
        x = normalizer(x.to(ctx.device, non_blocking=True))
        y = y.to(ctx.device, non_blocking=True)
        with torch.autocast(ctx.device.type, dtype=ctx.amp_dtype or torch.float32, enabled=ctx.amp_dtype is not None):
            logits = train_model(x)
            loss = criterion(logits.float(), y)
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


def sync_buffers(ctx: Context, module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP broadcasts them at the start of each
    forward, so after the last step every rank holds statistics its own last batch moved; evaluating on those
    would score a model that is not the one rank 0 saves."""
    if ctx.world > 1:
        import torch.distributed as dist

        for buf in module.buffers():
            dist.broadcast(buf, src=0)


@contextlib.contextmanager
def true_fp32():
    """TF32 off for the duration: training runs with TF32 matmuls and convolutions on Ampere and newer (setup),
    but the reported validation and test figures are true fp32, what export compares with."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class EMA:
    """An exponential moving average of a model's weights and buffers, updated without a host synchronisation.

    torch's AveragedModel tests its step counter, a tensor, on every update (`n_averaged == 0`) and copies it to
    the device: a CPU-GPU synchronisation per training step. Here the counter lives on the host. The state dict
    has AveragedModel's layout (`n_averaged`, `module.*`), so checkpoints written before load unchanged."""

    def __init__(self, model, decay: float):
        import copy

        import torch

        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.n = 0
        self._torch = torch

    def _pairs(self, model):
        torch = self._torch
        mine = list(self.module.parameters()) + list(self.module.buffers())
        theirs = list(model.parameters()) + list(model.buffers())
        floats = [(a, b.detach()) for a, b in zip(mine, theirs, strict=True) if torch.is_floating_point(a)]
        others = [(a, b.detach()) for a, b in zip(mine, theirs, strict=True) if not torch.is_floating_point(a)]
        return floats, others

    def update(self, model) -> None:
        torch = self._torch
        floats, others = self._pairs(model)
        with torch.no_grad():
            if self.n == 0:
                for a, b in floats + others:
                    a.copy_(b)
            else:
                torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - self.decay)
                for a, b in others:
                    a.copy_(b)
        self.n += 1

    def state_dict(self) -> dict:
        out = {"n_averaged": self._torch.tensor(self.n, dtype=self._torch.long)}
        out.update({f"module.{k}": v for k, v in self.module.state_dict().items()})
        return out

    def load_state_dict(self, state: dict) -> None:
        self.n = int(state["n_averaged"])
        self.module.load_state_dict({k[len("module."):]: v for k, v in state.items() if k.startswith("module.")})


def load_scaler_state(scaler, state: dict | None) -> None:
    """A GradScaler's saved state, across a change of precision: a run saved without a scaler (CPU, bf16) has an
    empty state, which `GradScaler.load_state_dict` refuses once the scaler is enabled (the run resumed on a
    GPU with fp16); that scaler starts fresh instead. A saved state for a scaler now disabled is dropped."""
    if state and scaler.is_enabled():
        scaler.load_state_dict(state)
    elif scaler.is_enabled():
        say("resuming with fp16 and a GradScaler where the checkpoint had none: the loss scale starts afresh")


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
    return logits[order], torch.as_tensor(targets, dtype=torch.long)


# ------------------------------------------------------------------------------------------ the run
def _jsonable_args(args) -> dict[str, Any]:
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


def _rng_state(ctx: Context) -> dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(ctx.device)
    if ctx.world > 1:
        parts = [None] * ctx.world
        torch.distributed.all_gather_object(parts, state)
        return {"per_rank": parts}
    return {"per_rank": [state]}


def _set_rng_state(ctx: Context, rng: dict[str, Any], seed: int) -> None:
    import torch

    per_rank = rng.get("per_rank", [])
    if len(per_rank) == ctx.world:
        torch.set_rng_state(per_rank[ctx.rank]["torch"])
        if ctx.device.type == "cuda" and "cuda" in per_rank[ctx.rank]:
            torch.cuda.set_rng_state(per_rank[ctx.rank]["cuda"], ctx.device)
    else:  # a different number of processes than before: the curve cannot be exact anyway
        torch.manual_seed(seed + ctx.rank)


def _prepare_run_dir(ctx: Context, args) -> Path:
    """Create --out (a new run) or check it holds a run to resume."""
    run_dir = Path(args.out)

    def check():
        if args.resume:
            return
        if run_dir.exists() and run_dir.is_dir() and any(run_dir.iterdir()):
            if not args.overwrite:
                raise CarscopeError(f"{run_dir} already holds a run; pass --resume to continue it or --overwrite")
            for name in ("last.pt", "best.pt", METRICS_FILE, SPLITS_FILE, "report.json", "report.md",
                         "curves.png", "confusion.png", "config.json", "data.json"):
                (run_dir / name).unlink(missing_ok=True)
            shutil.rmtree(run_dir / "pretrain", ignore_errors=True)
            shutil.rmtree(run_dir / "cache", ignore_errors=True)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CarscopeError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from None

    _on_main(ctx, check)
    _barrier(ctx)
    return run_dir


# What --resume may change: how the run executes, never its recipe (which comes from the run's config.json).
RUNTIME_ARGS = ("device", "workers", "threads", "stop_after", "resume", "no_progress", "overwrite", "cache_dir",
                "keep_cache", "compile", "data")


def _resume_args(args) -> dict[str, Any] | None:
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


def main(args) -> dict[str, Any]:
    """Train one run (the CLI and `train.train` both land here). Returns a summary of the run."""
    if isinstance(args, dict):
        args = default_args(**args)
    args = argparse.Namespace(**vars(args))  # our own copy: stages below modify it
    resume_state = _resume_args(args) if args.resume else None  # before setup(): the recipe picks amp etc.
    _resolve_task_defaults(args)
    _check_args(args)
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
    run_dir = _prepare_run_dir(ctx, args)
    if resume_state is not None and resume_state.get("finished"):
        say(f"{run_dir} already finished ({resume_state['epoch'] + 1} epochs); nothing to do")
        return _summary(run_dir, args)
    if ctx.main and not args.resume:
        from carscope.train.report import write_json

        write_json({"args": _jsonable_args(args), "world_size": ctx.world, "device": str(ctx.device),
                    "amp": str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "off",
                    "channels_last": ctx.channels_last}, run_dir / "config.json")
    if args.pretrain_all_years and args.task == "model":
        try:
            _pretrain(ctx, args, run_dir, resume_state)
        except _Stopped:
            return {"run_dir": str(run_dir), "stopped": True}
    cleaned = False
    if args.task == "view" and getattr(args, "clean_folds", 0) and getattr(args, "negatives", 0) and not args.resume:
        if ctx.world > 1:
            if ctx.main:
                say("--clean-folds: skipped under torchrun (run the view task in one process to clean its labels)")
        else:
            _clean_view(ctx, args, run_dir)
            cleaned = True
    stopped = fit(ctx, args, run_dir, resume_state,
                  reuse_splits=bool(args.resume or args.pretrain_all_years or cleaned))
    if stopped:
        return {"run_dir": str(run_dir), "stopped": True}
    return _summary(run_dir, args)


def _pretrain(ctx: Context, args, run_dir: Path, resume_state) -> None:
    """The seed's recipe: make+model on every year, then (in fit) the target year from those weights. The target
    year's val/test photos are pinned out of the pretraining's train split, so test stays unseen."""
    spec = checkpoint.make_preprocess_spec(args.img_size, args.crop_pct)
    target = load_data(ctx, args, run_dir, spec, reuse=bool(args.resume))
    held = target.table[target.table["split"] != "train"]
    exclude = dict(zip(held["sha256"], held["split"], strict=False))
    pre_dir = run_dir / "pretrain"
    pre_args = argparse.Namespace(**vars(args))
    pre_args.pretrain_all_years = False
    pre_args.out = str(pre_dir)
    pre_args.epochs = args.pretrain_epochs or args.epochs
    pre_args.cache_dir = str(Path(args.cache_dir) if args.cache_dir else run_dir / "cache")
    pre_state = None
    if (pre_dir / "last.pt").exists():
        pre_state = checkpoint.load(pre_dir / "last.pt")
    if pre_state is None or not pre_state.get("finished"):
        if ctx.main:
            pre_dir.mkdir(parents=True, exist_ok=True)
            say(f"pretraining make+model on every year ({pre_args.epochs} epochs) in {pre_dir}")
        _barrier(ctx)
        stopped = fit(ctx, pre_args, pre_dir, pre_state, label_mode="make_model", years="all", exclude=exclude,
                      keep_cache=True, reuse_splits=pre_state is not None)
        if stopped:
            raise _Stopped()
    args.weights = str(pre_dir / "best.pt")


class _Stopped(Exception):
    pass


CLEAN_MIN_VAL_TOP1 = 0.85  # a fold model below this val top-1 relabels nothing


def _clean_view(ctx: Context, args, run_dir: Path) -> None:
    """Out-of-fold cleaning of the view labels: real galleries put dealer logos, banners and brochure pages in their
    Exterior and Interior tabs, so some photos' page hints are wrong, and a classifier trained on them learns the
    wrong hint by heart. The train split's hinted photos are cut into `--clean-folds` folds by hash; a model
    trained without a fold (and with the synthetic negatives) judges that fold, and a photo it calls `other` with
    p >= 0.5 is relabelled `other` (source "view_cleaned") before the real training. Val and test keep their
    hints: the run's figures are measured against what the pages said. A fold model under CLEAN_MIN_VAL_TOP1 on
    its val split judges nothing (on a tiny crawl a weak model calls plain car drawings `other`)."""
    import pandas as pd

    from carscope.crawler.dataset import load as load_dataset
    from carscope.crawler.dataset import write_table
    from carscope.train.data import OTHER_LABEL, score_unknown

    spec = checkpoint.make_preprocess_spec(args.img_size, args.crop_pct)
    prepared = load_data(ctx, args, run_dir, spec, reuse=False)
    table = prepared.table
    hinted = table[(table["split"] == "train") & (table["source"] == "hint")]
    held = table[table["split"] != "train"]
    folds = int(args.clean_folds)
    fold_of = hinted["sha256"].map(lambda h: int(str(h)[:8], 16) % folds)
    ds = load_dataset(args.data)
    cache = Path(args.cache_dir) if args.cache_dir else run_dir / "cache"
    other: dict[str, float] = {}
    for f in range(folds):
        fold_dir = run_dir / "clean" / f"fold{f}"
        part = hinted[fold_of == f]
        exclude = {**dict(zip(held["sha256"], held["split"], strict=False)),
                   **{sha: "test" for sha in part["sha256"]}}
        fargs = argparse.Namespace(**vars(args))
        fargs.out, fargs.clean_folds, fargs.cache_dir = str(fold_dir), 0, str(cache)
        fold_dir.mkdir(parents=True, exist_ok=True)
        say(f"--clean-folds: fold {f + 1}/{folds}, a view model without its {len(part)} photos judges them")
        fit(ctx, fargs, fold_dir, None, exclude=exclude, keep_cache=True)
        val_top1 = json.loads((fold_dir / "report.json").read_text()).get("val", {}).get("top1", 0.0)
        if val_top1 < CLEAN_MIN_VAL_TOP1:  # a model that has not learnt the views is no judge of them
            say(f"--clean-folds: fold {f + 1} reached val top-1 {val_top1:.1%} < {CLEAN_MIN_VAL_TOP1:.0%}; its "
                "photos keep their hints")
            continue
        scores: dict[str, float] = {}
        score_unknown(ds, str(fold_dir), cache_dir=cache / "view-run", device=ctx.device, workers=args.workers or 2,
                      other=scores, only=set(part["sha256"]))  # the fold's photos only
        other.update(scores)
        for name in ("best.pt", "last.pt"):  # the fold's judgement is kept in its report; its weights are not
            (fold_dir / name).unlink(missing_ok=True)
    relabel = {sha for sha, p in other.items() if p >= 0.5}
    mask = table["sha256"].isin(relabel) & (table["split"] == "train")
    table.loc[mask, "label"] = OTHER_LABEL
    table.loc[mask, "source"] = "view_cleaned"
    table["p_other_out_of_fold"] = table["sha256"].map(other)  # the judgement, kept for inspection
    write_table(pd.DataFrame(table), run_dir / SPLITS_FILE, columns=None)
    say(f"--clean-folds: {int(mask.sum())} of {len(hinted)} hinted train photos relabelled '{OTHER_LABEL}' "
        f"(out-of-fold p(other) >= 0.5)")


def fit(ctx: Context, args, run_dir: Path, resume_state=None, *, label_mode: str = "model_year",
        years: str = "target", exclude: dict[str, str] | None = None, keep_cache: bool = False,
        reuse_splits: bool = False) -> bool:
    """Train, checkpoint, calibrate and report one stage into run_dir. Returns True when --stop-after hit."""
    import torch

    from carscope.train.evaluation import fit_temperature
    from carscope.train.models import create_model, load_backbone_weights
    from carscope.train.presets import Normalizer
    from carscope.train.report import read_metrics, write_json

    spec = checkpoint.make_preprocess_spec(args.img_size, args.crop_pct)
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

    torch.manual_seed(args.seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    model = create_model(args.arch, len(labels), **arch_kwargs)
    if args.weights and resume_state is None:
        info = load_backbone_weights(model, args.weights, args.arch)
        if ctx.main:
            say(f"loaded {info['loaded']} backbone tensors from {args.weights}")
    model.to(ctx.device)
    if ctx.channels_last:
        model.to(memory_format=torch.channels_last)
    ema = None
    if args.ema:
        ema = EMA(model, args.ema_decay)
    loader, sampler = _train_loader(ctx, args, prepared)
    optimizer = build_optimizer(model, args.arch, args, backbone_scale)
    steps_per_epoch = len(loader)
    scheduler = build_scheduler(optimizer, args.epochs * steps_per_epoch,
                                max(1, int(round(args.warmup_epochs * steps_per_epoch))))
    scaler = torch.amp.GradScaler(ctx.device.type if ctx.device.type == "cuda" else "cpu", enabled=ctx.use_scaler)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
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
        _set_rng_state(ctx, resume_state.get("rng", {}), args.seed)
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
                "epoch": epoch, "args": _jsonable_args(args), "metrics": metrics}

    ddp_model, ddp_frozen = None, None
    t_start = time.perf_counter()
    ran = 0
    for epoch in range(start_epoch, args.epochs):
        frozen = epoch < freeze_epochs
        if ddp_model is None or ddp_frozen != frozen:  # DDP must be rebuilt when the trainable set changes
            _set_frozen(model, args.arch, frozen)
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
                                        normalizer, args, epoch, frozen=frozen, desc=desc)
        eval_model = ema.module if ema is not None else model
        sync_buffers(ctx, eval_model)  # every rank evaluates rank 0's model, the one that is saved
        val_logits, val_targets = evaluate(ctx, eval_model, prepared.caches["val"], prepared.targets["val"],
                                           normalizer, args.batch_size, len(labels))
        val = {"val_loss": float(torch.nn.functional.cross_entropy(val_logits, val_targets)),
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
        rng = _rng_state(ctx)  # collective under DDP: every rank calls it
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
            _barrier(ctx)
            if ctx.main:
                say(f"stopping after {ran} epochs as asked (--stop-after); continue with --resume")
            return True
    # The final word: the best epoch's weights on val (temperature) and test, written into report and best.pt.
    # Rank 0 alone: the others have nothing left to contribute and wait at the barrier below.
    _barrier(ctx)
    _on_main(ctx, lambda: _finish(dataclasses.replace(ctx, rank=0, world=1), args, run_dir, prepared, normalizer,
                                  arch_kwargs, label_mode, time.perf_counter() - t_start))
    if ctx.main and not keep_cache and not args.keep_cache and not args.cache_dir:
        shutil.rmtree(run_dir / "cache", ignore_errors=True)
    return False


def _finish(ctx: Context, args, run_dir: Path, prepared: Prepared, normalizer, arch_kwargs, label_mode: str,
            train_seconds: float) -> None:
    """Reload best.pt, fit the temperature on val, evaluate test, write report.json/md and the plots."""
    import torch

    from carscope.train.evaluation import classification_report, fit_temperature
    from carscope.train.models import create_model
    from carscope.train.report import plot_confusion, plot_curves, read_metrics, write_report

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
    plot_confusion(run_dir, shown["confusion"], labels,
                   title=f"{args.task} {'test' if report_test else 'val'} confusion (row-normalised), "
                         f"top-1 {shown['top1']:.3f}")
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
