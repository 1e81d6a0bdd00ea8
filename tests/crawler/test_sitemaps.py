"""Sitemaps as a source of pages: urlset and index parsing, gzip by magic bytes, robots.txt `Sitemap:` lines,
`lastmod` kept in the frontier, a missing sitemap as a failures row, `--check` of a sitemap, the showroom's."""

from __future__ import annotations

import gzip
import json
import sqlite3

import pytest
from aiohttp import web

from carscope.crawler import crawl
from carscope.crawler.check import check, format_report
from carscope.crawler.dataset import load
from carscope.crawler.sitemaps import BadSitemap, gunzip, parse_sitemap, sitemap_roots
from carscope.showroom.testing import fetch_truth, serve_in_thread, tiny_config
from tests.crawler.helpers import app_in_thread, config, specs_by_model, truth_specs

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
URLSET = f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset {NS} xmlns:xhtml="http://www.w3.org/1999/xhtml">
  <url><loc>http://h/car/1</loc><lastmod>2024-05-01T10:00:00+00:00</lastmod>
       <xhtml:link rel="alternate" hreflang="de" href="http://h/de/car/1"/></url>
  <url><loc> /car/2 </loc></url>
  <url><loc></loc></url>
  <!-- a comment -->
</urlset>""".encode()
INDEX = f"""<sitemapindex {NS}><sitemap><loc>http://h/a.xml.gz</loc><lastmod>2024-01-01</lastmod></sitemap>
<sitemap><loc>/missing.xml</loc></sitemap></sitemapindex>""".encode()


def test_a_urlset_gives_pages_with_lastmod_and_an_index_gives_sitemaps():
    sm = parse_sitemap(URLSET, "http://h/sitemap.xml")
    assert sm.kind == "urlset" and sm.sitemaps == []
    assert sm.pages == [("http://h/car/1", "2024-05-01T10:00:00+00:00"), ("http://h/car/2", None)]
    assert parse_sitemap(gzip.compress(URLSET), "http://h/s.xml.gz").pages == sm.pages  # gzip by magic bytes
    idx = parse_sitemap(INDEX, "http://h/sitemap_index.xml")
    assert idx.kind == "sitemapindex" and idx.sitemaps == ["http://h/a.xml.gz", "http://h/missing.xml"]


@pytest.mark.parametrize("body, reason", [
    (b"<html><body>Wartungsarbeiten</body></html>", "bad_sitemap"),
    (b"not xml at all", "bad_sitemap"),
    (b"", "bad_sitemap"),
    (b"\x1f\x8b\x08\x00garbage", "bad_gzip"),
])
def test_what_is_not_a_sitemap_is_a_reason(body, reason):
    with pytest.raises(BadSitemap) as info:
        parse_sitemap(body, "http://h/sitemap.xml")
    assert info.value.reason == reason


def test_a_gzip_bomb_stops_at_the_limit():
    bomb = gzip.compress(b"<urlset>" + b" " * 200_000 + b"</urlset>")
    assert len(gunzip(bomb, limit=300_000)) > 200_000
    with pytest.raises(BadSitemap, match="too_large"):
        gunzip(bomb, limit=100_000)


def test_robots_sitemap_lines_else_the_default():
    robots = "User-agent: *\nDisallow: /x\nSitemap: http://h/one.xml\nsitemap: /two.xml.gz\nSitemap: http://h/one.xml\n"
    assert sitemap_roots(robots, "http://h") == ["http://h/one.xml", "http://h/two.xml.gz"]
    assert sitemap_roots("User-agent: *\nDisallow:\n", "http://h") == ["http://h/sitemap.xml"]
    assert sitemap_roots(None, "http://h") == ["http://h/sitemap.xml"]


ADAPTER = """[site]
sitemap = true
[pages.home]
match = '^/$'
[pages.car]
match = '/car/\\d+$'
"""


def _site(log: list):
    async def robots(request):
        log.append(request.path)
        return web.Response(text="User-agent: *\nDisallow: /private\nSitemap: /sitemap_index.xml\n")

    async def index(request):
        log.append(request.path)
        base = f"http://{request.host}"
        body = INDEX.replace(b"http://h", base.encode())
        return web.Response(body=body, content_type="application/xml")

    async def gz(request):
        log.append(request.path)
        urls = URLSET.replace(b"http://h/de/", b"/de/").replace(b"http://h", f"http://{request.host}".encode())
        urls = urls.replace(b"</urlset>", b"<url><loc>/private/car/9</loc></url><url><loc>/about</loc></url>"
                                          b"<url><loc>http://elsewhere.example/car/3</loc></url></urlset>")
        return web.Response(body=gzip.compress(urls), content_type="application/x-gzip")  # no Content-Encoding

    async def page(request):
        log.append(request.path)
        return web.Response(text=f"<h1>{request.path}</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/robots.txt", robots)
    app.router.add_get("/sitemap_index.xml", index)
    app.router.add_get("/a.xml.gz", gz)
    for path in ("/", "/car/1", "/car/2", "/about"):
        app.router.add_get(path, page)
    return app


def _urls(root) -> dict[str, tuple[str, dict]]:
    con = sqlite3.connect(f"file:{root / 'crawl.sqlite'}?mode=ro", uri=True)
    try:
        return {u: (s, json.loads(m or "{}")) for u, s, m in con.execute("SELECT url, state, meta FROM urls")}
    finally:
        con.close()


def test_a_crawl_reads_the_sitemaps_robots_names_and_keeps_lastmod(tmp_path):
    (tmp_path / "site.toml").write_text(ADAPTER)
    log: list = []
    with app_in_thread(_site(log)) as base:
        stats = crawl(config(base, tmp_path / "ds", site=str(tmp_path / "site.toml"), max_attempts=2))
        assert stats["status"] == "complete" and stats["exit_code"] == 0
        urls = _urls(tmp_path / "ds")
        assert urls[f"{base}/car/1"] == ("done", {"lastmod": "2024-05-01T10:00:00+00:00"})
        assert urls[f"{base}/car/2"] == ("done", {})
        assert f"{base}/about" not in urls and f"{base}/de/car/1" not in urls  # no page type; alternates not read
        fails = load(tmp_path / "ds").failures.set_index("url")
        assert fails.loc[f"{base}/missing.xml", ["kind", "reason", "status"]].tolist() == ["sitemap", "http_404", 404]
        assert fails.loc[f"{base}/private/car/9", "reason"] == "robots_disallowed"
        assert fails.loc["http://elsewhere.example/car/3", "reason"] == "offsite"
        assert any("sitemaps: 2 read, 1 failed; 5 pages listed, 2 queued" in n for n in stats["notes"]), stats["notes"]
        log.clear()
        again = crawl(config(base, tmp_path / "ds", site=str(tmp_path / "site.toml"), resume=True))
        assert again["status"] == "complete"
        assert not {"/sitemap_index.xml", "/a.xml.gz"} & set(log)  # read once per crawl, not per run

        report = check(base + "/robots.txt", str(tmp_path / "site.toml"))
    sm = report["sitemap"]
    assert sm["roots"] == [f"{base}/sitemap_index.xml"]
    assert sm["by_page_type"] == {"car": 4, "(no page type)": 1} and sm["pages"] == 5
    assert sm["sample"][0] == {"url": f"{base}/car/1", "page_type": "car", "lastmod": "2024-05-01T10:00:00+00:00"}
    assert sm["failures"] == [{"url": f"{base}/missing.xml", "reason": "http_404", "status": 404}]
    text = format_report(report)
    assert "index of 2 sitemaps" in text and "missing.xml: http_404" in text and "car                4" in text


def test_a_site_without_a_sitemap_is_a_failures_row_not_an_error(tmp_path):
    (tmp_path / "site.toml").write_text(ADAPTER)

    async def home(request):
        return web.Response(text="<h1>home</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", home)
    with app_in_thread(app) as base:
        stats = crawl(config(base, tmp_path / "ds", site=str(tmp_path / "site.toml")))
    assert stats["status"] == "complete" and stats["pages"]["done"] == 1
    fails = load(tmp_path / "ds").failures
    assert fails[["url", "kind", "reason"]].values.tolist() == [[f"{base}/sitemap.xml", "sitemap", "http_404"]]


def test_the_showroom_sitemap_reaches_every_model_year_without_following_links(tmp_path):
    with serve_in_thread(tiny_config()) as base:
        truth = fetch_truth(base, sha256=False)
        shallow = crawl(config(base, tmp_path / "no", max_depth=1))  # home, make pages, nothing deeper
        assert shallow["specs"] == 0
        stats = crawl(config(base, tmp_path / "ds", max_depth=1, sitemap=True))
    assert stats["status"] == "complete"
    assert specs_by_model(load(tmp_path / "ds")) == truth_specs(truth)
    assert len(load(tmp_path / "ds").images) > 0
