"""The `spa` layout, a single-page app: every page is an empty shell with its data as embedded JSON
(`<script id="__NEXT_DATA__">`), which /static/spa.js renders; the photos come from a JSON API.

    carscope showroom --layout spa --makes 2        # then open http://127.0.0.1:8700/ in a browser

URL map and page shapes: carscope/showroom/SITE.md, "Layout spa". The raw HTML has no `<a href>` and no photo URL:
a crawler either runs the script (browser) or reads `__NEXT_DATA__` and `window.__APP_CONFIG__.mediaApi`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from html import escape

from aiohttp import web

from carscope.showroom.catalog import Catalog, ModelYear, Photo
from carscope.showroom.layout_classic import (
    photo,  # the classic photo URLs: /photos/<id>-640.jpg, /cdn/<id>-640.jpg
)
from carscope.showroom.responses import html_response, not_found_response, state_of

THUMBNAILS = True  # the media API's `thumb`
SITE_NAME = "MotorApp"
BUILD_ID = "showroom-spa-1"


# ---------------------------------------------------------------- ids, URLs, truth

def _ids(catalog: Catalog) -> dict:
    """model_id -> uuid and uuid -> ModelYear: a version-4-shaped UUID from a hash of the model_id."""
    by_model, by_uuid = {}, {}
    for my in catalog.model_years:
        salt = 0
        while True:
            h = hashlib.sha256(f"spa-vehicle|{my.model_id}|{salt}".encode()).digest()
            u = str(uuid.UUID(bytes=h[:16], version=4))
            if u not in by_uuid:
                break
            salt += 1
        by_model[my.model_id], by_uuid[u] = u, my
    return {"uuid": by_model, "my": by_uuid}


def vehicle_uuid(catalog: Catalog, my: ModelYear) -> str:
    return catalog.memo("spa-ids", _ids)["uuid"][my.model_id]


def photo_url(p: Photo, width: int = 640, cdn: bool = False) -> str:
    return p.url(width, cdn)


def model_year_pages(catalog: Catalog, my: ModelYear) -> dict:
    url = f"/v/{vehicle_uuid(catalog, my)}"
    return {"specs": url, "photos": url}


def layout_specs(catalog: Catalog, my: ModelYear) -> list:
    return [[k, v] for k, v in my.specs]


def sitemap_paths(catalog: Catalog) -> list[str]:
    return [f"/v/{vehicle_uuid(catalog, my)}" for my in catalog.model_years]


def compare_id(catalog: Catalog, my: ModelYear) -> str:
    return vehicle_uuid(catalog, my)


# ---------------------------------------------------------------- page data

def home_data(catalog: Catalog) -> dict:
    return {"makes": [{"name": m.name, "href": f"/m/{m.slug}"} for m in catalog.makes]}


def make_data(catalog: Catalog, make) -> dict:
    def href(md, year):
        return f"/v/{vehicle_uuid(catalog, catalog.by_path[(make.slug, md.slug, year)])}"
    years = list(reversed(catalog.config.year_list))
    return {"make": {"name": make.name, "href": f"/m/{make.slug}"},
            "models": [{"name": md.name, "years": [{"year": y, "href": href(md, y)} for y in years]}
                       for md in catalog.models_of[make.slug]]}


def vehicle_data(catalog: Catalog, my: ModelYear) -> dict:
    u = vehicle_uuid(catalog, my)
    return {"vehicle": {"id": u, "make": my.make.name, "model": my.model.name, "year": my.year,
                        "specs": [{"label": k, "value": v} for k, v in my.specs]},
            "make": {"name": my.make.name, "href": f"/m/{my.make.slug}"},
            "compareHref": f"/compare?ids={u}"}


def media(catalog: Catalog, my: ModelYear) -> dict:
    """The media API's answer: every gallery entry (the /cdn/ copies too), full size and thumbnail."""
    kind = (lambda p: p.view) if my.layout == "tabs" else (lambda p: None)
    return {"vehicle": vehicle_uuid(catalog, my), "items": [
        {"url": photo_url(p, 640, cdn), "thumb": photo_url(p, 320, cdn), "kind": kind(p)}
        for p, cdn in catalog.gallery_entries(my)]}


# ---------------------------------------------------------------- markup

def _script_json(data) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def shell(title: str, page: str, props: dict, query: dict | None = None, media_api: str | None = None) -> str:
    """An app shell: nothing to see or follow until spa.js renders `props` into #root."""
    next_data = _script_json({"props": {"pageProps": props}, "page": page, "query": query or {},
                              "buildId": BUILD_ID})
    app_config = (f"\n<script>window.__APP_CONFIG__ = {{mediaApi: '{media_api}', locale: 'en-US'}};</script>"
                  if media_api else "")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · {SITE_NAME}</title>
<style>body{{font-family:system-ui,sans-serif;margin:0 auto;max-width:960px;padding:1rem}}
#root img.photo{{width:320px;height:240px;object-fit:cover;margin:2px}}</style>
</head>
<body>
<div id="root"></div>
<noscript>{SITE_NAME} needs JavaScript.</noscript>
<script id="__NEXT_DATA__" type="application/json">{next_data}</script>{app_config}
<script src="/static/spa.js"></script>
</body>
</html>
"""


# ---------------------------------------------------------------- handlers

async def home_page(request: web.Request) -> web.Response:
    return html_response(shell("New cars", "/", home_data(state_of(request).catalog)))


async def make_page(request: web.Request) -> web.Response:
    cat = state_of(request).catalog
    make = cat.make_by_slug.get(request.match_info["make"])
    if make is None:
        return not_found_response("No such make")
    return html_response(shell(make.name, "/m/[make]", make_data(cat, make), {"make": make.slug}))


def _vehicle(request: web.Request) -> ModelYear | None:
    return state_of(request).catalog.memo("spa-ids", _ids)["my"].get(request.match_info["id"])


async def vehicle_page(request: web.Request) -> web.Response:
    my = _vehicle(request)
    if my is None:
        return not_found_response("No such vehicle")
    cat = state_of(request).catalog
    u = vehicle_uuid(cat, my)
    return html_response(shell(f"{my.year} {my.make.name} {my.model.name}", "/v/[id]", vehicle_data(cat, my),
                               {"id": u}, media_api=f"/api/v2/media/{u}"))


async def media_api(request: web.Request) -> web.Response:
    my = _vehicle(request)
    if my is None:
        return web.json_response({"error": "no such vehicle"}, status=404)
    return web.json_response(media(state_of(request).catalog, my))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/", home_page)
    r.add_get("/m/{make}", make_page)
    r.add_get("/v/{id}", vehicle_page)
    r.add_get("/api/v2/media/{id}", media_api)
    r.add_get("/photos/{name}", photo)
    r.add_get("/cdn/{name}", photo)
