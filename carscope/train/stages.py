"""The stages around the training loop: the run directory, the all-years pretraining and the view-label cleaning.

    carscope train model --data dataset --out runs/model --pretrain-all-years   # pretrain(), then the target year
    carscope train view  --data dataset --out runs/view --clean-folds 2         # clean_view(), then the real run

The engine (carscope/train/engine.py) calls these in order and passes its own `fit` to the two that train, so
this module needs nothing of the engine: the loop is written once, there.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from carscope.common.errors import CarscopeError
from carscope.train import checkpoint
from carscope.train.data import SPLITS_FILE, say
from carscope.train.hardware import Context, barrier, on_main
from carscope.train.loaders import load_data
from carscope.train.models import preprocess_config
from carscope.train.report import METRICS_FILE


def prepare_run_dir(ctx: Context, args) -> Path:
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

    on_main(ctx, check)
    barrier(ctx)
    return run_dir


class Stopped(Exception):
    """A stage stopped as --stop-after asked; the run continues with --resume."""


def pretrain(ctx: Context, args, run_dir: Path, resume_state, fit) -> None:
    """The seed's recipe: make+model on every year, then (in fit) the target year from those weights. The target
    year's val/test photos are pinned out of the pretraining's train split, so test stays unseen. `fit` is the
    engine's; Stopped if --stop-after ended the pretraining."""
    spec = checkpoint.make_preprocess_spec(args.img_size, args.crop_pct, preprocess_config(args.arch))
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
        barrier(ctx)
        stopped = fit(ctx, pre_args, pre_dir, pre_state, label_mode="make_model", years="all", exclude=exclude,
                      keep_cache=True, reuse_splits=pre_state is not None)
        if stopped:
            raise Stopped()
    args.weights = str(pre_dir / "best.pt")


CLEAN_MIN_VAL_TOP1 = 0.85  # a fold model below this val top-1 relabels nothing


def clean_view(ctx: Context, args, run_dir: Path, fit) -> None:
    """Out-of-fold cleaning of the view labels: real galleries put dealer logos, banners and brochure pages in their
    Exterior and Interior tabs, so some photos' page hints are wrong, and a classifier trained on them learns the
    wrong hint by heart. The train split's hinted photos are cut into `--clean-folds` folds by hash; a model
    trained without a fold (and with the synthetic negatives) judges that fold, and a photo it calls `other` with
    p >= 0.5 is relabelled `other` (source "view_cleaned") before the real training. Val and test keep their
    hints: the run's figures are measured against what the pages said. A fold model under CLEAN_MIN_VAL_TOP1 on
    its val split judges nothing (on a tiny crawl a weak model calls plain car drawings `other`). `fit` is the
    engine's."""
    import pandas as pd

    from carscope.crawler.dataset import load as load_dataset
    from carscope.crawler.dataset import write_table
    from carscope.train.data import OTHER_LABEL, score_unknown

    spec = checkpoint.make_preprocess_spec(args.img_size, args.crop_pct, preprocess_config(args.arch))
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
