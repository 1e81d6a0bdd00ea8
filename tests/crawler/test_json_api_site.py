"""A catalog that is only a JSON API, crawled end to end: JSON page types, links made from ids, specs and
photos from the answers, a start URL that redirects to the API."""

from __future__ import annotations

import json

from aiohttp import web

from carscope.crawler import crawl
from carscope.crawler.dataset import load
from tests.crawler.helpers import app_in_thread, config, tiny_jpeg

ADAPTER = """
[site]
name = "json-api"

[pages.api]
match = '^/api/cars(\\?page=\\d+)?$'
content = "json"
links = [{ json = "items[*].id", format = "/api/car/{}" }, { json = "next" }]

[pages.car]
match = '^/api/car/\\d+$'
content = "json"

[pages.car.model_year]
year = { json = "year" }
make = { json = "brand.name" }
model = { json = "name" }

[[pages.car.specs.pairs]]
form = "json"
items = "specs"

[pages.car.photos]
json = "media[?type=='image']"
url = ["href"]
view = "tag"
"""

CARS = {i: {"year": 2020 + i % 2, "brand": {"name": "Acme"}, "name": f"Model {i}", "specs": {"Seats": 4 + i},
            "media": [{"type": "image", "href": f"/img/{i}-{k}.jpg", "tag": "interior" if k else "exterior"}
                      for k in range(2)] + [{"type": "video", "href": f"/v/{i}.mp4"}]}
        for i in range(1, 6)}


def _app() -> web.Application:
    async def root(request):
        raise web.HTTPFound("/api/cars")

    async def listing(request):
        page = int(request.query.get("page", "1"))
        ids = sorted(CARS)[(page - 1) * 3: page * 3]
        body = {"items": [{"id": i} for i in ids], "next": "/api/cars?page=2" if page == 1 else None}
        return web.json_response(body)

    async def car(request):
        return web.json_response(CARS[int(request.match_info["id"])])

    async def image(request):
        i, k = request.match_info["name"].removesuffix(".jpg").split("-")
        return web.Response(body=tiny_jpeg(int(i) * 2 + int(k)), content_type="image/jpeg")  # each one different

    app = web.Application()
    app.router.add_get("/", root)
    app.router.add_get("/api/cars", listing)
    app.router.add_get("/api/car/{id}", car)
    app.router.add_get("/img/{name}", image)
    return app


def test_a_json_api_catalog_crawls_completely(tmp_path):
    adapter = tmp_path / "api.toml"
    adapter.write_text(ADAPTER)
    with app_in_thread(_app()) as base:
        stats = crawl(config(base, tmp_path / "ds", site=str(adapter)))
    assert stats["status"] == "complete" and stats["failures"] == 0, stats["failure_reasons"]
    ds = load(tmp_path / "ds")
    assert sorted(ds.specs["model_id"]) == sorted(f"{c['year']}_acme_model_{i}" for i, c in CARS.items())
    assert ds.specs.set_index("model_id").loc["2021_acme_model_1", "seats"] == 5
    assert len(ds.images) == 2 * len(CARS)  # the videos were filtered out by the JMESPath
    assert set(ds.images["view_hint"]) == {"exterior", "interior"}
    assert ds.images["model_id"].notna().all()
    assert json.loads((tmp_path / "ds" / "stats.json").read_text())["no_model_year"]["pages"] == 0
