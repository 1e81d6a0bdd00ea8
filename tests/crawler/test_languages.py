"""Catalogs in other languages without Python: the built-in vocabulary (carscope/crawler/aliases.py), an adapter's
own words (`[specs.keys]`, `[specs.values.*]`, `[site] currency`: carscope/crawler/spec_map.py), the German and
French showroom crawled to its truth with the shipped adapter, and specs_raw keeping the page's pairs when a hook
renames them."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from carscope.common.errors import CarscopeError
from carscope.crawler import crawl
from carscope.crawler.adapter import SITES_DIR, load_adapter
from carscope.crawler.dataset import load
from carscope.crawler.spec_map import SpecMapping
from carscope.crawler.specs import FUELS, clean_specs
from carscope.showroom.language import price_eur
from carscope.showroom.testing import ShowroomServer, fetch_truth, tiny_config
from tests.crawler.helpers import config


def cleaned(rows: list[tuple[str, str]]) -> dict:
    raw = pd.DataFrame({"model_id": ["m"] * len(rows), "key": [k for k, _ in rows], "value": [v for _, v in rows]})
    row = clean_specs(raw).iloc[0]
    return {k: v for k, v in row.items() if not (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)))}


# one catalog page per language: every key of the common vocabulary, with that country's number formats
PAGES = {
    "de": [("Preis ab", "29.990 €"), ("Karosserie", "Kombi"), ("Antrieb", "Allradantrieb"), ("Kraftstoff", "Benzin"),
           ("Hubraum", "1.598 cm³"), ("Leistung", "110 kW (150 PS)"), ("Verbrauch kombiniert", "5,6 l/100 km"),
           ("Länge", "4.345 mm"), ("Breite", "1.800 mm"), ("Höhe", "1.450 mm"), ("Sitzplätze", "5"), ("Türen", "5")],
    "fr": [("Prix", "29\u202f990 €"), ("Carrosserie", "Break"), ("Motricité", "Transmission intégrale"),
           ("Énergie", "Essence"), ("Cylindrée", "1 598 cm³"), ("Puissance", "110 kW (150 ch)"),
           ("Consommation mixte", "5,6 l/100 km"), ("Longueur", "4 345 mm"), ("Largeur", "1 800 mm"),
           ("Hauteur", "1 450 mm"), ("Places", "5"), ("Portes", "5")],
    "es": [("Precio", "29.990 €"), ("Carrocería", "Familiar"), ("Tracción", "Total"), ("Combustible", "Gasolina"),
           ("Cilindrada", "1.598 cm³"), ("Potencia", "110 kW (150 CV)"), ("Consumo mixto", "5,6 l/100 km"),
           ("Longitud", "4.345 mm"), ("Anchura", "1.800 mm"), ("Altura", "1.450 mm"), ("Plazas", "5"),
           ("Puertas", "5")],
    "it": [("Prezzo", "€ 29.990"), ("Carrozzeria", "Station wagon"), ("Trazione", "Integrale"),
           ("Alimentazione", "Benzina"), ("Cilindrata", "1.598 cm³"), ("Potenza", "110 kW (150 CV)"),
           ("Consumo combinato", "5,6 l/100 km"), ("Lunghezza", "4.345 mm"), ("Larghezza", "1.800 mm"),
           ("Altezza", "1.450 mm"), ("Posti", "5"), ("Porte", "5")],
}
WANT = {"price": 29990.0, "price_currency": "EUR", "body_style": "Wagon", "drivetrain": "AWD", "fuel": "Gas",
        "displacement_l": 1.6, "horsepower": 148, "mpg_combined": 42, "length_in": 171.06, "width_in": 70.87,
        "height_in": 57.09, "seats": 5, "doors": 5}


@pytest.mark.parametrize("language", PAGES)
def test_the_common_vocabulary_of_four_languages_is_cleaned_without_an_adapter_word(language):
    got = cleaned(PAGES[language])
    assert {k: got.get(k) for k in WANT} == WANT


@pytest.mark.parametrize("key, value, column, want", [
    ("Kraftstoff", "Diesel", "fuel", "Diesel"), ("Énergie", "Gazole", "fuel", "Diesel"),
    ("Combustible", "Gasóleo", "fuel", "Diesel"), ("Alimentazione", "Gasolio", "fuel", "Diesel"),
    ("Kraftstoff", "Elektro", "fuel", "Electric"), ("Énergie", "Électrique", "fuel", "Electric"),
    ("Kraftstoff", "Plug-in-Hybrid", "fuel", "Plug-in Hybrid"), ("Énergie", "Hybride rechargeable", "fuel",
                                                                   "Plug-in Hybrid"),
    ("Antrieb", "Frontantrieb", "drivetrain", "FWD"), ("Antrieb", "Heckantrieb", "drivetrain", "RWD"),
    ("Motricité", "Traction avant", "drivetrain", "FWD"), ("Trazione", "Posteriore", "drivetrain", "RWD"),
    ("Karosserie", "Limousine", "body_style", "Sedan"), ("Carrosserie", "Monospace", "body_style", "Minivan"),
    ("Karosserie", "SUV", "body_style", "SUV"), ("Body Style", "4dr Car", "body_style", "4dr Car"),
    ("Verbrauch innerorts", "9,4 l/100 km", "mpg_city", 25), ("Verbrauch außerorts", "7,8 l/100 km", "mpg_highway", 30),
    ("Consommation extra-urbaine", "7,8 l/100 km", "mpg_highway", 30), ("Consumo urbano", "9,4 l/100 km", "mpg_city", 25),
    ("Leistung", "143 kW (195 PS) bei 5.500 U/min", "horsepower_rpm", 5500),
    ("Puissance", "195 ch à 5 500 tr/min", "horsepower", 192), ("Felgen", "19 Zoll", "wheel_size_in", 19.0),
])
def test_value_words_and_formats(key, value, column, want):
    assert cleaned([(key, value)]).get(column) == want


@pytest.mark.parametrize("missing", ["k. A.", "n.c.", "n/d", "n.d.", "–"])
def test_not_given_words_are_missing_not_zero(missing):
    assert "horsepower" not in cleaned([("Leistung", missing)])


def test_transmission_stays_unknown_an_english_gearbox_is_no_drivetrain():
    got = cleaned([("Transmission", "8-speed automatic"), ("Drivetrain", "All Wheel Drive")])
    assert got["drivetrain"] == "AWD"


# ---------------------------------------------------------------- the adapter's own words

ADAPTER = """[site]
name = "autohaus"
currency = "EUR"

