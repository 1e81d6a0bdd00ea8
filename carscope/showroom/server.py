"""The showroom website as an aiohttp application (URL map: carscope/showroom/SITE.md).

    carscope showroom --makes 3 --port 8700          # as a process
    python -c "from carscope.showroom.testing import serve_in_thread; ..."   # in-process, see carscope/showroom/testing.py

`create_app(config)` builds the app; nothing is started at import. The routes that depend on the markup family
(`config.layout`) come from its module (carscope/showroom/layouts.py: layout_classic, layout_dl, layout_jsonld, layout_spa);
photo bytes, robots.txt, the sitemap, /compare, faults, /__truth.json and /__stats are shared here, and layouts
answer with `html_response`, `not_found_response` and `photo_response` (carscope/showroom/responses.py). Photo rendering runs in a thread pool so
the event loop keeps answering while photos are drawn; rendered bytes are cached (see photo_store.PhotoStore).
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
from datetime import datetime, timezone
from email.utils import formatdate
from html import escape
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from carscope.showroom import pages
from carscope.showroom.catalog import Catalog, build_catalog
from carscope.showroom.config import ShowroomConfig
from carscope.showroom.faults import Fault, FaultPlan
from carscope.showroom.layouts import layout_module
from carscope.showroom.photo_store import PhotoStore
from carscope.showroom.responses import (
    SHOWROOM,
    base_url,
    html_response,
    not_found_response,
    state_of,
)
from carscope.showroom.truth import truth

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".js": "application/javascript", ".css": "text/css", ".gif": "image/gif"}
HARNESS_PATHS = ("/__stats", "/__truth.json")  # the test harness's own instruments: not counted as traffic
DISALLOWED_PREFIXES = ("/__", "/compare")  # what robots.txt disallows
NO_FAULT_PREFIXES = ("/__", "/robots.txt", "/static/", "/redirect/")




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
    kind = _layout_kind(path)
    if kind:
        return kind
    for page in ("overview", "specifications", "photos"):
        if path.endswith("/" + page):
            return page if page != "photos" else "photos_page"
    return "other"


def _layout_kind(path: str) -> str | None:
    """The kinds of the dl, jsonld and spa layouts' paths (SITE.md): listing, make, vehicle, gallery_json, photo."""
    if path == "/vehicles":
        return "listing"
    if path.startswith("/vehicle/"):
        return "gallery_json" if path.endswith("/more") else "vehicle"
    if path.startswith("/media/"):
        return "photo"
    if path.startswith(("/brands/", "/m/")):
        return "make"
    if path.startswith(("/car/", "/v/")):
        return "vehicle"
    if path.startswith("/api/v2/media/"):
        return "gallery_json"
    return None


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
        self.layout = layout_module(config.layout)
        self.store = PhotoStore(self.catalog, config.cache_dir, max_bytes=config.cache_mb << 20)
        self.plan = FaultPlan(config.faults, config.seed)
        self.stats = Stats()
        self.attempts: Counter = Counter()  # URL (path + query) -> requests so far
        self.etags: dict[tuple[str, int], str] = {}
        self.executor: ThreadPoolExecutor | None = None
        self.published = time.time()  # `revalidate`: every page's Last-Modified and sitemap lastmod
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


# ---------------------------------------------------------------- middlewares

@web.middleware
async def stats_middleware(request: web.Request, handler):
    st = state_of(request).stats
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
    state = state_of(request)
    path = request.path
    if not state.plan.active or path.startswith(NO_FAULT_PREFIXES) or request.method not in ("GET", "HEAD"):
        return await handler(request)
    url = request.path_qs
    state.attempts[url] += 1
    fault = state.plan.draw(url, state.attempts[url])
    if fault is None:
        return await handler(request)
    if fault.kind != "soft":  # counted once it is known to apply
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
    if fault.kind == "soft":  # an HTML page's content replaced by a maintenance page, status 200
        resp = await handler(request)
        if resp.status != 200 or resp.content_type != "text/html":
            return resp  # photos, JSON and errors are served as they are: a soft error is a page's
        state.stats.faults[fault.kind] += 1
        return web.Response(text=pages.maintenance_page(), status=200, content_type="text/html", charset="utf-8")
    if fault.kind == "slow":
        await asyncio.sleep(cfg.slow_s)  # longer than a client's timeout (tests set it below slow_s)
        return await handler(request)
    assert fault.kind == "truncate"
    resp = await handler(request)
    return await _truncated(request, resp, fault)


