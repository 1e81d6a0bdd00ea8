"""The layouts (`--layout classic|dl|jsonld|spa`): the same catalog in other markup, each page against the truth.

Every layout is served in-process; its pages are walked the way a crawler would and must show exactly what
`/__truth.json` says (specs as `layout_specs`, photos as full-size `url`s whose bytes match `sha256`).
"""

import hashlib
import http.client
import io
import json
import re
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlsplit

import lxml.html
import pytest
from PIL import Image
from protego import Protego

from carscope.common.errors import CarscopeError
from carscope.showroom import layout_dl, layout_jsonld
from carscope.showroom.catalog import build_catalog
from carscope.showroom.config import LAYOUTS, ShowroomConfig
from carscope.showroom.server import path_kind
from carscope.showroom.testing import fetch_truth, serve_in_thread, tiny_config
from carscope.showroom.truth import truth

# What the classic layout gave before the layouts existed (tiny_config; see _classic_pages_hash, _old_truth_hash),
# and before galleries held non-car images: the pages with `others=0`, the truth of the car photos with any `others`
CLASSIC_PAGES_SHA = "48377c2dc0f4ecd110a777cca73ea84498da3f8f210caffab7f024d03b992ef2"
CLASSIC_TRUTH_SHA = "dc11ca65e0b6214f43c93636f34e0c478deb3f0f64928fdec7b04119e525051f"  # /__truth.json?sha256=0
CATALOG_TRUTH_SHA = {  # ShowroomConfig(makes=6, models_per_make=6, years=(2019, 2023), photos=2, seed=s)
    0: "b05b0d6d124b03b8a9215b9d99838f52d930d7401b3e96eb6b715d326211e623",
    1: "9969c263f4cda07a4cc83064ebbd73b82be8bef84aef05ab19b0aabf54df3578",
    2: "26475d759e7519757e246ab89bcc313e7ec88ac44c88d109ac618bfb213cdd08",
    3: "519ab0c09bb2adf80dba3cebcbb014a190d48e0886b229e58154404521ae6161",
    4: "da3d387e7e7d0e56659b16ea2679bff2b1a1ff420d9b598ccef8b19f845deddb",
}
OLD_MY_FIELDS = ["model_id", "make", "model", "year", "body", "layout", "facelift", "overview_url",
                 "specifications_url", "photos_url", "gallery_url", "specs"]
OLD_PHOTO_FIELDS = ["id", "model_id", "view", "pose", "url", "url_320", "urls", "dup_urls", "corrupt", "sha256"]


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers, r.read()


def status_of(url):
    try:
        return fetch(url)[0]
    except urllib.error.HTTPError as exc:
        return exc.code


def page(url):
    return lxml.html.fromstring(fetch(url)[2])


def sha(data):
    return hashlib.sha256(data).hexdigest()


def photos_of(truth_doc, model_id):
    return [p for p in truth_doc["photos"] if p["model_id"] == model_id]


def check_full_size_bytes(base, truth_doc, limit=None):
    """Every full-size URL of the truth (the /cdn/ copies too) serves the bytes its sha256 names, at 640 px."""
    photos = truth_doc["photos"][:limit]
    for p in photos:
        for url in p["urls"]:
            assert sha(fetch(base + url)[2]) == p["sha256"], url
    assert Image.open(io.BytesIO(fetch(base + photos[0]["url"])[2])).size == (640, 480)


# ---------------------------------------------------------------- classic: unchanged

def _classic_pages_hash(base, truth_doc):
    paths = ["/", "/robots.txt", "/sitemap.xml", "/compare?ids=a,b&page=3", "/nope/x/1/overview", "/make/zzz"]
    for m in truth_doc["makes"]:
        paths += [m["url"], m["url"] + "?page=1"]
    for my in truth_doc["model_years"]:
        paths += [my["overview_url"], my["specifications_url"], my["photos_url"], my["gallery_url"]]
    h = hashlib.sha256()
    for p in paths:
        try:
            st, _, body = fetch(base + p)
        except urllib.error.HTTPError as exc:
            st, body = exc.code, exc.read()
        h.update(p.encode() + b"\0" + str(st).encode() + b"\0" + body.replace(base.encode(), b"BASE") + b"\0")
    return h.hexdigest()


