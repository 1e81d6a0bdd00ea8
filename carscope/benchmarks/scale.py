"""`carscope bench scale`: the whole pipeline at growing sizes, up to the seed's 19,000 model-years and 200,000 photos.

    carscope bench scale --work /data/scale                          # 200, 2,100, 19,200 model-years (75 min, 2 cores)
    carscope bench scale --sizes 20,200 --work /tmp/scale-small      # a quick look (a few minutes)
    carscope bench scale --work /data/scale                          # again: finished stages are kept, not re-run

Each size is a showroom of N model-years (10 years × makes × models, 8 exterior and 3 interior photos each, no
non-car images: 11 photos per model-year, about the seed's 10.5), and every stage runs as its own command, as a user
runs it, in its own process: its wall time and peak RSS (the process and its children, sampled every 0.2 s) are
measured, with what it made. A requested size is rounded up to whole models (200, 2,000 and 19,000 plan 200, 2,100
and 19,200 model-years). The stages:

  render      `carscope showroom --render-only --render-jobs J`: every photo drawn into the showroom's disk cache
  crawl       `carscope crawl --browser never --concurrency 32` against `carscope showroom` serving that cache
  resume      `carscope crawl --resume` of the finished crawl: the frontier and resume bookkeeping at N rows
  merge       `carscope dataset merge` of the crawl into a new dataset: the dataset writer, every photo hashed
  train-view  `carscope train view`, tinynet at 32 px, one epoch (the data loading and the decode cache at N)
  train-model `carscope train model --all-years`: every model-year a class, the same small network, one epoch
  export      `carscope export --int8`: ONNX, parity, the OOD fit, the levels, thumbnails; the bundle's size
  serve       `carscope serve`: start-up to /readyz, RSS, /api/v1/models, a closed-loop load of --requests photos
  predict     `carscope predict` over a folder of --predict-photos photos of the crawl

Every stage's result is kept in WORK/<size>/stages.json as soon as it ends, so a killed run started again goes on
with the first unfinished stage (--fresh starts over). The report gives each stage's cost per photo and its growth
exponent between sizes (log of the time ratio over log of the size ratio: 1 is linear), and flags a stage that grows
faster than linearly.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

YEARS = (2010, 2019)  # ten model-years per model
PHOTOS = 8  # exterior photos per model-year; interiors are a third of that, rounded up: 11 photos per model-year
STAGES = ("render", "crawl", "resume", "merge", "train-view", "train-model", "export", "serve", "predict")


def add_arguments(p) -> None:
    p.add_argument("--sizes", default="200,2000,19000",
                   help="model-years per size, comma-separated (default: %(default)s; 11 photos each)")
    p.add_argument("--work", default=None,
                   help="where the showroom caches, datasets, runs and bundles go, one folder per size; a run "
                        "started again keeps the stages already done (default: a temporary folder, removed)")
    p.add_argument("--fresh", action="store_true", help="forget the stages already done in --work")
    p.add_argument("--stages", default=",".join(STAGES), help="the stages to run (default: all)")
    p.add_argument("--render-jobs", type=int, default=os.cpu_count() or 1,
                   help="processes drawing the showroom's photos (default: %(default)s, the cores)")
    p.add_argument("--img-size", type=int, default=32, help="train's crop size in px (default: %(default)s)")
    p.add_argument("--arch", default="tinynet", help="train's architecture (default: %(default)s)")
    p.add_argument("--requests", type=int, default=400, help="requests of serve's load run (default: %(default)s)")
    p.add_argument("--predict-photos", type=int, default=20000,
                   help="photos `carscope predict` reads, at most the crawl's (default: %(default)s)")


def plan(model_years: int) -> dict[str, Any]:
    """The showroom of about `model_years` model-years (never fewer): models per make near the square root of the
    models, within the showroom's limits (60 makes, 40 models per make)."""
    years = YEARS[1] - YEARS[0] + 1
    n_models = max(1, math.ceil(model_years / years))
    per_make = min(40, max(1, math.ceil(math.sqrt(n_models))))
    makes = math.ceil(n_models / per_make)
    if makes > 60:
        from carscope.common.errors import CarscopeError

        raise CarscopeError(f"--sizes: {model_years} model-years is more than the showroom holds (24,000)")
    n_my = makes * per_make * years
    return {"makes": makes, "models_per_make": per_make, "years": f"{YEARS[0]}-{YEARS[1]}", "photos": PHOTOS,
            "model_years": n_my, "photos_total": n_my * (PHOTOS + math.ceil(PHOTOS / 3))}


def _say(msg: str) -> None:
    print(f"bench scale: {msg}", file=sys.stderr, flush=True)


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    import tempfile

    from carscope.benchmarks.scale_report import markdown, plot
    from carscope.benchmarks.scale_stages import run_stage
    from carscope.common.errors import CarscopeError

    try:
        sizes = sorted({int(s) for s in str(args.sizes).split(",") if s.strip()})
    except ValueError:
        raise CarscopeError(f"--sizes wants comma-separated model-year counts, got {args.sizes!r}") from None
    stages = [s.strip() for s in str(args.stages).split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if not sizes or min(sizes) < 1 or bad:
        raise CarscopeError(f"--sizes must be positive and --stages among {', '.join(STAGES)}"
                            + (f" (not {', '.join(bad)})" if bad else ""))
    plans = [plan(n) for n in sizes]
    scratch = None
    if args.work:
        work = Path(args.work)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="carscope-bench-scale-")
        work = Path(scratch.name)
    result: dict[str, Any] = {"stages": stages, "arch": args.arch, "img_size": args.img_size,
                              "render_jobs": args.render_jobs, "requests": args.requests,
                              "predict_photos": args.predict_photos, "sizes": []}
    try:
        for p in plans:
            folder = work / f"my-{p['model_years']}"
            folder.mkdir(parents=True, exist_ok=True)
            state_path = folder / "stages.json"
            if args.fresh and state_path.exists():
                state_path.unlink()
            state = json.loads(state_path.read_text()) if state_path.exists() else {}
            if state.get("plan") not in (None, p):
                raise CarscopeError(f"{folder} holds another plan's stages; use --fresh or another --work")
            state["plan"] = p
            _say(f"{p['model_years']:,} model-years, {p['photos_total']:,} photos ({p['makes']} makes x "
                 f"{p['models_per_make']} models x 10 years) in {folder}")
            for stage in stages:
                if stage in state.get("done", {}):
                    _say(f"  {stage}: done before ({state['done'][stage]['seconds']:.1f} s)")
                    continue
                row = run_stage(stage, p, folder, args)
                state.setdefault("done", {})[stage] = row
                tmp = state_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(state, indent=1))
                os.replace(tmp, state_path)
                _say(f"  {stage}: {row['seconds']:.1f} s, peak RSS {row['peak_rss_mib']:.0f} MiB"
                     + (f" ({row['note']})" if row.get("note") else ""))
            result["sizes"].append({"plan": p, "stages": state.get("done", {})})
    finally:
        if scratch is not None:
            scratch.cleanup()
    md = markdown(result)
    png = plot(result, Path(out_dir))
    if png:
        result["plot"] = png.name
    return result, md
