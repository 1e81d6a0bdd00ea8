"""clean_specs beyond US units: prices in any currency, metric lengths/consumption/power/displacement, the
schema.org JSON-LD keys, and the `units` column that records every conversion."""

import json
import random

import pandas as pd
import pytest

from carscope.crawler.dataset import SPECS_COLUMNS
from carscope.crawler.specs import clean_specs

NBSP, THIN, NNBSP = "\u00a0", "\u2009", "\u202f"


def clean_one(*kv: tuple[str, str]) -> pd.Series:
    raw = pd.DataFrame([("2023_a_b", k, v) for k, v in kv], columns=["model_id", "key", "value"])
    got = clean_specs(raw)
    assert len(got) == 1
    return got.iloc[0]


@pytest.fixture(scope="module")
def batch() -> dict[tuple[str, str], pd.Series]:
    """Every one-key case of the tables below, cleaned in one call (one model-year each): {(key, value): row}."""
    tables = (PRICES, LENGTHS, CONSUMPTION, POWER, DISPLACEMENT, DRIVETRAINS)
    cases = list(dict.fromkeys((case[0], case[1]) for table in tables for case in table))
    raw = pd.DataFrame([(f"case{i:03d}", k, v) for i, (k, v) in enumerate(cases)], columns=["model_id", "key", "value"])
    got = clean_specs(raw).set_index("model_id")
    return {kv: got.loc[f"case{i:03d}"] for i, kv in enumerate(cases)}


def units_of(row) -> dict:
    return json.loads(row["units"])


def na(x) -> bool:
    return x is None or pd.isna(x)


PRICES = [
    ("Price", "€ 31.740", 31740, "EUR"),
    ("Price", f"31{THIN}740 €", 31740, "EUR"),
    ("Price", f"31{NNBSP}740 €", 31740, "EUR"),
    ("Price", f"31{NBSP}740 €", 31740, "EUR"),
    ("Price", "€31,740.00", 31740, "EUR"),
    ("Price", "EUR 31.740,00", 31740, "EUR"),
    ("Price", "€ 31.740,50", 31740.5, "EUR"),
    ("Price", "£28,995", 28995, "GBP"),
    ("Price", "From £28,995 OTR", 28995, "GBP"),
    ("MSRP", "$34,500*", 34500, "USD"),
    ("MSRP", "$ 34,500", 34500, "USD"),
    ("Price", "$41,000", 41000, "USD"),
    ("Price", "USD 34500", 34500, "USD"),
    ("Price", "34500 USD", 34500, "USD"),
    ("offers.price", "34500 USD", 34500, "USD"),
    ("Price (EUR)", "31740", 31740, "EUR"),
    ("Price", "CHF 45'000", 45000, "CHF"),
    ("MSRP", "34500", 34500, "USD"),  # an MSRP with no currency is a US price, as before
    ("Price", "34500", 34500, None),  # a "Price" with none: the amount, currency unknown
    ("MSRP", "kr 300.000", 300000, None),  # an ambiguous symbol is never guessed (nor taken for USD)
]


@pytest.mark.parametrize("key, value, price, currency", PRICES)
def test_prices_in_any_currency(batch, key, value, price, currency):
    row = batch[(key, value)]
    assert row["price"] == price
    assert (na(row["price_currency"]) and currency is None) or row["price_currency"] == currency
    if currency == "USD":  # msrp_usd only for dollars: no exchange rates
        assert row["msrp_usd"] == round(price) and "price" not in units_of(row)
    else:
        assert na(row["msrp_usd"])
    if currency not in (None, "USD"):
        assert units_of(row)["price"] == currency


def test_offers_price_currency_key_is_a_currency_hint():
    row = clean_one(("offers.price", "31740"), ("offers.priceCurrency", "EUR"))
    assert (row["price"], row["price_currency"]) == (31740, "EUR") and na(row["msrp_usd"])


def test_unparseable_price_is_na():
    row = clean_one(("Price", "Call for price"))
    assert na(row["price"]) and na(row["price_currency"]) and na(row["msrp_usd"]) and row["units"] == "{}"