def _old_truth_hash(t):
    """The truth's fields as they were before the layouts and the non-car images (the config without `layout`
    and `others`, the car photos only)."""
    d = {k: t[k] for k in ("config", "image_size", "makes", "models", "years")}
    d["config"] = {k: v for k, v in d["config"].items() if k not in ("layout", "others")}
    d["model_years"] = [{k: m[k] for k in OLD_MY_FIELDS} for m in t["model_years"]]
    d["photos"] = [{k: p[k] for k in OLD_PHOTO_FIELDS} for p in t["photos"] if p["car"]]
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def test_classic_pages_and_truth_are_byte_for_byte_what_they_were(showroom_site):
    base = showroom_site.base_url
    t = fetch_truth(base, sha256=False)
    assert t["site_layout"] == "classic" and t["config"]["layout"] == "classic"
    assert t["config"]["others"] == 2 and not all(p["car"] for p in t["photos"])
    assert _old_truth_hash(t) == CLASSIC_TRUTH_SHA  # the car photos are what they were, non-car images or not
    with serve_in_thread(tiny_config(others=0)) as plain:  # galleries of car photos only: the very same pages
        t0 = fetch_truth(plain, sha256=False)
        assert _classic_pages_hash(plain, t0) == CLASSIC_PAGES_SHA and _old_truth_hash(t0) == CLASSIC_TRUTH_SHA
    for seed, want in CATALOG_TRUTH_SHA.items():  # the spec strings and every RNG draw behind them
        for others in (0, 3):
            cfg = ShowroomConfig(makes=6, models_per_make=6, years=(2019, 2023), photos=2, seed=seed, others=others)
            assert _old_truth_hash(truth(build_catalog(cfg))) == want, (seed, others)


def test_classic_truth_has_the_new_fields_in_classic_terms(showroom_site):
    t = showroom_site.truth
    for my in t["model_years"]:
        assert my["pages"] == {"specs": my["specifications_url"], "photos": my["photos_url"]}
        assert my["layout_specs"] == [list(kv) for kv in my["specs"].items()]
        assert my["values"]["msrp_usd"] > 0
    for p in t["photos"]:
        assert p["thumb_url"] == p["url_320"] and p["url"].endswith("-640.jpg")


# ---------------------------------------------------------------- the structured values

def _number(s):
    return float(re.sub(r"[^0-9.]", "", s.split("@")[0].split("/")[0].replace(",", "")))


