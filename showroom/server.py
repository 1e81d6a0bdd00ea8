"""The showroom website as an aiohttp application (URL map: showroom/SITE.md).

    carscope showroom --makes 3 --port 8700          # as a process
    python -c "from showroom.testing import serve_in_thread; ..."   # in-process, see showroom/testing.py

`create_app(config)` builds the app; nothing is started at import. Photo rendering runs in a thread pool so
the event loop keeps answering while photos are drawn; rendered bytes are cached (see render.PhotoStore).
Two middlewares wrap every handler: `stats` (what was asked, by whom, how many at once) outside `faults`
(the transient faults of SITE.md, drawn per (URL, attempt)).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from showroom import pages
from showroom.catalog import Catalog, build_catalog, truth
from showroom.config import ShowroomConfig
from showroom.faults import Fault, FaultPlan
from showroom.render import PhotoStore

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".js": "application/javascript", ".css": "text/css", ".gif": "image/gif"}
HARNESS_PATHS = ("/__stats", "/__truth.json")  # the test harness's own instruments: not counted as traffic
DISALLOWED_PREFIXES = ("/__", "/compare")  # what robots.txt disallows
NO_FAULT_PREFIXES = ("/__", "/robots.txt", "/static/", "/redirect/")

SHOWROOM = web.AppKey("showroom", object)


def path_kind(path: str) -> str:
    """A request's kind for /__stats `by_kind`."""
    if path == "/":
        return "home"
    if path.startswith("/make/"):
        return "make"
    if path.startswith("/api/gallery/"):
        return "gallery_json"
    if path.startswith("/photos/"):
        return "photo"
    if path.startswith("/cdn/"):
        return "cdn_photo"
    if path.startswith("/static/"):
        return "static"
    if path.startswith("/compare"):
        return "compare"
    if path.startswith("/redirect/"):
        return "redirect"
    if path in ("/robots.txt", "/sitemap.xml"):
        return path[1:].replace(".", "_")
    if path.startswith("/__"):
        return "harness"
    for page in ("overview", "specifications", "photos"):
        if path.endswith("/" + page):
            return page if page != "photos" else "photos_page"
    return "other"


class Stats:
    """What the site was asked. Lives on the event loop thread only, so no lock is needed."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_kind: Counter = Counter()
        self.by_path: Counter = Counter()
        self.status: Counter = Counter()
        self.faults: Counter = Counter()
        self.inflight = 0
        self.max_inflight = 0
        self.inflight_per_client: Counter = Counter()
        self.max_inflight_per_client: dict[str, int] = {}
        self.disallowed_hits = 0
        self.disallowed_paths: Counter = Counter()
        self.harness_requests = 0
        self.started = time.time()

    def as_dict(self, paths: bool = True) -> dict:
        d = {
            "requests": self.requests, "by_kind": dict(self.by_kind),
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "faults": dict(self.faults), "inflight": self.inflight, "max_inflight": self.max_inflight,
            "max_inflight_per_client": dict(self.max_inflight_per_client),
            "disallowed_hits": self.disallowed_hits, "disallowed_paths": dict(self.disallowed_paths.most_common(50)),
            "harness_requests": self.harness_requests, "since": self.started,
        }
        if paths:
            d["by_path"] = dict(self.by_path)
        return d


class Showroom:
    """The app's state: catalog, photo store, faults, stats, attempt counters, the render pool."""

    def __init__(self, config: ShowroomConfig):
        self.config = config
        self.catalog: Catalog = build_catalog(config)
        self.store = PhotoStore(self.catalog, config.cache_dir, max_bytes=config.cache_mb << 20)
        self.plan = FaultPlan(config.faults, config.seed)
        self.stats = Stats()
        self.attempts: Counter = Counter()  # URL (path + query) -> requests so far
        self.etags: dict[tuple[str, int], str] = {}
        self.executor: ThreadPoolExecutor | None = None
        self._truth_sha: dict[str, str] | None = None

    async def photo_bytes(self, pid: str, width: int) -> bytes:
        data = self.store.cached(pid, width)  # the hot path: no thread hop for cached photos
        if data is None:
            data = await asyncio.get_running_loop().run_in_executor(self.executor, self.store.get, pid, width)
        return data

    async def truth(self, with_sha: bool = True) -> dict:
        if with_sha and self._truth_sha is None:
            ids = list(self.catalog.photos)
            loop = asyncio.get_running_loop()
            shas = await asyncio.gather(*[loop.run_in_executor(self.executor, self.store.sha256, i) for i in ids])
            self._truth_sha = dict(zip(ids, shas, strict=False))
        return truth(self.catalog, self._truth_sha if with_sha else None)


