"""The adapter language's extraction forms, each on in-memory HTML through a real TOML adapter."""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest

from carscope.common.errors import CarscopeError
from carscope.crawler.adapter import load_adapter
from carscope.crawler.parse import extract_page, parse_page

BASE = "http://h"


def adapter(tmp_path, body: str, hook: str | None = None):
    if hook is not None:
        (tmp_path / "hook.py").write_text(textwrap.dedent(hook))
        body = '[site]\nhook = "hook.py"\n' + textwrap.dedent(body)
    p = tmp_path / "site.toml"
    p.write_text(textwrap.dedent(body))
    return load_adapter(str(p))


def parse(a, path: str, html: str, captured=None):
    pt, groups = a.classify(path)
    return parse_page(a, pt, groups, BASE + path, html, captured=captured)


def test_definition_list_and_table_pairs_with_a_title_regex_identity(tmp_path):
    a = adapter(tmp_path, """
        [pages.vehicle]
        match = '^/vehicle/\\d+$'
        [pages.vehicle.model_year]
        title = { css = "h1.t", re = '^(?P<year>\\d{4}) · (?P<make>.+?) · (?P<model>.+)$' }
        [[pages.vehicle.specs.pairs]]
        form = "dl"
        select = "dl.facts"
        [[pages.vehicle.specs.pairs]]
        form = "table"
        select = "table.dims"
        """)
    html = """<h1 class=t>2023 · Astux Auto · Road Star 500</h1>
      <dl class=facts><dt>Price</dt><dd>€ 31.740</dd><dt>Drive</dt><dt>Traction</dt><dd>All-wheel drive</dd>
        <div><dt>Seats</dt><dd>5</dd></div><dt>Colours</dt><dd>red</dd><dd>blue</dd></dl>
      <dl class=other><dt>Ignored</dt><dd>x</dd></dl>
      <table class=dims><tr><th>Length</th><td>4727 mm</td></tr><tr><td>only one cell</td></tr>
        <tbody><tr><th>Width</th><td>1 905 mm</td></tr></tbody></table>"""
    got = parse(a, "/vehicle/123456", html)
    assert got.model_id == "2023_astux_auto_road_star_500"
    assert (got.identity.year, got.identity.make, got.identity.model) == (2023, "Astux Auto", "Road Star 500")
    assert got.identity.sources == {"year": "title", "make": "title", "model": "title"}
    assert got.specs.rows == [("Price", "€ 31.740"), ("Drive", "All-wheel drive"), ("Traction", "All-wheel drive"),
                              ("Seats", "5"), ("Colours", "red / blue"), ("Length", "4727 mm"),
                              ("Width", "1 905 mm")]
    assert got.problems == []


def test_a_header_row_table_names_the_columns_of_a_value_row(tmp_path):
    a = adapter(tmp_path, """
        [pages.p]
        match = '^/(?P<make>\\w+)/(?P<model>\\w+)/(?P<year>\\d{4})$'
        [[pages.p.specs.pairs]]
        form = "table"
        header = true
        row = 2
        """)
    html = "<table><tr><th>Trim</th><th>Price</th></tr><tr><td>Base</td><td>$1</td></tr><tr><td>Top</td><td>$2</td></tr></table>"
    assert parse(a, "/acme/x/2023", html).specs.rows == [("Trim", "Top"), ("Price", "$2")]


JSONLD = {
    "@context": "https://schema.org",
    "@graph": [
        {"@type": "BreadcrumbList", "itemListElement": []},
        {"@type": ["Product", "Car"], "name": "2023 Astux Auto Road Star 500",
         "brand": {"@type": "Brand", "name": "Astux Auto"}, "model": "Road Star 500", "vehicleModelDate": "2023",
         "driveWheelConfiguration": "https://schema.org/AllWheelDriveConfiguration",
         "vehicleEngine": {"@type": "EngineSpecification", "name": "2.0L I4 Turbo Gas",
                           "enginePower": {"@type": "QuantitativeValue", "value": 188, "unitCode": "KWT"}},
         "fuelEfficiency": [{"@type": "QuantitativeValue", "value": 25, "unitText": "mpg", "name": "city"},
                            {"@type": "QuantitativeValue", "value": 33, "unitText": "mpg", "name": "highway"}],
         "length": {"@type": "QuantitativeValue", "value": 4727, "unitCode": "MMT"},
         "vehicleSeatingCapacity": 5,
         "offers": {"@type": "Offer", "price": 34500, "priceCurrency": "USD"},
         "image": ["/photos/a-640.jpg", {"@type": "ImageObject", "contentUrl": "/photos/b-640.jpg"}]},
    ],
}


