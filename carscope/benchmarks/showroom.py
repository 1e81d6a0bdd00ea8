"""Showroom benchmark: how long a photo takes to draw, and how fast the site serves photos (cold and cached).

    carscope bench showroom --out benchmarks/results/mine          # ~1 minute on 2 cores
    carscope bench showroom --photos-timed 40 --seconds 5 --concurrency 32
    carscope bench showroom --learnability --img-size 64 --epochs 24   # can a small CNN tell them apart?

Render time is measured in-process, single-threaded (draw 640x480 + downscale + two JPEG encodes, what one
request for an uncached photo costs). Serving is measured against `carscope showroom` in its own process (so
the load generator does not share its GIL), with an aiohttp client at a fixed concurrency: first every photo
once (cold: rendered on demand in the server's thread pool), then photos already in the memory cache for
--seconds (warm). Writes showroom.json and showroom.md into --out.

--learnability instead renders the catalog directly (showroom.testing.iter_photos), holds out a quarter of
each class, and trains a small CNN from scratch on the CPU for the two tasks the pipeline has (interior vs
exterior; model-year from exterior photos): a check that the renderer's make/model/year cues survive its
nuisances. It reports held-out accuracy and which confusions remain (same model other year, same make).
"""

from __future__ import annotations

import argparse
import asyncio
import random
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
    p.add_argument("--learnability", action="store_true", help="train a small CNN on the photos instead")
    p.add_argument("--img-size", type=int, default=64, help="learnability: image height (width is 4/3 of it)")
    p.add_argument("--epochs", type=int, default=24, help="learnability: epochs of the model-year task")
    p.add_argument("--threads", type=int, default=2, help="learnability: torch threads")


def _render_times(cfg, n: int) -> dict:
    from carscope.benchmarks.common import percentiles
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.render import render_photo_bytes, render_photo_image

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


def _start_server(args):
    from carscope.common.servers import ServerProcess

    argv = [sys.executable, "-m", "carscope", "showroom", "--port", "0", "--makes", str(args.makes),
            "--models-per-make", str(args.models_per_make), "--photos", str(args.photos), "--seed", str(args.seed)]
    return ServerProcess(argv, "the showroom", timeout=60)


async def _load(base: str, urls: list[str], concurrency: int, seconds: float | None) -> dict:
    import aiohttp

    from carscope.benchmarks.common import percentiles

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


