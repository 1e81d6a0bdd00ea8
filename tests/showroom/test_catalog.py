"""The catalog and the config parsers: deterministic, distinct bodies per make, messy specs, clean errors."""

import pytest

from carscope.common.errors import CarscopeError
from carscope.crawler.dataset import make_model_id
from carscope.showroom.catalog import BODY_TYPES, _build_catalog, build_catalog, model_id_for
from carscope.showroom.config import ShowroomConfig, parse_faults, parse_years
from carscope.showroom.testing import tiny_config

SPEC_KEYS = {"MSRP", "Body Style", "EPA Class", "Drivetrain", "Engine Type", "Displacement",
             "SAE Net Horsepower @ RPM", "Gas Mileage", "Length, Overall (in)", "Width, Max w/o mirrors (in)",
             "Height, Overall (in)", "Wheelbase (in)", "Front Wheel Size (in)", "Passenger Capacity",
             "Passenger Doors"}


def _fresh(cfg):
    _build_catalog.cache_clear()
    return build_catalog(cfg)


def test_same_seed_same_catalog_other_seed_other_catalog():
    a, b = _fresh(tiny_config()), _fresh(tiny_config())
    assert [m.model_id for m in a.model_years] == [m.model_id for m in b.model_years]
    assert [m.specs for m in a.model_years] == [m.specs for m in b.model_years]
    assert list(a.photos) == list(b.photos)
    c = _fresh(tiny_config(seed=1))
    assert [m.name for m in c.makes] != [m.name for m in a.makes]


def test_sizes_interiors_and_model_ids_follow_the_dataset_contract():
    cfg = ShowroomConfig(makes=3, models_per_make=5, years=(2020, 2023), photos=24)
    cat = build_catalog(cfg)
    assert len(cat.makes) == 3 and len(cat.models) == 15 and len(cat.model_years) == 60
    for my in cat.model_years:
        views = [p.view for p in my.photos if p.car]
        assert views.count("exterior") == 24 and views.count("interior") == 8  # a third
        assert len(my.photos) == 24 + 8 + cfg.others  # and the gallery's non-car images
        assert my.model_id == make_model_id(my.year, my.make.name, my.model.name)
    assert len({m.slug for m in cat.makes}) == 3
    assert len({(m.make.slug, m.slug) for m in cat.models}) == 15
    assert model_id_for(2023, "Acme Motors", "Road Star") == "2023_acme_motors_road_star"


def test_models_of_a_make_have_distinct_bodies_and_years_distinct_facelifts():
    cat = build_catalog(ShowroomConfig(makes=6, models_per_make=6, years=(2021, 2023), photos=3))
    for make in cat.makes:
        bodies = [m.body for m in cat.models_of[make.slug]]
        assert sorted(bodies) == sorted(BODY_TYPES)
    designs = {tuple(sorted((k, str(v)) for k, v in m.design.items())) for m in cat.makes}
    assert len(designs) == 6
    for model in cat.models:
        fls = [my.facelift for my in cat.model_years if my.model is model]
        for a, b in zip(fls, fls[1:], strict=False):  # consecutive years differ in every facelift element
            assert all(a[k] != b[k] for k in ("wheel", "lamp_variant", "grille_pattern"))


def test_specs_are_messy_real_catalog_strings():
    cat = build_catalog(ShowroomConfig(makes=6, models_per_make=4, photos=2))
    keys, values = set(), []
    for my in cat.model_years:
        d = dict(my.specs)
        assert d["MSRP"].lstrip().startswith("$")  # the price is always there
        keys |= set(d)
        values += list(d.values())
    assert keys == SPEC_KEYS
    assert "N/A" in values  # some values are N/A ...
    assert sum(len(my.specs) < len(SPEC_KEYS) - 1 for my in cat.model_years) > 0  # ... some are missing
    assert any(" @ " in v for v in values) and any("mpg City/" in v for v in values)
    assert any(v.endswith("Wheel Drive") for v in values) and any(" x " in v.lower() for v in values)
    layouts = [my.layout for my in cat.model_years]
    assert layouts.count("mixed") == round(0.2 * len(layouts))  # a fifth
    assert [my.layout for my in build_catalog(tiny_config()).model_years].count("mixed") == 2


def test_dup_and_corrupt_rates_follow_the_config():
    cat = build_catalog(ShowroomConfig(makes=4, photos=30, faults=parse_faults("corrupt=0.1,dup=0.2")))
    photos = list(cat.photos.values())
    assert 0.05 < sum(p.corrupt for p in photos) / len(photos) < 0.15
    assert 0.14 < sum(p.dup for p in photos) / len(photos) < 0.26
    none = build_catalog(ShowroomConfig(makes=1, photos=10, faults="dup=0"))
    assert not any(p.dup or p.corrupt for p in none.photos.values())


@pytest.mark.parametrize("spec, message", [
    ("5xx", "expected name=rate"), ("boom=0.1", "unknown fault"), ("5xx=x", "bad rate"),
    ("5xx=1.5", "outside [0, 1]"), ("429=-0.1", "outside"), ("5xx=0.6,429=0.6", "more than 1"),
    ("5xx=0.1,5xx=0.2", "twice"), ("slow=nan", "outside"),
])
def test_bad_fault_specs_are_one_line_errors(spec, message):
    with pytest.raises(CarscopeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_faults(spec)


def test_fault_spec_parses_and_round_trips():
    f = parse_faults(" 5xx=0.05, 429=0.03,slow=0.02,truncate=0.02,corrupt=0.02,redirect=0.05 ")
    assert (f.r5xx, f.r429, f.slow, f.truncate, f.corrupt, f.redirect, f.dup) == (0.05, 0.03, 0.02, 0.02, 0.02, 0.05, 0.1)
    assert parse_faults(f.spec()) == f
    assert parse_faults("") == parse_faults(None)


def test_years_parse_and_reject_backwards_ranges():
    assert parse_years("2022-2023") == (2022, 2023) and parse_years("2023") == (2023, 2023)
    for bad in ("2024-2020", "abc", "2022-", "1800-1801", "2000-2040"):
        with pytest.raises(CarscopeError):
            parse_years(bad)
    with pytest.raises(CarscopeError, match="--makes"):
        ShowroomConfig(makes=0)


def test_a_catalog_larger_than_the_model_name_space_is_built():
    """60 makes x 40 models is 2,400 models, more than the 600 word-and-suffix names: names are numbered in series
    past them, every one unique, instead of drawing forever (which the seed's 19,000 model-years needed)."""
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.config import ShowroomConfig

    cat = build_catalog(ShowroomConfig(makes=60, models_per_make=40, years=(2023, 2023), photos=1, others=0))
    assert len(cat.models) == 2400 and len({m.name for m in cat.models}) == 2400
    assert len({m.slug for m in cat.models}) == 2400 and len({my.model_id for my in cat.model_years}) == 2400
    assert any(m.name.split()[-1].isdigit() and int(m.name.split()[-1]) >= 2 for m in cat.models)
