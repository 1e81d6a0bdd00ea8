r"""Spec cleaning with pandas: raw (model_id, key, value) rows -> one typed row per model-year (SPECS_COLUMNS).

    python -c "
    import pandas as pd; from carscope.crawler.specs import clean_specs
    raw = pd.DataFrame({'model_id': ['2023_a_b'] * 2 + ['2023_c_d'] * 4,
                        'key': ['MSRP', 'Gas Mileage', 'Price', 'Power', 'Length (mm)', 'Fuel consumption'],
                        'value': ['\$34,500', '25 mpg City/33 mpg Hwy', '€ 31.740', '188 kW (255 PS)', '4727',
                                  '9.4 l/100 km (city) · 7.1 l/100 km (highway)']})
    print(clean_specs(raw).T)"

Values are parsed with regular expressions, not by slicing characters as the seed did ("first 3 characters of
horsepower" breaks at 1,000 hp and on "N/A"); anything unparseable becomes <NA> and the raw rows are kept
in specs_raw.parquet, so cleaning never loses data.

Catalogs outside the US write other units; they are converted to the US columns (inches, mpg, hp, litres):
lengths in mm/cm/m, consumption in l/100 km or km/l (US gallons: mpg = 235.215 / (l/100 km)), power in kW or PS
(kW preferred when a value gives both), displacement in cc/cm³. mpg and hp are rounded to integers, converted
lengths to 0.01 in, cc to 0.1 l; a single consumption figure with no city/highway label goes to `mpg_combined`,
never to city or highway. The unit may be in the value ("4727 mm") or in the key ("Length (mm)"); a value with
no unit under a key with none is read in the US unit, as before (so "Length: 4727" is 4727 in). Which
columns were converted from which unit is recorded per model-year in the `units` column, a compact JSON object
such as {"length_in":"mm","mpg_city":"l/100km","horsepower":"kW","price":"EUR"} ("{}": nothing converted).
Conversion factors come from `pint` (one registry, created on the first conversion that needs it, never at
import; one factor per unit, cached); values repeat a lot across model-years, so each distinct value string is
parsed once and each unit group is converted with one vectorised operation (20,000 model-years x 15 keys:
~0.6 s, as fast as the US-only regexes were).

Keys, value words and formats of German, French, Spanish and Italian catalogs are read the same way ("Leistung:
110 kW (150 PS)", "Hubraum: 1.598 cm³", "Verbrauch kombiniert: 5,6 l/100 km", "Kraftstoff: Benzin"); the
vocabulary is carscope/crawler/aliases.py. An adapter's own words are applied before cleaning (spec_map.py).

Prices are parsed with `price-parser`: `price` is the amount as written in any currency, `price_currency` its
ISO 4217 code (a bare "$" is USD; an "MSRP" without a currency is taken as USD, a "Price" without one is left
unknown). `msrp_usd` is filled only when the currency is USD: there are no exchange rates here, so a € price
never becomes a dollar figure.
"""

from __future__ import annotations

import json
import re
from functools import cache

import numpy as np
import pandas as pd

from carscope.crawler.aliases import (
    BODIES,
    CANONICAL,
    DRIVETRAINS,
    FUELS,
    KEY_ALIASES,  # noqa: F401 (re-exported: callers read specs.KEY_ALIASES)
    MISSING,
    canon_key,
)
from carscope.crawler.dataset import SPECS_COLUMNS, conform
from carscope.crawler.spec_values import (
    parse_consumption,
    parse_displacement,
    parse_length,
    parse_power,
    parse_price,
    parse_wheel,
)

# The vocabulary (key spellings in five languages, fuel / drive / body words, "not given" words) lives in
# carscope/crawler/aliases.py; KEY_ALIASES there is the English list, FOREIGN_KEYS the others.
# what each unit tag of carscope/crawler/spec_values.py means to pint
PINT_UNITS = {"mm": "millimeter", "cm": "centimeter", "m": "meter", "in": "inch",
              "kW": "kilowatt", "PS": "metric_horsepower", "hp": "horsepower",  # pint's "PS" is petasiemens
              "cc": "cubic_centimeter", "cu in": "cubic_inch", "l": "liter",
              "km/l": "kilometer / liter", "mpg_imp": "mile / imperial_gallon", "mpg": "mile / gallon"}
