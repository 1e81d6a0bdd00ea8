"""`carscope bench train`: training images/s of carscope's loop against a naive loop, measured in the same run;
and (--quality) the demo-showroom accuracy and wall time of the CPU defaults.

    carscope bench train --out benchmarks/results/mine                       # ~5 min on 2 cores
    carscope bench train --quality --data demo-work/dataset --out results/q  # + view and model training runs

Throughput, per (arch, img size), same photos, same batch size, same DataLoader workers, same optimizer:
- naive: the seed's way, as a torchvision user first writes it: each step decodes the full-size JPEGs again,
  Resize + RandomResizedCrop + flip + ToTensor + Normalize in the workers, fp32, NCHW;
- carscope: `train.engine.train_one_epoch` itself over the decode-once uint8 cache (augmented on uint8,
  normalised on the device), channels_last, bf16 autocast where the CPU or GPU has it natively.
Both warm up first; images/s is the median over timed windows of several steps. Target: carscope >= 1.5x.
The one-off decode of the cache is timed and reported apart (an epoch-0 cost, not a per-epoch one).

Photos come from --data (a crawl's exterior photos) or are rendered from the showroom into a temp dir.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_SPEEDUP = 1.5
SCALES = {"small": {"steps": 6, "windows": 3}, "full": {"steps": 10, "windows": 5}}


def add_arguments(p) -> None:
    from carscope.train.models import CPU_DEFAULT_ARCH

    p.add_argument("--scale", choices=sorted(SCALES), default="small", help="timed steps (default: %(default)s)")
    p.add_argument("--data", default=None, help="a crawl dataset whose exterior photos to use (default: render)")
    p.add_argument("--cases", default=f"{CPU_DEFAULT_ARCH}@default,resnet50@224",
                   help="comma-separated arch@img_size (default: %(default)s; 'default' = train's default size)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers of both loops (default: %(default)s)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of both loops (default: train's choice: the cores, 1 on a busy machine)")
    p.add_argument("--quality", action="store_true",
                   help="also train view and model on --data with the CPU defaults and report accuracy and time")


# ------------------------------------------------------------------------------------------ photos
def _photos(args, work: Path, n: int) -> list[str]:
    """Paths of n full-size exterior JPEGs."""
    if args.data:
        from carscope.crawler.dataset import load

        ds = load(args.data)
        rows = ds.images[ds.images["view_hint"] == "exterior"]
        paths = [str(ds.root / p) for p in rows["path"] if _decodes(ds.root / p)][:n]  # the naive loop has no
        if not paths:                                                                  # corrupt-file handling
            from carscope.common.errors import CarscopeError

            raise CarscopeError(f"{args.data} has no decodable exterior photos to benchmark with")
        return paths
    from carscope.showroom.config import ShowroomConfig
    from carscope.showroom.testing import iter_photos

    out = []
    config = ShowroomConfig(makes=2, models_per_make=2, years=(2023, 2023), photos=max(4, n // 4 + 1))
    for info, data in iter_photos(config, 640, views=("exterior",)):
        path = work / f"{info['id']}.jpg"
        path.write_bytes(data)
        out.append(str(path))
        if len(out) >= n:
            break
    return out


def _decodes(path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def torch_defaults():
    """torch's own backend flags for the duration (cudnn.benchmark off, TF32 matmuls off, TF32 convolutions on),
    and the flags as they were afterwards: a loop measured here never inherits another's settings."""
    import torch

    flags = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = \
        False, False, True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = \
            flags


