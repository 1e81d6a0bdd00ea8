"""The classic layout's spec pages in German or French (`carscope showroom --language de|fr`): keys, value words
and number formats as a catalog of that country writes them, from the same catalog.

    carscope showroom --language de --makes 2     # then open a /<make>/<model>/<year>/specifications page

Only the spec pages change (SITE.md, "Languages"): every other page, every photo and the truth's `values` stay
the same, so a crawl of a German showroom is checked against the same numbers as an English one; truth's
`layout_specs` holds the pairs as the page shows them. Prices are in euros (EUR_PER_USD, as the dl layout),
lengths in mm, displacement in cm³, power in kW and PS (ch), consumption in l/100 km (an electric car's in MPGe,
as the US catalog gives it), decimal commas and thousands dots (German) or narrow spaces (French).
"""

from __future__ import annotations

from carscope.showroom.catalog import ModelYear
from carscope.showroom.config import LANGUAGES  # noqa: F401 (one list, in the config)

EUR_PER_USD = 0.92  # the dl layout's rate too: cleaning never converts currencies, so the truth's check does
NNBSP = "\u202f"

# classic key -> the key on a German / French page (None: not shown there, e.g. the US-only EPA class)
KEYS = {
    "de": {"MSRP": "Preis ab", "Body Style": "Karosserie", "EPA Class": None, "Drivetrain": "Antrieb",
           "Engine Type": "Kraftstoff", "Displacement": "Hubraum", "SAE Net Horsepower @ RPM": "Leistung",
           "Length, Overall (in)": "Länge", "Width, Max w/o mirrors (in)": "Breite",
           "Height, Overall (in)": "Höhe", "Wheelbase (in)": "Radstand", "Front Wheel Size (in)": "Felgen",
           "Passenger Capacity": "Sitzplätze", "Passenger Doors": "Türen"},
    "fr": {"MSRP": "Prix", "Body Style": "Carrosserie", "EPA Class": None, "Drivetrain": "Motricité",
           "Engine Type": "Énergie", "Displacement": "Cylindrée", "SAE Net Horsepower @ RPM": "Puissance",
           "Length, Overall (in)": "Longueur", "Width, Max w/o mirrors (in)": "Largeur",
           "Height, Overall (in)": "Hauteur", "Wheelbase (in)": "Empattement", "Front Wheel Size (in)": "Jantes",
           "Passenger Capacity": "Places", "Passenger Doors": "Portes"},
}
MILEAGE_KEYS = {"de": ("Verbrauch innerorts", "Verbrauch außerorts"),
                "fr": ("Consommation urbaine", "Consommation extra-urbaine")}
NOT_GIVEN = {"de": "k. A.", "fr": "n.c."}
PRICE_LABEL = {"en": "Starting MSRP", "de": "Preis ab", "fr": "Prix à partir de"}
BODIES = {
    "de": {"4dr Car": "Limousine", "Sport Utility": "SUV", "Crew Cab Pickup": "Pick-up", "2dr Car": "Coupé",
           "Hatchback": "Schrägheck", "Mini-van, Passenger": "Kleinbus"},
    "fr": {"4dr Car": "Berline", "Sport Utility": "SUV", "Crew Cab Pickup": "Pick-up", "2dr Car": "Coupé",
           "Hatchback": "Compacte", "Mini-van, Passenger": "Monospace"},
}
DRIVES = {
    "de": {"All Wheel Drive": "Allradantrieb", "Four Wheel Drive": "Vierradantrieb (4x4)",
           "Front Wheel Drive": "Frontantrieb", "Rear Wheel Drive": "Heckantrieb"},
    "fr": {"All Wheel Drive": "Transmission intégrale", "Four Wheel Drive": "4x4",
           "Front Wheel Drive": "Traction avant", "Rear Wheel Drive": "Propulsion"},
}
FUELS = {  # the fuel word of the classic engine text -> this language's
    "de": {"Electric": "Elektro", "Hybrid": "Hybrid (Benzin)", "Flex": "Benzin/E85", "Gas": "Benzin"},
    "fr": {"Electric": "Électrique", "Hybrid": "Hybride essence", "Flex": "Superéthanol E85", "Gas": "Essence"},
}


