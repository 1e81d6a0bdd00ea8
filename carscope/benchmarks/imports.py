"""`carscope bench import`: downloading a URL manifest with `carscope dataset import`, against the in-process
ceiling and against img2dataset, on the same URL list from the same loopback server, in one run.

    carscope bench import --sizes 2000,20000 --rounds 3 --img2dataset-python /path/to/venv/bin/python

What is measured, per size (number of URLs):
- carscope: `crawler.importer.import_dataset` in a fresh Python (its own peak RSS), --concurrency = --per-host,
  robots.txt read, every photo fully decoded, validated, sha256-hashed and written content-addressed;
- img2dataset (when a Python that imports it is given or is this one): `img2dataset.download` with
  output_format "files", resize_mode "no" (no resizing, like ours), processes = the number of cores and
  threads so that the requests in flight equal carscope's; it decodes and re-encodes each photo;
- the ceiling: in this process, the crawler's own decode + validate + hash + write over the same bytes, no
  network (carscope/benchmarks/crawl.py `_ceiling`), over at most 3,000 photos.
Rounds alternate the order of the two tools; the table quotes medians. Peak RSS is sampled every 0.2 s over
the whole process tree (img2dataset runs worker processes), and also read from ru_maxrss for carscope.

The server is a separate process (aiohttp) that answers /img/<i>.jpg with one of 64 drawn 640x480 JPEGs made
unique by a JPEG comment naming i, so every URL is a distinct photo (distinct sha256) at ~40 kB, and the
server does no per-request encoding.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from carscope.benchmarks.common import REPO, describe_code

DEFAULT_SIZES = "2000,20000"
BASE_IMAGES = 64

SERVER = r"""
import asyncio, io, random, struct, sys
from aiohttp import web
from PIL import Image, ImageDraw
rng = random.Random(0)
base = []
for k in range(int(sys.argv[2])):
    im = Image.new("RGB", (640, 480), (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)))
    d = ImageDraw.Draw(im)
    for _ in range(40):
        x, y = rng.randint(0, 600), rng.randint(0, 440)
        d.ellipse([x, y, x + rng.randint(10, 200), y + rng.randint(10, 150)],
                  fill=(rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)))
    b = io.BytesIO(); im.save(b, "JPEG", quality=85); base.append(b.getvalue())
async def robots(request):
    return web.Response(text="User-agent: *\nAllow: /\n")
async def img(request):
    i = int(request.match_info["i"])
    tag = f"carscope-bench {i}".encode()
    data = base[i % len(base)]
    body = data[:2] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + data[2:]  # a COM segment: unique bytes
    return web.Response(body=body, content_type="image/jpeg")
app = web.Application()
app.router.add_get("/robots.txt", robots)
app.router.add_get("/img/{i}.jpg", img)
async def main():
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(sys.argv[1]))
    await site.start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)  # bound: the port is the OS's pick
    await asyncio.Event().wait()
asyncio.run(main())
"""

OURS = r"""
import json, resource, sys, time
args = json.loads(sys.argv[1])
sys.path.insert(0, args["src"])
from carscope.crawler.config import CrawlConfig
from carscope.crawler.importer import ImportConfig, import_dataset
crawl = CrawlConfig("import:", args["out"], concurrency=args["c"], per_host=args["c"], progress=False, log=False,
                    flush_interval=15.0)
t0 = time.perf_counter()
stats = import_dataset(ImportConfig(args["manifest"], args["out"], crawl=crawl))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "stored": stats["images"]["stored"], "failures": stats["failures"],
                  "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

THEIRS = r"""
import glob, json, os, sys, time
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
args = json.loads(sys.argv[1])
from img2dataset import download

t0 = time.perf_counter()
download(url_list=args["manifest"], input_format="csv", url_col="url", output_folder=args["out"],
         output_format="files", resize_mode="no", processes_count=args["processes"], thread_count=args["threads"],
         timeout=30, retries=0, enable_wandb=False, number_sample_per_shard=10000,
         distributor="multiprocessing")
seconds = time.perf_counter() - t0
ok = 0
for f in glob.glob(os.path.join(args["out"], "*_stats.json")):
    ok += json.load(open(f)).get("successes", 0)
print(json.dumps({"seconds": seconds, "stored": ok, "failures": None, "ru_maxrss": None}))
"""


