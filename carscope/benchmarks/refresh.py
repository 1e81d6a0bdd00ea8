"""`carscope bench refresh`: a refresh of an unchanged site (`crawl --refresh`) against a fresh crawl of it.

    carscope bench refresh --out benchmarks/results/mine                      # 2 x 5 x 2 model-years, 3 rounds
    carscope bench refresh --makes 4 --models-per-make 5 --photos 38 --rounds 5 --out benchmarks/results/mine

The showroom runs in its own process (carscope.common.servers), its photos drawn once by a warm-up crawl that is
not counted, politeness off (--per-host = --concurrency, no delay). Each round crawls the site into a fresh
dataset, then refreshes that dataset; per round: wall time, bytes downloaded (the crawl's own count of bodies)
and the requests the showroom answered (its /__stats: all, and photos). Two modes of the same catalog:
`plain` (the showroom as it is: pages carry no validator, photos say max-age=86400, so a refresh re-reads the
pages and asks for no photo) and `revalidate` (`--revalidate`: pages answer 304 to a conditional request,
photos ask to be revalidated, so a refresh asks for every photo and gets 304s). Reported: medians and the
refresh / crawl ratios of time and bytes.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

MODES = {"plain": [], "revalidate": ["--revalidate"]}
PHOTO_KINDS = ("photo", "cdn_photo")


def add_arguments(p) -> None:
    p.add_argument("--makes", type=int, default=2, help="showroom makes (default: %(default)s)")
    p.add_argument("--models-per-make", type=int, default=5, help="(default: %(default)s)")
    p.add_argument("--years", default="2022-2023", help="(default: %(default)s)")
    p.add_argument("--photos", type=int, default=19, help="exterior photos per model-year (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="crawl + refresh pairs per mode (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=16, help="(default: %(default)s)")
    p.add_argument("--modes", default=",".join(MODES), help="of %(default)s")


def _timed(base: str, out: Path, concurrency: int, **kw) -> dict:
    from carscope.crawler import CrawlConfig, crawl
    from carscope.showroom.testing import fetch_stats, reset_stats

    reset_stats(base)
    config = CrawlConfig(start_url=base + "/", out=str(out), browser="never", concurrency=concurrency,
                         per_host=concurrency, progress=False, log=False, **kw)
    t0 = time.perf_counter()
    stats = crawl(config)
    wall = time.perf_counter() - t0
    site = fetch_stats(base)
    got = {"wall_s": round(wall, 3), "status": stats["status"], "requests": site["requests"],
           "photo_requests": sum(site["by_kind"].get(k, 0) for k in PHOTO_KINDS),
           "images_stored": stats["images"]["stored"]}
    if "refresh" in stats:
        got["bytes_downloaded"] = stats["refresh"]["bytes_downloaded"]
        got["refresh"] = stats["refresh"]
    else:
        got["bytes_downloaded"] = stats["bytes_downloaded"]
    return got


def _mode(args, flags: list[str], work: Path) -> dict:
    from carscope.common.servers import ServerProcess

    argv = [sys.executable, "-m", "carscope", "showroom", "--port", "0", "--makes", str(args.makes),
            "--models-per-make", str(args.models_per_make), "--years", args.years, "--photos", str(args.photos),
            *flags]
    with ServerProcess(argv, "the showroom") as server:
        base = server.url.rstrip("/")
        _timed(base, work / "warmup", args.concurrency)  # draws every photo once: not counted
        rounds = []
        for i in range(args.rounds):
            root = work / f"round{i}"
            crawled = _timed(base, root, args.concurrency)
            refreshed = _timed(base, root, args.concurrency, resume=True, refresh=True)
            rounds.append({"crawl": crawled, "refresh": refreshed})

    def med(side: str, key: str) -> float:
        return statistics.median(r[side][key] for r in rounds)

    out = {"rounds": rounds}
    for side in ("crawl", "refresh"):
        out[side] = {k: med(side, k) for k in ("wall_s", "bytes_downloaded", "requests", "photo_requests")}
    out["time_ratio"] = round(out["refresh"]["wall_s"] / out["crawl"]["wall_s"], 4) if out["crawl"]["wall_s"] else None
    crawl_bytes = out["crawl"]["bytes_downloaded"]
    out["bytes_ratio"] = round(out["refresh"]["bytes_downloaded"] / crawl_bytes, 4) if crawl_bytes else None
    return out


def run(args, out_dir=None) -> tuple[dict, str]:
    from carscope.common.errors import CarscopeError

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise CarscopeError(f"--modes: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(MODES)}")
    if args.rounds < 1:
        raise CarscopeError(f"--rounds must be at least 1, not {args.rounds}")
    with tempfile.TemporaryDirectory(prefix="carscope-bench-refresh-") as tmp:
        results = {m: _mode(args, MODES[m], Path(tmp) / m) for m in modes}
    settings = {k: v for k, v in vars(args).items() if k in ("makes", "models_per_make", "years", "photos",
                                                              "rounds", "concurrency", "modes")}
    result = {"settings": settings | {"out": str(out_dir)}, "modes": results}
    lines = ["## Refresh against a fresh crawl", "",
             f"Showroom {args.makes} makes x {args.models_per_make} models, years {args.years}, {args.photos} "
             f"exterior photos per model-year, in its own process; concurrency {args.concurrency}, politeness off; "
             f"medians of {args.rounds} rounds (each a fresh crawl, then a refresh of it: an unchanged site).", "",
             "| mode | crawl s | refresh s | time ratio | crawl MB | refresh MB | bytes ratio | crawl requests | "
             "refresh requests | refresh photo requests |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m, r in results.items():
        c, f = r["crawl"], r["refresh"]
        lines.append(f"| {m} | {c['wall_s']:.2f} | {f['wall_s']:.2f} | {r['time_ratio']} | "
                     f"{c['bytes_downloaded'] / 1e6:.2f} | {f['bytes_downloaded'] / 1e6:.3f} | {r['bytes_ratio']} | "
                     f"{c['requests']:.0f} | {f['requests']:.0f} | {f['photo_requests']:.0f} |")
    lines += ["", "`plain`: pages re-read, no photo asked (fresh by max-age); `revalidate`: every page and photo "
              "asked conditionally, unchanged ones answer 304 with no body."]
    return result, "\n".join(lines)