def test_json_ld_vehicles_give_specs_identity_and_photos(tmp_path):
    a = adapter(tmp_path, """
        [pages.car]
        match = '^/car/'
        [[pages.car.specs.pairs]]
        form = "jsonld"
        [[pages.car.photos]]
        jsonld = true
        [[pages.car.photos]]
        image = "div.slide"
        attrs = ["style"]
        view_from = ["caption"]
        caption = "span.caption"
        """)
    html = (f'<script type="application/ld+json">{json.dumps(JSONLD)}</script>'
            "<div class=slide style=\"background-image: url('/photos/c-640.jpg')\"><span class=caption>Interior</span></div>"
            "<div class=slide style='background: #000 url(/photos/d-640.jpg) no-repeat'><span class=caption>Photo 4</span></div>")
    got = parse(a, "/car/astux-auto/road-star-500?year=2023", html)
    assert got.model_id == "2023_astux_auto_road_star_500" and got.identity.sources["make"] == "jsonld"
    rows = dict(got.specs.rows)
    assert rows["offers.price"] == "34500 USD"
    assert rows["vehicleEngine.enginePower"] == "188 kW"
    assert rows["fuelEfficiency"] == "25 mpg city / 33 mpg highway"
    assert rows["length"] == "4727 mm" and rows["vehicleSeatingCapacity"] == "5"
    assert rows["driveWheelConfiguration"] == "AllWheelDriveConfiguration"
    assert rows["brand"] == "Astux Auto"
    assert [(p.url, p.view_hint) for p in got.photos] == [
        ("http://h/photos/a-640.jpg", "unknown"), ("http://h/photos/b-640.jpg", "unknown"),
        ("http://h/photos/c-640.jpg", "interior"), ("http://h/photos/d-640.jpg", "unknown")]


def test_microdata_vehicle(tmp_path):
    a = adapter(tmp_path, """
        [pages.car]
        match = '^/car$'
        [[pages.car.specs.pairs]]
        form = "microdata"
        """)
    html = """<div itemscope itemtype="https://schema.org/Car"><span itemprop="name">X</span>
      <div itemprop="brand" itemscope itemtype="https://schema.org/Brand"><span itemprop="name">Acme</span></div>
      <span itemprop="model">Roadster</span><meta itemprop="vehicleModelDate" content="2022">
      <span itemprop="bodyType">Coupe</span></div>"""
    got = parse(a, "/car", html)
    assert got.model_id == "2022_acme_roadster" and got.identity.sources["year"] == "microdata"
    assert ("bodyType", "Coupe") in got.specs.rows


SPA = """<div id=root></div>
<script id="__NEXT_DATA__" type="application/json">{"props": {"pageProps": {"vehicle": {"make": "Acme", "model": "Roadster",
  "year": 2023, "specs": [{"label": "MSRP", "value": "$34,500"}, {"label": "Passenger Doors", "value": 4}]},
  "related": [{"href": "/v/b"}, {"href": "/v/c"}, {"href": "/elsewhere"}]}}}</script>
<script>window.__APP_CONFIG__ = {mediaApi: '/api/v2/media/a', locale: 'en-US', flags: [1, 2,],};</script>"""
SPA_ADAPTER = """
    [pages.vehicle]
    match = '^/v/\\w+$'
    links = [{ json = "props.pageProps.related[*].href", from = "next" }]
    [pages.vehicle.data.next]
    script = "script#__NEXT_DATA__"
    [pages.vehicle.data.config]
    script = "script"
    var = "window.__APP_CONFIG__"
    [pages.vehicle.data.media]
    url = { json = "mediaApi", from = "config" }
    [pages.vehicle.model_year]
    year = { json = "props.pageProps.vehicle.year", from = "next" }
    make = { json = "props.pageProps.vehicle.make", from = "next" }
    model = { json = "props.pageProps.vehicle.model", from = "next" }
    [[pages.vehicle.specs.pairs]]
    form = "json"
    from = "next"
    items = "props.pageProps.vehicle.specs"
    key = "label"
    [pages.vehicle.photos]
    json = "items"
    from = "media"
    url = ["full", "url"]
    view = "kind"
    """