# ------------------------------------------------------------------------------------------ naive loop
class _NaiveImages:
    """Decode the full-size JPEG on every access (what an ImageFolder pipeline does)."""

    def __init__(self, paths, targets, size: int):
        from torchvision import transforms as T

        self.paths, self.targets = paths, targets
        self.transform = T.Compose([
            T.Resize(int(round(size / 0.875))), T.RandomResizedCrop(size, scale=(0.35, 1.0)),
            T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert("RGB")), self.targets[i]


def _time_windows(step_fn, loader_iter_factory, steps: int, windows: int, batch: int, sync) -> list[float]:
    """images/s of `windows` windows of `steps` steps each, after 2 warm-up steps."""
    it = loader_iter_factory()
    for _ in range(2):
        step_fn(*next(it))
    sync()
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            step_fn(*next(it))
        sync()
        rates.append(steps * batch / (time.perf_counter() - t0))
    return rates


def _forever(loader):
    while True:
        yield from loader


def _naive(arch: str, size: int, paths, device, args, steps: int, windows: int) -> dict[str, Any]:
    import torch

    from carscope.train.models import create_model

    n_classes = 8
    targets = [i % n_classes for i in range(len(paths))]
    loader = torch.utils.data.DataLoader(_NaiveImages(paths, targets, size), batch_size=args.batch_size,
                                         shuffle=True, num_workers=args.workers, drop_last=True,
                                         persistent_workers=args.workers > 0)
    torch.manual_seed(0)
    model = create_model(arch, n_classes).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

    def step(x, y):
        x, y = x.to(device), y.to(device)
        loss = crit(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    rates = _time_windows(step, lambda: _forever(loader), steps, windows, args.batch_size, _sync(device))
    return {"img_per_s": statistics.median(rates), "windows": rates, "precision": "fp32", "channels_last": False,
            "decode": "every step"}


# ------------------------------------------------------------------------------------------ carscope loop
def _ours(arch: str, size: int, paths, device_arg: str, args, steps: int, windows: int, work: Path) -> dict[str, Any]:
    import numpy as np
    import torch

    from carscope.train import engine
    from carscope.train.checkpoint import make_preprocess_spec
    from carscope.train.data import open_cache
    from carscope.train.hardware import setup
    from carscope.train.loaders import train_loader
    from carscope.train.options import default_args, resolve_task_defaults
    from carscope.train.presets import Normalizer
    from carscope.train.recipe import build_optimizer, build_scheduler

    n_classes = 8
    targets = np.array([i % n_classes for i in range(len(paths))], dtype=np.int64)
    targs = default_args(task="model", data=str(work), out=str(work / "run"), arch=arch, img_size=size,
                         batch_size=args.batch_size, workers=args.workers, device=device_arg,
                         no_progress=True, threads=torch.get_num_threads())
    resolve_task_defaults(targs)  # the augmentation train would use from scratch
    ctx = setup(targs)
    spec = make_preprocess_spec(size)
    t0 = time.perf_counter()
    cache, ok = open_cache(work / f"cache-{arch}-{size}", "train", spec, paths, [f"p{i}" for i in range(len(paths))],
                           workers=2)
    decode_s = time.perf_counter() - t0

    class _Prepared:  # just what train_loader reads
        caches = {"train": cache}

    _Prepared.targets = {"train": targets}
    loader, sampler = train_loader(ctx, targs, _Prepared)
    torch.manual_seed(0)
    from carscope.train.models import create_model

    model = create_model(arch, n_classes).to(ctx.device)
    if ctx.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, arch, targs, 1.0)
    scheduler = build_scheduler(optimizer, 10_000, 1)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.use_scaler)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    norm = Normalizer(spec["mean"], spec["std"], ctx.device, ctx.channels_last)

    class _Window:  # a loader that yields `n` batches per epoch, so train_one_epoch times exactly a window
        def __init__(self, n):
            self.n, self.epoch = n, 0

        def __len__(self):
            return self.n

        def __iter__(self):
            sampler.set_epoch(self.epoch)
            self.epoch += 1
            return iter(_take(_forever(loader), self.n))

    rates = []
    engine.train_one_epoch(ctx, model, model, _Window(2), crit, optimizer, scheduler, scaler, None, norm, targs, 0,
                           frozen=False, desc="warmup")  # warm-up
    for w in range(windows):
        m = engine.train_one_epoch(ctx, model, model, _Window(steps), crit, optimizer, scheduler, scaler, None, norm,
                                   targs, w + 1, frozen=False, desc="bench")
        rates.append(m["train_img_per_s"])
    return {"img_per_s": statistics.median(rates), "windows": rates,
            "precision": str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "fp32",
            "channels_last": ctx.channels_last, "decode": "once (uint8 cache)", "cache_decode_s": decode_s,
            "cache_images": int(ok.sum())}


def _take(it, n):
    for _ in range(n):
        yield next(it)


def _sync(device):
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


# ------------------------------------------------------------------------------------------ quality
def _quality(args, out: Path) -> dict[str, Any]:
    """Train view then model (with the view run) on --data with the CPU defaults, as `carscope demo` does."""
    from carscope.common.errors import CarscopeError

    if not args.data:
        raise CarscopeError("--quality needs --data (the demo showroom's crawl)")
    runs = out / "train-quality-runs"
    shutil.rmtree(runs, ignore_errors=True)
    result: dict[str, Any] = {}
    for task, extra in (("view", []), ("model", ["--view-run", str(runs / "view")])):
        cmd = [sys.executable, "-m", "carscope", "train", task, "--data", args.data, "--out", str(runs / task),
               "--no-progress", *extra]
        import resource

        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        if proc.returncode != 0:
            raise CarscopeError(f"quality run '{task}' failed: {proc.stderr.strip().splitlines()[-1:]}")
        report = json.loads((runs / task / "report.json").read_text())
        result[task] = {"command": " ".join(cmd[1:]), "wall_s": wall, "cpu_s": cpu_s,
                        "load_before": load0, "threads_note": next((line for line in proc.stderr.splitlines()
                                                                    if "machine is busy" in line), ""), "test_top1": report["test"]["top1"],
                        "test_top5": report["test"]["top5"], "test_n": report["test"]["n"],
                        "classes": len(report["labels"]), "ece_before": report["test"]["ece_before"],
                        "ece_after": report["test"]["ece_after"], "data": report["data"]}
    result["total_wall_s"] = result["view"]["wall_s"] + result["model"]["wall_s"]
    result["targets"] = {"view_test_top1": 0.99, "model_test_top1": 0.90, "total_wall_s": 360}
    result["met"] = (result["view"]["test_top1"] >= 0.99 and result["model"]["test_top1"] >= 0.90
                     and result["total_wall_s"] <= 360)
    return result


