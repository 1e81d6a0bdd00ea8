"""`carscope bench levels`: recipes on a showroom as hard as real catalogs, scored at the level of the answer, per
slice, and on cars the catalog does not hold.

    carscope bench levels --out benchmarks/results/mine               # ~25 min on 2 cores
    carscope bench levels --makes 4 --models-per-make 3 --epochs 3 --recipes scratch,colour --out /tmp/quick

The known catalog is a realistic showroom (carscope/showroom/config.py REALISTIC: generations with facelifts,
badge-engineered twins, five viewpoints, close-ups, cut and small framings, clutter, night, rain, blur, heavy JPEG),
every model-year of every year a class (`--all-years`). The unknown cars are two other showrooms whose makes and
models never took part in training, fitting or thresholds: a realistic one of another seed, and one of the classic
renderer (whole cars, plain scenes) of a third seed. Their exterior car photos only (the truth says which).

Recipes, on the same split:
- carscope: `carscope train model --arch efficientnet_lite0 --weights efficientnet_lite0 --all-years` (train's
  defaults: ImageNet weights, head then the whole network, calibrated);
- seed: the seed's recipe from the same weights (carscope/benchmarks/recipe.py: frozen backbone, linear head), on
  the carscope run's split, uncalibrated as it was;
- scratch: `carscope train model --arch cpunet --all-years`, no weights;
- colour: a logistic regression on 8x8x8 colour histograms: the floor.

For each: top-1 and ECE at the model-year, model and make level on the test split; top-1 per pose, framing, part and
condition; the model-years its val photos cannot tell apart (export's rule) and what serve's rule answers with them;
and per unknown-model score (carscope/benchmarks/levels_eval.py), AUROC against the known test photos and, at the
threshold that keeps `--unknown-tpr` of val photos, the share of unknown cars still answered sure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RECIPES = ("carscope", "seed", "scratch", "colour")
UNKNOWN_SEED_OFFSET = {"unknown_realistic": 101, "unknown_classic": 202}  # seeds no known catalog uses
DESIGN_KEYS = ("grille", "lamp", "badge", "badge_color", "stripe", "arches", "window_trim")  # what a make looks like


def add_arguments(p) -> None:
    p.add_argument("--makes", type=int, default=7, help="known makes (default: %(default)s)")
    p.add_argument("--models-per-make", type=int, default=4, help="known models per make (default: %(default)s)")
    p.add_argument("--years", default="2020-2023", help="known years: every model-year is a class (default: %(default)s)")
    p.add_argument("--photos", type=int, default=24, help="exterior photos per model-year (default: %(default)s)")
    p.add_argument("--unknown-makes", type=int, default=4, help="makes of each unknown showroom (default: %(default)s)")
    p.add_argument("--unknown-photos", type=int, default=6,
                   help="exterior photos per unknown model-year, one year each (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=20, help="epochs of every trained recipe (default: %(default)s)")
    p.add_argument("--img-size", type=int, default=96, help="train/eval crop in px (default: %(default)s)")
    p.add_argument("--recipes", default=",".join(RECIPES),
                   help=f"which recipes, comma-separated, of {', '.join(RECIPES)} (seed needs carscope)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="serve's --min-confidence the answers are stated at (default: %(default)s)")
    p.add_argument("--unknown-tpr", type=float, default=0.90,
                   help="share of val photos each unknown-model threshold keeps (default: %(default)s)")
    p.add_argument("--join", type=float, default=None, help="the groups' join level (default: common/levels.py's)")
    p.add_argument("--seed", type=int, default=0, help="the known showroom's and the runs' seed (default: %(default)s)")
    p.add_argument("--carscope-args", default="", help="extra `carscope train` arguments for the carscope recipe")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: half the cores, at most 4)")
    p.add_argument("--workdir", default=None, help="keep datasets and runs here (default: a temp dir, removed)")


def _say(msg: str) -> None:
    print(f"bench levels: {msg}", file=sys.stderr, flush=True)


def _showrooms(args, work: Path) -> dict[str, Any]:
    """The known dataset and the two unknown ones, with each photo's truth by sha256."""
    from carscope.crawler.dataset import load as load_dataset
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.config import REALISTIC, ShowroomConfig, parse_years
    from carscope.showroom.offline import write_dataset

    years = parse_years(args.years)
    last = (years[1], years[1])
    configs = {
        "known": ShowroomConfig(makes=args.makes, models_per_make=args.models_per_make, years=years,
                                photos=args.photos, others=0, mixed_fraction=0.0, seed=args.seed, **REALISTIC),
        "unknown_realistic": ShowroomConfig(makes=args.unknown_makes, models_per_make=args.models_per_make, years=last,
                                            photos=args.unknown_photos, others=0, mixed_fraction=0.0,
                                            seed=args.seed + UNKNOWN_SEED_OFFSET["unknown_realistic"], **REALISTIC),
        "unknown_classic": ShowroomConfig(makes=args.unknown_makes, models_per_make=args.models_per_make, years=last,
                                          photos=args.unknown_photos, others=0, mixed_fraction=0.0,
                                          seed=args.seed + UNKNOWN_SEED_OFFSET["unknown_classic"]),
    }
    out: dict[str, Any] = {}
    known_designs = [m.design for m in build_catalog(configs["known"]).makes]
    for name, config in configs.items():
        t0 = time.perf_counter()
        root = write_dataset(work / name, config, width=320, threads=2)
        catalog = build_catalog(config)
        images = load_dataset(root).images
        truth = {}
        for row in images.itertuples():
            p = catalog.photos[str(row.source_url).removeprefix("showroom:")]
            my = catalog.by_model_id[p.model_id]
            truth[row.sha256] = {"view": p.view, "car": p.car, "pose": p.pose, "framing": p.framing, "part": p.part,
                                 "conditions": list(p.conditions), "look": my.generation.get("look"),
                                 "twin": my.model.slug if my.twin_of else None,
                                 "shared_design": _shared_design(my.make.design, known_designs)}
        known_makes = {m.name for m in catalog.makes}
        look_of = {my.model_id: my.generation.get("look") for my in catalog.model_years}
        out[name] = {"root": root, "images": images, "truth": truth, "look_of": look_of, "config": config.to_dict(),
                     "model_years": len(catalog.model_years), "makes": sorted(known_makes),
                     "looks": len({my.generation.get("look") for my in catalog.model_years}),
                     "twins": sum(1 for my in catalog.model_years if my.twin_of), "write_s": time.perf_counter() - t0}
        _say(f"{name}: {len(images)} photos of {len(catalog.model_years)} model-years in {out[name]['write_s']:.0f} s")
    overlap = set(out["known"]["makes"]) & (set(out["unknown_realistic"]["makes"]) | set(out["unknown_classic"]["makes"]))
    out["make_names_shared"] = sorted(overlap)  # a name, not a design: reported, since a make's name is not its look
    return out


