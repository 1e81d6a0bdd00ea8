"""`carscope bench crawl`: crawler throughput, memory, browser rendering and the seed's approach, in one run.

    carscope bench crawl --scale small --out benchmarks/results/mine     # about 3 minutes on 2 cores
    carscope bench crawl --scale full  --out benchmarks/results/mine     # 2,000 vs 20,000 images, 500 galleries

What is measured, each against a pre-rendered showroom in its own process on loopback, politeness off
(--per-host = --concurrency, no delay; robots.txt is still read):
- end to end: pages/s, images/s and MB/s of `crawl()` (run in a child process, --browser never, so the
  gallery JSON hook is used), and the child's peak RSS sampled every 0.2 s, at two crawl sizes
  (small: 500 vs 2,000 images; full: 2,000 vs 20,000): RSS must not grow with the crawl;
- the ceiling: in this process, the crawler's own decode + validate + hash + write (temp, rename) over the
  very image bytes the crawl stored, with no network, on the same thread pool; target: crawl >= 60% of it;
- Playwright: gallery pages/s through the crawler's BrowserPool (fetch HTML, render, wait for the gallery,
  scroll) and the driver + browser processes' memory (PSS: Chromium's processes share pages, so summed RSS
  over-counts) every 25 pages over N pages (small: 100, full: 500): bounded by context recycling;
- the seed's approach: one image at a time with a random 0.4-0.8 s sleep, measured on a short sample
  (small: 15 images, full: 40) and extrapolated to the large crawl's image count (stated in the output).

Rendered photos are cached under --cache-dir (default ~/.cache/carscope/showroom), so only the first run of a
scale pays for drawing them.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

TARGET_CEILING_FRACTION = 0.6

# showroom sizes: model-years x (photos + photos/3 interiors) ~ images stored
SIZES = {
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
    p.add_argument("--concurrency", type=int, default=32, help="crawler --concurrency = --per-host (default: %(default)s)")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "carscope" / "showroom"),
                   help="where rendered showroom photos are kept between runs (default: %(default)s)")
    p.add_argument("--skip-browser", action="store_true", help="leave out the Playwright measurement")
    p.add_argument("--skip-baseline", action="store_true", help="leave out the seed-style baseline")


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    from carscope.errors import CarscopeError

    scale = SCALES[args.scale]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.concurrency < 1:
        raise CarscopeError("--concurrency must be at least 1")
    result: dict[str, Any] = {"scale": args.scale, "concurrency": args.concurrency, "per_host": args.concurrency,
                              "cpu_count": os.cpu_count(), "loadavg_at_start": os.getloadavg(), "crawls": {}}
    work = Path(tempfile.mkdtemp(prefix="carscope-bench-crawl-"))
    try:
        for size in scale["sizes"]:
            with _showroom(SIZES[size], args.cache_dir) as (base, boot):
                _say(f"crawl of ~{size} images ({boot['prerender_s']:.0f} s to start the showroom)")
                crawl = _crawl_child(base, work / f"ds-{size}", args.concurrency)
                crawl["showroom"] = {**SIZES[size], **boot}
                result["crawls"][size] = crawl
                _say(f"  {crawl['images_stored']} images in {crawl['seconds']:.1f} s: {crawl['images_per_s']:.0f} "
                     f"images/s, {crawl['pages_per_s']:.0f} pages/s, peak RSS {crawl['peak_rss_mib']:.0f} MiB")
                if size == scale["sizes"][-1]:
                    if not args.skip_baseline:
                        _say("seed-style sequential baseline")
                        result["baseline"] = _seed_baseline(base, work / "seed", scale["baseline_images"])
                    if not args.skip_browser:
                        _say(f"Playwright: {scale['browser_pages']} gallery pages")
                        result["browser"] = _browser_bench(base, scale["browser_pages"])
        big = result["crawls"][scale["sizes"][-1]]
        _say("ceiling: decode + validate + hash + write over the same bytes, no network")
        result["ceiling"] = _ceiling(work / f"ds-{scale['sizes'][-1]}", work / "ceiling", max_images=3000)
        result["ceiling_fraction"] = big["images_per_s"] / result["ceiling"]["images_per_s"]
        result["target_ceiling_fraction"] = TARGET_CEILING_FRACTION
        small, large = (result["crawls"][s] for s in scale["sizes"])
        result["rss_growth"] = {"images": [small["images_stored"], large["images_stored"]],
                                "peak_rss_mib": [small["peak_rss_mib"], large["peak_rss_mib"]],
                                "ratio": large["peak_rss_mib"] / small["peak_rss_mib"]}
        if "baseline" in result:
            b = result["baseline"]
            b["extrapolated_s_for_large"] = large["images_stored"] / b["images_per_s"]
            result["speedup_vs_seed"] = large["images_per_s"] / b["images_per_s"]
        result["loadavg_at_end"] = os.getloadavg()  # other work on the machine skews every figure: say so
        _plots(result, out)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return result, _markdown(result)


# ------------------------------------------------------------------------------------------------ helpers

def _say(msg: str) -> None:
    print(f"bench crawl: {msg}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _showroom:
    """A pre-rendered showroom in its own process (so its CPU and memory are not the crawler's)."""

    def __init__(self, size: dict, cache_dir: str):
        self.size, self.cache_dir = size, cache_dir

    def __enter__(self):
        port = _free_port()
        cmd = [sys.executable, "-m", "carscope", "showroom", "--port", str(port), "--makes", str(self.size["makes"]),
               "--models-per-make", str(self.size["models_per_make"]), "--years", self.size["years"],
               "--photos", str(self.size["photos"]), "--seed", "0", "--prerender", "--cache-dir", self.cache_dir]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # the showroom binds first, prerenders, then announces its URL: only that line means "pre-rendered"
        announced = threading.Event()
        lines: list[str] = []

        def read():
            for line in self.proc.stdout:  # keep draining so the pipe never fills
                lines.append(line.rstrip())
                if line.startswith("showroom: http"):
                    announced.set()

        threading.Thread(target=read, daemon=True).start()
        while not announced.wait(0.5):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the showroom exited: {' | '.join(lines[-5:])}")
            if time.perf_counter() - t0 > 3600:
                raise RuntimeError("the showroom did not finish prerendering within an hour")
        return f"http://127.0.0.1:{port}", {"prerender_s": time.perf_counter() - t0}

    def __exit__(self, *exc):
        from carscope.subprocs import stop_process

        stop_process(self.proc, grace_s=15.0)


CHILD = r"""
import json, resource, sys, threading, time, psutil
from crawler import crawl, CrawlConfig
args = json.loads(sys.argv[1])
proc, samples, stop = psutil.Process(), [], threading.Event()
def sample():
    t0 = time.perf_counter()
    while not stop.is_set():
        samples.append((round(time.perf_counter() - t0, 2), proc.memory_info().rss))
        stop.wait(0.2)
threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
stats = crawl(CrawlConfig(args["url"], args["out"], browser="never", concurrency=args["c"], per_host=args["c"],
                          delay=0.0, progress=False, log=False, flush_interval=15.0))
seconds = time.perf_counter() - t0
stop.set()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"stats": stats, "seconds": seconds, "peak_rss": peak, "samples": samples}))
"""


def _crawl_child(base: str, out: Path, concurrency: int) -> dict:
    """Run crawl() in a fresh Python (so peak RSS is the crawl's own) and collect its stats and RSS series."""
    arg = json.dumps({"url": base + "/", "out": str(out), "c": concurrency})
    proc = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"the benchmark crawl failed: {proc.stderr.strip()[-800:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    st, secs = data["stats"], data["seconds"]
    pages = st["pages"]["done"]
    imgs = st["images"]["stored"]
    return {"seconds": round(secs, 2), "pages": pages, "images_stored": imgs,
            "duplicates": st["images"]["duplicates"], "failures": st["failures"],
            "requests": sum(st["status_histogram"].values()),
            "pages_per_s": pages / secs, "images_per_s": imgs / secs,
            "mb_per_s": st["bytes_downloaded"] / secs / 1e6,
            "peak_rss_mib": data["peak_rss"] / 2**20,
            "rss_samples_mib": [(t, r / 2**20) for t, r in data["samples"]]}


def _ceiling(dataset: Path, scratch: Path, max_images: int) -> dict:
    """The crawler's CPU path (process_image + content-addressed write) over stored bytes, no network."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from crawler.dataset import image_relpath, load
    from crawler.images import ImageRules, process_image
    from crawler.writer import store_file

    ds = load(dataset)
    paths = [dataset / p for p in ds.images["path"].tolist()[:max_images]]
    blobs = [p.read_bytes() for p in paths]  # in memory first: the disk read is not the crawler's work
    rules = ImageRules()
    workers = os.cpu_count() or 2

    async def go() -> float:
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(workers * 4)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            async def one(data: bytes):
                async with sem:
                    r = await loop.run_in_executor(pool, process_image, data, rules, None)
                    await store_file(scratch, image_relpath(r.sha256), r.data)

            t0 = time.perf_counter()
            await asyncio.gather(*(one(b) for b in blobs))
            return time.perf_counter() - t0

    scratch.mkdir(parents=True, exist_ok=True)
    seconds = asyncio.run(go())
    return {"images": len(blobs), "seconds": round(seconds, 3), "images_per_s": len(blobs) / seconds,
            "workers": workers, "mb_per_s": sum(map(len, blobs)) / seconds / 1e6}


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

    from crawler.adapter import load_adapter
    from crawler.browser import BrowserPool, browser_available
    from crawler.config import CrawlConfig
    from crawler.fetch import HttpFetcher
    from crawler.parse import parse_page
    from crawler.politeness import Politeness
    from crawler.urls import host_of

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


def _plots(result: dict, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in result["crawls"].values():
        xs = [t for t, _ in c["rss_samples_mib"]]
        ys = [r for _, r in c["rss_samples_mib"]]
        axes[0].plot(xs, ys, label=f"{c['images_stored']} images")
    axes[0].set_xlabel("seconds")
    axes[0].set_ylabel("crawler RSS (MiB)")
    axes[0].set_title("crawler memory during the crawl")
    axes[0].legend()
    b = result.get("browser") or {}
    if b.get("pss_mib_every_25_pages"):
        axes[1].plot([p for p, _ in b["pss_mib_every_25_pages"]], [m for _, m in b["pss_mib_every_25_pages"]],
                     marker="o")
        axes[1].set_xlabel("gallery pages rendered")
        axes[1].set_ylabel("browser + driver PSS (MiB)")
        axes[1].set_title(f"Chromium memory (contexts recycled every {b['recycle_after']} pages)")
    fig.tight_layout()
    fig.savefig(out / "crawl_memory.png", dpi=110)
    plt.close(fig)


def _markdown(r: dict) -> str:
    load = r.get("loadavg_at_start", [0])[0], r.get("loadavg_at_end", [0])[0]
    lines = [f"## crawl ({r['scale']}, concurrency = per-host = {r['concurrency']}, {r['cpu_count']} cores, "
             f"1-min load average {load[0]:.1f} at the start, {load[1]:.1f} at the end)", "",
             "| crawl | pages | images stored | seconds | pages/s | images/s | MB/s | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for size, c in r["crawls"].items():
        lines.append(f"| ~{size} images | {c['pages']} | {c['images_stored']} | {c['seconds']:.1f} | "
                     f"{c['pages_per_s']:.1f} | {c['images_per_s']:.1f} | {c['mb_per_s']:.1f} | {c['peak_rss_mib']:.0f} |")
    ce = r["ceiling"]
    frac = r["ceiling_fraction"]
    lines += ["", f"- ceiling (decode + validate + hash + write, no network, {ce['workers']} threads): "
                  f"{ce['images_per_s']:.0f} images/s over {ce['images']} images; the crawl reaches "
                  f"**{frac:.0%}** of it (target >= {r['target_ceiling_fraction']:.0%}: "
                  f"{'met' if frac >= r['target_ceiling_fraction'] else 'NOT met'})",
              f"- peak RSS {r['rss_growth']['peak_rss_mib'][0]:.0f} MiB at {r['rss_growth']['images'][0]} images vs "
              f"{r['rss_growth']['peak_rss_mib'][1]:.0f} MiB at {r['rss_growth']['images'][1]} images "
              f"(x{r['rss_growth']['ratio']:.2f} for x{r['rss_growth']['images'][1] / max(1, r['rss_growth']['images'][0]):.0f} the images)"]
    b = r.get("browser")
    if b and "skipped" not in b:
        lines.append(f"- Playwright: {b['pages_per_s']:.1f} gallery pages/s over {b['pages']} pages "
                     f"({b['browser_pages']} pages at once, {b['errors']} errors); driver + browser memory (PSS) "
                     f"{b['pss_first_mib']:.0f} MiB after 25 pages, {b['pss_last_mib']:.0f} MiB at the end, "
                     f"max {b['pss_max_mib']:.0f} MiB ({b['contexts']} contexts, recycled every {b['recycle_after']} pages)")
    elif b:
        lines.append(f"- Playwright: skipped ({b['skipped']})")
    if "baseline" in r:
        bl = r["baseline"]
        lines.append(f"- seed's approach (sequential, 0.4-0.8 s sleep): {bl['images_per_s']:.2f} images/s "
                     f"({bl['note']}): {bl['extrapolated_s_for_large'] / 60:.0f} min for the large crawl's images; "
                     f"the crawler is **x{r['speedup_vs_seed']:.0f}** faster")
    return "\n".join(lines) + "\n"