LENGTHS = [
    ("Length", "4727 mm", 186.1, "mm"),
    ("Length", "472.7 cm", 186.1, "cm"),
    ("Length", "4.727 m", 186.1, "m"),
    ("Length", "186.1 in", 186.1, None),
    ("Length", '186.1"', 186.1, None),
    ("Length (in)", "186.1", 186.1, None),
    ("Length (mm)", "4727", 186.1, "mm"),
    ("Length, overall (mm)", "4,727", 186.1, "mm"),
    ("Length, overall (mm)", "4.727", 186.1, "mm"),
    ("Length", "4 727 mm", 186.1, "mm"),
    ("length", "4727 MMT", 186.1, "mm"),  # JSON-LD QuantitativeValue with a UN/CEFACT unit code
    ("Length, Overall (in)", "201.4", 201.4, None),
    ("Width", "1839 mm", 72.4, "mm"),
    ("Height (cm)", "147,5", 58.07, "cm"),
    ("Wheelbase", "2 819 mm", 110.98, "mm"),
    ("wheelbase", "110.4 in", 110.4, None),
]


@pytest.mark.parametrize("key, value, inches, unit", LENGTHS)
def test_lengths_in_mm_cm_m_and_inches(batch, key, value, inches, unit):
    row = batch[(key, value)]
    col = {"length": "length_in", "width": "width_in", "height": "height_in", "wheelbase": "wheelbase_in"}[
        key.split()[0].split(",")[0].lower()]
    assert row[col] == pytest.approx(inches, abs=0.01)
    assert units_of(row).get(col) == unit


CONSUMPTION = [
    ("Fuel consumption", "9.4 l/100 km (city) · 7.1 l/100 km (highway)", 25, 33, None, "l/100km"),
    ("Fuel consumption", "10.6 km/l (city) · 14.0 km/l (highway)", 25, 33, None, "km/l"),
    ("Gas Mileage", "25 mpg City/33 mpg Hwy", 25, 33, None, None),
    ("Gas Mileage", "25/33 mpg", 25, 33, None, None),
    ("Gas Mileage", "25 City / 33 Hwy", 25, 33, None, None),
    ("Gas Mileage", "110 MPGe City/98 MPGe Hwy", 110, 98, None, None),
    ("Gas Mileage", "110 MPGe city / 98 MPGe highway", 110, 98, None, None),
    ("fuelEfficiency", "25 mpg city / 33 mpg highway", 25, 33, None, None),
    ("Fuel consumption", "7.8 l/100 km", None, None, 30, "l/100km"),
    ("fuelConsumption", "7,8 l/100 km", None, None, 30, "l/100km"),
    ("Fuel economy", "28 mpg combined", None, None, 28, None),
    ("Fuel consumption", "City: 9.4 l/100 km, Extra-urban: 5.9 l/100 km, Combined: 7.1 l/100 km", 25, 40, 33,
     "l/100km"),
    ("Fuel consumption", "7.8–8.2 l/100 km, 178 g/km CO2", None, None, 30, "l/100km"),
    ("Fuel consumption (l/100 km)", "9.4 / 7.1", 25, 33, None, "l/100km"),
    ("Gas Mileage", "25/33 mpg (city/highway)", 25, 33, None, None),
    ("Fuel consumption", "45.6 mpg (UK)", None, None, 38, "mpg_imp"),
]


@pytest.mark.parametrize("key, value, city, highway, combined, unit", CONSUMPTION)
def test_consumption_becomes_us_mpg(batch, key, value, city, highway, combined, unit):
    row = batch[(key, value)]
    for col, want in (("mpg_city", city), ("mpg_highway", highway), ("mpg_combined", combined)):
        assert (na(row[col]) and want is None) or row[col] == want, col
        if want is not None:
            assert units_of(row).get(col) == unit


def test_consumption_keys_that_name_one_figure():
    row = clean_one(("Fuel consumption urban (l/100 km)", "9.4"), ("Fuel consumption, extra-urban (l/100 km)", "5.9"),
                    ("Combined fuel consumption", "7.1 l/100 km"))
    assert (row["mpg_city"], row["mpg_highway"], row["mpg_combined"]) == (25, 40, 33)
    row = clean_one(("City MPG", "25"), ("Highway MPG", "33"))
    assert (row["mpg_city"], row["mpg_highway"]) == (25, 33) and na(row["mpg_combined"]) and row["units"] == "{}"
    row = clean_one(("Gas Mileage", "25/33 mpg"), ("Combined MPG", "28"))  # the general key keeps precedence
    assert (row["mpg_city"], row["mpg_highway"], row["mpg_combined"]) == (25, 33, 28)


