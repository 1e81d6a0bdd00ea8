from carscope.crawler.adapter import load_adapter
from carscope.crawler.parse import parse_page

BASE = "http://h"


def parse(path, html):
    adapter = load_adapter("showroom")
    pt, groups = adapter.classify(path)
    return parse_page(adapter, pt, groups, BASE + path, html)


def test_links_follow_only_known_page_types():
    html = """<div class="model-card"><div class="name"><a href="/acme/road-star/2023/overview">R</a></div>
      <div class="year-selector"><a href="/acme/road-star/2022/overview">2022</a>
      <a href="/acme/road-star/2023/overview#top">2023</a></div></div>
      <a class="next" rel="next" href="/make/acme?page=2">next</a>
      <a class="compare" href="/compare?ids=1,2">compare</a>"""
    got = parse("/make/acme", html)
    assert got.links == [("http://h/acme/road-star/2023/overview", "overview"),
                         ("http://h/acme/road-star/2022/overview", "overview"),
                         ("http://h/make/acme?page=2", "make")]


def test_spec_rows_kept_exactly_and_named_by_url():
    html = """<div class="global-container"><nav class="breadcrumb"><a href="/make/acme-motors">Acme Motors</a>
      <a href="/x">Road Star</a> <a href="/y">2023</a></nav><h1>2023 Acme Motors Road Star Specifications</h1>
      <div class="price">Starting MSRP <span class="msrp">$34,500</span></div>
      <div class="specs-set"><div class="specs-set-item"><span>Engine Type</span><span>2.0L  I4 Turbo Gas</span></div>
      <div class="specs-set-item"><span>Gas Mileage</span><span>N/A</span></div></div></div>"""
    got = parse("/acme-motors/road-star/2023/specifications", html)
    s = got.specs
    assert s.model_id == "2023_acme_motors_road_star"
    assert (s.make, s.model, s.year) == ("Acme Motors", "Road Star", 2023)
    assert s.rows == [("MSRP", "$34,500"), ("Engine Type", "2.0L I4 Turbo Gas"), ("Gas Mileage", "N/A")]


def test_tabbed_gallery_gives_views_and_mixed_gives_unknown():
    tabbed = """<div id="gallery"><div class="gallery tabbed">
      <div class="panel" data-view="exterior"><img class="photo" src="/static/blank.gif"
        data-src="/photos/a-640.jpg" srcset-data="/photos/a-320.jpg 320w, /photos/a-640.jpg 640w"></div>
      <div class="panel" data-view="interior"><img class="photo" src="/photos/b-320.jpg"
        srcset="/photos/b-320.jpg 320w, /photos/b-640.jpg 640w" data-view="interior"></div></div></div>"""
    got = parse("/acme/x/2023/photos", tabbed)
    assert [(p.url, p.view_hint) for p in got.photos] == [("http://h/photos/a-640.jpg", "exterior"),
                                                         ("http://h/photos/b-640.jpg", "interior")]
    mixed = """<div id="gallery"><div class="gallery mixed"><img class="photo" src="/static/blank.gif"
      data-src="/photos/c-640.jpg"><img class="photo" src="/static/blank.gif"></div></div>"""
    got = parse("/acme/x/2023/photos", mixed)
    assert [(p.url, p.view_hint) for p in got.photos] == [("http://h/photos/c-640.jpg", "unknown")]


def test_raw_photo_page_has_no_photos_and_empty_html_is_harmless():
    raw = '<div id="gallery" data-gallery="/api/gallery/acme/x/2023.json"></div><script src="/static/gallery.js">'
    assert parse("/acme/x/2023/photos", raw).photos == []
    assert parse("/", "").links == []
