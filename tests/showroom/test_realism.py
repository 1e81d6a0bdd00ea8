"""The realism options (SITE.md "Realism options"): generations, twins, views, close-ups, conditions, --realistic.

Off by default, and then every photo, page and cache key is what it was before they existed (pinned below); on,
each does what the truth says it did.
"""

import hashlib
import io
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from carscope.commands.cli import main
from carscope.common.errors import CarscopeError
from carscope.showroom.catalog import BODY, build_catalog, seeded_rng
from carscope.showroom.closeups import exterior_closeup
from carscope.showroom.config import REALISM_DEFAULTS, REALISTIC, ShowroomConfig
from carscope.showroom.generations import ELEMENTS
from carscope.showroom.offline import write_dataset
from carscope.showroom.render import render_photo_bytes, render_photo_image
from carscope.showroom.shots import EXTERIOR_PARTS, INTERIOR_PARTS
from carscope.showroom.testing import iter_photos, tiny_config
from carscope.showroom.truth import truth
from carscope.showroom.views import draw_straight

# tiny_config(photos=3, seed=5) as the showroom drew it before the realism options (computed at the commit before)
PIN_CONFIG = dict(photos=3, seed=5)
PIN_BYTES = "5b261804520109abf5ac32b83e58dc03a7062cc1dc1339883dfb25cff49f7586"
PIN_TRUTH = "7f0e54e72d9d17bc7bbf98ef62b98305352cad03abccf0d87fd374ab7fef46cc"  # without the new keys
PIN_KEY = "8229746054e7b775"
POSES = {"front", "rear", "front34", "rear34", "side"}


def _bytes_hash(cat):
    h = hashlib.sha256()
    for pid, p in cat.photos.items():
        b = render_photo_bytes(cat, p)
        h.update(pid.encode() + b[640] + b[320])
    return h.hexdigest()


def _mean(img):
    return float(np.asarray(img, np.float32).mean())


def test_defaults_draw_and_say_what_they_did_before():
    cfg = tiny_config(**PIN_CONFIG)
    explicit = tiny_config(**PIN_CONFIG, **REALISM_DEFAULTS)
    assert explicit == cfg and explicit.catalog_key() == cfg.catalog_key() == PIN_KEY
    cat = build_catalog(cfg)
    assert _bytes_hash(cat) == PIN_BYTES
    t = truth(cat)
    assert not set(REALISM_DEFAULTS) & set(t["config"])  # the truth's config names them only when set
    for my, m in zip(cat.model_years, t["model_years"], strict=True):
        g = m.pop("generation")
        assert g == {"index": my.year - cfg.years[0], "name": f"G{my.year - cfg.years[0] + 1}", "phase": "early",
                     "years": [my.year, my.year], "look": f"{my.make.slug}/{my.model.slug}/{my.year}"}
        assert m.pop("twin_of") is None
    for p in t["photos"]:
        assert (p.pop("framing"), p.pop("part"), p.pop("conditions")) == ("full", None, [])
        assert p["pose"] in ("side", "front34", "rear34", "dash", "seats", "console") or not p["car"]
    assert hashlib.sha256(json.dumps(t, sort_keys=True).encode()).hexdigest() == PIN_TRUTH
    assert tiny_config(views="all").catalog_key() != PIN_KEY != tiny_config(generations=3).catalog_key()
    assert tiny_config(twins=0.5).to_dict()["twins"] == 0.5


def test_generations_share_looks_and_change_at_facelifts_and_new_generations():
    cfg = ShowroomConfig(makes=2, models_per_make=2, years=(2014, 2023), photos=1, others=0, generations=4)
    cat = build_catalog(cfg)
    firsts = set()
    for model in cat.models:
        mys = [my for my in cat.model_years if my.model.slug == model.slug]
        assert len({my.specs for my in mys}) == len(mys)  # specs still differ per year
        groups = {}
        for my in mys:
            g = my.generation
            assert g["years"][0] <= my.year <= g["years"][1] and g["name"] == f"G{g['index'] + 1}"
            groups.setdefault((g["index"], g["phase"]), []).append(my)
        for members in groups.values():  # one generation and phase: the very same look, one look id
            assert all(my.facelift is members[0].facelift for my in members)
            assert len({my.generation["look"] for my in members}) == 1
            assert all(my.shape is members[0].shape for my in members)
        keys = sorted(groups)
        for a, b in zip(keys, keys[1:], strict=False):
            la, lb = groups[a][0].facelift, groups[b][0].facelift
            changed = sum(la[k] != lb[k] for k in ELEMENTS)
            assert groups[a][0].generation["look"] != groups[b][0].generation["look"]
            if a[0] == b[0]:  # the facelift: two or three elements, the same proportions
                assert b[1] == "facelift" and changed in (2, 3)
            else:  # a new generation: every element, and the proportions a little
                assert changed == len(ELEMENTS)
                sa, sb = groups[a][0].shape, groups[b][0].shape
                assert sa["h_ratio"] != sb["h_ratio"] and abs(sa["h_ratio"] / sb["h_ratio"] - 1) < 0.06
        firsts.add(next(my.year for my in mys if my.generation["index"] == 1))
    assert len(firsts) > 1  # the models do not all change generation in the same year