def _learnability(args, cfg) -> tuple[dict, str]:
    import io

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torch import nn

    from carscope.showroom.testing import iter_photos

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    gen = random.Random(0)
    h = args.img_size
    w = h * 4 // 3
    t0 = time.perf_counter()
    xs, ys, views, labels = [], [], [], {}
    for info, data in iter_photos(cfg, 320):
        im = Image.open(io.BytesIO(data)).convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
        xs.append(np.asarray(im))
        views.append(int(info["view"] == "interior"))
        ys.append(labels.setdefault(info["model_id"], len(labels)))
    render_s = time.perf_counter() - t0
    x = torch.tensor(np.stack(xs)).permute(0, 3, 1, 2).float().div(255)
    y, v = torch.tensor(ys), torch.tensor(views)
    groups: dict = {}
    for i in range(len(x)):
        groups.setdefault((int(y[i]), int(v[i])), []).append(i)
    test = set()
    for idx in groups.values():  # a quarter of every (class, view) held out
        gen.shuffle(idx)
        test.update(idx[: max(1, len(idx) // 4)])
    tr = torch.tensor([i for i in range(len(x)) if i not in test])
    te = torch.tensor(sorted(test))

    def net(n):
        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
        return nn.Sequential(nn.Conv2d(3, 32, 5, 2, 2, bias=False), nn.BatchNorm2d(32), nn.ReLU(), block(32, 64),
                             block(64, 128), block(128, 192), nn.Conv2d(192, 256, 3, 1, 1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(256, n))

    def augment(b):
        if gen.random() < 0.5:
            b = b.flip(3)
        s = gen.uniform(0.85, 1.0)
        ch, cw = int(h * s), int(w * s)
        y0, x0 = gen.randint(0, h - ch), gen.randint(0, w - cw)
        b = F.interpolate(b[:, :, y0:y0 + ch, x0:x0 + cw], size=(h, w), mode="bilinear", align_corners=False)
        return b * torch.empty(len(b), 1, 1, 1).uniform_(0.8, 1.2)

    def fit(target, itr, ite, n, epochs):
        m = net(n)
        opt = torch.optim.AdamW(m.parameters(), 2e-3, weight_decay=5e-4)
        steps = epochs * ((len(itr) + 31) // 32)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
        for _ in range(epochs):
            m.train()
            perm = itr[torch.randperm(len(itr))]
            for i in range(0, len(perm), 32):
                bi = perm[i:i + 32]
                loss = F.cross_entropy(m(augment(x[bi])), target[bi], label_smoothing=0.1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        m.eval()
        with torch.no_grad():
            pred = torch.cat([m(x[ite[i:i + 256]]).argmax(1) for i in range(0, len(ite), 256)])
        return pred

    t1 = time.perf_counter()
    view_pred = fit(v, tr, te, 2, max(3, args.epochs // 4))
    view_acc = (view_pred == v[te]).float().mean().item()
    ext_tr, ext_te = tr[v[tr] == 0], te[v[te] == 0]
    pred = fit(y, ext_tr, ext_te, len(labels), args.epochs)
    model_acc = (pred == y[ext_te]).float().mean().item()
    inv = {k: n for n, k in labels.items()}
    errors = [(inv[int(y[i])], inv[int(p)]) for i, p in zip(ext_te, pred, strict=True) if int(p) != int(y[i])]
    same_model = sum(a.split("_", 1)[1] == b.split("_", 1)[1] for a, b in errors)
    same_make = sum(a.split("_")[1] == b.split("_")[1] for a, b in errors)
    result = {"settings": vars(args), "classes": len(labels), "train_images": len(tr), "test_images": len(te),
              "render_s": render_s, "train_s": time.perf_counter() - t1, "view_test_acc": view_acc,
              "model_test_acc": model_acc, "errors": len(errors), "errors_same_model_other_year": same_model,
              "errors_same_make_prefix": same_make}
    md = (f"## Showroom learnability\n\n{len(labels)} model-years, {len(tr)} train / {len(te)} held-out photos at "
          f"{w}x{h}, small CNN from scratch, {args.threads} CPU threads, {result['train_s']:.0f} s: interior/exterior "
          f"**{view_acc:.1%}**, model-year top-1 **{model_acc:.1%}** ({len(errors)} errors, {same_model} of them "
          f"the same model's other year).")
    return result, md


def run(args, out_dir=None) -> tuple[dict, str]:
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.config import ShowroomConfig

    if getattr(args, "learnability", False):
        cfg = ShowroomConfig(makes=args.makes, models_per_make=args.models_per_make, photos=args.photos,
                             seed=args.seed)
        return _learnability(args, cfg)
    cfg = ShowroomConfig(makes=args.makes, models_per_make=args.models_per_make, photos=args.photos, seed=args.seed)
    render = _render_times(cfg, args.photos_timed)
    cat = build_catalog(cfg)
    ids = list(cat.photos)
    random.Random(1).shuffle(ids)
    cold_urls = [f"/photos/{pid}-640.jpg" for pid in ids[: args.cold_photos]]
    with _start_server(args) as server:
        cold = asyncio.run(_load(server.url, cold_urls, args.concurrency, None))
        warm = asyncio.run(_load(server.url, cold_urls, args.concurrency, args.seconds))  # all in the LRU now
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
    from carscope.benchmarks.common import default_results_dir, write_result

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    add_arguments(p)
    args = p.parse_args(argv)
    out = args.out or str(default_results_dir())
    result, md = run(args, out)
    path = write_result(out, "showroom_learnability" if args.learnability else "showroom", result, md)
    print(md)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