POWER = [
    ("Power", "188 kW (255 PS)", 252, None, "kW"),  # both given: the kW figure wins
    ("Power", "255 PS (188 kW)", 252, None, "kW"),
    ("Power", "255 PS", 252, None, "PS"),
    ("Power", "255 hp", 255, None, None),
    ("Power", "255 bhp", 255, None, None),
    ("Horsepower", "255 @ 5000", 255, 5000, None),
    ("Horsepower", "255hp @ 5000 rpm", 255, 5000, None),
    ("SAE Net Horsepower @ RPM", "300hp @ 5,600 rpm", 300, 5600, None),
    ("Power", "188 kW at 5,000–6,500 rpm", 252, 5000, "kW"),
    ("Power", "188 kW (255 PS) @ 5.000 U/min", 252, 5000, "kW"),
    ("vehicleEngine.enginePower", "188 kW", 252, None, "kW"),
    ("vehicleEngine.enginePower", "255 hp", 255, None, None),
    ("vehicleEngine.enginePower", "188 KWT", 252, None, "kW"),
    ("Power (kW)", "188", 252, None, "kW"),
    ("Power", "1,001 hp", 1001, None, None),
]


@pytest.mark.parametrize("key, value, hp, rpm, unit", POWER)
def test_power_in_kw_ps_and_hp(batch, key, value, hp, rpm, unit):
    row = batch[(key, value)]
    assert row["horsepower"] == hp
    assert (na(row["horsepower_rpm"]) and rpm is None) or row["horsepower_rpm"] == rpm
    assert units_of(row).get("horsepower") == unit


DISPLACEMENT = [
    ("Displacement", "1998 cm³", 2.0, "cc"),
    ("Displacement", "1998 cc", 2.0, "cc"),
    ("Displacement", "1.598 cm³", 1.6, "cc"),
    ("Displacement (cc)", "1395", 1.4, "cc"),
    ("Displacement", "2.0 l", 2.0, None),
    ("Displacement", "2.0 L/122", 2.0, None),
    ("Displacement", "3.5 L/214", 3.5, None),
    ("vehicleEngine.engineDisplacement", "2.0 L", 2.0, None),
    ("Displacement", "350 cu in", 5.7, None),
]


@pytest.mark.parametrize("key, value, litres, unit", DISPLACEMENT)
def test_displacement(batch, key, value, litres, unit):
    row = batch[(key, value)]
    assert row["displacement_l"] == litres
    assert units_of(row).get("displacement_l") == unit


def test_engine_description_fills_displacement_power_and_cylinders():
    row = clean_one(("Engine", "1998 cc 4-cylinder diesel, 110 kW (150 PS)"))
    assert (row["displacement_l"], row["cylinders"], row["fuel"], row["horsepower"]) == (2.0, 4, "Diesel", 148)
    assert units_of(row) == {"displacement_l": "cc", "horsepower": "kW"}
    row = clean_one(("vehicleEngine.name", "2.0L I4 Turbo"), ("vehicleEngine.fuelType", "Diesel"))
    assert (row["engine"], row["displacement_l"], row["cylinders"], row["fuel"]) == ("2.0L I4 Turbo", 2.0, 4, "Diesel")
    row = clean_one(("Engine", "2.0 TSI"))  # no unit: no displacement guessed
    assert na(row["displacement_l"]) and na(row["horsepower"])


DRIVETRAINS = [
    ("Drive", "All-wheel drive", "AWD"),
    ("Drive", "Four-wheel drive", "4WD"),
    ("Drive", "Front-wheel drive", "FWD"),
    ("Drive", "Rear-wheel drive", "RWD"),
    ("driveWheelConfiguration", "https://schema.org/AllWheelDriveConfiguration", "AWD"),
    ("driveWheelConfiguration", "FrontWheelDriveConfiguration", "FWD"),
    ("driveWheelConfiguration", "RearWheelDriveConfiguration", "RWD"),
    ("driveWheelConfiguration", "FourWheelDriveConfiguration", "4WD"),
    ("Drivetrain", "Four Wheel Drive", "4WD"),
]