INVERSE_UNITS = {"l/100km": ("liter", "100 kilometer")}  # volume per distance: mpg = k / value
US_UNITS = {"in", "hp", "mpg", "l", "cu in"}  # what `units` does not record


_UREG = None


def _ureg():
    """The one pint UnitRegistry, created on first use (creating it takes ~0.3 s, so never at import)."""
    global _UREG
    if _UREG is None:
        import pint

        _UREG = pint.UnitRegistry()
    return _UREG


@cache
def _factor(unit: str, target: str) -> tuple[bool, float]:
    """(inverse, k): value in `unit` -> `target` is value * k, or k / value when inverse (l/100 km -> mpg)."""
    ureg = _ureg()
    if unit in INVERSE_UNITS:
        num, den = INVERSE_UNITS[unit]
        return True, float((1 / (ureg.Quantity(num) / ureg.Quantity(den))).to(PINT_UNITS[target]).magnitude)
    return False, float(ureg.Quantity(1, PINT_UNITS[unit]).to(PINT_UNITS[target]).magnitude)


# ---- one parser per spec, called once per distinct (value, unit hint): they return magnitudes and units ----


# ---- vectorised plumbing ----

def _per_distinct(values: pd.Series, hints: pd.Series, fn, names: list[str], **kw) -> pd.DataFrame:
    """fn(value, hint, **kw) -> tuple, called once per distinct (value, hint) pair; columns `names` (object),
    None where the value is missing. Spec values repeat across model-years, so this is far fewer calls than rows."""
    key = values.str.cat(hints.fillna(""), sep="\x1f")
    codes, uniq = pd.factorize(key)
    parsed = [fn(*u.split("\x1f", 1), **kw) for u in uniq] + [(None,) * len(names)]  # code -1 -> last
    cols = list(zip(*parsed, strict=True))
    out = {}
    for name, col in zip(names, cols, strict=True):
        arr = pd.Series(col, dtype="object")
        out[name] = arr.take(codes).set_axis(values.index)
    return pd.DataFrame(out, index=values.index)


def _convert(mag: pd.Series, unit: pd.Series, target: str) -> pd.Series:
    """Magnitudes (in `unit` per row) -> `target`, one vectorised operation per unit group; values already in
    the target unit are left exactly as written, unknown units become <NA>."""
    m = pd.to_numeric(mag, errors="coerce").astype("float64").to_numpy()
    out = np.full(len(m), np.nan)
    codes, uniq = pd.factorize(unit)
    for i, u in enumerate(uniq):
        hit = codes == i
        if u == target:
            out[hit] = m[hit]
        elif u in PINT_UNITS or u in INVERSE_UNITS:
            inverse, k = _factor(u, target)
            if inverse:
                with np.errstate(divide="ignore"):
                    out[hit] = np.where(m[hit] > 0, k / m[hit], np.nan)
            else:
                out[hit] = m[hit] * k
    return pd.Series(out, index=mag.index).astype("Float64")


def _round(series: pd.Series, decimals: int, keep: pd.Series) -> pd.Series:
    """Round converted values (`keep` marks values not converted, left exactly as written)."""
    return series.where(keep, series.round(decimals))


def _map_distinct(series: pd.Series, fn, dtype: str) -> pd.Series:
    """fn(value) for each distinct value (not each row), spread back over the rows; <NA> stays <NA>."""
    codes, uniq = pd.factorize(series)
    got = pd.Series([fn(u) for u in uniq] + [None], dtype="object")
    return got.take(codes).set_axis(series.index).astype(dtype)


def _number(series: pd.Series, pattern: str, dtype: str) -> pd.Series:
    """First regex group of each value as a number (thousands separators removed); <NA> when absent."""
    rx = re.compile(pattern, re.IGNORECASE)

    def first(value: str) -> float | None:
        m = rx.search(value.replace(",", ""))
        return float(m.group(1)) if m else None

    num = _map_distinct(series, first, "Float64")
    return num.round().astype("Int64") if dtype == "Int64" else num


