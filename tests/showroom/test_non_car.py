"""The galleries' non-car images (`others`, catalog.NON_CAR_SUBJECTS): in the truth and every layout's gallery,
drawn deterministically at the photos' sizes, each kind telling itself apart from car photos, and car photos
exactly what they are without them."""

import hashlib
import io
import json
import re
import urllib.request
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from carscope.showroom import layout_dl
from carscope.showroom.catalog import NON_CAR_SUBJECTS, build_catalog
from carscope.showroom.config import LAYOUTS, ShowroomConfig
from carscope.showroom.offline import write_dataset
from carscope.showroom.render import render_photo_bytes
from carscope.showroom.testing import fetch_truth, iter_photos, serve_in_thread, tiny_config
from carscope.showroom.truth import truth

# a catalog where every model-year holds every kind; enough car photos to measure how rarely they look like one
KINDS_CONFIG = ShowroomConfig(makes=3, models_per_make=2, years=(2022, 2023), photos=6, others=len(NON_CAR_SUBJECTS),
                              seed=4)


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


# ---------------------------------------------------------------- catalog and truth

def test_truth_lists_the_non_car_images_of_every_model_year():
    cfg = tiny_config(others=3)
    t = truth(build_catalog(cfg))
    by_my = Counter(p["model_id"] for p in t["photos"] if not p["car"])
    assert by_my == {my["model_id"]: 3 for my in t["model_years"]}
    for p in t["photos"]:
        assert p["car"] == (p["subject"] == "car")
        if not p["car"]:
            assert p["subject"] in NON_CAR_SUBJECTS and p["pose"] == p["subject"]
            assert p["view"] in ("exterior", "interior") and p["url"] == f"/photos/{p['id']}-640.jpg"
    ids = [p["id"] for p in t["photos"]]
    assert len(set(ids)) == len(ids)  # no clash with the car photos' ids
    places = set()
    for my in t["model_years"]:  # three distinct kinds a model-year, at seeded places among its photos
        mine = [p for p in t["photos"] if p["model_id"] == my["model_id"]]
        assert len({p["subject"] for p in mine if not p["car"]}) == 3
        places.add(tuple(i for i, p in enumerate(mine) if not p["car"]))
    n = len(mine)
    assert len(places) > 1 and places != {(n - 3, n - 2, n - 1)}  # not always at the end


def test_kinds_views_and_flags_over_a_larger_catalog():
    cat = build_catalog(ShowroomConfig(makes=6, models_per_make=4, photos=2, others=4,
                                       faults="corrupt=0.2,dup=0.3"))
    others = [p for p in cat.photos.values() if not p.car]
    assert len(others) == 4 * len(cat.model_years)
    assert set(Counter(p.subject for p in others)) == set(NON_CAR_SUBJECTS)
    assert 0.15 < sum(p.view == "interior" for p in others) / len(others) < 0.35  # about a quarter
    assert 0.05 < sum(p.corrupt for p in others) / len(others) < 0.35  # faults apply to them as to photos
    assert 0.15 < sum(p.dup for p in others) / len(others) < 0.45
    assert ShowroomConfig(others=0).to_dict()["others"] == 0 and ShowroomConfig().others == 2


@pytest.mark.parametrize("bad", [-1, 21])
def test_others_is_validated_and_keys_the_cache(bad):
    from carscope.common.errors import CarscopeError

    with pytest.raises(CarscopeError, match="--others must be in 0..20"):
        ShowroomConfig(others=bad)
    assert tiny_config(others=0).catalog_key() != tiny_config().catalog_key() != tiny_config(others=3).catalog_key()


def test_others_zero_gives_none_and_leaves_the_car_photos_as_they_are():
    with_others, none = build_catalog(tiny_config(others=2)), build_catalog(tiny_config(others=0))
    assert all(p.car for p in none.photos.values())
    cars = [p for p in with_others.photos.values() if p.car]
    assert [p.id for p in cars] == list(none.photos)  # same ids, same order
    assert [(p.view, p.pose, p.dup, p.corrupt) for p in cars] == [
        (p.view, p.pose, p.dup, p.corrupt) for p in none.photos.values()]
    for a, b in zip(with_others.model_years, none.model_years, strict=True):  # page order too, mixed galleries included
        assert [p.id for p, cdn in with_others.gallery_entries(a) if p.car] == [p.id for p, _ in none.gallery_entries(b)]
        assert len(with_others.gallery_entries(a)) > len(none.gallery_entries(b))
    assert {m.layout for m in none.model_years} == {"tabs", "mixed"}
    for p in cars[::3]:  # the same bytes
        assert render_photo_bytes(with_others, p) == render_photo_bytes(none, none.photos[p.id])


# ---------------------------------------------------------------- every layout's gallery