def test_values_are_the_classic_strings_as_numbers_and_none_where_the_page_has_none():
    cat = build_catalog(ShowroomConfig(makes=6, models_per_make=6, years=(2020, 2023), photos=1))
    fields = {"MSRP": "msrp_usd", "Length, Overall (in)": "length_in", "Width, Max w/o mirrors (in)": "width_in",
              "Height, Overall (in)": "height_in", "Wheelbase (in)": "wheelbase_in", "Passenger Capacity": "seats",
              "Passenger Doors": "doors", "Front Wheel Size (in)": "wheel_size_in", "Body Style": "body_style",
              "EPA Class": "epa_class", "Drivetrain": "drivetrain", "Engine Type": "engine"}
    nones = 0
    for my in cat.model_years:
        specs, v = dict(my.specs), my.values
        for key, f in fields.items():
            s = specs.get(key)
            if s is None or s == "N/A":
                assert v[f] is None, (key, s)
                nones += 1
            elif isinstance(v[f], str):
                assert v[f] == s
            else:
                want = int(re.match(r"\d+", s).group()) if f == "wheel_size_in" else _number(s)
                assert v[f] == want and (type(v[f]) is float) == (f.endswith("_in") and f != "wheel_size_in")
        hp = specs.get("SAE Net Horsepower @ RPM")
        assert v["horsepower"] == (None if hp in (None, "N/A") else int(re.match(r"\d+", hp).group()))
        assert v["horsepower_rpm"] == (None if hp in (None, "N/A") or "@" not in hp
                                       else int(re.sub(r"\D", "", hp.split("@")[1])))
        mpg = specs.get("Gas Mileage")
        if mpg in (None, "N/A"):
            assert v["mpg_city"] is None and v["mpg_highway"] is None
        else:
            assert [v["mpg_city"], v["mpg_highway"]] == [int(x) for x in re.findall(r"\d+", mpg)]
            assert ("MPGe" in mpg) == v["electric"]
        disp = specs.get("Displacement")
        assert v["displacement_l"] == (None if disp in (None, "N/A") else float(disp.split("L")[0]))
    assert nones > 0 and sum(my.values["electric"] for my in cat.model_years) > 0


# ---------------------------------------------------------------- dl

def _dl_config():
    # 12 model-years (two listing pages of 10), 9 + 3 photos each and their /cdn/ copies: the More button is used
    return tiny_config(layout="dl", models_per_make=3, photos=9)


@pytest.fixture(scope="module")
def dl_site():
    with serve_in_thread(_dl_config()) as base:
        yield base, fetch_truth(base)


def _pairs(doc):
    facts = [(dt.text_content(), dt.getnext().text_content()) for dt in doc.cssselect("dl.key-facts dt")]
    dims = [(tr.cssselect("th")[0].text_content(), tr.cssselect("td")[0].text_content())
            for tr in doc.cssselect("table.dimensions tr")]
    return [list(kv) for kv in facts + dims]


def _dl_figures(doc):
    return [(f.get("class"), f.cssselect("img")[0].get("src"), f.cssselect("figcaption")[0].text_content())
            for f in doc.cssselect("figure")]


def test_dl_root_redirects_and_the_pager_reaches_every_vehicle(dl_site):
    base, t = dl_site
    host, port = urlsplit(base).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/")
    r = conn.getresponse()
    assert r.status == 301 and r.getheader("Location") == "/vehicles"
    conn.close()
    links, url, n_pages = [], "/vehicles", 0
    while url:
        doc = page(base + url)
        n_pages += 1
        links += [(a.get("href"), a.text_content()) for a in doc.cssselect("ul.results li.result a.result-link")]
        nxt = doc.cssselect("nav.pager a.pager-next[rel=next]")
        url = nxt[0].get("href") if nxt else None
        assert url is None or re.fullmatch(r"/vehicles\?page=\d+", url)
    assert n_pages == 2 and len(links) == 12
    by_url = {my["pages"]["specs"]: my for my in t["model_years"]}
    assert {h for h, _ in links} == set(by_url) and len({h for h, _ in links}) == 12
    for href, text in links:
        my = by_url[href]
        assert re.fullmatch(r"/vehicle/\d{6}", href) and my["pages"]["photos"] == href
        assert text == f"{my['year']} {my['make']} {my['model']}"
    for bad in ("?page=0", "?page=3", "?page=two"):
        assert status_of(base + "/vehicles" + bad) == 404


