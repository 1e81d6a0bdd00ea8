"""The site against its ground truth: pages and links, specs, galleries, photos, robots.txt, sitemap."""

import hashlib
import io
import re
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from PIL import Image
from protego import Protego

from carscope.showroom.testing import get_json, serve_in_thread, tiny_config


class _Links(HTMLParser):
    """Collects <a> (href, class, text), spec rows and the msrp span of a page."""

    def __init__(self):
        super().__init__()
        self.links, self.spec_items, self.msrp, self.h1 = [], [], None, ""
        self._a = None
        self._spans, self._in_item, self._in_msrp, self._in_h1 = [], False, False, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "") or ""
        if tag == "a":
            self._a = [a.get("href"), cls, ""]
        elif tag == "div" and "specs-set-item" in cls:
            self._in_item, self._spans = True, []
        elif tag == "span" and self._in_item:
            self._spans.append("")
        elif tag == "span" and cls == "msrp":
            self._in_msrp = True
            self.msrp = ""
        elif tag == "h1":
            self._in_h1 = True

    def handle_endtag(self, tag):
        if tag == "a" and self._a:
            self.links.append(tuple(self._a))
            self._a = None
        elif tag == "div" and self._in_item:
            self.spec_items.append(tuple(self._spans))
            self._in_item = False
        elif tag == "span":
            self._in_msrp = False
        elif tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self._a:
            self._a[2] += data
        if self._in_item and self._spans:
            self._spans[-1] += data
        if self._in_msrp:
            self.msrp += data
        if self._in_h1:
            self.h1 += data


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers, r.read()


def parse(url):
    p = _Links()
    p.feed(fetch(url)[2].decode())
    return p


def status_of(url):
    try:
        return fetch(url)[0]
    except urllib.error.HTTPError as exc:
        return exc.code


def test_links_from_home_reach_every_model_year_and_specs_match_truth(showroom_site):
    base, truth = showroom_site.base_url, showroom_site.truth
    makes = [h for h, c, _ in parse(base + "/").links if c == "make-link"]
    assert makes == [m["url"] for m in truth["makes"]]
    overviews = set()
    for make_url in makes:
        page = parse(base + make_url)
        # model-card name links point at the latest year, year selectors at every year
        overviews |= {h for h, _, t in page.links if re.fullmatch(r"/[a-z0-9-]+/[a-z0-9-]+/\d{4}/overview", h or "")}
    by_url = {m["overview_url"]: m for m in truth["model_years"]}
    assert overviews == set(by_url)
    for url, my in by_url.items():
        ov = parse(base + url)
        cls = {c: h for h, c, _ in ov.links}
        assert cls["specs-link"] == my["specifications_url"] and cls["photos-link"] == my["photos_url"]
        assert cls["compare"].startswith("/compare?ids=")
        assert ov.h1 == f"{my['year']} {my['make']} {my['model']}"
        spec = parse(base + cls["specs-link"])
        assert dict(spec.spec_items) == my["specs"]
        assert spec.msrp == my["specs"]["MSRP"]
        crumbs = [t for h, c, t in spec.links][1:4]  # after the site header's home link
        assert crumbs == [my["make"], my["model"], str(my["year"])]


def test_photos_page_has_no_image_url_but_the_json_lists_every_photo(showroom_site):
    base, truth = showroom_site.base_url, showroom_site.truth
    photos_by_my = {}
    for p in truth["photos"]:
        photos_by_my.setdefault(p["model_id"], []).append(p)
    layouts = set()
    for my in truth["model_years"]:
        html = fetch(base + my["photos_url"])[2].decode()
        assert ".jpg" not in html and "/photos/" not in html and "/cdn/" not in html
        assert f'data-gallery="{my["gallery_url"]}"' in html and "/static/gallery.js" in html
        g = get_json(base + my["gallery_url"])
        assert g["model_id"] == my["model_id"] and g["layout"] == my["layout"]
        layouts.add(g["layout"])
        want = {(p["id"], p["url"]) for p in photos_by_my[my["model_id"]]}
        want |= {(p["id"], p["url"].replace("/photos/", "/cdn/")) for p in photos_by_my[my["model_id"]] if p["dup_urls"]}
        assert {(e["id"], e["src"]) for e in g["photos"]} == want
        for e in g["photos"]:
            assert e["srcset"] == f"{e['src'].replace('-640', '-320')} 320w, {e['src']} 640w"
            truth_view = next(p["view"] for p in photos_by_my[my["model_id"]] if p["id"] == e["id"])
            assert e["view"] == (truth_view if g["layout"] == "tabs" else None)
    assert "tabs" in layouts