def _gallery_urls(base, layout, my):
    """The full-size photo URLs one model-year's page shows, as a crawler reads them (no JavaScript needed)."""
    if layout == "classic":
        g = json.loads(_get(base + my["gallery_url"]))
        return [e["src"] for e in g["photos"]], [e["view"] for e in g["photos"]]
    if layout == "dl":  # the page's figures, then the "More photos" batches
        html = _get(base + my["pages"]["photos"]).decode()
        total = int(re.search(r'data-total="(\d+)"', html).group(1))
        urls = []
        for off in range(layout_dl.PHOTOS_PER_BATCH, total + layout_dl.PHOTOS_PER_BATCH, layout_dl.PHOTOS_PER_BATCH):
            urls += [u.replace("thumb.jpg", "full.jpg") for u in re.findall(r'<img src="([^"]+)"', html)]
            if off < total:
                html = _get(f"{base}{my['pages']['photos']}/more?offset={off}").decode()
        return urls, None
    if layout == "jsonld":
        html = _get(base + my["pages"]["photos"]).decode()
        return re.findall(r"url\('([^']+)'\)", html), None
    uuid = my["pages"]["photos"].rsplit("/", 1)[1]
    items = json.loads(_get(f"{base}/api/v2/media/{uuid}"))["items"]
    return [i["url"] for i in items], [i["kind"] for i in items]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_shows_the_non_car_images_in_its_gallery(layout):
    with serve_in_thread(tiny_config(layout=layout, others=3)) as base:
        t = fetch_truth(base, sha256=False)
        seen = 0
        for my in t["model_years"]:
            want = [p for p in t["photos"] if p["model_id"] == my["model_id"]]
            urls, views = _gallery_urls(base, layout, my)
            assert sorted(urls) == sorted(u for p in want for u in p["urls"]), my["model_id"]
            for p in want:
                if not p["car"]:
                    seen += 1
                    assert p["url"] in urls
                    if views is not None:  # the tab it is shown in; no view in mixed galleries
                        view = views[urls.index(p["url"])]
                        assert view == (p["view"] if my["layout"] == "tabs" else None)
        assert seen == 3 * len(t["model_years"])
        other = next(p for p in t["photos"] if not p["car"])
        data = _get(base + other["url"])
        assert Image.open(io.BytesIO(data)).size == (640, 480)
        assert hashlib.sha256(data).hexdigest() == fetch_truth(base)["photos"][t["photos"].index(other)]["sha256"]


def test_offline_dataset_stores_them_as_a_crawl_would(tmp_path):
    import pandas as pd

    cfg = tiny_config(others=2, years=(2023, 2023), faults="dup=0")
    root = write_dataset(tmp_path / "ds", cfg)
    images = pd.read_parquet(root / "images.parquet")
    cat = build_catalog(cfg)
    others = {p.id: p for p in cat.photos.values() if not p.car}
    rows = images[images["source_url"].isin([f"showroom:{i}" for i in others])]
    assert len(rows) == len(others) == 2 * len(cat.model_years)
    for _, row in rows.iterrows():
        p = others[row["source_url"].removeprefix("showroom:")]
        mixed = cat.by_model_id[p.model_id].layout == "mixed"
        assert row["model_id"] == p.model_id and row["view_hint"] == ("unknown" if mixed else p.view)
    assert len(images) == len(cat.photos)
    assert len(list(iter_photos(cfg))) == len(cat.photos) - len(others)  # iter_photos: car photos by default
    assert {i["subject"] for i, _ in iter_photos(cfg, subjects=NON_CAR_SUBJECTS)} <= set(NON_CAR_SUBJECTS)


# ---------------------------------------------------------------- the images

def test_rendering_is_deterministic_and_gives_jpegs_of_the_photo_sizes():
    cat = build_catalog(KINDS_CONFIG)
    again = build_catalog(KINDS_CONFIG.with_(cache_mb=1))  # another catalog object: nothing shared but the config
    done = set()
    for p in cat.photos.values():
        if p.car or p.subject in done or p.corrupt:
            continue
        done.add(p.subject)
        both = render_photo_bytes(cat, p)
        assert both == render_photo_bytes(again, again.photos[p.id])
        for w, h in ((640, 480), (320, 240)):
            im = Image.open(io.BytesIO(both[w]))
            assert im.format == "JPEG" and im.size == (w, h) and im.mode == "RGB"
            im.load()
    assert done == set(NON_CAR_SUBJECTS)
    other = build_catalog(KINDS_CONFIG.with_(seed=5))  # another seed, other pictures
    p = next(p for p in cat.photos.values() if not p.car)
    q = next(q for q in other.photos.values() if q.subject == p.subject)
    assert render_photo_bytes(other, q)[640] != render_photo_bytes(cat, p)[640]