@web.middleware
async def revalidate_middleware(request: web.Request, handler):
    """`revalidate` (SITE.md "Revalidation"): validators on pages and JSON, 304 for a matching conditional request,
    `no-cache` on photos. Innermost, so a fault's answer is sent as it is."""
    resp = await handler(request)
    if request.path.startswith("/__") or request.method != "GET":
        return resp
    if resp.content_type == "image/jpeg" or resp.status == 304:
        resp.headers["Cache-Control"] = "no-cache"  # a photo is asked again each time, with its ETag
        return resp
    body = getattr(resp, "body", None)
    if resp.status != 200 or not isinstance(body, (bytes, bytearray)):
        return resp
    published = state_of(request).published
    headers = {"ETag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
               "Last-Modified": formatdate(published, usegmt=True)}
    match = request.headers.get("If-None-Match")
    since = request.headers.get("If-Modified-Since")
    if match is not None:
        unchanged = headers["ETag"] in match or match.strip() == "*"
    else:
        unchanged = since is not None and (_http_date(since) or 0) >= int(published)  # HTTP dates: whole seconds
    if unchanged:
        return web.Response(status=304, headers=headers)
    resp.headers.update(headers)
    return resp


def _http_date(text: str) -> float | None:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


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

async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        return not_found_response()
    return web.Response(body=path.read_bytes(), content_type=STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=3600"})


async def compare(request: web.Request) -> web.Response:
    ids = [i for i in request.query.get("ids", "").split(",") if i][:12]
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    state = state_of(request)
    known = state.catalog.memo(f"compare-ids-{state.config.layout}",
                               lambda cat: [state.layout.compare_id(cat, my) for my in cat.model_years])
    return html_response(pages.compare(state.catalog, ids, page, known))


async def redirect_hop(request: web.Request) -> web.Response:
    target = request.query.get("to", "/")
    if not target.startswith("/") or target.startswith("//"):  # never an open redirect
        return not_found_response()
    try:
        hops = int(request.match_info["hops"])
    except ValueError:
        return not_found_response()
    if hops <= 1:
        raise web.HTTPFound(target)
    raise web.HTTPFound(f"/redirect/{hops - 1}?to={quote(target, safe='')}")


async def robots(request: web.Request) -> web.Response:
    cfg = state_of(request).config
    text = (f"User-agent: *\nDisallow: /__\nDisallow: /compare\nCrawl-delay: {cfg.crawl_delay:g}\n\n"
            f"Sitemap: {base_url(request)}/sitemap.xml\n")
    return web.Response(text=text, content_type="text/plain")


async def sitemap(request: web.Request) -> web.Response:
    base = base_url(request)
    state = state_of(request)
    lastmod = ""
    if state.config.revalidate:  # when the site was published: a refresh skips what it visited since
        stamp = datetime.fromtimestamp(state.published, timezone.utc).isoformat(timespec="microseconds")
        lastmod = f"<lastmod>{stamp.replace('+00:00', 'Z')}</lastmod>"  # to the microsecond: a restart is newer
    body = "\n".join(f"  <url><loc>{escape(base + path)}</loc>{lastmod}</url>"
                     for path in state.layout.sitemap_paths(state.catalog))
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + body + "\n</urlset>\n")
    return web.Response(text=xml, content_type="application/xml")


async def truth_json(request: web.Request) -> web.Response:
    with_sha = request.query.get("sha256", "1") not in ("0", "false", "no")
    return web.json_response(await state_of(request).truth(with_sha), dumps=lambda o: json.dumps(o, indent=1))


async def stats_json(request: web.Request) -> web.Response:
    st = state_of(request).stats
    return web.json_response(st.as_dict(paths=request.query.get("paths", "1") != "0"))


async def stats_reset(request: web.Request) -> web.Response:
    state = state_of(request)
    state.stats.reset()
    state.attempts.clear()  # faults start again from attempt 1, so one server can serve several test crawls
    return web.json_response({"ok": True})


# ---------------------------------------------------------------- the app

def create_app(config: ShowroomConfig | None = None) -> web.Application:
    """The showroom as an aiohttp Application (not started), in `config.layout`'s markup.
    `config` defaults to ShowroomConfig()."""
    config = config or ShowroomConfig()
    middlewares = [stats_middleware, faults_middleware]
    if config.revalidate:
        middlewares.append(revalidate_middleware)
    app = web.Application(middlewares=middlewares)
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
    r.add_get("/robots.txt", robots)
    r.add_get("/sitemap.xml", sitemap)
    r.add_get("/__truth.json", truth_json)
    r.add_get("/__stats", stats_json)
    r.add_post("/__stats/reset", stats_reset)
    r.add_get("/static/{name}", static)
    r.add_get("/compare", compare)
    r.add_get("/redirect/{hops}", redirect_hop)
    state.layout.add_routes(r)  # the layout's own pages (and its photo URLs), after the shared routes
    return app


def showroom_state(app: web.Application) -> Showroom:
    """The state object of an app made by create_app (catalog, store, stats) — for tests and benchmarks."""
    return app[SHOWROOM]