def test_dl_vehicle_pages_show_the_truth_and_more_photos_gives_the_rest(dl_site):
    base, t = dl_site
    batches = 0
    for my in t["model_years"]:
        html = fetch(base + my["pages"]["specs"])[2].decode()
        doc = lxml.html.fromstring(html)
        assert doc.cssselect("h1.vehicle-title")[0].text_content() == f"{my['year']} · {my['make']} · {my['model']}"
        assert _pairs(doc) == my["layout_specs"]
        # the identity is written in the h1 only, and in no URL
        rest = html.replace(doc.cssselect("h1.vehicle-title")[0].text_content(), "")
        assert my["make"] not in rest and my["model"] not in rest
        urls = [e.get("href") or e.get("src") or e.get("data-next") for e in doc.xpath("//*[@href or @src or @data-next]")]
        for u in urls:
            assert my["make"].split()[0].lower() not in u.lower() and not re.search(rf"\b{my['year']}\b", u), u
        assert doc.cssselect("a.compare")[0].get("href").startswith("/compare?")
        photos = photos_of(t, my["model_id"])
        want = [(p["view"], p["thumb_url"]) for p in photos] + [(p["view"], p["dup_urls"][1]) for p in photos if p["dup_urls"]]
        figs = _dl_figures(doc)
        assert len(figs) == min(8, len(want)) and (len(want) > 8) == bool(doc.cssselect("button.more-photos"))
        button = doc.cssselect("button.more-photos")
        nxt = button[0].get("data-next") if button else None
        while nxt:
            assert re.fullmatch(r"/vehicle/\d{6}/more\?offset=\d+", nxt)
            status, headers, body = fetch(base + nxt)
            batch = lxml.html.fragment_fromstring(body.decode())
            assert batch.get("class") == "more-batch"
            figs += _dl_figures(batch)
            nxt = batch.get("data-next") or None
            assert headers.get("X-Next-Offset") == (re.search(r"\d+$", nxt).group() if nxt else None)
            batches += 1
        assert sorted(src for _, src, _ in figs) == sorted(src for _, src in want)
        view_of = dict((src, view) for view, src in want)
        for cls, src, caption in figs:
            assert re.fullmatch(r"/(cdn/)?media/[0-9a-f]{12}/thumb\.jpg", src)
            if my["layout"] == "tabs":
                assert cls == f"shot {view_of[src]}" and caption == view_of[src].capitalize()
            else:
                assert cls == "shot"
        if my["layout"] == "mixed":
            assert "exterior" not in html.lower() and "interior" not in html.lower()
        full = {p["id"]: p["urls"] for p in photos}
        for _, src, _ in figs:  # the full-size URL is the thumbnail's, rewritten
            pid = src.split("/")[-2]
            assert src.replace("/thumb.jpg", "/full.jpg") in full[pid]
    assert batches >= len(t["model_years"])
    assert {my["layout"] for my in t["model_years"]} == {"tabs", "mixed"}


def test_dl_photo_urls_serve_the_truth_bytes_and_unknown_things_are_404(dl_site):
    base, t = dl_site
    check_full_size_bytes(base, t)
    p = t["photos"][0]
    assert Image.open(io.BytesIO(fetch(base + p["thumb_url"])[2])).size == (320, 240)
    dup = next(p for p in t["photos"] if p["dup_urls"])
    assert dup["urls"][1] == dup["dup_urls"][0] == f"/cdn/media/{dup['id']}/full.jpg"
    assert fetch(base + dup["dup_urls"][1])[2] == fetch(base + dup["thumb_url"])[2]
    nodup = next(p for p in t["photos"] if not p["dup_urls"])
    vid = t["model_years"][0]["pages"]["specs"]
    for path in ["/vehicle/000000", vid + "/more?offset=999", vid + "/more?offset=x", vid + "/more?offset=-1",
                 f"/media/{nodup['id']}/huge.jpg", f"/cdn/media/{nodup['id']}/full.jpg", "/media/ffffffffffff/full.jpg",
                 f"/photos/{nodup['id']}-640.jpg", "/make/" + t["makes"][0]["slug"], t["model_years"][0]["overview_url"]]:
        assert status_of(base + path) == 404, path


