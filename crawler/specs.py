r"""Spec cleaning with pandas: raw (model_id, key, value) rows -> one typed row per model-year (SPECS_COLUMNS).

    python -c "
    import pandas as pd; from crawler.specs import clean_specs
    raw = pd.DataFrame({'model_id': ['2023_a_b'] * 2, 'key': ['MSRP', 'Gas Mileage'], 'value': ['\$34,500', '25 mpg City/33 mpg Hwy']})
    print(clean_specs(raw).T)"

Values are parsed with regular expressions, not by slicing characters as the seed did ("first 3 characters of
horsepower" breaks at 1,000 hp and on "N/A"); anything unparseable becomes <NA> and the raw rows are kept
in specs_raw.parquet, so cleaning never loses data.
"""

from __future__ import annotations

import re

import pandas as pd

from crawler.dataset import SPECS_COLUMNS, conform

MISSING = {"", "n/a", "na", "-", "--", "—", "tbd", "none", "not available", "null"}

# key variants as catalogs spell them (lower-cased, spaces collapsed) -> canonical name
KEY_ALIASES = {
    "msrp": "msrp", "starting msrp": "msrp", "base msrp": "msrp", "price": "msrp",
    "body style": "body_style", "body type": "body_style",
    "epa class": "epa_class",
    "drivetrain": "drivetrain", "drive type": "drivetrain", "drive": "drivetrain",
    "engine type": "engine", "engine": "engine",
    "displacement": "displacement",
    "sae net horsepower @ rpm": "horsepower", "horsepower": "horsepower", "horsepower @ rpm": "horsepower",
    "gas mileage": "mileage", "fuel economy": "mileage", "epa fuel economy": "mileage",
    "length, overall (in)": "length_in", "length overall (in)": "length_in", "length (in)": "length_in",
    "width, max w/o mirrors (in)": "width_in", "width max w/o mirrors (in)": "width_in", "width (in)": "width_in",
    "height, overall (in)": "height_in", "height overall (in)": "height_in", "height (in)": "height_in",
    "wheelbase (in)": "wheelbase_in", "wheelbase": "wheelbase_in",
    "front wheel size (in)": "wheel_size_in", "wheel size (in)": "wheel_size_in", "wheel size": "wheel_size_in",
    "passenger capacity": "seats", "seats": "seats", "seating capacity": "seats",
    "passenger doors": "doors", "doors": "doors",
}

DRIVETRAINS = [
    (r"\ball[- ]wheel\b|\bawd\b", "AWD"),
    (r"\bfour[- ]wheel\b|\b4wd\b|\b4x4\b", "4WD"),
    (r"\bfront[- ]wheel\b|\bfwd\b", "FWD"),
    (r"\brear[- ]wheel\b|\brwd\b", "RWD"),
]
FUELS = [(r"plug-?in", "Plug-in Hybrid"), (r"hybrid", "Hybrid"), (r"electric|\bev\b", "Electric"),
         (r"diesel", "Diesel"), (r"flex|e85", "Flex Fuel"), (r"gas|petrol|unleaded|premium", "Gas")]


def _norm_key(key: str) -> str:
    return " ".join(str(key).lower().split())


def _number(series: pd.Series, pattern: str, dtype: str) -> pd.Series:
    """First regex group of each value as a number (thousands separators removed); <NA> when absent."""
    got = series.str.replace(",", "", regex=False).str.extract(pattern, flags=re.IGNORECASE, expand=False)
    num = pd.to_numeric(got, errors="coerce").astype("Float64")
    return num.round().astype("Int64") if dtype == "Int64" else num


def _label(series: pd.Series, table: list[tuple[str, str]]) -> pd.Series:
    out = pd.Series(pd.NA, index=series.index, dtype="string")
    for pattern, name in reversed(table):  # first match in table order wins
        hit = series.str.contains(pattern, flags=re.IGNORECASE, regex=True, na=False)
        out = out.mask(hit, name)
    return out