# ------------------------------------------------------------------------------------------ run
def run(args, out_dir) -> tuple[dict[str, Any], str]:
    import torch

    from carscope.common.errors import CarscopeError
    from carscope.train.options import TASK_DEFAULTS

    scale = SCALES[args.scale]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.batch_size < 1 or args.workers < 0:
        raise CarscopeError("--batch-size must be >= 1 and --workers >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CarscopeError("--device cuda but no CUDA GPU is available here")
    cases = []
    for item in args.cases.split(","):
        arch, _, size = item.strip().partition("@")
        cases.append((arch, TASK_DEFAULTS["model"]["img_size"] if size in ("", "default") else int(size)))
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    from carscope.train.hardware import cpu_threads

    torch.set_num_threads(cpu_threads(args, 1, 0))  # the same for both loops
    work = Path(tempfile.mkdtemp(prefix="carscope-bench-train-"))
    result: dict[str, Any] = {"scale": args.scale, "batch_size": args.batch_size, "workers": args.workers,
                              "device": str(device), "torch_threads": torch.get_num_threads(), "cases": []}
    try:
        n_photos = args.batch_size * (scale["steps"] * scale["windows"] + 2)
        paths = _photos(args, work, min(n_photos, 512))
        result["photos"] = {"n": len(paths), "source": args.data or "showroom render (640x480 JPEG)"}
        for arch, size in cases:
            print(f"bench train: {arch} at {size} px ...", file=sys.stderr, flush=True)
            with torch_defaults():  # the naive loop as a plain torch program runs: cudnn.benchmark and TF32 off
                naive = _naive(arch, size, paths, device, args, scale["steps"], scale["windows"])
            with torch_defaults():  # engine.setup() turns them on for carscope's loop: not for the next case
                ours = _ours(arch, size, paths, device.type, args, scale["steps"], scale["windows"], work)
            speedup = ours["img_per_s"] / naive["img_per_s"]
            result["cases"].append({"arch": arch, "img_size": size, "naive": naive, "carscope": ours,
                                    "speedup": speedup, "target": TARGET_SPEEDUP, "met": speedup >= TARGET_SPEEDUP})
        if args.quality:
            result["quality"] = _quality(args, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result, _markdown(result)


def _markdown(r: dict[str, Any]) -> str:
    lines = ["## Training throughput (images/s, median of timed windows)", "",
             f"Device {r['device']}, batch {r['batch_size']}, {r['workers']} DataLoader worker(s), "
             f"{r['torch_threads']} torch threads, photos: {r['photos']['n']} from {r['photos']['source']}.", "",
             "| arch | px | naive (fp32, decode every step, NCHW) | carscope | carscope precision | speedup | target |",
             "|---|---|---|---|---|---|---|"]
    for c in r["cases"]:
        lines.append(f"| {c['arch']} | {c['img_size']} | {c['naive']['img_per_s']:.1f} | {c['carscope']['img_per_s']:.1f} | "
                     f"{c['carscope']['precision']}{', channels_last' if c['carscope']['channels_last'] else ''} | "
                     f"{c['speedup']:.2f}x | {'met' if c['met'] else 'MISSED'} (>= {c['target']}x) |")
    lines.append("")
    lines.append("The one-off cache decode: " + ", ".join(
        f"{c['arch']}@{c['img_size']} {c['carscope']['cache_decode_s']:.1f} s for {c['carscope']['cache_images']} photos"
        for c in r["cases"]) + ".")
    q = r.get("quality")
    if q:
        lines += ["", "## Quality on the demo showroom (CPU defaults, from scratch)", "",
                  "| task | classes | test n | test top-1 | test top-5 | ECE before/after T | wall time |",
                  "|---|---|---|---|---|---|---|"]
        for task in ("view", "model"):
            t = q[task]
            lines.append(f"| {task} | {t['classes']} | {t['test_n']} | {t['test_top1']:.4f} | {t['test_top5']:.4f} | "
                         f"{t['ece_before']:.3f} / {t['ece_after']:.3f} | {t['wall_s']:.0f} s |")
        lines.append("")
        lines.append(f"CPU time (user+sys): view {q['view']['cpu_s']:.0f} s, model {q['model']['cpu_s']:.0f} s; "
                     f"load average before: {q['view']['load_before']:.1f} / {q['model']['load_before']:.1f} "
                     f"(the machine's other processes count against the wall time).")
        lines.append(f"Total {q['total_wall_s']:.0f} s; targets view >= 0.99, model >= 0.90, <= 360 s: "
                     f"{'met' if q['met'] else 'MISSED'}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args()
    res, md = run(ns, os.environ.get("OUT", "bench-out"))
    print(md)