def test_dl_values_follow_the_european_rules_with_seeded_variety():
    cat = build_catalog(ShowroomConfig(makes=6, models_per_make=6, years=(2021, 2023), photos=1, layout="dl"))
    seen = {"price": set(), "power": set(), "fuel": set(), "length": set(), "disp": set()}
    for my in cat.model_years:
        v = my.values
        facts, dims = layout_dl.spec_pairs(cat, my)
        d = dict(facts + dims)
        keys = [k for k, _ in facts]
        assert keys == [k for k in ("Price", "Body", "Drive", "Engine", "Displacement", "Power", "Fuel consumption",
                                    "Wheels", "Seats", "Doors") if k in d]
        eur = round(v["msrp_usd"] * 0.92 / 10) * 10
        price = d["Price"]
        shape = re.sub(r"\d", "9", price)
        assert shape in ("€ 99.999", "99\u202f999\u00a0€", "99\u00a0999\u00a0€", "€99,999.99", "EUR 99.999,99"), price
        assert int(re.sub(r"\D", "", re.sub(r"[.,]00$", "", price))) == eur
        seen["price"].add(shape)
        if v["horsepower"] is not None:
            kw, ps = round(v["horsepower"] * 0.7457), round(v["horsepower"] * 1.01387)
            assert d["Power"] in (f"{kw} kW ({ps} PS)", f"{kw} kW", f"{ps} PS")
            seen["power"].add(re.sub(r"\d+", "9", d["Power"]))
        else:
            assert "Power" not in d
        if v["mpg_city"] is None:
            assert "Fuel consumption" not in d
        elif v["electric"]:
            assert d["Fuel consumption"] == f"{v['mpg_city']} MPGe city / {v['mpg_highway']} MPGe highway"
        else:
            lp = (f"{round(235.215 / v['mpg_city'], 1):.1f} l/100 km (city) · "
                  f"{round(235.215 / v['mpg_highway'], 1):.1f} l/100 km (highway)")
            kml = (f"{round(v['mpg_city'] * 0.425144, 1):.1f} km/l (city) · "
                   f"{round(v['mpg_highway'] * 0.425144, 1):.1f} km/l (highway)")
            assert d["Fuel consumption"] in (lp, kml)
            seen["fuel"].add(d["Fuel consumption"] == lp)
        if v["displacement_l"] is not None:
            assert d["Displacement"] in (f"{round(v['displacement_l'] * 1000)} cm³", f"{v['displacement_l']:.1f} l")
            seen["disp"].add(d["Displacement"].endswith("cm³"))
        elif v["electric"] and "Displacement" in dict(my.specs):
            assert d["Displacement"] == "–"
        else:
            assert "Displacement" not in d
        for key, f in (("Length", "length_in"), ("Width", "width_in"), ("Height", "height_in"), ("Wheelbase", "wheelbase_in")):
            if v[f] is None:
                assert key not in d
                continue
            mm = round(v[f] * 25.4)
            assert d[key] in (f"{mm} mm", f"{mm / 10:.1f} cm")
            seen["length"].add(d[key].endswith("cm"))
        drive = {"All Wheel Drive": "All-wheel drive", "Four Wheel Drive": "Four-wheel drive",
                 "Front Wheel Drive": "Front-wheel drive", "Rear Wheel Drive": "Rear-wheel drive"}
        assert d.get("Drive") == (drive[v["drivetrain"]] if v["drivetrain"] else None)
        assert d.get("Seats") == (str(v["seats"]) if v["seats"] else None)
        assert d.get("Body") == v["body_style"] and d.get("Engine") == v["engine"]
    assert len(seen["price"]) == 5 and len(seen["power"]) == 3
    assert seen["fuel"] == {True, False} and seen["length"] == {True, False} and seen["disp"] == {True, False}
    # the same config gives the same pages
    again = build_catalog(ShowroomConfig(makes=6, models_per_make=6, years=(2021, 2023), photos=1, layout="dl", seed=0))
    assert layout_dl.layout_specs(again, again.model_years[5]) == layout_dl.layout_specs(cat, cat.model_years[5])
    assert len({layout_dl.vehicle_id(cat, my) for my in cat.model_years}) == len(cat.model_years)