def price_eur(msrp_usd: int) -> int:
    """The euro price a German or French page shows for a US MSRP (rounded to 10 €)."""
    return round(msrp_usd * EUR_PER_USD / 10) * 10


def number(x: float, decimals: int, language: str) -> str:
    """1598 -> "1.598" (de) or "1 598" (fr, narrow no-break space); 5.6 -> "5,6" in both."""
    text = f"{x:,.{decimals}f}"
    group = "." if language == "de" else NNBSP
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", group)


def fuel_word(engine: str | None, language: str) -> str | None:
    if engine is None:
        return None
    e = engine.lower()
    kind = ("Electric" if e == "electric" else "Hybrid" if "hybrid" in e
            else "Flex" if "flex" in e or "e85" in e else "Gas")
    return FUELS[language][kind]


def spec_pairs(my: ModelYear, language: str) -> list[tuple[str, str]]:
    """The classic page's pairs in `language`, in the same order; a value the classic page gives as N/A is
    "k. A." / "n.c.", a key it leaves out is left out."""
    if language == "en":
        return list(my.specs)
    v, keys, out = my.values, KEYS[language], []
    for key, text in my.specs:
        if key == "Gas Mileage":
            out += _mileage(v, text, language)
            continue
        name = keys.get(key)
        if name is None:
            continue
        out.append((name, NOT_GIVEN[language] if text == "N/A" else _value(key, v, language)))
    return out


def _value(key: str, v: dict, lang: str) -> str:
    """One value as this language writes it, from the model-year's US-unit `values`."""
    if key == "MSRP":
        return f"{number(price_eur(v['msrp_usd']), 0, lang)}\u00a0€"
    if key == "Body Style":
        return BODIES[lang].get(v["body_style"], v["body_style"])
    if key == "Drivetrain":
        return DRIVES[lang][v["drivetrain"]]
    if key == "Engine Type":
        return fuel_word(v["engine"], lang)
    if key == "Displacement":
        return f"{number(round(v['displacement_l'] * 1000) - 2, 0, lang)} cm³"  # 2.0 l is 1.998 cm³ on paper
    if key == "SAE Net Horsepower @ RPM":
        hp, rpm = v["horsepower"], v["horsepower_rpm"]
        kw, ps = round(hp * 0.7457), round(hp * 1.01387)
        text = f"{kw} kW ({ps} {'PS' if lang == 'de' else 'ch'})"
        if rpm:
            text += f" bei {number(rpm, 0, lang)} U/min" if lang == "de" else f" à {number(rpm, 0, lang)} tr/min"
        return text
    if key == "Front Wheel Size (in)":
        return f"{v['wheel_size_in']} Zoll" if lang == "de" else f"{v['wheel_size_in']} pouces"
    if key in ("Passenger Capacity", "Passenger Doors"):
        return str(v["seats" if key == "Passenger Capacity" else "doors"])
    field = {"Length, Overall (in)": "length_in", "Width, Max w/o mirrors (in)": "width_in",
             "Height, Overall (in)": "height_in", "Wheelbase (in)": "wheelbase_in"}[key]
    return f"{number(round(v[field] * 25.4), 0, lang)} mm"


def _mileage(v: dict, text: str, lang: str) -> list[tuple[str, str]]:
    """City and highway consumption as two keys: l/100 km, or MPGe for an electric car."""
    city_key, hwy_key = MILEAGE_KEYS[lang]
    if text == "N/A":
        return [(city_key, NOT_GIVEN[lang])]
    if v["electric"]:
        return [(city_key, f"{v['mpg_city']} MPGe"), (hwy_key, f"{v['mpg_highway']} MPGe")]
    return [(city_key, f"{number(235.215 / v['mpg_city'], 1, lang)} l/100 km"),
            (hwy_key, f"{number(235.215 / v['mpg_highway'], 1, lang)} l/100 km")]