def clean_specs(raw: pd.DataFrame, pages: pd.DataFrame | None = None) -> pd.DataFrame:
    """Typed specs, one row per model_id. `raw`: model_id, key, value. `pages` (optional): model_id, make,
    model, year, page_url, crawled_at as found on each spec page."""
    raw = raw[["model_id", "key", "value"]].astype("string")
    if pages is None or not len(pages):
        pages = pd.DataFrame({"model_id": raw["model_id"].drop_duplicates()})
    canon = raw["key"].map(lambda k: KEY_ALIASES.get(_norm_key(k)), na_action="ignore")
    vals = raw["value"].str.strip()
    vals = vals.mask(vals.str.lower().isin(MISSING))
    long = pd.DataFrame({"model_id": raw["model_id"], "key": canon, "value": vals}).dropna(subset=["key"])
    # a key given twice on one page: keep the first non-missing value
    long = long.dropna(subset=["value"]).drop_duplicates(subset=["model_id", "key"], keep="first")
    wide = long.pivot(index="model_id", columns="key", values="value") if len(long) else pd.DataFrame()
    wide = wide.reindex(pd.Index(pages["model_id"].astype("string"), name="model_id"))
    for key in set(KEY_ALIASES.values()):
        if key not in wide.columns:
            wide[key] = pd.Series(pd.NA, index=wide.index, dtype="string")
    w = wide.astype("string")

    out = pd.DataFrame(index=w.index)
    out["msrp_usd"] = _number(w["msrp"], r"(\d+(?:\.\d+)?)", "Int64")
    out["body_style"] = w["body_style"]
    out["epa_class"] = w["epa_class"]
    out["drivetrain"] = _label(w["drivetrain"], DRIVETRAINS)
    out["engine"] = w["engine"]
    disp = _number(w["displacement"], r"(\d+(?:\.\d+)?)\s*l\b", "Float64")
    out["displacement_l"] = disp.fillna(_number(w["engine"], r"(\d+(?:\.\d+)?)\s*l\b", "Float64"))
    out["cylinders"] = _number(w["engine"], r"\b[ivwhf]-?(\d{1,2})\b", "Int64")  # I4, V6, V-8, H4
    out["fuel"] = _label(w["engine"], FUELS)
    out["horsepower"] = _number(w["horsepower"], r"(\d+(?:\.\d+)?)", "Int64")
    out["horsepower_rpm"] = _number(w["horsepower"], r"@\s*(\d+)", "Int64")
    # "25 mpg City/33 mpg Hwy", "25 City / 33 Hwy", "110 MPGe City/98 MPGe Hwy", or bare "25/33 mpg"
    bare = r"^\s*(\d+)\s*/\s*\d+\s*mpg"
    out["mpg_city"] = _number(w["mileage"], r"(\d+)\s*(?:mpg\w*\s*)?city", "Int64").fillna(
        _number(w["mileage"], bare, "Int64"))
    out["mpg_highway"] = _number(w["mileage"], r"(\d+)\s*(?:mpg\w*\s*)?(?:hwy|highway)", "Int64").fillna(
        _number(w["mileage"], r"^\s*\d+\s*/\s*(\d+)\s*mpg", "Int64"))
    for col in ("length_in", "width_in", "height_in", "wheelbase_in"):
        out[col] = _number(w[col], r"(\d+(?:\.\d+)?)", "Float64")
    out["wheel_size_in"] = _number(w["wheel_size_in"], r"(\d+(?:\.\d+)?)", "Float64")
    out["seats"] = _number(w["seats"], r"(\d+)", "Int64")
    out["doors"] = _number(w["doors"], r"(\d+)", "Int64")
    out = out.reset_index()

    info = pages.copy()
    info["model_id"] = info["model_id"].astype("string")
    merged = info.merge(out, on="model_id", how="left")
    return conform(merged, SPECS_COLUMNS).sort_values("model_id").reset_index(drop=True)