# ---------------------------------------------------------------- jsonld

def _car_node(data):
    nodes = data.get("@graph", [data])
    cars = [n for n in nodes if n["@type"] in ("Car", "Vehicle", ["Product", "Car"])]
    assert len(cars) == 1
    return cars[0]


def _check_car(car, my, base, photos):
    v = my["values"]
    assert car["name"] == f"{my['year']} {my['make']} {my['model']}"
    assert car["brand"] == {"@type": "Brand", "name": my["make"]} and car["model"] == my["model"]
    assert car["vehicleModelDate"] == str(my["year"])
    assert car["offers"] == {"@type": "Offer", "price": v["msrp_usd"], "priceCurrency": "USD"}
    assert car.get("bodyType") == v["body_style"]
    assert car.get("vehicleSeatingCapacity") == v["seats"] and car.get("numberOfDoors") == v["doors"]
    if v["drivetrain"]:
        assert car["driveWheelConfiguration"] == "https://schema.org/" + v["drivetrain"].replace(" ", "") + "Configuration"
    engine = car.get("vehicleEngine", {})
    assert engine.get("name") == v["engine"]
    assert engine.get("engineDisplacement", {}).get("value") == v["displacement_l"]
    assert engine.get("enginePower", {}).get("value") == v["horsepower"]
    if v["mpg_city"] is None:
        assert "fuelEfficiency" not in car
    else:
        fe = {q["name"]: q["value"] for q in car["fuelEfficiency"]}
        assert fe == {"city": v["mpg_city"], "highway": v["mpg_highway"]}
    for prop in ("length", "width", "height", "wheelbase"):
        x = v[f"{prop}_in"]
        if x is None:
            assert prop not in car
        else:
            q = car[prop]
            assert (q["unitCode"], q["value"]) in (("INH", x), ("MMT", round(x * 25.4)))
    images = [urlsplit(urljoin(base, u)).path for u in car["image"]]
    assert sorted(images) == sorted(u for p in photos for u in p["urls"])
    return car


def test_jsonld_pages_carry_the_truth_as_schema_org_json_ld():
    with serve_in_thread(tiny_config(layout="jsonld")) as base:
        t = fetch_truth(base)
        brands = [a.get("href") for a in page(base + "/").cssselect("a.brand")]
        assert brands == [f"/brands/{m['slug']}" for m in t["makes"]]
        cars = set()
        for b in brands:
            for a in page(base + b).cssselect("a.year"):
                assert re.fullmatch(r"/car/[a-z0-9-]+/[a-z0-9-]+\?year=\d{4}", a.get("href"))
                cars.add(a.get("href"))
        by_url = {my["pages"]["specs"]: my for my in t["model_years"]}
        assert cars == set(by_url)
        for url, my in by_url.items():
            assert my["pages"]["photos"] == url and my["layout_specs"] is None
            html = fetch(base + url)[2].decode()
            doc = lxml.html.fromstring(html)
            blocks = doc.xpath('//script[@type="application/ld+json"]/text()')
            assert len(blocks) == 1
            photos = photos_of(t, my["model_id"])
            _check_car(_car_node(json.loads(blocks[0])), my, base, photos)
            assert doc.cssselect("h1")[0].text_content() == f"{my['year']} {my['make']} {my['model']}"
            assert not doc.cssselect("table, dl") and not doc.xpath("//script[@src]")
            slides = [(re.search(r"url\('([^']+)'\)", s.get("style")).group(1), s.cssselect("span.caption")[0].text_content())
                      for s in doc.cssselect("div.slide")]
            assert sorted(u for u, _ in slides) == sorted(u for p in photos for u in p["urls"])
            view = {u: p["view"] for p in photos for u in p["urls"]}
            if my["layout"] == "tabs":
                assert all(c == view[u].capitalize() for u, c in slides)
            else:
                assert all(re.fullmatch(r"Photo \d+", c) for _, c in slides)
                body = html.split("<body", 1)[1].lower()
                assert "exterior" not in body and "interior" not in body
            assert doc.cssselect("a.compare")[0].get("href").startswith("/compare?")
        check_full_size_bytes(base, t)
        for path in ["/brands/nope", "/car/x/y?year=2023", t["model_years"][0]["pages"]["specs"].split("?")[0],
                     t["model_years"][0]["pages"]["specs"].replace("year=", "year=19"), "/make/x"]:
            assert status_of(base + path) == 404, path