def test_twins_take_their_donors_body_and_looks_under_their_own_badge():
    cat = build_catalog(ShowroomConfig(makes=3, models_per_make=2, years=(2021, 2023), photos=1, others=0,
                                       twins=0.5, generations=2))
    twins = [my for my in cat.model_years if my.twin_of]
    assert len({my.model.slug for my in twins}) == 3  # round(0.5 x 6)
    by_slug = {f"{m.make.slug}/{m.slug}": m for m in cat.models}
    for my in twins:
        donor = by_slug[my.twin_of]
        dmy = cat.by_path[(donor.make.slug, donor.slug, my.year)]
        assert donor.make.index < my.make.index and dmy.twin_of is None
        assert my.model.body == donor.body and my.model.proportions is donor.proportions
        assert my.facelift is dmy.facelift and my.shape is dmy.shape
        assert my.make.design != donor.make.design and my.make.design["badge"] != donor.make.design["badge"]
        assert my.values["body_style"] in (BODY[donor.body]["style"], "4dr Car", None)
    assert all(my.twin_of is None for my in cat.model_years if my.make.index == 0)
    t = truth(cat)
    assert {m["twin_of"] for m in t["model_years"]} - {None} == {my.twin_of for my in twins}


def test_views_all_draws_all_five_poses_and_straight_views_follow_the_width():
    cat = build_catalog(ShowroomConfig(makes=1, models_per_make=2, years=(2023, 2023), photos=30, others=0,
                                       views="all"))
    ext = [p for p in cat.photos.values() if p.view == "exterior"]
    assert {p.pose for p in ext} == POSES
    t = {p["id"]: p for p in truth(cat)["photos"]}
    assert all(t[p.id]["pose"] == p.pose for p in ext)
    front = next(p for p in ext if p.pose == "front")
    rear = next(p for p in ext if p.pose == "rear" and p.model_id == front.model_id)
    a, b = (np.asarray(render_photo_image(cat, p)[0]) for p in (front, rear))
    assert a.shape == (480, 640, 3) and np.abs(a.astype(int) - b).mean() > 5
    my = cat.photo_model_year(front)
    narrow, wide = (draw_straight(replace(my, proportions=dict(my.shape, width_in=w)), "front", (200, 20, 20))
                    for w in (68.0, 80.0))
    assert wide.width > narrow.width * 1.1 and wide.height == narrow.height


def test_closeups_are_car_photos_of_the_model_years_own_parts():
    cfg = tiny_config(photos=6, closeups=1.0, views="all")
    cat = build_catalog(cfg)
    cars = [p for p in cat.photos.values() if p.car]
    assert all(p.framing == "closeup" for p in cars)
    assert {p.part for p in cars if p.view == "exterior"} <= set(EXTERIOR_PARTS)
    assert {p.part for p in cars if p.view == "interior"} <= set(INTERIOR_PARTS)
    t = [p for p in truth(cat)["photos"] if p["framing"] == "closeup"]
    assert len(t) == len(cars) and all(p["car"] and p["subject"] == "car" and p["part"] for p in t)
    assert not any(p.framing == "closeup" for p in cat.photos.values() if not p.car)
    info, _ = next(iter_photos(cfg, 320))  # the labels a benchmark reads carry it too
    assert info["framing"] == "closeup" and info["part"] == cat.photos[info["id"]].part
    for p in (next(p for p in cars if p.view == "exterior"), next(p for p in cars if p.view == "interior")):
        close = np.asarray(render_photo_image(cat, p)[0], np.float32)
        full = np.asarray(render_photo_image(cat, replace(p, framing="full", part=None))[0], np.float32)
        assert np.abs(close - full).mean() > 10
    # a wheel close-up shows the model-year's own wheel: another wheel style, another picture
    p = next(p for p in cars if p.part == "wheel")
    my = cat.photo_model_year(p)
    other = next(w for w in ("disc", "spoke5") if w != my.facelift["wheel"])

    def crop(m):
        r = seeded_rng(cfg.seed, "photo", p.id)
        return np.asarray(exterior_closeup(cat, m, p, r, (200, 20, 20), Image.new("RGB", (640, 480))), np.float32)
    assert np.abs(crop(my) - crop(replace(my, facelift=dict(my.facelift, wheel=other)))).mean() > 3


