"""`--max-pages N` finishes N pages, also on a site whose pages redirect (a redirect's target is no page of its own)."""

from __future__ import annotations

from aiohttp import web

from carscope.crawler import crawl
from tests.crawler.helpers import app_in_thread, config

ADAPTER = """
[site]
name = "redirecting"

[pages.home]
match = '^/home$'
links = ["a"]

[pages.car]
match = '^/car/\\d+/?$'
"""


def _site(requests: list[str]) -> web.Application:
    """/ redirects to /home, which links /car/1 .. /car/6; each /car/N redirects to /car/N/ (a trailing slash)."""

    async def handler(request):
        requests.append(request.path)
        if request.path == "/":
            raise web.HTTPFound("/home")
        if request.path == "/home":
            return web.Response(text="".join(f'<a href="/car/{i}">{i}</a>' for i in range(1, 7)),
                                content_type="text/html")
        if request.path.startswith("/car/") and not request.path.endswith("/"):
            raise web.HTTPMovedPermanently(request.path + "/")
        if request.path.startswith("/car/"):
            return web.Response(text="<h1>a car</h1>", content_type="text/html")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


def test_max_pages_means_n_pages_even_when_pages_redirect(tmp_path):
    (tmp_path / "a.toml").write_text(ADAPTER)
    requests: list[str] = []
    with app_in_thread(_site(requests)) as base:
        stats = crawl(config(base, tmp_path / "ds", site=str(tmp_path / "a.toml"), max_pages=3, concurrency=1))
        assert stats["status"] == "limit_reached" and stats["pages"]["done"] == 3
        pages_read = [p for p in requests if p == "/home" or p.endswith("/") and p != "/"]
        assert len(pages_read) == 3  # the start page and two cars, each fetched once
        stats = crawl(config(base, tmp_path / "ds", site=str(tmp_path / "a.toml"), max_pages=5, resume=True))
        assert stats["pages"]["done"] == 5  # a resumed crawl counts on from the same number
        stats = crawl(config(base, tmp_path / "ds", site=str(tmp_path / "a.toml"), resume=True))
    assert stats["status"] == "complete" and stats["pages"]["done"] == 7  # home and six cars, redirects aside
