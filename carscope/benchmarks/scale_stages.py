"""The stages of `carscope bench scale` (benchmarks/scale.py): each one the command a user runs, measured by
scale.Watch, with what it made.

    from carscope.benchmarks.scale_stages import run_stage
    row = run_stage("crawl", plan(2000), Path("/tmp/scale/my-2000"), args)   # {"seconds", "peak_rss_mib", ...}

A stage starts from what the stages before it left in the size's folder (showroom cache, dataset, runs, bundle),
and a stage interrupted half-way starts over: its output is removed first (`--overwrite`, or by hand).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from carscope.benchmarks.load import PeakRss, tree_rss

CARSCOPE = [sys.executable, "-m", "carscope"]


def showroom_argv(p: dict[str, Any], cache: Path) -> list[str]:
    return [sys.executable, "-m", "carscope", "showroom", "--makes", str(p["makes"]), "--models-per-make",
            str(p["models_per_make"]), "--years", p["years"], "--photos", str(p["photos"]), "--others", "0",
            "--seed", "0", "--cache-dir", str(cache)]


class Watch:
    """A command in its own process: wall seconds and its peak RSS (the sum over its process tree, sampled every
    0.2 s). Output goes to `log`; a failure raises with its last line."""

    def __init__(self, argv: list[str], log: Path, what: str):
        self.argv, self.log, self.what = argv, log, what

    def run(self) -> dict[str, Any]:
        from carscope.common.errors import CarscopeError

        with open(self.log, "w") as out:
            t0 = time.perf_counter()
            proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            with PeakRss(proc.pid) as peak:
                try:
                    rc = proc.wait()
                except BaseException:
                    proc.terminate()
                    proc.wait()
                    raise
            seconds = time.perf_counter() - t0
        if rc != 0:
            last = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()][-1:] or ["-"]
            raise CarscopeError(f"bench scale: {self.what} failed (exit {rc}): {last[0][-300:]} (log: {self.log})",
                                exit_code=1)
        return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak.bytes / 2**20, 1)}


def _du(path: Path) -> tuple[int, int]:
    """Bytes and files under `path`."""
    size = files = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                size += os.lstat(os.path.join(dirpath, n)).st_size
                files += 1
            except OSError:
                pass
    return size, files


def run_stage(stage: str, p: dict[str, Any], folder: Path, args) -> dict[str, Any]:
    return {"render": _render, "crawl": _crawl, "resume": _resume, "merge": _merge, "train-view": _train_view,
            "train-model": _train_model, "export": _export, "serve": _serve, "predict": _predict}[stage](
        p, folder, args)


def _watch(argv: list[str], folder: Path, stage: str) -> dict[str, Any]:
    return Watch(argv, folder / f"{stage}.log", stage).run()


def _render(p, folder: Path, args) -> dict[str, Any]:
    row = _watch(showroom_argv(p, folder / "cache") + ["--render-only", "--render-jobs", str(args.render_jobs)],
                 folder, "render")
    size, files = _du(folder / "cache")
    return {**row, "photos": p["photos_total"], "cache_mb": round(size / 1e6, 1), "files": files,
            "ms_per_photo": 1000 * row["seconds"] / p["photos_total"],
            "note": f"{p['photos_total']:,} photos, {size / 1e9:.2f} GB"}


@contextlib.contextmanager
def _showroom(p, folder: Path):
    """`carscope showroom` on the size's cache: yields (server, seconds until it announced its URL, its PeakRss)."""
    from carscope.common.servers import ServerProcess

    t0 = time.perf_counter()
    with ServerProcess(showroom_argv(p, folder / "cache") + ["--port", "0"], "the showroom", timeout=600,
                       grace_s=15.0) as server:
        started = time.perf_counter() - t0
        with PeakRss(server.pid, 0.5) as peak:
            yield server, started, peak


def _crawl_argv(url: str, out: Path, *extra: str) -> list[str]:
    return CARSCOPE + ["crawl", "--start-url", url + "/", "--out", str(out), "--browser", "never", "--concurrency",
                       "32", "--per-host", "32", "--quiet", *extra]


def _crawl(p, folder: Path, args) -> dict[str, Any]:
    data = folder / "dataset"
    with _showroom(p, folder) as (server, started, peak):
        row = _watch(_crawl_argv(server.url, data, "--overwrite"), folder, "crawl")
    stats = json.loads((data / "stats.json").read_text())
    images = stats["images"]["stored"]
    size, _ = _du(data)
    return {**row, "showroom_start_s": round(started, 2), "showroom_peak_rss_mib": round(peak.bytes / 2**20, 1),
            "pages": stats["pages"]["done"], "images": images, "failures": stats["failures"],
            "images_per_s": images / row["seconds"], "dataset_mb": round(size / 1e6, 1),
            "note": f"{images:,} photos, {stats['failures']} failures, {images / row['seconds']:.0f} photos/s"}


def _resume(p, folder: Path, args) -> dict[str, Any]:
    data = folder / "dataset"
    before = json.loads((data / "stats.json").read_text())
    with _showroom(p, folder) as (server, _, _):
        row = _watch(_crawl_argv(server.url, data, "--resume"), folder, "resume")
    after = json.loads((data / "stats.json").read_text())
    gained = after["images"]["stored"] - before["images"]["stored"]
    return {**row, "images_added": gained, "note": f"{gained} photos added"}


def _merge(p, folder: Path, args) -> dict[str, Any]:
    out = folder / "merged"
    shutil.rmtree(out, ignore_errors=True)
    row = _watch(CARSCOPE + ["dataset", "merge", str(folder / "dataset"), "--out", str(out)], folder, "merge")
    import pyarrow.parquet as pq

    images = pq.ParquetFile(out / "images.parquet").metadata.num_rows
    size, files = _du(out)
    shutil.rmtree(out, ignore_errors=True)  # a copy of the crawl: measured, not needed again
    return {**row, "images": images, "files": files, "mb": round(size / 1e6, 1),
            "note": f"{images:,} photos, {size / 1e9:.2f} GB"}


