"""The `jsonld` layout: brand and model pages, and one page per model-year whose specs are only in a schema.org
JSON-LD block (`Car`, sometimes `["Product", "Car"]` or `Vehicle`, sometimes inside an `@graph`). No JavaScript.

    carscope showroom --layout jsonld --makes 2     # then open http://127.0.0.1:8700/

URL map and page shapes: carscope/showroom/SITE.md, "Layout jsonld". The visible page shows the name and a gallery of
CSS background images (the classic photo URLs, full size), no spec table.
"""

from __future__ import annotations

import json
from html import escape

from aiohttp import web

from carscope.showroom.catalog import Catalog, ModelYear, Photo, seeded_rng
from carscope.showroom.layout_classic import (
    photo,  # the classic photo URLs: /photos/<id>-640.jpg, /cdn/<id>-640.jpg
)
from carscope.showroom.responses import base_url, html_response, not_found_response, state_of

THUMBNAILS = False  # the page shows full-size photos only
SITE_NAME = "CarFacts"
DRIVE_URLS = {"All Wheel Drive": "https://schema.org/AllWheelDriveConfiguration",
              "Four Wheel Drive": "https://schema.org/FourWheelDriveConfiguration",
              "Front Wheel Drive": "https://schema.org/FrontWheelDriveConfiguration",
              "Rear Wheel Drive": "https://schema.org/RearWheelDriveConfiguration"}
TYPES = ("Car", "Car", "Car", ["Product", "Car"], "Vehicle")


def photo_url(p: Photo, width: int = 640, cdn: bool = False) -> str:
    return p.url(width, cdn)


def car_path(my: ModelYear) -> str:
    return f"/car/{my.make.slug}/{my.model.slug}?year={my.year}"


def model_year_pages(catalog: Catalog, my: ModelYear) -> dict:
    return {"specs": car_path(my), "photos": car_path(my)}


def layout_specs(catalog: Catalog, my: ModelYear) -> None:
    return None  # the specs are JSON-LD properties, not key/value pairs (truth `values` holds them)


def sitemap_paths(catalog: Catalog) -> list[str]:
    return [car_path(my) for my in catalog.model_years]


def compare_id(catalog: Catalog, my: ModelYear) -> str:
    return my.model_id


# ---------------------------------------------------------------- the JSON-LD

def _qv(value, unit: str, **more) -> dict:
    return {"@type": "QuantitativeValue", "value": value, "unitCode": unit, **more}


def _engine(v: dict) -> dict | None:
    e = {"@type": "EngineSpecification"}
    if v["engine"] is not None:
        e["name"] = v["engine"]
    if v["displacement_l"] is not None:
        e["engineDisplacement"] = _qv(v["displacement_l"], "LTR")
    if v["horsepower"] is not None:
        e["enginePower"] = _qv(v["horsepower"], "BHP")
    return e if len(e) > 1 else None


def car(catalog: Catalog, my: ModelYear, base: str) -> dict:
    """The model-year as a schema.org Car (properties whose value is None left out)."""
    v = my.values
    r = seeded_rng(catalog.config.seed, "jsonld-style", my.model_id)
    kind, metric = TYPES[r.randrange(len(TYPES))], r.random() < 0.3
    d = {"@type": kind, "name": f"{my.year} {my.make.name} {my.model.name}",
         "brand": {"@type": "Brand", "name": my.make.name}, "model": my.model.name,
         "vehicleModelDate": str(my.year), "url": base + car_path(my),
         "bodyType": v["body_style"], "driveWheelConfiguration": DRIVE_URLS.get(v["drivetrain"] or ""),
         "vehicleEngine": _engine(v)}
    if v["mpg_city"] is not None:
        unit = "MPGe" if v["electric"] else "mpg"
        d["fuelEfficiency"] = [{"@type": "QuantitativeValue", "value": v["mpg_city"], "unitText": unit, "name": "city"},
                               {"@type": "QuantitativeValue", "value": v["mpg_highway"], "unitText": unit,
                                "name": "highway"}]
    d["vehicleSeatingCapacity"] = v["seats"]
    d["numberOfDoors"] = v["doors"]
    for prop in ("length", "width", "height", "wheelbase"):
        x = v[f"{prop}_in"]
        if x is not None:
            d[prop] = _qv(round(x * 25.4), "MMT") if metric else _qv(x, "INH")
    d["offers"] = {"@type": "Offer", "price": v["msrp_usd"], "priceCurrency": "USD"}
    d["image"] = [base + photo_url(p, 640, cdn) for p, cdn in catalog.gallery_entries(my)]
    return {k: x for k, x in d.items() if x is not None}