def _state(request: web.Request) -> Showroom:
    return request.app[SHOWROOM]


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _not_found(message: str = "Page not found") -> web.Response:
    return _html(pages.not_found(message), status=404)


# ---------------------------------------------------------------- middlewares

@web.middleware
async def stats_middleware(request: web.Request, handler):
    st = _state(request).stats
    path = request.path
    if path.startswith(HARNESS_PATHS):
        st.harness_requests += 1
        return await handler(request)
    client = request.remote or "?"
    st.requests += 1
    st.by_kind[path_kind(path)] += 1
    st.by_path[path] += 1
    if path.startswith(DISALLOWED_PREFIXES):
        st.disallowed_hits += 1
        st.disallowed_paths[path] += 1
    st.inflight += 1
    st.max_inflight = max(st.max_inflight, st.inflight)
    st.inflight_per_client[client] += 1
    st.max_inflight_per_client[client] = max(st.max_inflight_per_client.get(client, 0),
                                             st.inflight_per_client[client])
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away first (nginx's convention)
        raise
    finally:
        st.inflight -= 1
        st.inflight_per_client[client] -= 1
        st.status[status] += 1


@web.middleware
async def faults_middleware(request: web.Request, handler):
    state = _state(request)
    path = request.path
    if not state.plan.active or path.startswith(NO_FAULT_PREFIXES) or request.method not in ("GET", "HEAD"):
        return await handler(request)
    url = request.path_qs
    state.attempts[url] += 1
    fault = state.plan.draw(url, state.attempts[url])
    if fault is None:
        return await handler(request)
    state.stats.faults[fault.kind] += 1
    cfg = state.config
    if fault.kind == "5xx":
        headers = {"Retry-After": str(cfg.retry_after_s)} if fault.status == 503 else {}
        return web.Response(text=pages.error_page(fault.status), status=fault.status, content_type="text/html",
                            headers=headers)
    if fault.kind == "429":
        ra = (formatdate(time.time() + cfg.retry_after_s + 1, usegmt=True) if fault.http_date
              else str(cfg.retry_after_s))
        return web.Response(text="Too many requests, slow down.\n", status=429, headers={"Retry-After": ra})
    if fault.kind == "redirect":  # a chain of `hops` redirects in all, ending at the URL itself
        raise web.HTTPFound(url if fault.hops == 1 else f"/redirect/{fault.hops - 1}?to={quote(url, safe='')}")
    if fault.kind == "slow":
        await asyncio.sleep(cfg.slow_s)  # longer than a client's timeout (tests set it below slow_s)
        return await handler(request)
    assert fault.kind == "truncate"
    resp = await handler(request)
    return await _truncated(request, resp, fault)


async def _truncated(request: web.Request, resp: web.StreamResponse, fault: Fault) -> web.StreamResponse:
    """Send the headers with the full Content-Length, then only part of the body, then drop the connection."""
    body = getattr(resp, "body", None)
    if not isinstance(body, (bytes, bytearray)) or resp.status != 200 or len(body) < 2:
        return resp
    out = web.StreamResponse(status=resp.status, headers={k: v for k, v in resp.headers.items()
                                                            if k.lower() not in ("content-length",)})
    out.content_length = len(body)
    await out.prepare(request)
    await out.write(bytes(body[: int(len(body) * fault.keep)]))
    if request.transport is not None:
        request.transport.close()  # the client sees the connection end short of Content-Length
    return out


# ---------------------------------------------------------------- handlers

async def home(request: web.Request) -> web.Response:
    return _html(pages.home(_state(request).catalog))


async def make_page(request: web.Request) -> web.Response:
    state = _state(request)
    cat = state.catalog
    make = cat.make_by_slug.get(request.match_info["make"])
    if make is None:
        return _not_found("No such make")
    models = cat.models_of[make.slug]
    per = state.config.per_page
    pages_n = max(1, -(-len(models) // per))
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        return _not_found("No such page")
    if not 1 <= page <= pages_n:
        return _not_found("No such page")
    return _html(pages.make_page(cat, make, page, pages_n, models[(page - 1) * per: page * per]))


def _model_year(request: web.Request):
    m = request.match_info
    try:
        year = int(m["year"])
    except ValueError:
        return None
    return _state(request).catalog.by_path.get((m["make"], m["model"], year))


async def model_year_page(request: web.Request) -> web.Response:
    my = _model_year(request)
    if my is None:
        return _not_found("No such model year")
    kind = request.match_info["page"]
    if kind == "overview":
        return _html(pages.overview(_state(request).catalog, my))
    if kind == "specifications":
        return _html(pages.specifications(my))
    if kind == "photos":
        return _html(pages.photos(my))
    return _not_found()


async def gallery_json(request: web.Request) -> web.Response:
    my = _model_year(request)
    if my is None:
        return web.json_response({"error": "no such model year"}, status=404)
    cat = _state(request).catalog
    return web.json_response({"model_id": my.model_id, "layout": "tabs" if my.layout == "tabs" else "mixed",
                              "photos": cat.gallery(my)})


async def photo(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    name = request.match_info["name"]
    pid, sep, rest = name.rpartition("-")
    if not sep or rest not in ("320.jpg", "640.jpg") or pid not in state.catalog.photos:
        return _not_found("No such photo")
    width = int(rest[:3])
    p = state.catalog.photos[pid]
    if request.path.startswith("/cdn/") and not p.dup:
        return _not_found("No such photo")
    data = await state.photo_bytes(pid, width)
    etag = state.etags.get((pid, width))
    if etag is None:
        etag = state.etags[(pid, width)] = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400, immutable"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type="image/jpeg", headers=headers)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        return _not_found()
    return web.Response(body=path.read_bytes(), content_type=STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=3600"})


async def compare(request: web.Request) -> web.Response:
    ids = [i for i in request.query.get("ids", "").split(",") if i][:12]
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    return _html(pages.compare(_state(request).catalog, ids, page))


async def redirect_hop(request: web.Request) -> web.Response:
    target = request.query.get("to", "/")
    if not target.startswith("/") or target.startswith("//"):  # never an open redirect
        return _not_found()
    try:
        hops = int(request.match_info["hops"])
    except ValueError:
        return _not_found()
    if hops <= 1:
        raise web.HTTPFound(target)
    raise web.HTTPFound(f"/redirect/{hops - 1}?to={quote(target, safe='')}")


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def robots(request: web.Request) -> web.Response:
    cfg = _state(request).config
    text = (f"User-agent: *\nDisallow: /__\nDisallow: /compare\nCrawl-delay: {cfg.crawl_delay:g}\n\n"
            f"Sitemap: {_base(request)}/sitemap.xml\n")
    return web.Response(text=text, content_type="text/plain")


async def sitemap(request: web.Request) -> web.Response:
    base = _base(request)
    urls = [f"{base}{my.path}/{kind}" for my in _state(request).catalog.model_years
            for kind in ("overview", "specifications", "photos")]
    body = "\n".join(f"  <url><loc>{u}</loc></url>" for u in urls)
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + body + "\n</urlset>\n")
    return web.Response(text=xml, content_type="application/xml")


async def truth_json(request: web.Request) -> web.Response:
    with_sha = request.query.get("sha256", "1") not in ("0", "false", "no")
    return web.json_response(await _state(request).truth(with_sha), dumps=lambda o: json.dumps(o, indent=1))


async def stats_json(request: web.Request) -> web.Response:
    st = _state(request).stats
    return web.json_response(st.as_dict(paths=request.query.get("paths", "1") != "0"))


async def stats_reset(request: web.Request) -> web.Response:
    state = _state(request)
    state.stats.reset()
    state.attempts.clear()  # faults start again from attempt 1, so one server can serve several test crawls
    return web.json_response({"ok": True})


# ---------------------------------------------------------------- the app

def create_app(config: ShowroomConfig | None = None) -> web.Application:
    """The showroom as an aiohttp Application (not started). `config` defaults to ShowroomConfig()."""
    config = config or ShowroomConfig()
    app = web.Application(middlewares=[stats_middleware, faults_middleware])
    state = Showroom(config)
    app[SHOWROOM] = state

    async def start_pool(app):
        state.executor = ThreadPoolExecutor(max_workers=config.render_threads or os.cpu_count() or 2,
                                            thread_name_prefix="showroom-render")

    async def stop_pool(app):
        if state.executor is not None:
            state.executor.shutdown(wait=False, cancel_futures=True)

    app.on_startup.append(start_pool)
    app.on_cleanup.append(stop_pool)
    r = app.router
    r.add_get("/", home)
    r.add_get("/robots.txt", robots)
    r.add_get("/sitemap.xml", sitemap)
    r.add_get("/__truth.json", truth_json)
    r.add_get("/__stats", stats_json)
    r.add_post("/__stats/reset", stats_reset)
    r.add_get("/static/{name}", static)
    r.add_get("/compare", compare)
    r.add_get("/redirect/{hops}", redirect_hop)
    r.add_get("/make/{make}", make_page)
    r.add_get("/api/gallery/{make}/{model}/{year}.json", gallery_json)
    r.add_get("/photos/{name}", photo)
    r.add_get("/cdn/{name}", photo)
    r.add_get("/{make}/{model}/{year}/{page}", model_year_page)
    return app


def showroom_state(app: web.Application) -> Showroom:
    """The state object of an app made by create_app (catalog, store, stats) — for tests and benchmarks."""
    return app[SHOWROOM]
