"""From a dataset to what the loop reads: the prepared splits and caches (`load_data`) and the training loader.

    python -c "from carscope.train.loaders import load_data; print(load_data.__doc__)"

`load_data` is torchvision's `load_data`: rank 0 builds splits.parquet and the decode-once caches
(carscope/train/data.py) while the other ranks wait, then every rank maps the same files. `train_loader` puts the
train cache behind the augmentation preset (carscope/train/presets.py) and a per-rank sampler.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from carscope.common.errors import CarscopeError
from carscope.train.data import SPLITS_FILE, Prepared, epoch_sampler, load_prepared, prepare
from carscope.train.hardware import Context, on_main


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

    prepared = on_main(ctx, build)  # the other ranks wait inside it (no collective: see hardware.on_main)
    if not ctx.main:  # the caches exist now: this only maps them
        prepared = load_prepared(run_dir, cache_dir, spec, Path(args.data), workers=workers)
    if prepared.size("train") == 0 or prepared.size("val") == 0:
        raise CarscopeError("the split left no training or validation photos; the dataset is too small")
    return prepared


def train_loader(ctx: Context, args, prepared: Prepared):
    """The augmenting DataLoader over this rank's share of the train cache, and its sampler (set_epoch each epoch)."""
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