def json_ld(catalog: Catalog, my: ModelYear, base: str) -> dict:
    """The page's JSON-LD: the Car alone, or (some model-years) in an @graph with a BreadcrumbList and the
    site's Organization."""
    c = car(catalog, my, base)
    if seeded_rng(catalog.config.seed, "jsonld-graph", my.model_id).random() >= 0.3:
        return {"@context": "https://schema.org", **c}
    crumbs = [("Brands", base + "/"), (my.make.name, f"{base}/brands/{my.make.slug}"), (c["name"], c["url"])]
    return {"@context": "https://schema.org", "@graph": [
        {"@type": "BreadcrumbList", "itemListElement": [
            {"@type": "ListItem", "position": i, "name": name, "item": url} for i, (name, url) in enumerate(crumbs, 1)]},
        {"@type": "Organization", "name": SITE_NAME, "url": base + "/"},
        c]}


# ---------------------------------------------------------------- markup

def _doc(title: str, body: str, head: str = "") -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} – {SITE_NAME}</title>
<link rel="stylesheet" href="/static/site.css">{head}
</head>
<body class="jsonld">
<header class="masthead"><a class="home" href="/">{SITE_NAME}</a></header>
{body}
<footer class="foot"><a href="/sitemap.xml">Sitemap</a></footer>
</body>
</html>
"""


def home(catalog: Catalog) -> str:
    items = "\n".join(f'  <li><a class="brand" href="/brands/{m.slug}">{escape(m.name)}</a></li>' for m in catalog.makes)
    return _doc("All brands", f"""<h1>All brands</h1>
<ul class="brands">
{items}
</ul>""")


def brand(catalog: Catalog, make) -> str:
    sections = []
    for md in catalog.models_of[make.slug]:
        years = " ".join(f'<a class="year" href="/car/{make.slug}/{md.slug}?year={y}">{y}</a>'
                         for y in reversed(catalog.config.year_list))
        sections.append(f'<section class="model"><h2 class="model-name">{escape(md.name)}</h2>'
                        f'<p class="years">{years}</p></section>')
    return _doc(make.name, f"""<nav class="crumbs"><a href="/">Brands</a> › <span>{escape(make.name)}</span></nav>
<h1>{escape(make.name)}</h1>
{chr(10).join(sections)}""")


def _slides(catalog: Catalog, my: ModelYear) -> str:
    out = []
    for i, (p, cdn) in enumerate(catalog.gallery_entries(my), 1):
        caption = p.view.capitalize() if my.layout == "tabs" else f"Photo {i}"
        out.append(f'<div class="slide" style="background-image: url(\'{photo_url(p, 640, cdn)}\')">'
                   f'<span class="caption">{caption}</span></div>')
    return "\n".join(out)


def car_page(catalog: Catalog, my: ModelYear, base: str) -> str:
    data = json.dumps(json_ld(catalog, my, base), ensure_ascii=False, indent=1).replace("</", "<\\/")
    name = f"{my.year} {my.make.name} {my.model.name}"
    others = " ".join(f'<a class="year" href="/car/{my.make.slug}/{my.model.slug}?year={y}">{y}</a>'
                      for y in reversed(catalog.config.year_list) if y != my.year)
    crumbs = (f'<nav class="crumbs"><a href="/">Brands</a> › <a href="/brands/{my.make.slug}">'
              f'{escape(my.make.name)}</a> › <span>{escape(my.model.name)}</span></nav>')
    return _doc(name, f"""{crumbs}
<h1 class="car-name">{escape(name)}</h1>
<div class="slides">
{_slides(catalog, my)}
</div>
<p class="other-years">Other years: {others or "none"}</p>
<p><a class="compare" href="/compare?ids={my.model_id}">Compare</a></p>""",
                head=f'\n<script type="application/ld+json">\n{data}\n</script>')


# ---------------------------------------------------------------- handlers

async def home_page(request: web.Request) -> web.Response:
    return html_response(home(state_of(request).catalog))


async def brand_page(request: web.Request) -> web.Response:
    cat = state_of(request).catalog
    make = cat.make_by_slug.get(request.match_info["make"])
    if make is None:
        return not_found_response("No such brand")
    return html_response(brand(cat, make))


async def model_year_page(request: web.Request) -> web.Response:
    cat = state_of(request).catalog
    try:
        year = int(request.query.get("year", ""))
    except ValueError:
        return not_found_response("No such model year")
    my = cat.by_path.get((request.match_info["make"], request.match_info["model"], year))
    if my is None:
        return not_found_response("No such model year")
    return html_response(car_page(cat, my, base_url(request)))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/", home_page)
    r.add_get("/brands/{make}", brand_page)
    r.add_get("/car/{make}/{model}", model_year_page)
    r.add_get("/photos/{name}", photo)
    r.add_get("/cdn/{name}", photo)