@pytest.mark.parametrize("key, value, want", DRIVETRAINS)
def test_drivetrains(batch, key, value, want):
    assert batch[(key, value)]["drivetrain"] == want


def test_european_dealer_page():
    row = clean_one(("Price", "31 740 €"), ("Body", "Estate"), ("Drive", "Front-wheel drive"),
                    ("Engine", "2.0 TDI"), ("Displacement", "1968 cm³"), ("Power", "110 kW (150 PS)"),
                    ("Fuel consumption", "5.9 l/100 km"), ("Wheels", "225/45 R18"), ("Seats", "5"), ("Doors", "5"),
                    ("Length", "4633 mm"), ("Width", "1832 mm"), ("Height", "1516 mm"), ("Wheelbase", "2686 mm"))
    assert (row["price"], row["price_currency"], row["body_style"], row["drivetrain"]) == (31740, "EUR", "Estate", "FWD")
    assert (row["displacement_l"], row["horsepower"], row["mpg_combined"], row["wheel_size_in"]) == (2.0, 148, 40, 18)
    assert (row["seats"], row["doors"]) == (5, 5) and row["length_in"] == pytest.approx(182.4, abs=0.01)
    assert na(row["mpg_city"]) and na(row["mpg_highway"]) and na(row["msrp_usd"])
    assert units_of(row) == {"price": "EUR", "displacement_l": "cc", "horsepower": "kW", "mpg_combined": "l/100km",
                             "length_in": "mm", "width_in": "mm", "height_in": "mm", "wheelbase_in": "mm"}


def test_flattened_json_ld_keys():
    row = clean_one(("offers.price", "34500 USD"), ("bodyType", "SUV"),
                    ("driveWheelConfiguration", "https://schema.org/AllWheelDriveConfiguration"),
                    ("vehicleEngine.name", "2.5L I4"), ("vehicleEngine.engineType", "Hybrid"),
                    ("vehicleEngine.engineDisplacement", "2.5 L"), ("vehicleEngine.enginePower", "219 hp"),
                    ("fuelEfficiency", "41 mpg city / 38 mpg highway"), ("vehicleSeatingCapacity", "5"),
                    ("numberOfDoors", "4"), ("length", "180.9 in"), ("width", "73.4 in"), ("height", "67.0 in"),
                    ("wheelbase", "105.9 in"), ("vehicleIdentificationNumber", "JTMRWRFV0PD000001"),
                    ("color", "Blue"))
    assert (row["msrp_usd"], row["body_style"], row["drivetrain"], row["engine"]) == (34500, "SUV", "AWD", "2.5L I4")
    assert (row["fuel"], row["displacement_l"], row["cylinders"], row["horsepower"]) == ("Hybrid", 2.5, 4, 219)
    assert (row["mpg_city"], row["mpg_highway"], row["seats"], row["doors"]) == (41, 38, 5, 4)
    assert (row["length_in"], row["width_in"], row["height_in"], row["wheelbase_in"]) == (180.9, 73.4, 67.0, 105.9)
    assert row["units"] == "{}"  # all US units: nothing converted
    assert "color" not in row.index and "vehicleidentificationnumber" not in row.index


@pytest.mark.parametrize("value, want", [('20" x 8.5', 20), ("225/45 R18", 18), ("245/40ZR19", 19),
                                         ("8J x 18", 18), ("18-inch alloy", 18)])
def test_wheels(value, want):
    assert clean_one(("Wheels", value))["wheel_size_in"] == want


@pytest.mark.parametrize("value", ["N/A", "see dealer", "—", "TBD"])
def test_unparseable_values_are_na_everywhere(value):
    keys = ["Price", "Power", "Fuel consumption", "Length", "Displacement", "Drive", "Wheels", "Seats"]
    row = clean_one(*[(k, value) for k in keys])
    for col in ("price", "price_currency", "msrp_usd", "horsepower", "mpg_city", "mpg_highway", "mpg_combined",
                "length_in", "displacement_l", "drivetrain", "wheel_size_in", "seats"):
        assert na(row[col]), col
    assert row["units"] == "{}"


