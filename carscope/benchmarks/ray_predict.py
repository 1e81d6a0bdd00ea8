"""`carscope bench ray`: `carscope predict --engine ray` against the local engine on one machine, same photos, same
bundle: the overhead a user pays for Ray before a cluster pays it back.

    carscope bench ray --bundle demo-work/bundle --out benchmarks/results/mine      # 960 showroom photos

Both runs go through `carscope predict` itself (carscope/serve/predict_cli.py). Ray's start-up (`ray.init`) is
timed on its own, then the Ray run reuses that instance, so the table splits what a long-lived cluster would not
pay again. The rows of the two runs are compared field by field (floats to a relative 1e-5: batches of other
compositions round differently).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def add_arguments(p) -> None:
    p.add_argument("--bundle", required=True, help="the bundle (from `carscope export`)")
    p.add_argument("--photos", type=int, default=960,
                   help="showroom exterior photos to predict, written to a temporary folder (default: %(default)s)")
    p.add_argument("--actors", type=int, default=None, help="Ray actors (default: predict's)")
    p.add_argument("--actor-cpus", type=float, default=None, help="CPUs per actor (default: predict's)")


def _photos(n: int, root: Path) -> list[Path]:
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.config import ShowroomConfig
    from carscope.showroom.render import render_dataset_photo

    config = ShowroomConfig(makes=6, models_per_make=4, years=(2023, 2023), photos=max(1, -(-n // 24)), others=0,
                            seed=424_242, mixed_fraction=0.0)
    catalog = build_catalog(config)
    chosen = [p for my in catalog.model_years for p in my.photos if p.car and p.view == "exterior"][:n]
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for p in chosen:
        out.append(root / f"{p.id}.jpg")
        out[-1].write_bytes(render_dataset_photo(catalog, p, 640))
    return out


def _predict(argv: list[str]) -> float:
    """`carscope predict ARGV` in this process, through its own parser and run (no CLI import: benchmarks sit
    below commands)."""
    import argparse

    from carscope.serve import predict_cli

    parser = argparse.ArgumentParser(prog="carscope")
    predict_cli.add_parser(parser.add_subparsers(dest="command"))
    t0 = time.perf_counter()
    code = predict_cli.run(parser.parse_args(["predict", *argv]))
    if code != 0:
        from carscope.common.errors import CarscopeError

        raise CarscopeError(f"carscope predict {' '.join(argv)} exited {code}")
    return time.perf_counter() - t0


def _differences(a: list[dict], b: list[dict]) -> int:
    n = 0
    for x, y in zip(a, b, strict=True):
        for k, v in x.items():
            w = y.get(k)
            if isinstance(v, float) and isinstance(w, float):
                n += abs(v - w) > 1e-5 * max(abs(v), abs(w), 1e-12)
            else:
                n += v != w
    return n


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    from carscope.benchmarks.common import describe_code
    from carscope.common.errors import CarscopeError

    try:
        import ray
    except ImportError:
        raise CarscopeError("bench ray needs Ray: pip install 'carscope[ray]'") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="carscope-bench-ray-"))
    try:
        photos = _photos(args.photos, work / "photos")
        common = ["--bundle", args.bundle, str(work / "photos"), "--providers", "cpu", "--overwrite"]
        print(f"bench ray: {len(photos)} photos, local engine", file=sys.stderr, flush=True)
        local_s = _predict([*common, "--out", str(work / "local.jsonl")])
        t0 = time.perf_counter()
        ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        init_s = time.perf_counter() - t0
        try:
            print("bench ray: Ray engine", file=sys.stderr, flush=True)
            extra = [*(["--actors", str(args.actors)] if args.actors else []),
                     *(["--actor-cpus", str(args.actor_cpus)] if args.actor_cpus else [])]
            ray_s = _predict([*common, "--out", str(work / "ray.jsonl"), "--engine", "ray", *extra])
        finally:
            ray.shutdown()
        rows = {k: [json.loads(line) for line in (work / f"{k}.jsonl").read_text().splitlines()]
                for k in ("local", "ray")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = len(photos)
    result = {"code": describe_code(), "bundle": str(Path(args.bundle).resolve()), "photos": n,
              "cpus": os.cpu_count(), "ray": ray.__version__,
              "local": {"seconds": round(local_s, 2), "photos_per_s": round(n / local_s, 1)},
              "ray_engine": {"init_seconds": round(init_s, 2), "seconds": round(ray_s, 2),
                             "photos_per_s": round(n / ray_s, 1),
                             "photos_per_s_with_init": round(n / (ray_s + init_s), 1)},
              "overhead_x": round(ray_s / local_s, 2),
              "rows_equal": len(rows["local"]) == len(rows["ray"]) == n and
              _differences(rows["local"], rows["ray"]) == 0}
    md = "\n".join([
        f"# bench ray: `carscope predict --engine ray` against the local engine ({n} photos, {os.cpu_count()} CPUs)",
        "", f"Code at {(result['code'].get('head') or 'unknown')[:12]}; Ray {ray.__version__}; bundle "
        f"{result['bundle']}.", "",
        "| engine | seconds | photos/s |", "|---|---:|---:|",
        f"| local (one process) | {local_s:.1f} | {n / local_s:.0f} |",
        f"| Ray (actors on this machine; Ray already started) | {ray_s:.1f} | {n / ray_s:.0f} |",
        f"| Ray, with its start-up ({init_s:.1f} s) | {ray_s + init_s:.1f} | {n / (ray_s + init_s):.0f} |", "",
        f"Ray takes {ray_s / local_s:.2f}x the local engine's time here: actors load their own bundle, and the "
        f"photos travel through Ray's object store. Rows equal to the local engine's: "
        f"{'yes' if result['rows_equal'] else 'NO'}.", ""])
    return result, md
