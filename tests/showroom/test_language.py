"""`carscope showroom --language de|fr`: the classic spec pages in German or French, the same catalog and values."""

from __future__ import annotations

import argparse
import re

import pytest

from carscope.common.errors import CarscopeError
from carscope.showroom import pages
from carscope.showroom.catalog import build_catalog
from carscope.showroom.cli import add_parser, config_from_args
from carscope.showroom.language import number, price_eur, spec_pairs
from carscope.showroom.testing import ShowroomServer, fetch_truth, tiny_config
from carscope.showroom.truth import truth


def test_the_default_stays_english_and_out_of_the_truths_config():
    cfg = tiny_config()
    assert cfg.language == "en" and "language" not in cfg.to_dict()
    assert tiny_config(language="de").to_dict()["language"] == "de"
    my = build_catalog(cfg).model_years[0]
    assert pages.specifications(my) == pages.specifications(my, "en") and "Starting MSRP" in pages.specifications(my)


def test_the_values_and_catalog_are_the_same_in_every_language():
    en, de = truth(build_catalog(tiny_config())), truth(build_catalog(tiny_config(language="de")))
    assert [m["values"] for m in en["model_years"]] == [m["values"] for m in de["model_years"]]
    assert [p["sha256"] for p in en["photos"]] == [p["sha256"] for p in de["photos"]]
    assert de["config"]["language"] == "de"


@pytest.mark.parametrize("language, keys, decimal", [
    ("de", {"Preis ab", "Karosserie", "Leistung", "Hubraum", "Länge", "Verbrauch innerorts"}, "Preis ab"),
    ("fr", {"Prix", "Carrosserie", "Puissance", "Cylindrée", "Longueur", "Consommation urbaine"}, "Prix à partir de"),
])
def test_the_spec_page_writes_that_languages_keys_words_and_numbers(language, keys, decimal):
    cat = build_catalog(tiny_config(language=language))
    seen = set()
    for my in cat.model_years:
        html = pages.specifications(my, language)
        got = re.findall(r'<div class="specs-set-item"><span>(.*?)</span><span>(.*?)</span></div>', html)
        want = [tuple(p) for p in spec_pairs(my, language)]
        assert [(k, v) for k, v in got] == [(k, v.replace("&amp;", "&")) for k, v in want]
        assert f'{decimal} <span class="msrp">{number(price_eur(my.values["msrp_usd"]), 0, language)}\u00a0€</span>' \
            in html
        seen |= {k for k, _ in got}
        assert "EPA Class" not in html and "MSRP" not in html.split("<body>")[1]
    assert keys <= seen


def test_numbers_use_decimal_commas_and_that_countrys_thousands():
    assert number(1598, 0, "de") == "1.598" and number(1598, 0, "fr") == "1\u202f598"
    assert number(5.64, 1, "de") == "5,6" and number(29990, 0, "de") == "29.990"


def test_a_served_german_showroom_shows_its_pairs_in_the_truth():
    with ShowroomServer(tiny_config(language="de", photos=1)) as server:
        t = fetch_truth(server.base_url, sha256=False)
        my = t["model_years"][0]
        import urllib.request

        html = urllib.request.urlopen(server.base_url + my["specifications_url"]).read().decode()
    assert t["site_layout"] == "classic" and my["layout_specs"][0][0] == "Preis ab"
    for key, value in my["layout_specs"]:
        assert f"<span>{key}</span><span>{value}</span>" in html


def test_bad_languages_are_one_line_errors():
    with pytest.raises(CarscopeError, match="--language must be one of en, de, fr, not 'es'"):
        tiny_config(language="es")
    with pytest.raises(CarscopeError, match="--language de is served by the classic layout only"):
        tiny_config(language="de", layout="dl")


def test_the_cli_option():
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="cmd"))
    assert config_from_args(parser.parse_args(["showroom", "--language", "fr"])).language == "fr"
    assert config_from_args(parser.parse_args(["showroom"])).language == "en"
