"""The `dl` layout, a European dealer: a paginated listing, one page per vehicle under an opaque numeric id,
specs as a definition list and a table in metric units, thumbnails, and a "More photos" button.

    carscope showroom --layout dl --makes 2 --photos 12     # then open http://127.0.0.1:8700/ (-> /vehicles)

URL map and page shapes: carscope/showroom/SITE.md, "Layout dl". Make, model and year appear in no URL; the page's
`h1.vehicle-title` ("2023 · Make · Model") and the listing's link text are the only places they are written.
The HTML holds the first PHOTOS_PER_BATCH photos; /static/dl.js fetches the rest from `/vehicle/<vid>/more`.
"""

from __future__ import annotations

import hashlib
from html import escape

from aiohttp import web

from carscope.showroom.catalog import Catalog, ModelYear, Photo, seeded_rng
from carscope.showroom.responses import html_response, not_found_response, photo_response, query_int, state_of

THUMBNAILS = True
PER_PAGE = 10  # vehicles per listing page
PHOTOS_PER_BATCH = 8  # figures in the page, and in each "More photos" fragment
SITE_NAME = "AutoHaus Europa"

DRIVES = {"All Wheel Drive": "All-wheel drive", "Four Wheel Drive": "Four-wheel drive",
          "Front Wheel Drive": "Front-wheel drive", "Rear Wheel Drive": "Rear-wheel drive"}
NNBSP, NBSP = "\u202f", "\u00a0"


# ---------------------------------------------------------------- ids, URLs, truth

def _ids(catalog: Catalog) -> dict:
    """model_id -> vid and vid -> ModelYear: 6 digits from a hash of the model_id (unique: the next free
    number on a clash, in catalog order)."""
    by_model, by_vid = {}, {}
    for my in catalog.model_years:
        n = int(hashlib.sha256(f"dl-vehicle|{my.model_id}".encode()).hexdigest(), 16) % 900_000
        while str(100_000 + n) in by_vid:
            n = (n + 1) % 900_000
        by_model[my.model_id] = str(100_000 + n)
        by_vid[str(100_000 + n)] = my
    return {"vid": by_model, "my": by_vid}


def vehicle_id(catalog: Catalog, my: ModelYear) -> str:
    return catalog.memo("dl-ids", _ids)["vid"][my.model_id]


def photo_url(p: Photo, width: int = 640, cdn: bool = False) -> str:
    """`/media/<id>/full.jpg` (640 px) or `/media/<id>/thumb.jpg` (320 px); `/cdn/media/...` for the copy."""
    return f"{'/cdn' if cdn else ''}/media/{p.id}/{'full' if width == 640 else 'thumb'}.jpg"


def model_year_pages(catalog: Catalog, my: ModelYear) -> dict:
    url = f"/vehicle/{vehicle_id(catalog, my)}"
    return {"specs": url, "photos": url}


def layout_specs(catalog: Catalog, my: ModelYear) -> list:
    facts, dims = spec_pairs(catalog, my)
    return [[k, v] for k, v in facts + dims]


def sitemap_paths(catalog: Catalog) -> list[str]:
    return [f"/vehicle/{vehicle_id(catalog, my)}" for my in catalog.model_years]


def compare_id(catalog: Catalog, my: ModelYear) -> str:
    return vehicle_id(catalog, my)


# ---------------------------------------------------------------- European values

def _style(catalog: Catalog, my: ModelYear) -> dict:
    """How this model-year's page writes its values (drawn once per model-year from the seed)."""
    r = seeded_rng(catalog.config.seed, "dl-style", my.model_id)
    return {"price": r.randrange(5), "cc": r.random() < 0.6, "power": r.randrange(3), "kml": r.random() < 0.3,
            "cm": r.random() < 0.3}


def _price(eur: int, style: int) -> str:
    grouped = f"{eur:,}"
    return [f"€ {grouped.replace(',', '.')}",
            f"{grouped.replace(',', NNBSP)}{NBSP}€",
            f"{grouped.replace(',', NBSP)}{NBSP}€",
            f"€{grouped}.00",
            f"EUR {grouped.replace(',', '.')},00"][style]


def _consumption(v: dict, kml: bool) -> str:
    city, hwy = v["mpg_city"], v["mpg_highway"]
    if v["electric"]:
        return f"{city} MPGe city / {hwy} MPGe highway"
    if kml:
        return f"{round(city * 0.425144, 1):.1f} km/l (city) · {round(hwy * 0.425144, 1):.1f} km/l (highway)"
    return f"{round(235.215 / city, 1):.1f} l/100 km (city) · {round(235.215 / hwy, 1):.1f} l/100 km (highway)"