class FakeCtx:
    def __init__(self, answers):
        self.answers, self.fetched = answers, []

    async def fetch_json(self, url):
        self.fetched.append(url)
        return self.answers[url]


def test_embedded_json_a_js_object_literal_and_an_api_url_the_page_names(tmp_path):
    a = adapter(tmp_path, SPA_ADAPTER)
    pt, groups = a.classify("/v/a")
    media = {"items": [{"url": "/img/1.jpg", "kind": "exterior"}, {"full": "/img/2-big.jpg", "url": "/img/2.jpg",
                                                                   "kind": "interior"}, {"url": "/img/3.jpg"}, 7]}
    ctx = FakeCtx({"http://h/api/v2/media/a": media})
    page, got = asyncio.run(extract_page(a, pt, groups, BASE + "/v/a", SPA, ctx=ctx))
    assert ctx.fetched == ["http://h/api/v2/media/a"]
    assert page.doc.data["config"]["flags"] == [1, 2]  # chompjs read the JavaScript literal
    assert got.model_id == "2023_acme_roadster"
    assert got.specs.rows == [("MSRP", "$34,500"), ("Passenger Doors", "4")]
    assert got.links == [("http://h/v/b", "vehicle"), ("http://h/v/c", "vehicle")]
    assert got.ignored_links == ["http://h/elsewhere"]
    assert [(p.url, p.view_hint) for p in got.photos] == [("http://h/img/1.jpg", "exterior"),
                                                         ("http://h/img/2-big.jpg", "interior"),
                                                         ("http://h/img/3.jpg", "unknown")]
    assert got.problems == []


def test_bad_json_and_missing_paths_are_problems_not_tracebacks(tmp_path):
    a = adapter(tmp_path, SPA_ADAPTER)
    broken = SPA.replace('"vehicle": {', '"vehicle": {,,').replace("window.__APP_CONFIG__ = ", "var other = ")
    got = parse(a, "/v/a", broken)
    assert any(p.startswith("bad_json: next") for p in got.problems), got.problems
    assert any(p.startswith("data_missing: config") for p in got.problems), got.problems
    assert "no_model_year" not in got.problems  # no photos, no rows: nothing was left unnamed
    moved = SPA.replace('"vehicle"', '"car"')
    got = parse(a, "/v/a", moved)
    assert "json_path_missing: props.pageProps.vehicle.specs in next" in got.problems
    assert got.model_id is None and got.specs is None


def test_photo_sources_srcset_picture_rewrites_ignore_and_view_words(tmp_path):
    a = adapter(tmp_path, """
        [pages.p]
        match = '^/(?P<make>\\w+)/(?P<model>\\w+)/(?P<year>\\d{4})$'
        [pages.p.photos]
        image = "figure img"
        attrs = ["data-lazy", "srcset", "src"]
        view_from = ["class", "alt", "caption"]
        view_words = { interior = ["seats"] }
        ignore = ['placeholder']
        rewrite = [{ pattern = '/thumbs/(\\w+)_s\\.jpg$', replace = '/full/\\1.jpg' }]
        """)
    html = """
      <figure class="shot exterior"><img src="/thumbs/a_s.jpg"></figure>
      <figure class="shot"><img src="/placeholder.gif" data-lazy="/thumbs/b_s.jpg" alt="Front seats"></figure>
      <figure><picture><source type="image/avif" srcset="/x.avif 2000w"><source srcset="/c-640.jpg 640w, /c-1280.jpg 1280w">
        <img src="/c-320.jpg" srcset="/c-320.jpg 320w"></picture><figcaption>Interior, dashboard</figcaption></figure>
      <figure><img src="/placeholder.gif"></figure>
      <figure class="gallery-item"><img srcset="/d-1x.jpg 1x, /d-2x.jpg 2x"></figure>"""
    got = parse(a, "/acme/x/2023", html)
    assert [(p.url, p.view_hint) for p in got.photos] == [
        ("http://h/full/a.jpg", "exterior"), ("http://h/full/b.jpg", "interior"),
        ("http://h/c-1280.jpg", "interior"), ("http://h/d-2x.jpg", "unknown")]