def test_conditions_are_recorded_per_photo_and_applied():
    cfg = ShowroomConfig(makes=2, models_per_make=2, years=(2023, 2023), photos=24, others=0, conditions=1.0)
    cat = build_catalog(cfg)
    for p in cat.photos.values():
        if p.view == "interior":
            assert p.framing == "full" and p.conditions == ()
        else:
            assert p.framing in ("cut", "small") or p.conditions
            assert p.framing in ("full", "cut", "small") and 1 <= (p.framing != "full") + len(p.conditions) <= 2
    # drawn per photo: the first make's photos are the same in a smaller catalog
    small = build_catalog(cfg.with_(makes=1))
    assert all(small.photos[pid] == p for pid, p in cat.photos.items() if pid in small.photos)
    seen = {c for p in cat.photos.values() for c in p.conditions} | {p.framing for p in cat.photos.values()}
    assert seen >= {"cut", "small", "clutter", "night", "rain", "blur", "jpeg"}

    def without(p):
        return replace(p, framing="full", conditions=())
    night = next(p for p in cat.photos.values() if p.conditions == ("night",))
    assert _mean(render_photo_image(cat, night)[0]) < 0.6 * _mean(render_photo_image(cat, without(night))[0])
    jpeg = next(p for p in cat.photos.values() if p.conditions == ("jpeg",))
    assert render_photo_image(cat, jpeg)[1] <= 20
    assert len(render_photo_bytes(cat, jpeg)[640]) < 0.6 * len(render_photo_bytes(cat, without(jpeg))[640])
    blur = next(p for p in cat.photos.values() if p.conditions == ("blur",))
    sharp = np.abs(np.diff(np.asarray(render_photo_image(cat, without(blur))[0].convert("L"), np.float32))).mean()
    soft = np.abs(np.diff(np.asarray(render_photo_image(cat, blur)[0].convert("L"), np.float32))).mean()
    assert soft < 0.6 * sharp


def test_cli_flags_reach_the_truth_and_the_preset_yields_to_explicit_flags(tmp_path):
    out = tmp_path / "truth.json"
    assert main(["showroom", "--makes", "2", "--models-per-make", "2", "--years", "2022-2023", "--photos", "3",
                 "--others", "0", "--realistic", "--views", "classic", "--closeups", "0.5",
                 "--dump-truth", str(out)]) == 0
    t = json.loads(out.read_text())
    assert {k: t["config"].get(k, v) for k, v in REALISM_DEFAULTS.items()} == dict(REALISTIC, views="classic",
                                                                                    closeups=0.5)
    assert "views" not in t["config"]  # at its default: as if never given
    assert any(m["twin_of"] for m in t["model_years"])
    assert all(m["generation"]["look"].endswith(("-early", "-facelift")) for m in t["model_years"])
    assert {p["pose"] for p in t["photos"]} <= {"side", "front34", "rear34", "dash", "seats", "console"}
    assert any(p["framing"] == "closeup" and p["part"] for p in t["photos"])


@pytest.mark.parametrize("argv, message", [
    (["--generations", "31"], "--generations must be an integer in 0..30"),
    (["--twins", "1.5"], "--twins must be a number in [0, 1]"),
    (["--views", "grid"], "--views must be one of classic, all"),
    (["--closeups", "-0.1"], "--closeups must be a number in [0, 1]"),
    (["--conditions", "nan"], "--conditions must be a number in [0, 1]"),
])
def test_bad_realism_values_are_one_line_exit_2(argv, message, capsys):
    assert main(["showroom", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    with pytest.raises(CarscopeError, match="must be"):
        ShowroomConfig(**{argv[0][2:]: argv[1] if argv[1] == "grid" else float(argv[1])})


def test_write_dataset_takes_the_preset_and_maps_back_to_the_truth(tmp_path):
    root = write_dataset(tmp_path / "ds", makes=2, models_per_make=1, years=(2023, 2023), photos=4, others=0,
                         width=320, **REALISTIC)
    images = pd.read_parquet(root / "images.parquet")
    cat = build_catalog(ShowroomConfig(makes=2, models_per_make=1, years=(2023, 2023), photos=4, others=0,
                                       **REALISTIC))
    photos = [cat.photos[u.removeprefix("showroom:")] for u in images["source_url"]]
    assert len(photos) == len(images) > 0 and all(p.model_id == m for p, m in zip(photos, images["model_id"],
                                                                                  strict=True))
    assert Image.open(io.BytesIO((root / images["path"][0]).read_bytes())).size == (320, 240)