def _length(inches: float, cm: bool) -> str:
    mm = round(inches * 25.4)
    return f"{mm / 10:.1f} cm" if cm else f"{mm} mm"


def spec_pairs(catalog: Catalog, my: ModelYear) -> tuple[list, list]:
    """(key facts, dimensions) as the page shows them: [(key, value), ...] each, None values left out."""
    v, st, classic = my.values, _style(catalog, my), dict(my.specs)
    facts = [("Price", _price(round(v["msrp_usd"] * 0.92 / 10) * 10, st["price"]))]
    facts.append(("Body", v["body_style"]))
    facts.append(("Drive", DRIVES.get(v["drivetrain"]) if v["drivetrain"] else None))
    facts.append(("Engine", v["engine"]))
    if v["displacement_l"] is not None:
        facts.append(("Displacement", f"{round(v['displacement_l'] * 1000)} cm³" if st["cc"]
                      else f"{v['displacement_l']:.1f} l"))
    elif v["electric"] and "Displacement" in classic:
        facts.append(("Displacement", "–"))
    if v["horsepower"] is not None:
        kw, ps = round(v["horsepower"] * 0.7457), round(v["horsepower"] * 1.01387)
        facts.append(("Power", [f"{kw} kW ({ps} PS)", f"{kw} kW", f"{ps} PS"][st["power"]]))
    if v["mpg_city"] is not None:
        facts.append(("Fuel consumption", _consumption(v, st["kml"])))
    facts.append(("Wheels", classic.get("Front Wheel Size (in)") if v["wheel_size_in"] is not None else None))
    facts.append(("Seats", None if v["seats"] is None else str(v["seats"])))
    facts.append(("Doors", None if v["doors"] is None else str(v["doors"])))
    dims = [(key, None if v[f] is None else _length(v[f], st["cm"]))
            for key, f in (("Length", "length_in"), ("Width", "width_in"), ("Height", "height_in"),
                           ("Wheelbase", "wheelbase_in"))]
    return [(k, x) for k, x in facts if x is not None], [(k, x) for k, x in dims if x is not None]


# ---------------------------------------------------------------- markup

def _doc(title: str, body: str, script: bool = False) -> str:
    js = '\n<script src="/static/dl.js"></script>' if script else ""
    return f"""<!doctype html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} | {SITE_NAME}</title>
<link rel="stylesheet" href="/static/site.css">
</head>
<body class="dl">
<header class="topbar"><a class="logo" href="/vehicles">{SITE_NAME}</a>
<span class="claim">Quality used and new cars</span></header>
<main>
{body}
</main>
<footer class="legal">Prices include VAT. <a href="/sitemap.xml">Sitemap</a></footer>{js}
</body>
</html>
"""


def listing(catalog: Catalog, page: int, pages: int, items: list[ModelYear]) -> str:
    rows = "\n".join(f'  <li class="result"><a class="result-link" href="/vehicle/{vehicle_id(catalog, my)}">'
                     f'{my.year} {escape(my.make.name)} {escape(my.model.name)}</a></li>' for my in items)
    nav = []
    if page > 1:
        prev = "/vehicles" if page == 2 else f"/vehicles?page={page - 1}"
        nav.append(f'<a class="pager-prev" rel="prev" href="{prev}">Previous</a>')
    nav.append(f'<span class="pager-info">Page {page} of {pages}</span>')
    if page < pages:
        nav.append(f'<a class="pager-next" rel="next" href="/vehicles?page={page + 1}">Next</a>')
    return _doc(f"Vehicles, page {page}", f"""<h1>Our vehicles</h1>
<p class="count">{len(catalog.model_years)} vehicles</p>
<ul class="results">
{rows}
</ul>
<nav class="pager">{' '.join(nav)}</nav>""")


def figures(catalog: Catalog, my: ModelYear, start: int, stop: int) -> str:
    """The gallery's figures [start, stop): thumbnails; the view as a class and words in tabbed galleries only."""
    out = []
    for i, (p, cdn) in enumerate(catalog.gallery_entries(my)[start:stop], start + 1):
        src = photo_url(p, 320, cdn)
        if my.layout == "tabs":
            view = p.view.capitalize()
            out.append(f'<figure class="shot {p.view}"><img src="{src}" alt="{view} photo {i}" width="320" '
                       f'height="240"><figcaption>{view}</figcaption></figure>')
        else:
            out.append(f'<figure class="shot"><img src="{src}" alt="Photo {i}" width="320" height="240">'
                       f'<figcaption>Photo {i}</figcaption></figure>')
    return "\n".join(out)


