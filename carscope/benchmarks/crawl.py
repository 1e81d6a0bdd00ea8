"""`carscope bench crawl`: crawler throughput, memory, browser rendering and the seed's approach, in one run.

    carscope bench crawl --scale small --out benchmarks/results/mine     # about 3 minutes on 2 cores
    carscope bench crawl --scale full  --out benchmarks/results/mine     # 2,000 vs 20,000 images, 500 galleries
    carscope bench crawl --scale full --baseline-ref HEAD~3 --rounds 3 --out benchmarks/results/mine
    carscope bench crawl --sizes 500 --baseline-ref main --rounds 5 --skip-browser --skip-baseline

What is measured, each against a pre-rendered showroom in its own process on loopback, politeness off
(--per-host = --concurrency, no delay; robots.txt is still read):
- end to end: pages/s, images/s and MB/s of `crawl()` (run in a child process, --browser never, so the
  gallery JSON hook is used), and the child's peak RSS sampled every 0.2 s, at two crawl sizes
  (small: 500 vs 2,000 images; full: 2,000 vs 20,000; --sizes picks others, the last one being "the large
  crawl"): RSS must not grow with the crawl;
- who used the CPU during each crawl: the CPU seconds (user + system, children included) of the showroom
  process and of the crawler child over exactly the crawl's interval (both read with psutil by the child
  right around `crawl()`), and each one's share of the machine, CPU s / (wall s x os.cpu_count()): when the
  showroom plus the crawler use nearly all the cores, the crawl rate is bounded by the machine, not by the
  crawler, and the ceiling fraction below has to be read with the showroom's share next to it;
- the ceiling: in this process, the crawler's own decode + validate + hash + write (temp, rename) over the
  very image bytes the crawl stored, with no network, on the same thread pool; target: crawl >= 60% of it.
  The fraction is the large crawl of this run over the ceiling of this run (never a figure from elsewhere);
  `ceiling_fraction_cpu_adjusted` divides by the ceiling x (1 - the showroom's CPU share) instead: the
  ceiling had the whole machine, the crawler only what the showroom left it;
- Playwright: gallery pages/s through the crawler's BrowserPool (fetch HTML, render, wait for the gallery,
  scroll) and the driver + browser processes' memory (PSS: Chromium's processes share pages, so summed RSS
  over-counts) every 25 pages over N pages (small: 100, full: 500): bounded by context recycling;
- the seed's approach: one image at a time with a random 0.4-0.8 s sleep, measured on a short sample
  (small: 15 images, full: 40) and extrapolated to the large crawl's image count (stated in the output);
- with --baseline-ref REF: the crawler at REF (a commit of this repository, checked out into a temporary
  `git worktree`, removed at the end) against the current code, in one run: per size, --rounds rounds of one
  baseline and one current crawl each (order ABAB... then BABA..., so drift on the machine cancels out),
  against the same showroom process, into fresh dataset directories; reported: each side's images/s per
  round, their medians and the ratio current / baseline. The baseline's child imports REF's packages (the
  worktree is first on sys.path; the child reports `crawler.__file__` and the run refuses a mismatch). The
  showroom, the ceiling and this harness are the current code's. The table, the ceiling and the RSS figures
  then use the current code's crawl with the median images/s.

Rendered photos are cached under --cache-dir (default ~/.cache/carscope/showroom), so only the first run of a
scale pays for drawing them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from carscope.benchmarks.ceiling import ceiling
from carscope.benchmarks.common import REPO, describe_code, env_running, git_worktree, resolve_ref
from carscope.benchmarks.crawl_report import markdown, plots

TARGET_CEILING_FRACTION = 0.6

# showroom sizes: model-years x (photos + photos/3 interiors) ~ images stored
SIZES = {
    "50": {"makes": 1, "models_per_make": 2, "years": "2023", "photos": 19},  # 2 MY x 25: a smoke test
    "500": {"makes": 2, "models_per_make": 5, "years": "2022-2023", "photos": 19},  # 20 MY x 25
    "2000": {"makes": 4, "models_per_make": 5, "years": "2022-2023", "photos": 38},  # 40 MY x 51
    "20000": {"makes": 10, "models_per_make": 10, "years": "2021-2023", "photos": 50},  # 300 MY x 67
}
SCALES = {
    "small": {"sizes": ["500", "2000"], "browser_pages": 100, "baseline_images": 15},
    "full": {"sizes": ["2000", "20000"], "browser_pages": 500, "baseline_images": 40},
}


def add_arguments(p) -> None:
    p.add_argument("--scale", choices=sorted(SCALES), default="small", help="small (~3 min) or full (default: %(default)s)")
    p.add_argument("--sizes", default=None, metavar="N,N",
                   help=f"crawl sizes instead of the scale's, smallest first (of {', '.join(SIZES)}; 50 is a smoke "
                        "test); the last one is the large crawl (seed baseline, Playwright, ceiling)")
    p.add_argument("--concurrency", type=int, default=32, help="crawler --concurrency = --per-host (default: %(default)s)")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "carscope" / "showroom"),
                   help="where rendered showroom photos are kept between runs (default: %(default)s)")
    p.add_argument("--skip-browser", action="store_true", help="leave out the Playwright measurement")
    p.add_argument("--skip-baseline", action="store_true", help="leave out the seed-style baseline")
    p.add_argument("--baseline-ref", default=None, metavar="REF",
                   help="also crawl with the code at this git ref or commit (a temporary worktree), alternating "
                        "with the current code against the same showroom, and report current / baseline")
    p.add_argument("--rounds", type=int, default=3,
                   help="with --baseline-ref: rounds of one baseline + one current crawl per size, the order "
                        "alternating per round (default: %(default)s)")


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    from carscope.common.errors import CarscopeError

    scale = SCALES[args.scale]
    sizes = _parse_sizes(args.sizes) if args.sizes else scale["sizes"]
    out = Path(out_dir)
    if args.concurrency < 1:
        raise CarscopeError("--concurrency must be at least 1")
    ref = getattr(args, "baseline_ref", None)
    rounds = getattr(args, "rounds", 3)
    if ref is not None and rounds < 1:
        raise CarscopeError("--rounds must be at least 1")
    commit = resolve_ref(ref) if ref is not None else None  # before anything slow: a bad REF fails at once
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"scale": args.scale, "sizes": sizes, "concurrency": args.concurrency,
                              "per_host": args.concurrency, "cpu_count": os.cpu_count(),
                              "loadavg_at_start": os.getloadavg(), "crawls": {}}
    large_size = sizes[-1]
    work = Path(tempfile.mkdtemp(prefix="carscope-bench-crawl-"))
    try:
        with contextlib.ExitStack() as stack:
            sides = {"current": REPO}
            if ref is not None:
                baseline_src = stack.enter_context(git_worktree(commit, work / "baseline-src", say=_say))
                sides = {"baseline": baseline_src, "current": REPO}
                result["baseline_ref"] = {"ref": ref, "commit": commit, "rounds": rounds,
                                          "current": describe_code()}
                result["comparison"] = {}
            for size in sizes:
                with _showroom(SIZES[size], args.cache_dir) as (showroom, boot):
                    base = showroom.url
                    _say(f"crawl of ~{size} images ({boot['prerender_s']:.0f} s to start the showroom)")
                    keep = work / f"ds-{size}"  # the dataset the ceiling reads (the large crawl's)
                    if ref is None:
                        crawl = _crawl_child(base, keep, args.concurrency, REPO, showroom.proc.pid)
                        _say_crawl("", crawl)
                    else:
                        crawl, result["comparison"][size] = _compare(base, work, size, keep, args.concurrency,
                                                                     rounds, sides, showroom.proc.pid)
                    if size != large_size:
                        shutil.rmtree(keep, ignore_errors=True)
                    crawl["showroom"] = {**SIZES[size], **boot}
                    result["crawls"][size] = crawl
                    if size == large_size:
                        if not args.skip_baseline:
                            _say("seed-style sequential baseline")
                            result["baseline"] = _seed_baseline(base, work / "seed", scale["baseline_images"])
                        if not args.skip_browser:
                            _say(f"Playwright: {scale['browser_pages']} gallery pages")
                            result["browser"] = _browser_bench(base, scale["browser_pages"])
        big = result["crawls"][large_size]
        _say("ceiling: decode + validate + hash + write over the same bytes, no network")
        result["ceiling"] = ceiling(work / f"ds-{large_size}", work / "ceiling", max_images=3000)
        # both from this run: the large crawl above and the ceiling just measured
        result["ceiling_fraction"] = big["images_per_s"] / result["ceiling"]["images_per_s"]
        left = 1.0 - big["showroom_cpu_share"]  # what the showroom left of the machine during the large crawl
        result["ceiling_fraction_cpu_adjusted"] = (big["images_per_s"] / (result["ceiling"]["images_per_s"] * left)
                                                   if left > 0 else None)
        result["target_ceiling_fraction"] = TARGET_CEILING_FRACTION
        small, large = result["crawls"][sizes[0]], big
        result["rss_growth"] = {"images": [small["images_stored"], large["images_stored"]],
                                "peak_rss_mib": [small["peak_rss_mib"], large["peak_rss_mib"]],
                                "ratio": large["peak_rss_mib"] / small["peak_rss_mib"]}
        if "baseline" in result:
            b = result["baseline"]
            b["extrapolated_s_for_large"] = large["images_stored"] / b["images_per_s"]
            result["speedup_vs_seed"] = large["images_per_s"] / b["images_per_s"]
        result["loadavg_at_end"] = os.getloadavg()  # other work on the machine skews every figure: say so
        plots(result, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result, markdown(result)


def _parse_sizes(text: str) -> list[str]:
    from carscope.common.errors import CarscopeError

    sizes = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in sizes if s not in SIZES]
    if not sizes or bad:
        raise CarscopeError(f"--sizes: unknown size(s) {', '.join(bad) or repr(text)}; choose from {', '.join(SIZES)}")
    if len(set(sizes)) != len(sizes):
        raise CarscopeError(f"--sizes: '{text}' names a size twice")
    return sizes


def _compare(base: str, work: Path, size: str, keep: Path, concurrency: int, rounds: int, sides: dict[str, Path],
             showroom_pid: int) -> tuple[dict, dict]:
    """`rounds` rounds of one crawl per side, ABAB... then BABA..., each into a fresh dataset directory.

    Returns the current code's crawl with the median images/s (the one the table and the ceiling use) and
    the comparison: per-round figures of each side, their medians and the ratio current / baseline."""
    runs: dict[str, list[dict]] = {"baseline": [], "current": []}
    orders = []
    for r in range(rounds):
        order = ["baseline", "current"] if r % 2 == 0 else ["current", "baseline"]
        orders.append(order)
        for side in order:
            ds = work / f"ds-{size}-{side}-{r}"
            crawl = _crawl_child(base, ds, concurrency, sides[side], showroom_pid)
            if side == "current" and not keep.exists():
                ds.rename(keep)  # the first current dataset stays for the ceiling: the same bytes every round
            else:
                shutil.rmtree(ds, ignore_errors=True)
            runs[side].append(crawl)
            _say_crawl(f"round {r + 1}/{rounds}, {side}: ", crawl)
    comparison: dict[str, Any] = {"rounds": rounds, "order": orders}
    for side, crawls in runs.items():
        rates = [c["images_per_s"] for c in crawls]
        comparison[side] = {
            "median_images_per_s": statistics.median(rates), "images_per_s": rates,
            "median_pages_per_s": statistics.median(c["pages_per_s"] for c in crawls),
            "seconds": [c["seconds"] for c in crawls], "images_stored": [c["images_stored"] for c in crawls],
            "peak_rss_mib": [c["peak_rss_mib"] for c in crawls],
            "crawler_cpu_s": [c["crawler_cpu_s"] for c in crawls],
            "showroom_cpu_share": [c["showroom_cpu_share"] for c in crawls],
            "machine_cpu_share": [c["machine_cpu_share"] for c in crawls],
            "crawler_file": crawls[0]["crawler_file"]}
    base_median = comparison["baseline"]["median_images_per_s"]
    comparison["ratio"] = comparison["current"]["median_images_per_s"] / base_median if base_median > 0 else None
    comparison["ratio_per_round"] = [c["images_per_s"] / b["images_per_s"] if b["images_per_s"] > 0 else None
                                     for b, c in zip(runs["baseline"], runs["current"], strict=True)]
    stored = {c["images_stored"] for c in runs["baseline"] + runs["current"]}
    comparison["same_images_stored"] = len(stored) == 1  # else the two sides did not crawl the same work
    _say(f"  ~{size} images: " + (f"current is {comparison['ratio']:.2f}x the baseline (median of {rounds} rounds)"
                                  if comparison["ratio"] is not None else "the baseline stored no images"))
    cur = sorted(runs["current"], key=lambda c: c["images_per_s"])[(len(runs["current"]) - 1) // 2]
    return {**cur, "median_of_rounds": rounds}, comparison


# ------------------------------------------------------------------------------------------------ helpers

def _say(msg: str) -> None:
    print(f"bench crawl: {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _showroom(size: dict, cache_dir: str):
    """A pre-rendered showroom in its own process (so its CPU and memory are not the crawler's): yields the
    server (its base URL and pid) and how long it took to start."""
    from carscope.common.servers import ServerProcess

    argv = [sys.executable, "-m", "carscope", "showroom", "--port", "0", "--makes", str(size["makes"]),
            "--models-per-make", str(size["models_per_make"]), "--years", size["years"],
            "--photos", str(size["photos"]), "--seed", "0", "--prerender", "--cache-dir", cache_dir]
    t0 = time.perf_counter()
    # the showroom binds first, prerenders, then announces its URL: only that line means "pre-rendered"
    with ServerProcess(argv, "the showroom", timeout=3600, stderr="stdout", grace_s=15.0) as server:
        yield server, {"prerender_s": time.perf_counter() - t0}


def _say_crawl(prefix: str, c: dict) -> None:
    _say(f"  {prefix}{c['images_stored']} images in {c['seconds']:.1f} s: {c['images_per_s']:.0f} images/s, "
         f"{c['pages_per_s']:.0f} pages/s, peak RSS {c['peak_rss_mib']:.0f} MiB; CPU: showroom "
         f"{c['showroom_cpu_share']:.0%}, crawler {c['crawler_cpu_share']:.0%} of {c['cpu_count']} cores")


# The crawl child. `src` goes first on sys.path so the imported crawler is that checkout's (the current code's or
# the baseline worktree's, never the venv's editable install); it reports crawler.__file__ to prove it. The
# CPU seconds of the showroom and of this process are read right around crawl(): the crawl's own interval.
CHILD = r"""
import json, sys
args = json.loads(sys.argv[1])
sys.path.insert(0, args["src"])
import dataclasses, resource, threading, time, psutil
try:  # the layout since the packages moved under carscope/, then the one before (a baseline may predate it)
    import carscope.crawler as crawler
except ImportError:
    import crawler
crawl, CrawlConfig = crawler.crawl, crawler.CrawlConfig

def cpu_s(p):
    # user + system of p, its reaped children, and its live descendants (each with its own reaped ones)
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        try:
            t = q.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total
fields = {f.name for f in dataclasses.fields(CrawlConfig)}
kw = dict(browser="never", concurrency=args["c"], per_host=args["c"], delay=0.0, progress=False, log=False,
          flush_interval=15.0)
config = CrawlConfig(args["url"], args["out"], **{k: v for k, v in kw.items() if k in fields})
proc, showroom, samples, stop = psutil.Process(), psutil.Process(args["showroom_pid"]), [], threading.Event()
def sample():
    t0 = time.perf_counter()
    while not stop.is_set():
        samples.append((round(time.perf_counter() - t0, 2), proc.memory_info().rss))
        stop.wait(0.2)
threading.Thread(target=sample, daemon=True).start()
showroom0, me0 = cpu_s(showroom), cpu_s(proc)
t0 = time.perf_counter()
stats = crawl(config)
seconds = time.perf_counter() - t0
showroom1, me1 = cpu_s(showroom), cpu_s(proc)
stop.set()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"stats": stats, "seconds": seconds, "peak_rss": peak, "samples": samples,
                  "showroom_cpu_s": showroom1 - showroom0, "crawler_cpu_s": me1 - me0,
                  "crawler_file": crawler.__file__}))