def test_corrupt_non_car_images_are_broken_like_photos():
    cat = build_catalog(tiny_config(faults="corrupt=0.5", others=4))
    broken = [p for p in cat.photos.values() if not p.car and p.corrupt]
    assert broken
    for p in broken[:3]:
        data = render_photo_bytes(cat, p)[640]
        im = Image.open(io.BytesIO(data))
        assert im.size == (640, 480)
        with pytest.raises(OSError):
            im.load()


def _edges(g: np.ndarray, over: float) -> np.ndarray:
    return (np.abs(np.diff(g, axis=1))[:-1, :] + np.abs(np.diff(g, axis=0))[:, :-1]) > over


def _looks_like(kind: str, a: np.ndarray) -> bool:
    """A cheap statistic of what each kind is drawn to be, that car photos (a car on a background, a cabin)
    almost never show."""
    h, w = a.shape[:2]
    g = a.mean(2)
    mx, mn = a.max(2), a.min(2)
    if kind == "logo":  # a plain ground: one colour covers most of the frame
        q = (a.astype(np.int32) // 16) @ np.array([256, 16, 1])
        return np.bincount(q.ravel()).max() / q.size > 0.6
    if kind == "banner":  # the page (or the gradient) is the same above and below: no sky over ground
        top, bottom = np.median(a[: h // 10].reshape(-1, 3), 0), np.median(a[-h // 10:].reshape(-1, 3), 0)
        return np.abs(top - bottom).sum() < 30
    if kind == "brochure":  # columns of text lines: edges everywhere
        return _edges(g, 40).mean() > 0.13
    if kind == "map":  # a light map: nothing dark anywhere
        return g.mean() > 205 and (mx < 45).mean() < 0.005
    if kind == "ad":  # a saturated background
        return ((mx - mn) > 100).mean() > 0.35
    if kind == "badge":  # paint fills the frame's sides: no edge there (a car photo always has its background)
        e, bw = _edges(g, 25), int(w * 0.06)
        return np.r_[e[:, :bw].ravel(), e[:, -bw:].ravel()].mean() < 0.0003
    if kind == "wheel":  # a ring of tyre around the middle of the frame
        yy, xx = np.mgrid[0:h, 0:w]
        r = np.hypot(yy - h / 2, xx - w / 2)
        return (g[(r > h * 0.36) & (r < h * 0.46)] < 45).mean() > 0.7
    if kind == "portrait":  # few edges, a face-toned middle, a vignetted backdrop
        c = a[int(h * .15):int(h * .6), int(w * .3):int(w * .7)]
        rg, gb = c[..., 0] - c[..., 1], c[..., 1] - c[..., 2]
        face = ((rg >= 15) & (rg <= 70) & (gb >= 8) & (gb <= 50) & (c[..., 0] > 60)).mean()
        top = g[: h // 10]
        corners = np.r_[top[:, : int(w * .08)].ravel(), top[:, -int(w * .08):].ravel()].mean()
        return _edges(g, 40).mean() < 0.03 and face > 0.1 and corners < 0.85 * max(1.0, top[:, int(w * .4):int(w * .6)].mean())
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def kinds_images():
    """Every image of KINDS_CONFIG as served (the 320 JPEG, decoded), by subject."""
    cat = build_catalog(KINDS_CONFIG)
    out: dict[str, list] = {}
    for p in cat.photos.values():
        data = render_photo_bytes(cat, p)[320]
        out.setdefault(p.subject, []).append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32))
    return out


@pytest.mark.parametrize("kind", NON_CAR_SUBJECTS)
def test_each_kind_looks_like_itself_and_car_photos_do_not(kind, kinds_images):
    mine = kinds_images[kind]
    assert len(mine) == len(build_catalog(KINDS_CONFIG).model_years)
    assert all(_looks_like(kind, a) for a in mine), kind
    cars = kinds_images["car"]
    assert sum(_looks_like(kind, a) for a in cars) <= 0.02 * len(cars), kind  # so a kind drawn as a car fails


def test_a_non_car_image_costs_about_what_a_car_photo_costs():
    """Render speed matters (the showroom benchmark): timed one by one, interleaved, compared by the median."""
    import statistics
    import time

    cat = build_catalog(KINDS_CONFIG)
    cars = [p for p in cat.photos.values() if p.car][:24]
    others = [p for p in cat.photos.values() if not p.car][:24]
    took: dict[bool, list[float]] = {True: [], False: []}
    for pair in zip(cars, others, strict=True):
        for p in pair:
            t0 = time.perf_counter()
            render_photo_bytes(cat, p)
            took[p.car].append(time.perf_counter() - t0)
    assert statistics.median(took[False]) < 1.5 * statistics.median(took[True])
