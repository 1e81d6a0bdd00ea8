"""Showroom benchmark: how long a photo takes to draw, and how fast the site serves photos (cold and cached).

    python -m benchmarks.showroom --out benchmarks/results/mine          # ~1 minute on 2 cores
    python -m benchmarks.showroom --photos-timed 40 --seconds 5 --concurrency 32

Render time is measured in-process, single-threaded (draw 640x480 + downscale + two JPEG encodes, what one
request for an uncached photo costs). Serving is measured against `carscope showroom` in its own process (so
the load generator does not share its GIL), with an aiohttp client at a fixed concurrency: first every photo
once (cold: rendered on demand in the server's thread pool), then photos already in the memory cache for
--seconds (warm). Writes showroom.json and showroom.md into --out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--makes", type=int, default=6)
    p.add_argument("--models-per-make", type=int, default=4)
    p.add_argument("--photos", type=int, default=24, help="exterior photos per model-year (demo size)")
    p.add_argument("--photos-timed", type=int, default=60, help="photos timed for the render figure")
    p.add_argument("--cold-photos", type=int, default=300, help="uncached photos fetched for the cold figure")
    p.add_argument("--seconds", type=float, default=8.0, help="duration of the cached-photo load")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)


def _render_times(cfg, n: int) -> dict:
    from benchmarks.common import percentiles
    from showroom.catalog import build_catalog
    from showroom.render import render_photo_bytes, render_photo_image

    cat = build_catalog(cfg)
    photos = list(cat.photos.values())
    random.Random(0).shuffle(photos)
    photos = photos[:n]
    for p in photos[:3]:  # warm-up: imports, font/gradient caches
        render_photo_bytes(cat, p)
    draw, full, sizes = [], [], []
    for p in photos:
        t0 = time.perf_counter()
        render_photo_image(cat, p)
        draw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = render_photo_bytes(cat, p)
        full.append(time.perf_counter() - t0)
        sizes.append(len(out[640]))
    return {"draw_640": percentiles(draw), "draw_and_encode_both_sizes": percentiles(full),
            "mean_kb_640": sum(sizes) / len(sizes) / 1024, "n_photos": len(photos)}


def _start_server(args) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "carscope", "showroom", "--port", "0", "--makes", str(args.makes),
           "--models-per-make", str(args.models_per_make), "--photos", str(args.photos), "--seed", str(args.seed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "http://" in line:
            return proc, line.split()[1].rstrip("/")
    proc.kill()
    raise RuntimeError(f"the showroom did not start: {proc.stderr.read()[-500:]}")


async def _load(base: str, urls: list[str], concurrency: int, seconds: float | None) -> dict:
    import aiohttp

    from benchmarks.common import percentiles

    lat, n_bytes, errors = [], 0, 0
    stop_at = time.perf_counter() + seconds if seconds else None
    queue = list(urls)

    async def worker(session, k):
        nonlocal n_bytes, errors
        i = k
        while True:
            if stop_at is None:
                if not queue:
                    return
                url = queue.pop()
            else:
                if time.perf_counter() >= stop_at:
                    return
                url = urls[i % len(urls)]
                i += concurrency
            t0 = time.perf_counter()
            try:
                async with session.get(base + url) as r:
                    body = await r.read()
                    if r.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
                continue
            lat.append(time.perf_counter() - t0)
            n_bytes += len(body)

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(session, k) for k in range(concurrency)])
        wall = time.perf_counter() - t0
    return {"requests": len(lat), "errors": errors, "seconds": wall, "requests_per_s": len(lat) / wall,
            "mb_per_s": n_bytes / wall / 2**20, "latency": percentiles(lat)}


def run(args, out_dir=None) -> tuple[dict, str]:
    from showroom.catalog import build_catalog
    from showroom.config import ShowroomConfig

    cfg = ShowroomConfig(makes=args.makes, models_per_make=args.models_per_make, photos=args.photos, seed=args.seed)
    render = _render_times(cfg, args.photos_timed)
    cat = build_catalog(cfg)
    ids = list(cat.photos)
    random.Random(1).shuffle(ids)
    cold_urls = [f"/photos/{pid}-640.jpg" for pid in ids[: args.cold_photos]]
    proc, base = _start_server(args)
    try:
        cold = asyncio.run(_load(base, cold_urls, args.concurrency, None))
        warm = asyncio.run(_load(base, cold_urls, args.concurrency, args.seconds))  # all in the LRU now
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    result = {"settings": vars(args) | {"out": str(out_dir)}, "catalog_photos": len(cat.photos), "render": render,
              "serve_cold": cold, "serve_cached": warm}
    r = render
    md = "\n".join([
        "## Showroom",
        "",
        f"Catalog {args.makes} makes x {args.models_per_make} models x 2 years, {len(cat.photos)} photos; "
        f"client concurrency {args.concurrency}, server in its own process.",
        "",
        "| figure | p50 | p90 | mean |",
        "|---|---|---|---|",
        f"| draw one 640x480 photo (ms) | {r['draw_640']['p50_ms']:.1f} | {r['draw_640']['p90_ms']:.1f} | "
        f"{r['draw_640']['mean_ms']:.1f} |",
        f"| draw + 320 downscale + 2 JPEG encodes (ms) | {r['draw_and_encode_both_sizes']['p50_ms']:.1f} | "
        f"{r['draw_and_encode_both_sizes']['p90_ms']:.1f} | {r['draw_and_encode_both_sizes']['mean_ms']:.1f} |",
        f"| cold photo request latency (ms) | {cold['latency'].get('p50_ms', 0):.1f} | "
        f"{cold['latency'].get('p90_ms', 0):.1f} | {cold['latency'].get('mean_ms', 0):.1f} |",
        f"| cached photo request latency (ms) | {warm['latency'].get('p50_ms', 0):.1f} | "
        f"{warm['latency'].get('p90_ms', 0):.1f} | {warm['latency'].get('mean_ms', 0):.1f} |",
        "",
        f"Cold (rendered on demand): **{cold['requests_per_s']:.0f} photos/s**; cached: "
        f"**{warm['requests_per_s']:.0f} requests/s** ({warm['mb_per_s']:.1f} MiB/s, mean "
        f"{r['mean_kb_640']:.0f} KiB per 640 photo); errors {cold['errors'] + warm['errors']}.",
    ])
    return result, md


def main(argv=None) -> int:
    from benchmarks.common import default_results_dir, write_result

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    add_arguments(p)
    args = p.parse_args(argv)
    out = args.out or str(default_results_dir())
    result, md = run(args, out)
    path = write_result(out, "showroom", result, md)
    print(md)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