def _shared_design(design: dict, known: list[dict]) -> int:
    """How many of a make's signature elements (of DESIGN_KEYS) the most alike known make shares: the showroom's
    vocabularies are small, so another seed's make can wear a known make's grille, lamps, badge and colour."""
    return max(sum(design[k] == other[k] for k in DESIGN_KEYS) for other in known)


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    import torch

    from carscope.benchmarks.common import describe_code
    from carscope.benchmarks.levels_report import markdown, plot
    from carscope.common.errors import CarscopeError
    from carscope.train.hardware import cpu_threads

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    bad = [r for r in recipes if r not in RECIPES]
    if bad or not recipes:
        raise CarscopeError(f"--recipes takes {', '.join(RECIPES)}, not '{args.recipes}'")
    if "seed" in recipes and "carscope" not in recipes:
        raise CarscopeError("the seed recipe trains on the carscope run's split: add carscope to --recipes")
    if args.epochs < 1 or args.img_size < 16 or not 0.5 <= args.unknown_tpr < 1 or not 0 < args.threshold < 1:
        raise CarscopeError("--epochs >= 1, --img-size >= 16, --unknown-tpr in [0.5, 1), --threshold in (0, 1)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = cpu_threads(argparse.Namespace(threads=args.threads, device="cpu"), 1, 0)
    workers = args.workers if args.workers is not None else min(4, max(1, (os.cpu_count() or 2) // 2))
    torch.set_num_threads(threads)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="carscope-bench-levels-"))
    work.mkdir(parents=True, exist_ok=True)
    t0, code = time.perf_counter(), describe_code()
    try:
        shows = _showrooms(args, work)
        from carscope.benchmarks.levels_recipes import evaluate_recipes

        results = evaluate_recipes(args, recipes, shows, work, out, threads=threads, workers=workers)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    result = {"code": code, "torch_threads": threads, "workers": workers, "epochs": args.epochs,
              "img_size": args.img_size, "threshold": args.threshold, "unknown_tpr": args.unknown_tpr,
              "showrooms": {k: {kk: vv for kk, vv in v.items() if kk not in ("root", "images", "truth", "look_of")}
                            for k, v in shows.items() if isinstance(v, dict)},
              "make_names_shared": shows["make_names_shared"], **results,
              "total_wall_s": time.perf_counter() - t0}
    (out / "levels_groups.json").write_text(json.dumps({k: v.get("groups") for k, v in results["recipes"].items()},
                                                       indent=1))
    plot(result, out)
    return result, markdown(result)