def add_arguments(p) -> None:
    p.add_argument("--sizes", default=DEFAULT_SIZES, metavar="N,N", help="URL list sizes (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per size, tool order alternating (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight for either tool (default: %(default)s)")
    p.add_argument("--img2dataset-python", default=None, metavar="PYTHON",
                   help="a Python that can import img2dataset (default: this one, when it can; else left out)")


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    from carscope.common.errors import CarscopeError

    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        raise CarscopeError(f"--sizes: expected numbers like 2000,20000, got '{args.sizes}'") from None
    if not sizes or sizes[0] < 10:
        raise CarscopeError("--sizes: each size must be at least 10")
    if args.rounds < 1 or args.concurrency < 1:
        raise CarscopeError("--rounds and --concurrency must be at least 1")
    theirs_py = _img2dataset_python(args.img2dataset_python)
    cpus = os.cpu_count() or 1
    procs = cpus
    threads = max(1, args.concurrency // procs)
    result: dict[str, Any] = {"sizes": sizes, "rounds": args.rounds, "concurrency": args.concurrency,
                              "cpu_count": cpus, "loadavg_at_start": os.getloadavg(),
                              "img2dataset": {"python": theirs_py, "version": _version(theirs_py),
                                              "processes": procs, "threads_per_process": threads}
                              if theirs_py else None,
                              "runs": {}, "code": describe_code()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="carscope-bench-import-"))
    try:
        with _server() as server:
            base = server.url
            for n in sizes:
                manifest = work / f"urls-{n}.csv"
                with open(manifest, "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["url", "label"])
                    for i in range(n):
                        w.writerow([f"{base}/img/{i}.jpg", f"2023_make{i % 10}_model{i % 10}"])
                runs: dict[str, list] = {"carscope": [], "img2dataset": []}
                for r in range(args.rounds):
                    order = ["carscope", "img2dataset"] if r % 2 == 0 else ["img2dataset", "carscope"]
                    for tool in order:
                        if tool == "img2dataset" and not theirs_py:
                            continue
                        dest = work / f"{tool}-{n}-{r}"
                        if tool == "carscope":
                            m = _child([sys.executable, "-c", OURS, json.dumps(
                                {"src": str(REPO), "out": str(dest), "manifest": str(manifest),
                                 "c": args.concurrency})])
                        else:
                            m = _child([theirs_py, "-c", THEIRS, json.dumps(
                                {"out": str(dest), "manifest": str(manifest), "processes": procs,
                                 "threads": threads})])
                        m["images_per_s"] = m["stored"] / m["seconds"]
                        _say(f"{n} URLs, round {r + 1}: {tool} {m['stored']} photos in {m['seconds']:.1f} s = "
                             f"{m['images_per_s']:.0f}/s, peak RSS {m['peak_tree_rss_mib']:.0f} MiB")
                        runs[tool].append(m)
                        if tool == "carscope" and r == 0 and n == sizes[-1]:
                            keep = work / "ceiling-src"
                            shutil.move(str(dest), keep)
                        else:
                            shutil.rmtree(dest, ignore_errors=True)
                result["runs"][str(n)] = {tool: _summary(ms) for tool, ms in runs.items() if ms}
        from carscope.benchmarks.ceiling import ceiling

        _say("ceiling: decode + validate + hash + write over the same bytes, no network")
        result["ceiling"] = ceiling(work / "ceiling-src", work / "ceiling", max_images=3000)
        for tools in result["runs"].values():
            ours = tools["carscope"]
            ours["ceiling_fraction"] = ours["images_per_s"] / result["ceiling"]["images_per_s"]
            if "img2dataset" in tools:
                ours["vs_img2dataset"] = ours["images_per_s"] / tools["img2dataset"]["images_per_s"]
        first, last = result["runs"][str(sizes[0])]["carscope"], result["runs"][str(sizes[-1])]["carscope"]
        result["rss_growth"] = {"sizes": [sizes[0], sizes[-1]],
                                "peak_rss_mib": [first["peak_rss_mib"], last["peak_rss_mib"]],
                                "ratio": last["peak_rss_mib"] / first["peak_rss_mib"]}
        result["loadavg_at_end"] = os.getloadavg()
        _plots(result, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result, _markdown(result)


def _summary(ms: list[dict]) -> dict:
    med = statistics.median(m["images_per_s"] for m in ms)
    return {"images_per_s": med, "images_per_s_all": [round(m["images_per_s"], 1) for m in ms],
            "seconds_median": statistics.median(m["seconds"] for m in ms),
            "stored": [m["stored"] for m in ms],
            "peak_rss_mib": statistics.median(m["peak_tree_rss_mib"] for m in ms),
            "rss_samples_mib": ms[0]["rss_samples_mib"]}


def _img2dataset_python(given: str | None) -> str | None:
    from carscope.common.errors import CarscopeError

    candidates = [given] if given else [sys.executable]
    for py in candidates:
        try:
            ok = subprocess.run([py, "-c", "import img2dataset"], capture_output=True).returncode == 0
        except OSError:  # no such interpreter
            ok = False
        if ok:
            return py
        if given:
            raise CarscopeError(f"--img2dataset-python {given} cannot import img2dataset")
    return None


def _version(py: str | None) -> str | None:
    if not py:
        return None
    code = "import importlib.metadata as m; print(m.version('img2dataset'))"
    return subprocess.run([py, "-c", code], capture_output=True, text=True).stdout.strip() or None


def _server():
    """The photo server in its own process, on a free port (it prints "listening on URL" once bound)."""
    from carscope.common.servers import ServerProcess

    return ServerProcess([sys.executable, "-c", SERVER, "0", str(BASE_IMAGES)], "the photo server",
                         timeout=120, stderr="stdout")


def _child(cmd: list[str]) -> dict:
    """Run a tool's child; sample the RSS of its whole process tree every 0.2 s."""
    import psutil

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    ps = psutil.Process(proc.pid)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample():
        t0 = time.perf_counter()
        while not stop.is_set():
            total = 0
            for q in [ps, *_children(ps)]:
                try:
                    total += q.memory_info().rss
                except psutil.Error:
                    pass
            samples.append((round(time.perf_counter() - t0, 2), total / 2**20))
            stop.wait(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} child failed: {err.strip()[-800:]}")
    data = json.loads(out.strip().splitlines()[-1])
    data["peak_tree_rss_mib"] = max((r for _, r in samples), default=0.0)
    data["rss_samples_mib"] = samples
    if data.get("ru_maxrss"):
        data["ru_maxrss_mib"] = data.pop("ru_maxrss") / 2**20
    return data


def _children(ps):
    import psutil

    try:
        return ps.children(recursive=True)
    except psutil.Error:
        return []


def _say(msg: str) -> None:
    print(f"bench import: {msg}", file=sys.stderr, flush=True)


def _plots(r: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    sizes = [str(s) for s in r["sizes"]]
    tools = [t for t in ("carscope", "img2dataset") if t in r["runs"][sizes[0]]]
    width = 0.8 / max(1, len(tools))
    for k, tool in enumerate(tools):
        ax1.bar([i + k * width for i in range(len(sizes))], [r["runs"][s][tool]["images_per_s"] for s in sizes],
                width, label=tool)
    ax1.axhline(r["ceiling"]["images_per_s"], color="k", ls="--", lw=1, label="ceiling (no network)")
    ax1.set_xticks([i + width * (len(tools) - 1) / 2 for i in range(len(sizes))], [f"{s} URLs" for s in sizes])
    ax1.set_ylabel("photos / s (median)")
    ax1.legend()
    for s in sizes:
        for tool in tools:
            xs = r["runs"][s][tool]["rss_samples_mib"]
            ax2.plot([t for t, _ in xs], [m for _, m in xs], label=f"{tool}, {s} URLs")
    ax2.set_xlabel("seconds")
    ax2.set_ylabel("RSS of the process tree (MiB)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "import_throughput_rss.png", dpi=110)
    plt.close(fig)


def _markdown(r: dict) -> str:
    i2d = r.get("img2dataset")
    lines = ["# bench import: a URL manifest downloaded by `carscope dataset import`", "",
             f"Code at {(r['code']['head'] or 'unknown')[:12]}{' (with uncommitted changes)' if r['code']['uncommitted_changes'] else ''}; {r['cpu_count']} cores; {r['concurrency']} requests in flight for each "
             f"tool; {r['rounds']} rounds per size, medians. " +
             (f"img2dataset {i2d['version']}: {i2d['processes']} processes x {i2d['threads_per_process']} threads, "
              f"output_format files, resize_mode no." if i2d else "img2dataset: not installed, left out."), "",
             "| URLs | carscope photos/s | peak RSS (MiB) | img2dataset photos/s | peak RSS (MiB) | carscope / "
             "img2dataset | carscope / ceiling |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for n in [str(s) for s in r["sizes"]]:
        ours = r["runs"][n]["carscope"]
        theirs = r["runs"][n].get("img2dataset")
        lines.append(f"| {int(n):,} | {ours['images_per_s']:.0f} | {ours['peak_rss_mib']:.0f} | "
                     + (f"{theirs['images_per_s']:.0f} | {theirs['peak_rss_mib']:.0f} | "
                        f"{ours['vs_img2dataset']:.2f}x" if theirs else "n/a | n/a | n/a")
                     + f" | {ours['ceiling_fraction']:.0%} |")
    ce, g = r["ceiling"], r["rss_growth"]
    lines += ["", f"- ceiling (decode + validate + hash + write, no network, {ce['workers']} threads, "
                  f"{ce['images']} photos): {ce['images_per_s']:.0f} photos/s",
              f"- carscope's peak RSS from {g['sizes'][0]:,} to {g['sizes'][1]:,} URLs: {g['peak_rss_mib'][0]:.0f} "
              f"-> {g['peak_rss_mib'][1]:.0f} MiB ({g['ratio']:.2f}x for {g['sizes'][1] / g['sizes'][0]:.0f}x the "
              "URLs)",
              "- per-round photos/s: " + "; ".join(
                  f"{n}: " + ", ".join(f"{t} {v['images_per_s_all']}" for t, v in tools.items())
                  for n, tools in r["runs"].items()),
              f"- load average at start / end: {r['loadavg_at_start'][0]:.2f} / {r['loadavg_at_end'][0]:.2f}",
              "", "![throughput and RSS](import_throughput_rss.png)"]
    return "\n".join(lines)
