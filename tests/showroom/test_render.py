"""The photo renderer: deterministic bytes, the two sizes, corrupt photos, the cache."""

import hashlib
import io

import pytest
from PIL import Image

from carscope.showroom.catalog import build_catalog
from carscope.showroom.config import ShowroomConfig
from carscope.showroom.photo_store import PhotoStore
from carscope.showroom.render import render_dataset_photo, render_photo_bytes
from carscope.showroom.testing import iter_photos, tiny_config


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(tiny_config())


def test_same_seed_same_bytes_other_seed_other_bytes(catalog):
    p = next(iter(catalog.photos.values()))
    a, b = render_photo_bytes(catalog, p), render_photo_bytes(catalog, p)
    assert a == b
    other = build_catalog(tiny_config(seed=7))
    q = next(iter(other.photos.values()))
    assert render_photo_bytes(other, q)[640] != a[640]


def test_two_sizes_decode_and_the_small_one_is_the_big_one_downscaled(catalog):
    p = next(p for p in catalog.photos.values() if not p.corrupt)
    big = Image.open(io.BytesIO(render_dataset_photo(catalog, p, 640)))
    small = Image.open(io.BytesIO(render_dataset_photo(catalog, p.id, 320)))
    assert big.size == (640, 480) and small.size == (320, 240) and big.format == small.format == "JPEG"
    diff = sum(abs(a - b) for a, b in zip(big.convert("L").resize((32, 24)).getdata(),
                                          small.convert("L").resize((32, 24)).getdata(), strict=False)) / (32 * 24)
    assert diff < 6  # same picture


def test_views_look_different(showroom_site):
    """Interiors are dark cabins; exteriors stand on a road or floor (a sanity check of car photos' content)."""
    tops = {"interior": [], "exterior": []}
    store = showroom_site.server.state.store  # the photos the site already rendered for its truth
    for p in showroom_site.truth["photos"]:
        if not p["car"]:  # a logo or map in the interior tab is no cabin
            continue
        im = Image.open(io.BytesIO(store.get(p["id"], 320))).convert("L")
        tops[p["view"]].append(sum(im.crop((0, 120, 320, 240)).getdata()) / (320 * 120))
    # the lower half of an interior photo is dashboard/seats/console: darker on average than road/floor
    assert sum(tops["interior"]) / len(tops["interior"]) < sum(tops["exterior"]) / len(tops["exterior"])


def test_corrupt_photos_have_a_valid_header_but_do_not_decode():
    cat = build_catalog(ShowroomConfig(makes=1, models_per_make=1, years=(2023, 2023), photos=8,
                                       faults="corrupt=0.5"))
    corrupt = [p for p in cat.photos.values() if p.corrupt]
    assert corrupt
    for p in corrupt:
        both = render_photo_bytes(cat, p)
        for width in (640, 320):
            data = both[width]
            assert data[:3] == b"\xff\xd8\xff"
            im = Image.open(io.BytesIO(data))  # the header parses ...
            assert im.size == (width, width * 3 // 4)
            with pytest.raises(OSError):  # ... the pixels do not
                im.load()


def test_store_caches_in_memory_and_on_disk(catalog, tmp_path):
    ids = list(catalog.photos)[:3]
    store = PhotoStore(catalog, tmp_path)
    first = [store.get(i, 640) for i in ids]
    assert store.renders == 3
    assert [store.get(i, 320) for i in ids] and store.renders == 3  # the 320 came with the 640
    assert store.hits >= 3
    again = PhotoStore(catalog, tmp_path)  # a restart reads the disk cache
    assert [again.get(i, 640) for i in ids] == first and again.renders == 0 and again.disk_hits == 3
    assert (tmp_path / catalog.config.catalog_key()).is_dir()
    assert store.sha256(ids[0]) == hashlib.sha256(first[0]).hexdigest()


def test_store_lru_stays_within_its_byte_budget(catalog):
    store = PhotoStore(catalog, max_bytes=120_000)
    for pid in list(catalog.photos)[:10]:
        store.get(pid, 640)
    assert store._size <= 120_000
    assert len(store._lru) < 20


def test_iter_photos_gives_labelled_photos_without_a_server():
    cfg = ShowroomConfig(makes=1, models_per_make=2, years=(2023, 2023), photos=3, faults="corrupt=0.4")
    cat = build_catalog(cfg)
    items = list(iter_photos(cfg, 320))
    assert len(items) == sum(not p.corrupt and p.car for p in cat.photos.values())  # car photos only by default
    for info, data in items:
        p = cat.photos[info["id"]]
        assert info["model_id"] == p.model_id and info["view"] == p.view and not info["corrupt"]
        assert info["subject"] == "car"
        assert Image.open(io.BytesIO(data)).size == (320, 240)
    assert {i["view"] for i, _ in items} <= {"exterior", "interior"}
    assert len(list(iter_photos(cfg, views=("interior",), include_corrupt=True))) == 2


def test_every_design_body_and_pose_draws():
    """Every make design x body x viewpoint, and every interior, draws without error (a geometry regression net)."""
    import random

    from carscope.showroom.car import draw_car as _draw_car
    from carscope.showroom.catalog import EXTERIOR_VIEWS
    from carscope.showroom.interior import draw_interior as _interior

    cat = build_catalog(ShowroomConfig(makes=7, models_per_make=6, years=(2023, 2023), photos=1))
    assert {m.design["arches"] for m in cat.makes} == {"round", "flat", "clad"}
    for my in cat.model_years:
        for pose in EXTERIOR_VIEWS:
            layer = _draw_car(my, random.Random(0), pose, (200, 30, 30))
            assert layer.mode == "RGBA" and layer.getbbox() is not None
    for my in cat.model_years[::6]:
        for pose in ("dash", "seats", "console"):
            assert _interior(my, random.Random(1), pose).size == (640, 480)