def test_photo_bytes_match_truth_and_cdn_copies_are_identical(showroom_site):
    base, truth = showroom_site.base_url, showroom_site.truth
    dups = [p for p in truth["photos"] if p["dup_urls"]]
    assert dups, "the tiny site should list some photos twice"
    for p in truth["photos"][:6] + dups[:2]:
        status, headers, data = fetch(base + p["url"])
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert hashlib.sha256(data).hexdigest() == p["sha256"]
        assert "max-age" in headers["Cache-Control"] and headers["ETag"]
        assert Image.open(io.BytesIO(fetch(base + p["url_320"])[2])).size == (320, 240)
        for url in p["urls"][1:] + p["dup_urls"][:1]:
            assert fetch(base + url)[2] == data
    # conditional GET: the ETag answers 304
    p = truth["photos"][0]
    etag = fetch(base + p["url"])[1]["ETag"]
    req = urllib.request.Request(base + p["url"], headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 304


def test_unknown_things_are_404(showroom_site):
    base, truth = showroom_site.base_url, showroom_site.truth
    nodup = next(p for p in truth["photos"] if not p["dup_urls"])
    my = truth["model_years"][0]
    for path in ["/make/nope", "/make/" + truth["makes"][0]["slug"] + "?page=2", "/make/x?page=abc",
                 my["overview_url"].replace(str(my["year"]), "1999"), "/a/b/c/overview",
                 my["overview_url"].replace("overview", "brochure"), "/photos/ffffffffffff-640.jpg",
                 nodup["url"].replace("-640", "-1024"), nodup["url"].replace("/photos/", "/cdn/"),
                 "/api/gallery/x/y/2023.json", "/static/../server.py", "/static/nope.js", "/redirect/1?to=http://evil"]:
        assert status_of(base + path) == 404, path


def test_robots_txt_and_sitemap_are_valid(showroom_site):
    base, truth = showroom_site.base_url, showroom_site.truth
    robots = fetch(base + "/robots.txt")[2].decode()
    rp = Protego.parse(robots)
    assert not rp.can_fetch(base + "/compare?ids=a", "carscope")
    assert not rp.can_fetch(base + "/__truth.json", "carscope") and not rp.can_fetch(base + "/__stats", "carscope")
    for my in truth["model_years"]:
        assert rp.can_fetch(base + my["photos_url"], "carscope")
    assert rp.can_fetch(base + truth["photos"][0]["url"], "carscope")
    assert rp.crawl_delay("carscope") == 0
    assert list(rp.sitemaps) == [base + "/sitemap.xml"]
    root = ET.fromstring(fetch(base + "/sitemap.xml")[2])
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    assert root.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}urlset"
    locs = {e.text for e in root.findall("s:url/s:loc", ns)}
    want = {base + my[k] for my in truth["model_years"] for k in ("overview_url", "specifications_url", "photos_url")}
    assert locs == want


def test_compare_is_an_endless_disallowed_trap(showroom_site):
    base = showroom_site.base_url
    showroom_site.reset_stats()
    url, seen = "/compare?ids=" + showroom_site.truth["model_years"][0]["model_id"], set()
    for _ in range(25):  # keep following: always a new compare page
        links = [h for h, c, _ in parse(base + url).links if c == "compare"]
        assert links and all(h.startswith("/compare?") for h in links)
        url = links[-1].replace("&amp;", "&")
        assert url not in seen
        seen.add(url)
    stats = showroom_site.stats()
    assert stats["disallowed_hits"] == 25 and stats["by_kind"]["compare"] == 25


def test_make_pages_paginate_eight_models_at_a_time():
    with serve_in_thread(tiny_config(makes=1, models_per_make=11, photos=1)) as base:
        make = get_json(base + "/__truth.json?sha256=0")["makes"][0]["url"]
        names, url, pages = [], make, 0
        while url:
            p = parse(base + url)
            pages += 1
            names += [t for h, c, t in p.links if h and h.endswith("2023/overview") and t != "2023"]
            url = next((h for h, c, _ in p.links if c == "next"), None)
        assert pages == 2 and len(names) == 11 and len(set(names)) == 11
        assert status_of(base + make + "?page=3") == 404