"""


def _crawl_child(base: str, out: Path, concurrency: int, src: Path, showroom_pid: int) -> dict:
    """Run crawl() of the checkout at `src` in a fresh Python (so peak RSS is the crawl's own) and collect its
    stats, RSS series and the CPU seconds of the showroom and of the crawler over the crawl."""
    src = Path(src).resolve()
    arg = json.dumps({"url": base + "/", "out": str(out), "c": concurrency, "src": str(src),
                      "showroom_pid": showroom_pid})
    env = env_running(src)
    proc = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True, cwd=src, env=env)
    if proc.returncode != 0:
        if src != REPO:  # a baseline too old (or too different) for this harness: say so in one line
            from carscope.common.errors import CarscopeError

            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise CarscopeError(f"--baseline-ref: the baseline's crawl failed ({last[-300:]})", exit_code=1)
        raise RuntimeError(f"the benchmark crawl ({src}) failed: {proc.stderr.strip()[-800:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    if not Path(data["crawler_file"]).resolve().is_relative_to(src):
        raise RuntimeError(f"the crawl child imported {data['crawler_file']}, not the crawler under {src}")
    st, secs = data["stats"], data["seconds"]
    pages = st["pages"]["done"]
    imgs = st["images"]["stored"]
    n_cpu = os.cpu_count() or 1
    capacity = secs * n_cpu  # CPU seconds the machine had over the crawl
    showroom_cpu, crawler_cpu = data["showroom_cpu_s"], data["crawler_cpu_s"]
    return {"seconds": round(secs, 2), "pages": pages, "images_stored": imgs,
            "duplicates": st["images"]["duplicates"], "failures": st["failures"],
            "requests": sum(st["status_histogram"].values()),
            "pages_per_s": pages / secs, "images_per_s": imgs / secs,
            "mb_per_s": st["bytes_downloaded"] / secs / 1e6,
            "peak_rss_mib": data["peak_rss"] / 2**20,
            "wall_s": secs, "cpu_count": n_cpu,
            "showroom_cpu_s": showroom_cpu, "crawler_cpu_s": crawler_cpu,
            "showroom_cpu_share": showroom_cpu / capacity, "crawler_cpu_share": crawler_cpu / capacity,
            "machine_cpu_share": (showroom_cpu + crawler_cpu) / capacity,
            "crawler_file": data["crawler_file"],
            "rss_samples_mib": [(t, r / 2**20) for t, r in data["samples"]]}


def _seed_baseline(base: str, folder: Path, n: int) -> dict:
    """The seed's download loop: one photo at a time, a random 0.4-0.8 s sleep after each, `<label>_<n>.jpg`."""
    truth = json.loads(urllib.request.urlopen(base + "/__truth.json", timeout=60).read())
    photos = [p for p in truth["photos"] if not p["corrupt"]][:n]
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    t0 = time.perf_counter()
    for i, p in enumerate(photos):
        data = urllib.request.urlopen(base + p["url"], timeout=30).read()
        (folder / f"{p['model_id']}_{i}.jpg").write_bytes(data)
        time.sleep(rng.uniform(0.4, 0.8))
    seconds = time.perf_counter() - t0
    return {"images": len(photos), "seconds": round(seconds, 2), "images_per_s": len(photos) / seconds,
            "note": f"measured on {len(photos)} images and extrapolated linearly"}


def _browser_bench(base: str, n_pages: int) -> dict:
    """Gallery pages through the crawler's BrowserPool, with the browser's memory every 25 pages."""
    import asyncio

    from carscope.crawler.adapter import load_adapter
    from carscope.crawler.browser import BrowserPool, browser_available
    from carscope.crawler.config import CrawlConfig
    from carscope.crawler.fetch import HttpFetcher
    from carscope.crawler.parse import parse_page
    from carscope.crawler.politeness import Politeness
    from carscope.crawler.urls import host_of

    if not browser_available():
        return {"skipped": "no Chromium on this machine"}
    truth = json.loads(urllib.request.urlopen(base + "/__truth.json", timeout=60).read())
    urls = [base + my["photos_url"] for my in truth["model_years"]]
    adapter = load_adapter("showroom")
    pt = adapter.page_types["photos"]
    cfg = CrawlConfig(base + "/", "unused", concurrency=8, per_host=8)

    async def go() -> dict:
        pol = Politeness(cfg, {host_of(base)})
        async with HttpFetcher(cfg, pol) as http:
            pool = BrowserPool(lambda u, k: http.fetch_retrying(u, kind=k), pages=cfg.browser_pages,
                               recycle_after=cfg.browser_recycle, user_agent=cfg.user_agent)
            try:
                await pool.start()
                mem, photos, errors = [], 0, 0
                sem = asyncio.Semaphore(cfg.browser_pages)
                done = 0

                async def one(url: str):
                    nonlocal photos, errors, done
                    async with sem:
                        resp = await http.fetch_retrying(url, kind="page")
                        r = await pool.render(url, resp.body.decode(), wait_for=pt.wait_for, scroll=pt.scroll)
                        if r.error:
                            errors += 1
                        else:
                            path = url[len(base):]
                            photos += len(parse_page(adapter, pt, pt.groups(path), url, r.html).photos)
                        done += 1
                        if done % 25 == 0:
                            mem.append((done, pool.memory_rss(proportional=True) / 2**20))

                # warm-up: the first pages pay for the browser's start, not measured
                await asyncio.gather(*(one(urls[i % len(urls)]) for i in range(4)))
                mem.clear()
                done = 0
                t0 = time.perf_counter()
                await asyncio.gather(*(one(urls[i % len(urls)]) for i in range(n_pages)))
                seconds = time.perf_counter() - t0
                return {"pages": n_pages, "seconds": round(seconds, 2), "pages_per_s": n_pages / seconds,
                        "photos_found": photos, "errors": errors, "browser_pages": cfg.browser_pages,
                        "recycle_after": cfg.browser_recycle, "contexts": pool.contexts_created,
                        "pss_mib_every_25_pages": mem,
                        "pss_first_mib": mem[0][1] if mem else None, "pss_last_mib": mem[-1][1] if mem else None,
                        "pss_max_mib": max((m for _, m in mem), default=None)}
            finally:
                await pool.close()

    return asyncio.run(go())