def _more_url(catalog: Catalog, my: ModelYear, offset: int) -> str:
    return f"/vehicle/{vehicle_id(catalog, my)}/more?offset={offset}"


def vehicle(catalog: Catalog, my: ModelYear) -> str:
    facts, dims = spec_pairs(catalog, my)
    dl = "\n".join(f"  <dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    table = ""
    if dims:
        rows = "\n".join(f"  <tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in dims)
        table = f'<section class="dims">\n<h2>Dimensions</h2>\n<table class="dimensions">\n{rows}\n</table>\n</section>'
    n = len(catalog.gallery_entries(my))
    more = "" if n <= PHOTOS_PER_BATCH else (
        f'\n<button class="more-photos" type="button" data-next="{_more_url(catalog, my, PHOTOS_PER_BATCH)}">'
        "More photos</button>")
    vid = vehicle_id(catalog, my)
    return _doc(f"Vehicle {vid}", f"""<article class="vehicle" data-vid="{vid}">
<nav class="back"><a href="/vehicles">All vehicles</a></nav>
<h1 class="vehicle-title">{my.year} · {escape(my.make.name)} · {escape(my.model.name)}</h1>
<section class="facts">
<h2>Key facts</h2>
<dl class="key-facts">
{dl}
</dl>
</section>
{table}
<section class="gallery">
<h2>Pictures ({n})</h2>
<div class="shots{'' if more else ' complete'}" data-total="{n}">
{figures(catalog, my, 0, PHOTOS_PER_BATCH)}
</div>{more}
</section>
<p class="tools"><a class="compare" href="/compare?ids={vid}">Compare this vehicle</a></p>
</article>""", script=True)


def more_fragment(catalog: Catalog, my: ModelYear, offset: int) -> tuple[str, int | None]:
    """The figures after `offset` and the next offset (None when nothing is left)."""
    stop = offset + PHOTOS_PER_BATCH
    nxt = stop if stop < len(catalog.gallery_entries(my)) else None
    data_next = _more_url(catalog, my, nxt) if nxt is not None else ""
    return (f'<div class="more-batch" data-offset="{offset}" data-next="{data_next}">\n'
            f"{figures(catalog, my, offset, stop)}\n</div>\n"), nxt


# ---------------------------------------------------------------- handlers

async def home(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/vehicles")


async def listing_page(request: web.Request) -> web.Response:
    cat = state_of(request).catalog
    pages = max(1, -(-len(cat.model_years) // PER_PAGE))
    page = query_int(request, "page", 1)
    if page is None or not 1 <= page <= pages:
        return not_found_response("No such page")
    return html_response(listing(cat, page, pages, cat.model_years[(page - 1) * PER_PAGE: page * PER_PAGE]))


def _vehicle(request: web.Request) -> ModelYear | None:
    return state_of(request).catalog.memo("dl-ids", _ids)["my"].get(request.match_info["vid"])


async def vehicle_page(request: web.Request) -> web.Response:
    my = _vehicle(request)
    if my is None:
        return not_found_response("No such vehicle")
    return html_response(vehicle(state_of(request).catalog, my))


async def more_photos(request: web.Request) -> web.Response:
    """The "More photos" fragment; its next offset also in `X-Next-Offset` (absent when nothing is left)."""
    my = _vehicle(request)
    cat = state_of(request).catalog
    offset = query_int(request, "offset", -1)
    if my is None or offset is None or not 0 <= offset < len(cat.gallery_entries(my)):
        return not_found_response("No such photos")
    text, nxt = more_fragment(cat, my, offset)
    return html_response(text, headers={"X-Next-Offset": str(nxt)} if nxt is not None else None)


async def photo(request: web.Request) -> web.StreamResponse:
    """`/media/<id>/full.jpg`, `/media/<id>/thumb.jpg` and their `/cdn/media/...` copies."""
    size = {"full.jpg": 640, "thumb.jpg": 320}.get(request.match_info["size"])
    if size is None:
        return not_found_response("No such photo")
    return await photo_response(request, request.match_info["pid"], size, cdn=request.path.startswith("/cdn/"))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/", home)
    r.add_get("/vehicles", listing_page)
    r.add_get("/vehicle/{vid}", vehicle_page)
    r.add_get("/vehicle/{vid}/more", more_photos)
    r.add_get("/media/{pid}/{size}", photo)
    r.add_get("/cdn/media/{pid}/{size}", photo)