def test_jsonld_shapes_vary_by_model_year_from_the_seed():
    cat = build_catalog(ShowroomConfig(makes=6, models_per_make=6, years=(2021, 2023), photos=1, layout="jsonld"))
    types, graphs, units = set(), set(), set()
    for my in cat.model_years:
        data = layout_jsonld.json_ld(cat, my, "http://x")
        car = _car_node(data)
        types.add(json.dumps(car["@type"]))
        graphs.add("@graph" in data)
        units |= {car[p]["unitCode"] for p in ("length", "width", "height", "wheelbase") if p in car}
        assert data["@context"] == "https://schema.org" and car["name"].startswith(str(my.year))
    assert types == {'"Car"', '"Vehicle"', '["Product", "Car"]'} and graphs == {True, False} and units == {"INH", "MMT"}


# ---------------------------------------------------------------- spa

def _next_data(html):
    doc = lxml.html.fromstring(html)
    return json.loads(doc.xpath('//script[@id="__NEXT_DATA__"]/text()')[0])


def test_spa_shells_hold_the_data_as_json_and_the_media_api_lists_every_photo():
    with serve_in_thread(tiny_config(layout="spa")) as base:
        t = fetch_truth(base)
        vehicles = []
        html = fetch(base + "/")[2].decode()
        for m in _next_data(html)["props"]["pageProps"]["makes"]:
            mhtml = fetch(base + m["href"])[2].decode()
            for md in _next_data(mhtml)["props"]["pageProps"]["models"]:
                vehicles += [(y["href"], md["name"], y["year"]) for y in md["years"]]
            for h in (html, mhtml):
                doc = lxml.html.fromstring(h)
                assert not doc.xpath("//a") and doc.cssselect("div#root")[0].text_content() == ""
        by_url = {my["pages"]["specs"]: my for my in t["model_years"]}
        assert {u for u, _, _ in vehicles} == set(by_url)
        for url, model, year in vehicles:
            my = by_url[url]
            assert re.fullmatch(r"/v/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", url)
            assert (my["model"], my["year"], my["pages"]["photos"]) == (model, year, url)
            html = fetch(base + url)[2].decode()
            doc = lxml.html.fromstring(html)
            assert not doc.xpath("//a[@href]") and ".jpg" not in html and "/photos/" not in html
            data = _next_data(html)
            assert data["page"] == "/v/[id]"
            props = data["props"]["pageProps"]
            veh = props["vehicle"]
            assert (veh["make"], veh["model"], veh["year"], veh["id"]) == (my["make"], my["model"], my["year"], url[3:])
            assert [[s["label"], s["value"]] for s in veh["specs"]] == my["layout_specs"] == [list(kv) for kv in my["specs"].items()]
            assert props["compareHref"].startswith("/compare?")
            api = re.search(r"window\.__APP_CONFIG__ = \{mediaApi: '([^']+)', locale: 'en-US'\};", html).group(1)
            assert api == f"/api/v2/media/{veh['id']}"
            media = json.loads(fetch(base + api)[2])
            assert media["vehicle"] == veh["id"]
            photos = photos_of(t, my["model_id"])
            want = [(u, p["view"] if my["layout"] == "tabs" else None) for p in photos for u in p["urls"]]
            assert sorted((i["url"], i["kind"]) for i in media["items"]) == sorted(want, key=lambda x: x[0])
            thumbs = {p["id"]: p["thumb_url"] for p in photos}
            for i in media["items"]:
                assert i["thumb"] == i["url"].replace("-640", "-320")
                assert i["thumb"].replace("/cdn/", "/photos/") == thumbs[re.search(r"([0-9a-f]{12})-640", i["url"]).group(1)]
        check_full_size_bytes(base, t)
        assert status_of(base + "/v/nope") == 404 and status_of(base + "/m/nope") == 404
        assert status_of(base + "/api/v2/media/nope") == 404