[specs.keys]
"PS-Zahl" = "horsepower"
"Sprit" = "fuel"
"Außenlänge" = "length"
"Aufbau" = "body"

[specs.values.fuel]
"Super E10" = "gasoline"

[specs.values.body]
"Kastenwagen" = "Van"

[specs.values.drivetrain]
"Hinterachse" = "RWD"
"""
PAGE_TYPES = """
[pages.car]
match = '^/(?P<make>\\w+)/(?P<model>\\w+)/(?P<year>\\d{4})$'
[[pages.car.specs.pairs]]
form = "dl"
"""
HTML = """<dl><dt>Preis</dt><dd>29.990</dd><dt>PS-Zahl</dt><dd>150 PS</dd><dt>Sprit</dt><dd>Super E10</dd>
<dt>Außenlänge (mm)</dt><dd>4.345</dd><dt>Aufbau</dt><dd>Kastenwagen</dd><dt>Antrieb</dt><dd>Hinterachse</dd></dl>"""


def _adapter(tmp_path: Path, text: str = ADAPTER + PAGE_TYPES):
    (tmp_path / "autohaus.toml").write_text(text)
    return load_adapter(str(tmp_path / "autohaus.toml"))


def _parse(adapter, html: str = HTML):
    import asyncio

    from carscope.crawler.parse import extract_page

    pt, groups = adapter.classify("/acme/roadster/2023")
    return asyncio.run(extract_page(adapter, pt, groups, "http://h/acme/roadster/2023", html))[1]


def test_the_adapters_keys_values_and_currency_clean_a_sites_own_words(tmp_path):
    a = _adapter(tmp_path)
    assert a.spec_map.currency == "EUR" and a.spec_map.keys["ps-zahl"] == "horsepower"
    specs = _parse(a).specs
    assert specs.raw == [("Preis", "29.990"), ("PS-Zahl", "150 PS"), ("Sprit", "Super E10"),
                         ("Außenlänge (mm)", "4.345"), ("Aufbau", "Kastenwagen"), ("Antrieb", "Hinterachse")]
    got = cleaned(specs.rows)
    assert got["price"] == 29990 and got["price_currency"] == "EUR"  # no sign on the page: the site's currency
    assert (got["horsepower"], got["fuel"], got["length_in"]) == (148, "Gas", 171.06)  # "(mm)" kept as the unit
    assert (got["body_style"], got["drivetrain"]) == ("Van", "RWD")
    assert cleaned(specs.raw).get("price_currency") is None  # without it the currency is unknown


def test_a_written_currency_wins_over_the_sites_default():
    m = SpecMapping(currency="EUR")
    assert cleaned(m.apply([("Price", "$34,500")]))["price_currency"] == "USD"
    assert m.apply([("Seats", "5")]) == [("Seats", "5")]  # no price: nothing added


def test_without_adapter_words_the_page_pairs_are_cleaned_as_they_are(tmp_path):
    a = _adapter(tmp_path, "[site]\nname = 'autohaus'\n" + PAGE_TYPES)
    specs = _parse(a).specs
    assert specs.raw is None and cleaned(specs.rows).get("horsepower") is None  # "PS-Zahl" is no known key


@pytest.mark.parametrize("bad, line, message", [
    ('[specs.keys]\n"Leistung" = "horsepwr"\n', 5, "specs.keys.Leistung: unknown spec name 'horsepwr'"),
    ('[specs.values.colour]\n"Rot" = "red"\n', 4, "specs.values.colour: unknown value table"),
    ('[specs.values.fuel]\n"Benzin" = ""\n', 5, "specs.values.fuel.Benzin: expected a non-empty word"),
    ('[specs]\nlanguage = "de"\n', 5, "specs.language: unknown field"),
])
def test_bad_adapter_words_are_one_line_with_file_and_line(tmp_path, bad, line, message):
    text = f"[site]\nname = 'x'\n\n{bad}\n[pages.car]\nmatch = '^/$'\n"
    with pytest.raises(CarscopeError) as e:
        _adapter(tmp_path, text)
    assert str(e.value).startswith(f"{tmp_path / 'autohaus.toml'}:{line}: {message}"), str(e.value)
    assert "\n" not in str(e.value)


def test_a_bad_currency_is_one_line_with_file_and_line(tmp_path):
    with pytest.raises(CarscopeError, match=r"autohaus\.toml:3: site\.currency: expected an ISO 4217 code"):
        _adapter(tmp_path, "[site]\nname = 'x'\ncurrency = '€'\n[pages.car]\nmatch = '^/$'\n")


# ---------------------------------------------------------------- the German and French showroom, crawled

TOLERANCE = {"length_in": 0.06, "width_in": 0.06, "height_in": 0.06, "wheelbase_in": 0.06, "displacement_l": 0.051,
             "horsepower": 1, "mpg_city": 1, "mpg_highway": 1}
DRIVES = {"All Wheel Drive": "AWD", "Four Wheel Drive": "4WD", "Front Wheel Drive": "FWD", "Rear Wheel Drive": "RWD"}
BODIES = {"4dr Car": "Sedan", "Sport Utility": "SUV", "Crew Cab Pickup": "Pick-up", "2dr Car": "Coupe",
          "Hatchback": "Hatchback", "Mini-van, Passenger": "Minivan"}


def expected_fuel(engine: str) -> str:
    """The fuel the English page's engine text says, read with the crawler's own fuel words."""
    import re

    return next(name for pattern, name in FUELS if re.search(pattern, engine, re.IGNORECASE))


POWER_KEY = {"de": "Leistung", "fr": "Puissance"}  # the page's power key and petrol word (carscope/showroom/language.py)
PETROL = {"de": "Benzin", "fr": "Essence"}


def hook_adapter(tmp_path: Path, language: str = "de") -> str:
    """The shipped showroom adapter without its photo page, plus a specs hook that renames and edits."""
    (tmp_path / "rename_hook.py").write_text(
        "def specs(ctx, page, found):\n"
        f"    return [('Power', '999 hp') if k == {POWER_KEY[language]!r} else "
        f"(k, 'Gas' if v == {PETROL[language]!r} else v) for k, v in found]\n")
    text = (SITES_DIR / "showroom.toml").read_text().split("[pages.photos]")[0]
    (tmp_path / "renamed.toml").write_text(text.replace('hook = "showroom_hook.py"', 'hook = "rename_hook.py"'))
    return str(tmp_path / "renamed.toml")


@pytest.fixture(scope="module", params=["de", "fr"])
def foreign_crawl(request, tmp_path_factory):
    """A German (French) showroom crawled with the shipped `showroom` adapter: no hook reads its specs."""
    with ShowroomServer(tiny_config(language=request.param, photos=1, others=0)) as server:
        root = tmp_path_factory.mktemp(request.param) / "ds"
        stats = crawl(config(server.base_url, root, site="showroom", per_host=4))
        yield request.param, server, fetch_truth(server.base_url, sha256=False), root, stats


def test_the_foreign_showroom_is_crawled_to_its_truth_with_the_shipped_adapter(foreign_crawl):
    language, _, truth, root, stats = foreign_crawl
    assert stats["status"] == "complete" and stats["failures"] == 0, stats["failure_reasons"]
    ds = load(root)
    specs = ds.specs.set_index("model_id")
    assert sorted(specs.index) == sorted(my["model_id"] for my in truth["model_years"])
    checked = 0
    for my in truth["model_years"]:
        row, v = specs.loc[my["model_id"]], my["values"]
        where = f"{language} {my['model_id']}"
        assert (row["price"], row["price_currency"]) == (price_eur(v["msrp_usd"]), "EUR"), where
        assert str(row["msrp_usd"]) == "<NA>", where  # euros never become a dollar figure
        for key, tol in TOLERANCE.items():
            if v[key] is not None:
                assert abs(float(row[key]) - float(v[key])) <= tol, f"{where} {key}: {row[key]} vs {v[key]}"
                checked += 1
        if v["engine"] is not None:
            assert row["fuel"] == expected_fuel(v["engine"]), where
        if v["drivetrain"] is not None:
            assert row["drivetrain"] == DRIVES[v["drivetrain"]], where
        if v["body_style"] is not None:
            assert row["body_style"] == BODIES[v["body_style"]], where
        for key in ("seats", "doors", "horsepower_rpm", "wheel_size_in"):
            if v[key] is not None:
                assert float(row[key]) == float(v[key]), f"{where} {key}"
    assert checked >= 6 * len(truth["model_years"])  # most values are on the page (some N/A, no electric litres)
    # specs_raw holds the page's pairs exactly as the page wrote them
    raw = ds.specs_raw
    for my in truth["model_years"]:
        got = list(zip(*(raw[raw["model_id"] == my["model_id"]][c] for c in ("key", "value")), strict=True))
        want = [tuple(p) for p in my["layout_specs"]]
        assert got == [("MSRP", want[0][1])] + want, my["model_id"]  # the price beside the heading, then the rows


def test_a_hooks_renamed_keys_reach_the_cleaned_table_only(foreign_crawl, tmp_path):
    language, server, truth, _, _ = foreign_crawl
    power, petrol = POWER_KEY[language], PETROL[language]
    root = tmp_path / "ds"
    stats = crawl(config(server.base_url, root, site=hook_adapter(tmp_path, language), per_host=4))
    assert stats["status"] == "complete" and stats["failures"] == 0, stats["failure_reasons"]
    ds = load(root)
    raw = ds.specs_raw
    assert power in set(raw["key"]) and "Power" not in set(raw["key"])  # the page's key, not the hook's
    assert petrol in set(raw["value"]) and "Gas" not in set(raw["value"])
    specs = ds.specs.set_index("model_id")
    assert set(raw[raw["key"] == power]["value"]) != {"999 hp"}
    for my in truth["model_years"]:
        if my["values"]["horsepower"] is not None:  # the hook's pair, not the page's, was cleaned
            assert specs.loc[my["model_id"], "horsepower"] == 999, my["model_id"]


def test_the_reference_example_is_the_adapter_tested_here(tmp_path):
    """carscope/crawler/sites/README.md's `[specs]` example loads and cleans the page above as this file expects."""
    import re

    readme = (SITES_DIR / "README.md").read_text()
    example = re.search(r"```toml\n(# autohaus\.toml.*?)```", readme, re.S).group(1)
    a = _adapter(tmp_path, example + PAGE_TYPES)
    assert a.spec_map == _adapter(tmp_path / "..", ADAPTER + PAGE_TYPES).spec_map
    got = cleaned(_parse(a).specs.rows)
    assert (got["horsepower"], got["fuel"], got["price_currency"], got["body_style"]) == (148, "Gas", "EUR", "Van")