def test_picture_never_prefers_a_known_smaller_source_over_an_img_src_of_unknown_width(tmp_path):
    a = adapter(tmp_path, """
        [pages.p]
        match = '^/(?P<make>\\w+)/(?P<model>\\w+)/(?P<year>\\d{4})$'
        [pages.p.photos]
        image = "picture img"
        """)
    html = """
      <picture><source type="image/webp" srcset="/a.webp?w=400 400w, /a.webp?w=800 800w">
        <img src="/a.jpg"></picture>
      <picture><source srcset="/b.jpg?w=400 400w, /b.jpg?w=1600 1600w"><img src="/b.jpg?w=400"></picture>
      <picture><source srcset="/c-640.jpg 640w"><img src="data:image/gif;base64,R0lGOD"></picture>"""
    got = parse(a, "/acme/x/2023", html).photos
    # the <img src> is the full photo unless a srcset states its width and a wider one
    assert [p.url for p in got] == ["http://h/a.jpg", "http://h/b.jpg?w=1600", "http://h/c-640.jpg"]
    assert [(c.url, c.width, c.origin) for c in got[0].candidates] == [
        ("http://h/a.webp?w=400", 400, "<source> srcset"), ("http://h/a.webp?w=800", 800, "<source> srcset"),
        ("http://h/a.jpg", None, "<img> src")]
    assert ("http://h/b.jpg?w=400", 400, "<img> src") in [(c.url, c.width, c.origin) for c in got[1].candidates]


def test_xpath_attr_join_and_links_from_attributes(tmp_path):
    a = adapter(tmp_path, """
        [pages.list]
        match = '^/list$'
        links = ["a.car", { css = "div[data-href]", attr = "data-href" }, { xpath = "//link[@rel='next']/@href" }]
        [pages.car]
        match = '^/car/\\d+$'
        [pages.car.model_year]
        year = { xpath = "//meta[@name='year']/@content" }
        make = { css = "span.make", re = 'Make: (?P<value>.+)' }
        model = { css = "span.word", join = " " }
        [pages.car.photos]
        image = "img"
        """)
    listing = """<head><link rel=next href="/list?page=2"></head><a class=car href="/car/1">1</a>
      <div data-href="/car/2"></div><a class=car href="/car/1#again">1</a>"""
    got = parse(a, "/list", listing)
    assert got.links == [("http://h/car/1", "car"), ("http://h/car/2", "car")]
    assert got.ignored_links == ["http://h/list?page=2"]
    car = """<meta name=year content="2021"><span class=make>Make: Acme Motors</span>
      <span class=word>Road</span><span class=word>Star</span><img src=/p.jpg>"""
    got = parse(a, "/car/1", car)
    assert got.model_id == "2021_acme_motors_road_star" and got.photos[0].url == "http://h/p.jpg"


def test_photos_without_a_model_year_are_a_problem(tmp_path):
    a = adapter(tmp_path, "[pages.p]\nmatch = '^/p$'\n[pages.p.photos]\nimage = 'img'\n")
    got = parse(a, "/p", "<h1>Some car</h1><img src=/a.jpg>")
    assert got.photos and got.model_id is None and got.problems == ["no_model_year"]


