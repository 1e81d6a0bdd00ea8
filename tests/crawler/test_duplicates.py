"""The same photo under two URLs on one page: stored once, with the labels of whichever copy has them."""

from __future__ import annotations

from aiohttp import web

from carscope.crawler import crawl
from carscope.crawler.dataset import load
from tests.crawler.helpers import app_in_thread, config, tiny_jpeg

ADAPTER = """
[pages.car]
match = '^/(?P<make>\\w+)/(?P<model>\\w+)/(?P<year>\\d{4})$'

[[pages.car.photos]]
image = "meta[property='og:image']"
attrs = ["content"]

[[pages.car.photos]]
image = "figure img"
view_from = ["caption"]
"""


def test_a_copy_without_a_view_does_not_hide_the_view_of_the_other(tmp_path):
    photo = tiny_jpeg(7)
    page = """<meta property="og:image" content="/cdn/share.jpg?w=1600">
      <figure><img src="/gallery/1.jpg"><figcaption>Interior</figcaption></figure>"""

    async def handler(request):
        if request.path == "/acme/roadster/2023":
            return web.Response(text=page, content_type="text/html")
        if request.path in ("/cdn/share.jpg", "/gallery/1.jpg"):
            return web.Response(body=photo, content_type="image/jpeg")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    (tmp_path / "a.toml").write_text(ADAPTER)
    with app_in_thread(app) as base:
        # one request at a time: the og:image copy (no view) is downloaded and stored first
        stats = crawl(config(base, tmp_path / "ds", site=str(tmp_path / "a.toml"), concurrency=1, per_host=1)
                      .replace(start_url=base + "/acme/roadster/2023"))
    images = load(tmp_path / "ds").images
    assert stats["images"]["duplicates"] == 1 and len(images) == 1
    assert images.loc[0, "source_url"].endswith("/cdn/share.jpg?w=1600")  # the first copy's file and URL
    assert images.loc[0, "view_hint"] == "interior"  # the second copy's view
    assert images.loc[0, "model_id"] == "2023_acme_roadster"
