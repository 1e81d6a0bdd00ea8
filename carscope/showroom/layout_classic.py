"""The classic layout (the default): make pages, overview / specifications / photos pages, a gallery JSON.

    carscope showroom --layout classic --makes 2     # same as without --layout

URL map and page shapes: carscope/showroom/SITE.md (top). The markup itself is carscope/showroom/pages.py.
"""

from __future__ import annotations

from aiohttp import web

from carscope.showroom import pages
from carscope.showroom.catalog import Catalog, ModelYear, Photo
from carscope.showroom.language import spec_pairs
from carscope.showroom.responses import html_response, not_found_response, photo_response, query_int, state_of

THUMBNAILS = True  # the srcset's 320 entry


def photo_url(p: Photo, width: int = 640, cdn: bool = False) -> str:
    return p.url(width, cdn)


def model_year_pages(catalog: Catalog, my: ModelYear) -> dict:
    return {"specs": f"{my.path}/specifications", "photos": f"{my.path}/photos"}


def layout_specs(catalog: Catalog, my: ModelYear) -> list:
    return [[k, v] for k, v in spec_pairs(my, catalog.config.language)]


def sitemap_paths(catalog: Catalog) -> list[str]:
    return [f"{my.path}/{kind}" for my in catalog.model_years for kind in ("overview", "specifications", "photos")]


def compare_id(catalog: Catalog, my: ModelYear) -> str:
    return my.model_id


# ---------------------------------------------------------------- handlers

async def home(request: web.Request) -> web.Response:
    return html_response(pages.home(state_of(request).catalog))


async def make_page(request: web.Request) -> web.Response:
    state = state_of(request)
    cat = state.catalog
    make = cat.make_by_slug.get(request.match_info["make"])
    if make is None:
        return not_found_response("No such make")
    models = cat.models_of[make.slug]
    per = state.config.per_page
    pages_n = max(1, -(-len(models) // per))
    page = query_int(request, "page", 1)
    if page is None or not 1 <= page <= pages_n:
        return not_found_response("No such page")
    return html_response(pages.make_page(cat, make, page, pages_n, models[(page - 1) * per: page * per]))


def _model_year(request: web.Request) -> ModelYear | None:
    m = request.match_info
    try:
        year = int(m["year"])
    except ValueError:
        return None
    return state_of(request).catalog.by_path.get((m["make"], m["model"], year))


async def model_year_page(request: web.Request) -> web.Response:
    my = _model_year(request)
    if my is None:
        return not_found_response("No such model year")
    kind = request.match_info["page"]
    if kind == "overview":
        return html_response(pages.overview(state_of(request).catalog, my))
    if kind == "specifications":
        return html_response(pages.specifications(my, state_of(request).config.language))
    if kind == "photos":
        return html_response(pages.photos(my))
    return not_found_response()


async def gallery_json(request: web.Request) -> web.Response:
    my = _model_year(request)
    if my is None:
        return web.json_response({"error": "no such model year"}, status=404)
    cat = state_of(request).catalog
    return web.json_response({"model_id": my.model_id, "layout": "tabs" if my.layout == "tabs" else "mixed",
                              "photos": cat.gallery(my)})


async def photo(request: web.Request) -> web.StreamResponse:
    """`/photos/<id>-<width>.jpg` and `/cdn/<id>-<width>.jpg`."""
    pid, sep, rest = request.match_info["name"].rpartition("-")
    if not sep or rest not in ("320.jpg", "640.jpg"):
        return not_found_response("No such photo")
    return await photo_response(request, pid, int(rest[:3]), cdn=request.path.startswith("/cdn/"))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/", home)
    r.add_get("/make/{make}", make_page)
    r.add_get("/api/gallery/{make}/{model}/{year}.json", gallery_json)
    r.add_get("/photos/{name}", photo)
    r.add_get("/cdn/{name}", photo)
    r.add_get("/{make}/{model}/{year}/{page}", model_year_page)