def test_new_columns_are_typed_and_every_row_has_units():
    raw = pd.DataFrame({"model_id": ["a", "b"], "key": ["Length", "Price"], "value": ["4727 mm", "$1"]})
    pages = pd.DataFrame({"model_id": ["a", "b", "c"]})  # c: a page with no spec rows
    got = clean_specs(raw, pages)
    assert list(got.columns[: len(SPECS_COLUMNS)]) == list(SPECS_COLUMNS)
    dtypes = {c: str(got[c].dtype) for c in ("price", "price_currency", "mpg_combined", "units")}
    assert dtypes == {"price": "Float64", "price_currency": "string", "mpg_combined": "Int64", "units": "string"}
    assert got["units"].tolist() == ['{"length_in":"mm"}', "{}", "{}"]


def test_empty_input():
    got = clean_specs(pd.DataFrame({"model_id": [], "key": [], "value": []}))
    assert len(got) == 0 and list(got.columns[: len(SPECS_COLUMNS)]) == list(SPECS_COLUMNS)


def test_us_to_metric_and_back_round_trips():
    """Property-style: a US figure written the way a European catalog would (rounded as they round) cleans back
    to the US figure: inches via mm within 0.05 in, mpg via l/100 km within 1, hp via kW within 1."""
    rng = random.Random(7)
    rows, want = [], {}
    for i in range(300):
        mid = f"m{i:03d}"
        inch, city, hwy, hp = round(rng.uniform(50, 240), 1), rng.randint(12, 60), rng.randint(15, 70), \
            rng.randint(60, 800)
        want[mid] = (inch, city, hwy, hp)
        rows += [(mid, "Length", f"{round(inch * 25.4)} mm"),
                 (mid, "Width (cm)", f"{inch * 2.54:.1f}".replace(".", ",")),
                 (mid, "Fuel consumption", f"{235.215 / city:.1f} l/100 km (city) · {235.215 / hwy:.1f} l/100 km "
                                           f"(highway)"),
                 (mid, "Power", f"{round(hp / 1.34102)} kW")]
    got = clean_specs(pd.DataFrame(rows, columns=["model_id", "key", "value"])).set_index("model_id")
    for mid, (inch, city, hwy, hp) in want.items():
        r = got.loc[mid]
        assert abs(r["length_in"] - inch) <= 0.05 and abs(r["width_in"] - inch) <= 0.05, (mid, inch, r["length_in"])
        assert abs(r["mpg_city"] - city) <= 1 and abs(r["mpg_highway"] - hwy) <= 1, (mid, city, hwy)
        assert abs(r["horsepower"] - hp) <= 1, (mid, hp, r["horsepower"])
        assert units_of(r) == {"horsepower": "kW", "mpg_city": "l/100km", "mpg_highway": "l/100km",
                               "length_in": "mm", "width_in": "cm"}


def test_pint_registry_is_created_lazily():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import carscope.crawler.specs as s, sys; assert s._UREG is None and 'pint' not in sys.modules; "
            "import pandas as pd; s.clean_specs(pd.DataFrame({'model_id': ['a'], 'key': ['MSRP'], "
            "'value': ['$1']})); assert s._UREG is None, 'US units need no registry'; "
            "s.clean_specs(pd.DataFrame({'model_id': ['a'], 'key': ['Length'], 'value': ['4727 mm']})); "
            "assert s._UREG is not None")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_a_specs_table_written_before_the_unit_columns_still_loads(tmp_path):
    import pandas as pd

    from carscope.crawler.dataset import ADDED_LATER, SPECS_COLUMNS, read_table

    old = pd.DataFrame({c: pd.Series([], dtype="object") for c in SPECS_COLUMNS if c not in ADDED_LATER})
    old.loc[0, "model_id"] = "2023_acme_roadster"
    old.to_parquet(tmp_path / "specs.parquet")
    got = read_table(tmp_path / "specs.parquet")
    assert list(got.columns)[: len(SPECS_COLUMNS)] == list(SPECS_COLUMNS)
    assert got.loc[0, "model_id"] == "2023_acme_roadster" and got["price"].isna().all()
    old.drop(columns=["msrp_usd"]).to_parquet(tmp_path / "specs.parquet")  # a contract column is still required
    with pytest.raises(Exception, match="lacks required columns: msrp_usd"):
        read_table(tmp_path / "specs.parquet")