def test_python_hooks_for_each_extraction(tmp_path):
    a = adapter(tmp_path, "[pages.p]\nmatch = '^/p/(?P<n>\\d+)$'\nlinks = ['a']\n"
                          "[pages.p.specs]\nrow = 'li'\nkey = 'b'\nvalue = 'i'\n[pages.p.photos]\nimage = 'img'\n",
                hook="""
        def links(ctx, page, found):
            return found + ["/p/99", "/nowhere"]

        async def specs(ctx, page, rows):
            return rows + [("Seats", 5)]

        def model_year(ctx, page, identity):
            return {"year": 2020, "make": "Acme", "model": "Page " + page.groups["n"]}

        def photos(ctx, page, found):
            return [{"url": p.url.replace(".jpg", "-big.jpg"), "view_hint": "interior"} for p in found]
        """)
    pt, groups = a.classify("/p/7")
    html = "<a href=/p/8>8</a><ul><li><b>Doors</b><i>4</i></li></ul><img src=/a.jpg>"
    _, got = asyncio.run(extract_page(a, pt, groups, BASE + "/p/7", html, ctx=None))
    assert [u for u, _ in got.links] == ["http://h/p/8", "http://h/p/99"] and got.ignored_links == ["http://h/nowhere"]
    assert got.specs.rows == [("Doors", "4"), ("Seats", "5")] and got.specs.model_id == "2020_acme_page_7"
    assert [(p.url, p.view_hint) for p in got.photos] == [("http://h/a-big.jpg", "interior")]
    assert got.problems == []


@pytest.mark.parametrize("body, line, field", [
    ("[pages.p]\nmatch = '^/$'\nlinks = [{ css = 'a', xpth = 'x' }]\n", 3, "pages.p.links"),
    ("[pages.p]\nmatch = '^/$'\nlinks = [{ xpath = '//a[' }]\n", 3, "pages.p.links"),
    ("[pages.p]\nmatch = '^/$'\nlinks = [{ json = 'a[', from = 'd' }]\n", 3, "pages.p.links"),
    ("[pages.p]\nmatch = '^/$'\nlinks = [{ json = 'a', from = 'nope' }]\n", 3, "pages.p.links"),
    ("[pages.p]\nmatch = '^/$'\n[[pages.p.specs.pairs]]\nform = 'dl'\n[[pages.p.specs.pairs]]\nform = 'tabel'\n",
     6, "pages.p.specs.pairs.form"),
    ("[pages.p]\nmatch = '^/$'\n[[pages.p.specs.pairs]]\nform = 'dl'\n[[pages.p.specs.pairs]]\nform = 'table'\nrow = 0\n",
     7, "pages.p.specs.pairs.row"),
    ("[pages.p]\nmatch = '^/$'\n[[pages.p.specs.pairs]]\nform = 'json'\n", 3, "pages.p.specs.pairs"),
    ("[pages.p]\nmatch = '^/$'\n[pages.p.model_year]\ntitle = 'h1'\n", 4, "pages.p.model_year.title"),
    ("[pages.p]\nmatch = '^/$'\nactions = [{ click = 'b' }]\n", 3, "pages.p.actions"),
    ("[pages.p]\nmatch = '^/$'\nbrowser = true\nactions = [{ click = 'b', times = -1 }]\n", 4, "pages.p.actions"),
    ("[pages.p]\nmatch = '^/$'\nbrowser = true\nactions = [{ hover = 'b' }]\n", 4, "pages.p.actions"),
    ("[pages.p]\nmatch = '^/$'\n[pages.p.data.d]\nscript = 'script'\nurl = 'a'\n", 3, "pages.p.data.d"),
    ("[pages.p]\nmatch = '^/$'\n[pages.p.data.d]\ncaptured = 'api'\n", 4, "pages.p.data.d.captured"),
    ("[pages.p]\nmatch = '^/$'\n[pages.p.photos]\nimage = 'img'\nrewrite = [{ pattern = '(a', replace = 'b' }]\n",
     5, "pages.p.photos.rewrite"),
    ("[pages.p]\nmatch = '^/$'\n[pages.p.photos]\nimage = 'img'\nrewrite = [{ pattern = 'a', replace = '\\2' }]\n",
     5, "pages.p.photos.rewrite"),
    ("[pages.p]\nmatch = '^/$'\n[pages.p.photos]\nimage = 'img'\nview_from = ['colour']\n", 5, "pages.p.photos.view_from"),
    ("[pages.p]\nmatch = '^/$'\nlinks = [{ css = 'a', format = '/x/{id}' }]\n", 3, "pages.p.links"),
    ("[pages.p]\nmatch = '^/$'\ncontent = 'xml'\n", 3, "pages.p.content"),
    ("[pages.p]\nmatch = '^/$'\n[[pages.p.specs.pairs]]\nform = 'text'\n", 3, "pages.p.specs.pairs"),
    ("[pages.p]\nmatch = '^/$'\n[pages.p.data.d]\nurl = 'a'\nattr = 'x'\n", 5, "pages.p.data.d.attr"),
    ("[pages.p]\nmatch = '^/$'\n[pages.p.photos]\nimage = 'img'\nview_words = { front = ['x'] }\n", 5,
     "pages.p.photos.view_words"),
    ("[pages.p]\nmatch = '^/$'\n[[pages.p.photos]]\nimage = 'img'\n[[pages.p.photos]]\nattrs = ['src']\n", 5,
     "pages.p.photos"),
])
def test_every_new_field_is_validated_with_file_line_and_field(tmp_path, body, line, field):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    with pytest.raises(CarscopeError) as exc:
        load_adapter(str(p))
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}: {field}"), msg
    assert "\n" not in msg