# ---------------------------------------------------------------- shared: robots.txt, sitemap, trap, stats, config

def test_robots_txt_is_the_same_in_every_layout_and_the_sitemap_lists_its_pages():
    texts = set()
    for layout in LAYOUTS:
        with serve_in_thread(tiny_config(layout=layout, makes=1, photos=1)) as base:
            t = fetch_truth(base, sha256=False)
            robots = fetch(base + "/robots.txt")[2].decode()
            texts.add(robots.replace(base, "BASE"))
            rp = Protego.parse(robots)
            assert not rp.can_fetch(base + "/compare?ids=1", "carscope") and not rp.can_fetch(base + "/__stats", "x")
            assert list(rp.sitemaps) == [base + "/sitemap.xml"] and rp.crawl_delay("carscope") == 0
            locs = set(re.findall(r"<loc>([^<]+)</loc>", fetch(base + "/sitemap.xml")[2].decode()))
            pages = {base + my["pages"]["specs"].replace("&", "&amp;") for my in t["model_years"]}
            assert pages <= locs and (layout == "classic" or locs == pages)
            for my in t["model_years"]:
                assert rp.can_fetch(base + my["pages"]["specs"], "carscope")
    assert len(texts) == 1


@pytest.mark.parametrize("layout", ["dl", "jsonld", "spa"])
def test_each_layout_keeps_a_compare_trap_link(layout):
    with serve_in_thread(tiny_config(layout=layout, makes=1, models_per_make=1, years=(2023, 2023), photos=1)) as base:
        url = fetch_truth(base, sha256=False)["model_years"][0]["pages"]["specs"]
        html = fetch(base + url)[2].decode()
        link = re.search(r'(?:href="|"compareHref":")(/compare\?ids=[^"]+)"', html).group(1)
        doc = lxml.html.fromstring(fetch(base + link)[2])
        assert doc.cssselect("a.compare")[0].get("href").startswith("/compare?")


def test_path_kind_classifies_every_layouts_paths():
    kinds = {"/vehicles": "listing", "/vehicle/123456": "vehicle", "/vehicle/123456/more": "gallery_json",
             "/media/abc/full.jpg": "photo", "/cdn/media/abc/thumb.jpg": "cdn_photo", "/brands/acme": "make",
             "/car/acme/roadster": "vehicle", "/m/acme": "make", "/v/0000-1111": "vehicle",
             "/api/v2/media/0000-1111": "gallery_json", "/photos/abc-640.jpg": "photo", "/": "home",
             "/acme/roadster/2023/overview": "overview", "/static/dl.js": "static", "/compare": "compare"}
    assert {p: path_kind(p) for p in kinds} == kinds


def test_layout_is_validated_and_not_part_of_the_catalog_key():
    with pytest.raises(CarscopeError, match="--layout must be one of classic, dl, jsonld, spa"):
        ShowroomConfig(layout="grid")
    assert tiny_config(layout="spa").catalog_key() == tiny_config().catalog_key()
    a, b = build_catalog(tiny_config(layout="dl")), build_catalog(tiny_config())
    assert [my.specs for my in a.model_years] == [my.specs for my in b.model_years]
    assert [my.values for my in a.model_years] == [my.values for my in b.model_years]