def _label(series: pd.Series, table: list[tuple[str, str]]) -> pd.Series:
    """The name of the first pattern of `table` found in each value (case-insensitive); <NA> when none is."""
    compiled = [(re.compile(pattern, re.IGNORECASE), name) for pattern, name in table]
    return _map_distinct(series, lambda v: next((name for rx, name in compiled if rx.search(v)), None), "string")


def _units_json(tags: dict[str, pd.Series], index: pd.Index) -> pd.Series:
    """One compact JSON object per row from per-column unit tags (<NA>: not converted)."""
    cols = list(tags)
    rows = zip(*(tags[c].astype("object").tolist() for c in cols), strict=True) if cols else iter([()] * len(index))
    cache: dict[tuple, str] = {}
    out = []
    for row in rows:
        s = cache.get(row)
        if s is None:
            s = cache[row] = json.dumps({c: t for c, t in zip(cols, row, strict=True) if isinstance(t, str)},
                                        separators=(",", ":"))
        out.append(s)
    return pd.Series(out, index=index, dtype="string")


def _nonus(unit: pd.Series) -> pd.Series:
    unit = unit.astype("string")
    return unit.mask(unit.isin(US_UNITS))


def clean_specs(raw: pd.DataFrame, pages: pd.DataFrame | None = None) -> pd.DataFrame:
    """Typed specs, one row per model_id. `raw`: model_id, key, value. `pages` (optional): model_id, make,
    model, year, page_url, crawled_at as found on each spec page."""
    raw = raw[["model_id", "key", "value"]].astype("string")
    if pages is None or not len(pages):
        pages = pd.DataFrame({"model_id": raw["model_id"].drop_duplicates()})
    codes, keys = pd.factorize(raw["key"])  # few distinct keys: resolve each once
    resolved = [canon_key(k) for k in keys] + [(None, None)]
    canon = pd.Series([r[0] for r in resolved], dtype="string").take(codes).set_axis(raw.index)
    hint = pd.Series([r[1] for r in resolved], dtype="string").take(codes).set_axis(raw.index)
    vals = raw["value"].str.strip()
    vals = vals.mask(vals.str.lower().isin(MISSING))
    long = pd.DataFrame({"model_id": raw["model_id"], "key": canon, "value": vals, "hint": hint})
    # a key given twice on one page: keep the first non-missing value
    long = long.dropna(subset=["key", "value"]).drop_duplicates(subset=["model_id", "key"], keep="first")
    index = pd.Index(pages["model_id"].astype("string"), name="model_id")
    if len(long):
        wide = long.pivot(index="model_id", columns="key", values=["value", "hint"]).reindex(index)
        w, h = wide["value"].astype("string"), wide["hint"].astype("string")
    else:
        w, h = pd.DataFrame(index=index), pd.DataFrame(index=index)
    for key in CANONICAL:
        for frame in (w, h):
            if key not in frame.columns:
                frame[key] = pd.Series(pd.NA, index=index, dtype="string")
    units: dict[str, pd.Series] = {}
    out = pd.DataFrame(index=index)

    # price: MSRP first (USD when no currency is written), else Price / offers.price (currency unknown)
    price_val = w["msrp"].fillna(w["price"])
    price_hint = h["msrp"].where(w["msrp"].notna(), h["price"]).fillna(w["price_currency"])
    default = pd.Series("", index=index, dtype="string").mask(w["msrp"].notna(), "USD")
    p = _per_distinct(price_val, price_hint.fillna("") + "\x1e" + default, lambda v, hd: parse_price(
        v, *hd.split("\x1e", 1)), ["amount", "currency"])
    out["price"] = pd.to_numeric(p["amount"], errors="coerce").astype("Float64")
    out["price_currency"] = p["currency"].astype("string")
    is_usd = (out["price_currency"] == "USD").fillna(False)
    out["msrp_usd"] = out["price"].round().astype("Int64").where(is_usd, pd.NA)
    units["price"] = out["price_currency"].mask(is_usd)

    out["body_style"] = _label(w["body_style"], BODIES).fillna(w["body_style"])  # "Kombi" -> Wagon, "4dr Car" kept
    out["epa_class"] = w["epa_class"]
    out["drivetrain"] = _label(w["drivetrain"], DRIVETRAINS)
    out["engine"] = w["engine"].fillna(w["engine_type"])
    engine_text = w["engine"].fillna("").str.cat(w["engine_type"].fillna(""), sep=" ").str.strip().replace("", pd.NA)

    d = _per_distinct(w["displacement"], h["displacement"], parse_displacement, ["mag", "unit"])
    d_eng = _per_distinct(engine_text, pd.Series("", index=index, dtype="string"), parse_displacement,
                          ["mag", "unit"], strict=True)
    d = d.mask(d["mag"].isna(), d_eng, axis=0)
    disp = _convert(d["mag"], d["unit"], "l")
    out["displacement_l"] = _round(disp, 1, (d["unit"] == "l").fillna(False))
    units["displacement_l"] = _nonus(d["unit"])
    cyl = _number(w["engine"], r"\b[ivwhf]-?(\d{1,2})\b", "Int64")  # I4, V6, V-8, H4
    out["cylinders"] = cyl.fillna(_number(engine_text, r"\b(\d{1,2})[- ]?cyl", "Int64"))
    out["fuel"] = _label(w["fuel"], FUELS).fillna(_label(w["engine"], FUELS)).fillna(_label(w["engine_type"], FUELS))

    hp = _per_distinct(w["horsepower"], h["horsepower"], parse_power, ["mag", "unit", "rpm"])
    hp_eng = _per_distinct(engine_text, pd.Series("", index=index, dtype="string"), parse_power,
                           ["mag", "unit", "rpm"], strict=True)
    hp = hp.mask(hp["mag"].isna(), hp_eng, axis=0)
    out["horsepower"] = _convert(hp["mag"], hp["unit"], "hp").round().astype("Int64")
    out["horsepower_rpm"] = pd.to_numeric(hp["rpm"], errors="coerce").astype("Float64").round().astype("Int64")
    units["horsepower"] = _nonus(hp["unit"])

    names = ["city", "city_unit", "highway", "highway_unit", "combined", "combined_unit"]
    mpg = _per_distinct(w["mileage"], h["mileage"], parse_consumption, names)
    for name in ("city", "highway", "combined"):
        col, one = f"mpg_{name}", f"mileage_{name}"  # one: a key for this figure alone, used when mileage lacks it
        alone = _per_distinct(w[one], h[one], parse_consumption, names, label=name)[[name, f"{name}_unit"]]
        got = mpg[[name, f"{name}_unit"]].mask(mpg[name].isna(), alone, axis=0)
        out[col] = _convert(got[name], got[f"{name}_unit"], "mpg").round().astype("Int64")
        units[col] = _nonus(got[f"{name}_unit"])

    for col in ("length_in", "width_in", "height_in", "wheelbase_in"):
        ln = _per_distinct(w[col], h[col], parse_length, ["mag", "unit"])
        out[col] = _round(_convert(ln["mag"], ln["unit"], "in"), 2, (ln["unit"] == "in").fillna(False))
        units[col] = _nonus(ln["unit"])
    wheel = _per_distinct(w["wheel_size_in"], h["wheel_size_in"], parse_wheel, ["in"])
    out["wheel_size_in"] = pd.to_numeric(wheel["in"], errors="coerce").astype("Float64")
    out["seats"] = _number(w["seats"], r"(\d+)", "Int64")
    out["doors"] = _number(w["doors"], r"(\d+)", "Int64")
    order = [c for c in SPECS_COLUMNS if c in units]
    out["units"] = _units_json({c: units[c] for c in order}, index)
    out = out.reset_index()

    info = pages.copy()
    info["model_id"] = info["model_id"].astype("string")
    merged = info.merge(out, on="model_id", how="left")
    return conform(merged, SPECS_COLUMNS).sort_values("model_id").reset_index(drop=True)