def test_text_pairs_an_attribute_json_source_and_formatted_links(tmp_path):
    a = adapter(tmp_path, """
        [pages.car]
        match = '^/car/(?P<id>\\d+)$'
        links = [{ json = "related[*].id", from = "gallery", format = "/car/{}" },
                 { css = "a.model", attr = "href", re = 'm=(?P<slug>[a-z-]+)', format = "/models/{slug}" }]
        [pages.car.data.gallery]
        script = "div#gallery"
        attr = "data-gallery"
        [pages.car.model_year]
        title = { css = "title", re = '^(?P<make>\\w+) (?P<model>.+) \\((?P<year>\\d{4})\\)' }
        [[pages.car.specs.pairs]]
        form = "text"
        select = "ul.specs li"
        [pages.car.photos]
        json = "photos"
        from = "gallery"
        [pages.models]
        match = '^/models/'
        """)
    html = """<title>Acme Roadster GT (2021) | Cars</title>
      <ul class=specs><li>Engine: 2.0L I4</li><li>Seats ： 4</li><li>no separator here</li><li>: empty key</li></ul>
      <div id=gallery data-gallery='{"photos": ["/p/1.jpg", "/p/2.jpg"], "related": [{"id": 8}, {"id": 9}]}'></div>
      <a class=model href="/go?m=roadster-gt&x=1">all years</a>"""
    got = parse(a, "/car/7", html)
    assert got.model_id == "2021_acme_roadster_gt"
    assert got.specs.rows == [("Engine", "2.0L I4"), ("Seats", "4")]
    assert [p.url for p in got.photos] == ["http://h/p/1.jpg", "http://h/p/2.jpg"]
    assert got.links == [("http://h/car/8", "car"), ("http://h/car/9", "car"), ("http://h/models/roadster-gt", "models")]


def test_a_json_page_type_reads_an_api_answer_as_its_data(tmp_path):
    from tests.crawler.test_json_api_site import ADAPTER  # crawled end to end there

    a = adapter(tmp_path, ADAPTER)
    listing = json.dumps({"items": [{"id": 1}, {"id": 2}], "next": "/api/cars?page=2"})
    got = parse(a, "/api/cars?page=1", listing)
    assert [u for u, _ in got.links] == ["http://h/api/car/1", "http://h/api/car/2", "http://h/api/cars?page=2"]
    car = json.dumps({"year": 2022, "brand": {"name": "Acme"}, "name": "Roadster", "specs": {"Seats": 2, "Doors": 2},
                      "media": [{"type": "image", "href": "/m/1.jpg"}, {"type": "video", "href": "/m/v.mp4"}]})
    got = parse(a, "/api/car/1", car)
    assert got.model_id == "2022_acme_roadster" and got.specs.rows == [("Seats", "2"), ("Doors", "2")]
    assert [p.url for p in got.photos] == ["http://h/m/1.jpg"]
    got = parse(a, "/api/car/1", "{not json")
    assert got.problems and got.problems[0].startswith("bad_json: page")