def _train_common(args) -> list[str]:
    return ["--arch", args.arch, "--img-size", str(args.img_size), "--epochs", "1", "--device", "cpu",
            "--amp", "off", "--no-progress", "--overwrite"]


def _train_report(run: Path) -> dict[str, Any]:
    report = json.loads((run / "report.json").read_text()) if (run / "report.json").is_file() else {}
    keep = {k: report[k] for k in ("classes", "n_classes", "counts", "sizes") if k in report}
    test = report.get("test") or {}
    keep["test_top1"] = test.get("top1", test.get("accuracy"))
    size, files = _du(run)
    return {**keep, "run_mb": round(size / 1e6, 1), "run_files": files}


def _train_view(p, folder: Path, args) -> dict[str, Any]:
    run = folder / "runs" / "view"
    row = _watch(CARSCOPE + ["train", "view", "--data", str(folder / "dataset"), "--out", str(run),
                             "--negatives", "0", "--clean-folds", "0", *_train_common(args)], folder, "train-view")
    return {**row, **_train_report(run)}


def _train_model(p, folder: Path, args) -> dict[str, Any]:
    run = folder / "runs" / "model"
    row = _watch(CARSCOPE + ["train", "model", "--data", str(folder / "dataset"), "--out", str(run), "--all-years",
                             "--view-run", str(folder / "runs" / "view"), *_train_common(args)],
                 folder, "train-model")
    return {**row, **_train_report(run)}


def _export(p, folder: Path, args) -> dict[str, Any]:
    bundle = folder / "bundle"
    row = _watch(CARSCOPE + ["export", "--view-run", str(folder / "runs" / "view"), "--model-run",
                             str(folder / "runs" / "model"), "--data", str(folder / "dataset"), "--out", str(bundle),
                             "--int8"], folder, "export")
    size, files = _du(bundle)
    thumbs, n_thumbs = _du(bundle / "thumbs") if (bundle / "thumbs").is_dir() else (0, 0)
    parts = {f.name: round(f.stat().st_size / 1e6, 2) for f in sorted(bundle.iterdir()) if f.is_file()}
    return {**row, "bundle_mb": round(size / 1e6, 1), "files": files, "thumbs": n_thumbs,
            "thumbs_mb": round(thumbs / 1e6, 1), "files_mb": parts,
            "note": f"bundle {size / 1e6:.1f} MB in {files:,} files, {n_thumbs:,} thumbnails"}


def _get(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        n = len(r.read())
    return time.perf_counter() - t0, n


def _serve(p, folder: Path, args) -> dict[str, Any]:
    from carscope.benchmarks.load import closed_loop, load_photos
    from carscope.common.servers import ServerProcess
    from carscope.export.bundle import load as load_bundle

    bundle = folder / "bundle"
    photos, _ = load_photos(load_bundle(bundle), str(folder / "dataset"), 64)
    argv = CARSCOPE + ["serve", "--bundle", str(bundle), "--port", "0", "--log-level", "warning"]
    t0 = time.perf_counter()
    with ServerProcess(argv, "carscope serve", ready_path="/readyz", timeout=600, grace_s=15.0) as server:
        ready = time.perf_counter() - t0
        rss_ready = tree_rss(server.pid)
        models = [_get(server.url + "/api/v1/models") for _ in range(3)]
        page = [_get(server.url + "/api/v1/models?limit=50") for _ in range(3)]
        load = closed_loop(server.url, photos, 4, args.requests, server_pid=server.pid)
        rss_after = tree_rss(server.pid)
    return {"seconds": round(ready, 2), "peak_rss_mib": round(max(rss_ready, rss_after) / 2**20, 1),
            "ready_s": round(ready, 2), "rss_ready_mib": round(rss_ready / 2**20, 1),
            "rss_after_mib": round(rss_after / 2**20, 1),
            "models_ms": round(1000 * statistics.median(t for t, _ in models), 1), "models_bytes": models[0][1],
            "models_page_ms": round(1000 * statistics.median(t for t, _ in page), 1),
            "models_page_bytes": page[0][1],
            "rps": round(load["rps"], 1), "p50_ms": round(load["p50_ms"], 2), "p99_ms": round(load["p99_ms"], 2),
            "ok": load["ok"],
            "note": f"ready in {ready:.1f} s, {load['rps']:.0f} req/s at 4 clients, RSS {rss_after / 2**20:.0f} MiB"}


def _predict(p, folder: Path, args) -> dict[str, Any]:
    import pandas as pd

    data = folder / "dataset"
    images = pd.read_parquet(data / "images.parquet", columns=["path"])
    n = min(len(images), args.predict_photos)
    step = max(1, len(images) // n)
    photos = folder / "predict-photos"
    shutil.rmtree(photos, ignore_errors=True)
    photos.mkdir()
    for i, rel in enumerate(images["path"].iloc[::step].head(n)):
        (photos / f"{i:07d}.jpg").symlink_to((data / rel).resolve())
    out = folder / "predictions.parquet"
    row = _watch(CARSCOPE + ["predict", "--bundle", str(folder / "bundle"), str(photos), "--out", str(out),
                             "--overwrite"], folder, "predict")
    rows = len(pd.read_parquet(out, columns=["path"]))
    shutil.rmtree(photos, ignore_errors=True)
    return {**row, "photos": rows, "photos_per_s": rows / row["seconds"],
            "note": f"{rows:,} photos, {rows / row['seconds']:.0f} photos/s"}
