"""`carscope showroom`: serve the local car-catalog website (the embedded default data source).

    carscope showroom                                   # 6 makes x 4 models x 2 years on http://127.0.0.1:8700
    carscope showroom --makes 2 --photos 8 --faults 5xx=0.05,429=0.03,truncate=0.02 --port 0
    carscope showroom --others 0                        # galleries of car photos only (default: 2 others each)
    carscope showroom --layout dl                       # the same catalog as a European dealer site
    carscope showroom --dump-truth truth.json           # write the ground truth and exit
    carscope showroom --realistic --conditions 0.5      # generations, twins, all views, close-ups, conditions

URL map and fault semantics: carscope/showroom/SITE.md. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("showroom", help="serve the local car-catalog website", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8700, help="port (0: any free port; default: %(default)s)")
    p.add_argument("--makes", type=int, default=6, help="number of makes (default: %(default)s)")
    p.add_argument("--models-per-make", type=int, default=4, help="models per make (default: %(default)s)")
    p.add_argument("--years", default="2022-2023", help="model years A-B (default: %(default)s)")
    p.add_argument("--photos", type=int, default=24,
                   help="exterior photos per model-year; interiors are a third of that (default: %(default)s)")
    p.add_argument("--others", type=int, default=2, metavar="N",
                   help="non-car images (dealer logo, banner, staff portrait, map, brochure page, ad, badge or "
                        "wheel close-up) in each model-year's gallery, 0..20 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="everything the site serves follows from it")
    p.add_argument("--faults", default="",
                   help="e.g. 5xx=0.05,429=0.03,slow=0.02,truncate=0.02,corrupt=0.02,redirect=0.05,soft=0.05,dup=0.1 "
                        "(carscope/showroom/SITE.md, Faults)")
    p.add_argument("--layout", default="classic", metavar="NAME",
                   help="markup family: classic (make/overview/specs/photos pages), dl (European dealer: "
                        "definition lists, metric units, More-photos button), jsonld (schema.org JSON-LD), "
                        "spa (single-page app: embedded JSON and an API); the catalog is the same "
                        "(default: %(default)s; SITE.md)")
    p.add_argument("--language", default="en", metavar="LANG",
                   help="en, de or fr: the classic layout's spec pages with that language's keys, words and "
                        "number formats (Leistung 110 kW (150 PS), Hubraum 1.998 cm³); the truth's values stay "
                        "the same (default: %(default)s; SITE.md, Languages)")
    realism = p.add_argument_group("realism options (SITE.md, \"Realism options\"; all off by default)")
    realism.add_argument("--generations", type=int, default=None, metavar="N",
                         help="model-years fall into N-year generations with a facelift at their midpoint; "
                              "same generation and phase, same look (0..30; 0: every year its own look)")
    realism.add_argument("--twins", type=float, default=None, metavar="F",
                         help="share of models that are badge-engineered twins of another make's model (0..1)")
    realism.add_argument("--views", default=None, metavar="SET",
                         help="exterior poses: classic (side, front34, rear34 in turn) or all (also straight "
                              "front and rear, drawn at random)")
    realism.add_argument("--closeups", type=float, default=None, metavar="F",
                         help="share of car photos that are close-ups of a wheel, lamp, grille, badge, screen, "
                              "steering wheel or seat (0..1)")
    realism.add_argument("--conditions", type=float, default=None, metavar="F",
                         help="share of exterior photos cut off, small, cluttered, at night, in rain, blurred or "
                              "badly compressed (0..1)")
    realism.add_argument("--realistic", action="store_true",
                         help="all of them: --generations 4 --twins 0.2 --views all --closeups 0.15 "
                              "--conditions 0.35 (explicit flags override these)")
    p.add_argument("--crawl-delay", type=float, default=0.0, help="Crawl-delay announced in robots.txt")
    p.add_argument("--slow-s", type=float, default=0.5, help="delay of a 'slow' fault (default: %(default)s)")
    p.add_argument("--cache-dir", default=None, help="keep rendered photos here too (survives restarts)")
    p.add_argument("--cache-mb", type=int, default=256,
                   help="memory cache of rendered photos, MB (default: %(default)s)")
    p.add_argument("--prerender", action="store_true",
                   help="render every photo before serving; refused when they do not fit the memory cache and "
                        "there is no --cache-dir (they would be drawn again on demand)")
    p.add_argument("--render-jobs", type=int, default=1, metavar="N",
                   help="with --prerender and --cache-dir: N processes draw the photos (drawing holds the GIL, so "
                        "threads share one core; default: %(default)s, threads in this process)")
    p.add_argument("--render-only", action="store_true",
                   help="with --cache-dir: draw every photo into the cache and exit, serving nothing (warms a "
                        "cache for later runs)")
    p.add_argument("--revalidate", action="store_true",
                   help="pages and JSON send ETag and Last-Modified and answer conditional requests with 304, "
                        "photos ask to be revalidated, the sitemap gives lastmod (what `crawl --refresh` uses; "
                        "SITE.md, Revalidation)")
    p.add_argument("--edition", type=int, default=0, metavar="N",
                   help="a later edition of the same catalog: every price 2 %% higher per edition, photos and other "
                        "specs unchanged (0..100; for testing `crawl --refresh`)")
    p.add_argument("--dump-truth", metavar="FILE", default=None,
                   help="write the ground truth JSON (as /__truth.json) to FILE and exit")


def config_from_args(args):
    from carscope.showroom.config import (
        REALISM_DEFAULTS,
        REALISTIC,
        ShowroomConfig,
        parse_faults,
        parse_years,
    )

    realism = dict(REALISTIC) if getattr(args, "realistic", False) else {}
    realism.update({k: getattr(args, k) for k in REALISM_DEFAULTS if getattr(args, k, None) is not None})
    return ShowroomConfig(makes=args.makes, models_per_make=args.models_per_make, years=parse_years(args.years),
                          photos=args.photos, others=args.others, seed=args.seed, faults=parse_faults(args.faults),
                          crawl_delay=args.crawl_delay, slow_s=args.slow_s, cache_dir=args.cache_dir,
                          layout=args.layout, cache_mb=args.cache_mb, **realism,
                          language=getattr(args, "language", "en"),
                          revalidate=getattr(args, "revalidate", False), edition=getattr(args, "edition", 0))


def run(args) -> int:
    import asyncio

    from carscope.common.errors import CarscopeError

    config = config_from_args(args)  # raises CarscopeError on bad input: exit 2, one line
    if not 0 <= args.port <= 65535:
        raise CarscopeError(f"--port must be in 0..65535, not {args.port}")
    if args.dump_truth:
        return _dump_truth(config, args.dump_truth)
    jobs = getattr(args, "render_jobs", 1)
    if jobs < 1:
        raise CarscopeError(f"--render-jobs must be at least 1, not {jobs}")
    if getattr(args, "render_only", False):
        if not config.cache_dir:
            raise CarscopeError("--render-only needs --cache-dir (where the photos go)")
        return _render_only(config, jobs)
    if args.prerender and not config.cache_dir:
        check_prerender_fits(config)
    return asyncio.run(_serve(config, args.host, args.port, args.prerender, jobs))


def prerender_bytes(config, sample: int = 12) -> int:
    """About how many bytes every photo of the catalog takes in the memory cache (both widths), from a sample
    of photos spread over the catalog, rendered now."""
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.photo_store import PhotoStore

    catalog = build_catalog(config)
    ids = list(catalog.photos)
    picked = ids[:: max(1, len(ids) // sample)][:sample]
    store = PhotoStore(catalog, None, max_bytes=1 << 40)
    each = [len(store.get(pid, 640)) + len(store.get(pid, 320)) for pid in picked]
    return int(sum(each) / max(1, len(each)) * len(ids))


def check_prerender_fits(config) -> None:
    """--prerender without --cache-dir keeps only the memory cache: refuse when the catalog does not fit it,
    instead of serving a "pre-rendered" site that draws most photos again on demand."""
    from carscope.common.errors import CarscopeError

    need = prerender_bytes(config)
    have = config.cache_mb << 20
    if need * 1.1 > have:
        mb = -(-int(need * 1.1) // (1 << 20))
        raise CarscopeError(f"--prerender: the catalog's photos take about {mb} MB, more than the {config.cache_mb} MB "
                            f"memory cache, so most would be drawn again on demand; add --cache-dir DIR to keep them "
                            f"on disk, or --cache-mb {mb}")


def _dump_truth(config, path: str) -> int:
    import json
    import os
    from pathlib import Path

    from carscope.common.errors import CarscopeError
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.photo_store import PhotoStore, prerender
    from carscope.showroom.truth import truth

    out = Path(path)
    if not out.parent.is_dir():
        raise CarscopeError(f"cannot write {out}: directory {out.parent} does not exist")
    catalog = build_catalog(config)
    store = PhotoStore(catalog, config.cache_dir)
    prerender(store)
    shas = {pid: store.sha256(pid) for pid in catalog.photos}
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(truth(catalog, shas), indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote the ground truth of {len(catalog.model_years)} model-years and {len(shas)} photos to {out}")
    return 0


def _render_only(config, jobs: int) -> int:
    import signal
    import threading

    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.photo_store import PhotoStore, prerender

    catalog = build_catalog(config)
    halt = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: halt.set())
    try:
        seconds = prerender(PhotoStore(catalog, config.cache_dir, max_bytes=0), jobs=jobs, stop=halt)
    except KeyboardInterrupt:
        halt.set()
    if halt.is_set():
        print("showroom: stopped; the photos drawn so far stay in the cache", flush=True)
        return 130
    print(f"showroom: {len(catalog.photos)} photos in {config.cache_dir} ({seconds:.1f} s)", flush=True)
    return 0


async def _serve(config, host: str, port: int, prerender_first: bool, jobs: int = 1) -> int:
    import asyncio
    import signal

    from aiohttp import web

    from carscope.common.errors import CarscopeError
    from carscope.showroom.server import create_app, showroom_state

    app = create_app(config)
    state = showroom_state(app)
    cat = state.catalog
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
            pass
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise CarscopeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host if ':' not in bound_host else f'[{bound_host}]'}:{bound_port}"
        # bound first (a busy port fails at once), warmed up second, announced last
        if prerender_first:
            import threading

            from carscope.showroom.photo_store import prerender

            halt = threading.Event()
            job = loop.run_in_executor(None, lambda: prerender(state.store, stop=halt, jobs=jobs))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait([job, stopper], return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                halt.set()  # the render threads skip what is left; wait for the photos in progress only
                await job
                print("showroom: stopped", flush=True)
                return 0
            stopper.cancel()
            print(f"showroom: prerendered {len(cat.photos)} photos in {job.result():.1f} s", flush=True)
        n_photos = len(cat.photos)
        n_dups = sum(p.dup for p in cat.photos.values())
        print(f"showroom: serving {len(cat.makes)} makes, {len(cat.models)} models, {len(cat.model_years)} "
              f"model-years, {n_photos} photos (+{n_dups} under /cdn/), seed {config.seed}", flush=True)
        if config.faults.spec():
            print(f"showroom: faults {config.faults.spec()}", flush=True)
        if config.layout != "classic":
            print(f"showroom: layout {config.layout}", flush=True)
        if config.realism():
            print("showroom: realism " + " ".join(f"--{k} {v}" for k, v in config.realism().items()), flush=True)
        print(f"showroom: {url}/  (truth: {url}/__truth.json, stats: {url}/__stats; Ctrl-C stops)", flush=True)
        await stop.wait()
        print("showroom: stopped", flush=True)
        return 0
    finally:
        await runner.cleanup()