def test_links_to_full_size_files_on_a_cdn(tmp_path):
    a = adapter(tmp_path, """
        [site]
        allowed_hosts = ["img.example-cdn.com"]
        [pages.photos]
        match = '^/(?P<make>\\w+)/(?P<model>\\w+)/(?P<year>\\d{4})/photos$'
        [pages.photos.photos]
        image = "a.gallery-item"
        attrs = ["href"]
        view_from = ["alt", "caption"]
        """)
    html = """<a class=gallery-item href="https://img.example-cdn.com/full/1.jpg"><img src=/t/1.jpg alt="Interior"></a>
      <figure><a class=gallery-item href="//img.example-cdn.com/full/2.jpg"><img src=/t/2.jpg></a>
      <figcaption>Exterior, front</figcaption></figure>"""
    got = parse(a, "/acme/x/2023/photos", html)
    assert a.allowed_hosts == ["img.example-cdn.com"]
    assert [(p.url, p.view_hint) for p in got.photos] == [("https://img.example-cdn.com/full/1.jpg", "interior"),
                                                         ("http://img.example-cdn.com/full/2.jpg", "exterior")]


def test_a_source_of_one_view_and_percent_encoded_url_groups(tmp_path):
    a = adapter(tmp_path, """
        [pages.car]
        match = '^/car/(?P<model>[^/?]+)\\?make=(?P<make>[^&]+)&year=(?P<year>\\d{4})$'
        [[pages.car.photos]]
        image = "#tab-interior img"
        view_hint = "interior"
        [[pages.car.photos]]
        image = "#tab-exterior img"
        view_from = ["attr:id"]
        """)
    html = """<div id=tab-interior><img src=/i1.jpg><img src=/i2.jpg alt="Exterior mirror" data-view=exterior></div>
      <div id=tab-exterior><img src=/e1.jpg></div>"""
    got = parse(a, "/car/Octavia%20Combi?make=%C5%A0koda+Auto&year=2019", html)
    assert got.model_id == "2019_skoda_auto_octavia_combi"
    assert (got.identity.make, got.identity.model) == ("Škoda Auto", "Octavia Combi")
    assert [(p.url, p.view_hint) for p in got.photos] == [("http://h/i1.jpg", "interior"),
                                                         ("http://h/i2.jpg", "exterior"),  # its own hint wins
                                                         ("http://h/e1.jpg", "exterior")]  # "tab-exterior"


def test_site_wide_link_rules_drop_session_parameters_and_rewrite(tmp_path):
    a = adapter(tmp_path, """
        [site]
        drop_params = ["sid", "sort"]
        rewrite_links = [{ pattern = ';jsessionid=\\w+', replace = '' }, { pattern = '\\?page=1$', replace = '' }]
        [pages.list]
        match = '^/cars(\\?page=\\d+)?$'
        links = ["a"]
        """)
    html = """<a href="/cars?page=2&sid=abc123">2</a><a href="/cars;jsessionid=F00D?page=2&sort=price">2 again</a>
      <a href="/cars?page=1">1</a><a href="/cars?sort=name">all</a>"""
    got = parse(a, "/cars?page=2", html)
    assert got.links == [("http://h/cars?page=2", "list"), ("http://h/cars", "list")]


def test_site_wide_link_rules_are_validated(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[site]\nrewrite_links = [{ pattern = '(', replace = '' }]\n[pages.p]\nmatch = '^/$'\n")
    with pytest.raises(CarscopeError, match=r"bad.toml:2: site.rewrite_links: invalid regular expression"):
        load_adapter(str(p))
