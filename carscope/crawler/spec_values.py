r"""One spec value as a catalog writes it -> (number, unit tag): lengths, displacement, power (with its rpm),
fuel consumption (with its city / highway / combined label), prices (amount and ISO currency), wheel sizes.

    python -c "from carscope.crawler.spec_values import parse_power, parse_consumption; print(parse_power('188 kW (255 PS) @ 5000 rpm', None), parse_consumption('9.4 l/100 km (city)', None))"

Regular expressions, compiled on first use (the import stays cheap); numbers in any of the usual spellings
("1,998", "1.998 cc", "4 727 mm", "7.8–8.2"). carscope/crawler/specs.py runs these once per distinct value
string and converts the units column by column.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

# Units: (regex matched against the unit text, lower-cased; our tag). The tag is what `units` records, and
# PINT_UNITS (carscope/crawler/specs.py) says what it means to pint. US tags (in, hp, mpg, l) are the columns'
# own units: never converted.
_END = r"(?![a-z0-9])"
LENGTH_UNITS = [(r"mm|mmt|millimet(?:er|re)s?", "mm"), (r"cm|cmt|centimet(?:er|re)s?", "cm"),
                (r"m|mtr|met(?:er|re)s?", "m"), (r'in|inh|inch(?:es)?|"|″|\'\'', "in")]
POWER_UNITS = [(r"kw|kwt|kilowatts?", "kW"), (r"ps|cv|ch|pk|n12|metric hp", "PS"), (r"b?hp|horsepower", "hp")]
DISPLACEMENT_UNITS = [(r"l|ltr|lit(?:er|re)s?", "l"), (r"cc|ccm|cm³|cm3|cmq|cubic centimet(?:er|re)s?", "cc"),
                      (r"cu\.? ?in\.?|ci|cid|cubic inch(?:es)?", "cu in")]
CONSUMPTION_UNITS = [
    (r"l(?:it(?:er|re)s?)?\s*/\s*100\s*km", "l/100km"),
    (r"km\s*/\s*l(?:it(?:er|re)s?)?|kmpl", "km/l"),
    (r"mpg\s*\(\s*(?:uk|imp(?:erial)?)\s*\)|(?:uk|imp(?:erial)?)\s*mpg", "mpg_imp"),
    (r"mpg\s*\(\s*us\s*\)|mpg\s*-?\s*e|mpg|miles per (?:us )?gallon", "mpg"),
    # energy or CO2 figures next to the consumption: recognised so their numbers are not read as mpg
    (r"kwh\s*/\s*100\s*(?:km|mi(?:les?)?)|mi(?:les?)?\s*/\s*kwh|wh\s*/\s*(?:km|mi)|g\s*/\s*(?:km|mi)", "skip"),
]
# ISO 4217 codes for the symbols price-parser returns (three-letter codes pass through as written)
CURRENCY_SYMBOLS = {"$": "USD", "us$": "USD", "usd$": "USD", "€": "EUR", "euro": "EUR", "euros": "EUR",
                    "£": "GBP", "¥": "JPY", "a$": "AUD", "au$": "AUD", "c$": "CAD", "ca$": "CAD",
                    "nz$": "NZD", "hk$": "HKD", "s$": "SGD", "r$": "BRL", "fr.": "CHF", "sfr.": "CHF",
                    "zł": "PLN", "kč": "CZK", "₹": "INR", "₩": "KRW", "₽": "RUB", "₺": "TRY", "ft": "HUF"}
_NUM = r"(?<![\w.,])(\d{1,3}(?:[ \u00a0\u2009\u202f]\d{3})+(?:[.,]\d+)?(?![\d])|\d+(?:[.,]\d+)*)"
_RANGE = r"(?:\s*(?:-|–|—|to)\s*" + _NUM.replace("(\\d", "(?:\\d", 1) + r")?"  # "7.8–8.2": the first figure
_SPACES = re.compile(r"[ \u00a0\u2009\u202f]")
# consumption labels, also in German, French, Spanish and Italian (highway first: "extra-urbain" holds "urbain")
_LABELS = [("highway", re.compile(r"extra[- ]?urba(?:n|in|no|na)|hwy|highway|motorway|freeway|out[- ]of[- ]town|"
                                  r"country|rural|au(?:ß|ss)erorts|landstra(?:ß|ss)e|autobahn|carretera|autostrada")),
           ("city", re.compile(r"city|urba(?:n|in|no|na)|town|innerorts|stadt|ciudad|citt[àa]")),
           ("combined", re.compile(r"comb(?:ined)?|mixed|average|avg|overall|kombiniert|mixte|mixto|misto"))]
_RPM = (r"(?:@|\bat\b)\s*" + _NUM + r"|" + _NUM + r"\s*(?:(?:-|–)\s*[\d.,]+\s*)?"
        r"(?:rpm|r/min|tr/min|u/min|1/min|/min|min-1|min⁻¹)")  # "@ 5,600", "5000-6000 rpm": group 1 or 2


@cache
def _rx(pattern: str) -> re.Pattern:
    """`pattern` compiled (case-insensitive) on first use."""
    return re.compile(pattern, re.IGNORECASE)


@cache
def _unit_rx(kind: str) -> tuple[re.Pattern, list[tuple[re.Pattern, str]]]:
    """(any unit of `kind`, [(one unit, its tag)]), compiled on first use (keeps the import cheap)."""
    table = {"length": LENGTH_UNITS, "power": POWER_UNITS, "displacement": DISPLACEMENT_UNITS,
             "consumption": CONSUMPTION_UNITS}[kind]
    alts = "|".join(f"(?:{rx})" for rx, _ in table)
    return re.compile(f"({alts}){_END}", re.IGNORECASE), [(re.compile(rx, re.IGNORECASE), tag) for rx, tag in table]


@cache
def _token_rx(kind: str) -> re.Pattern:
    """A number (group 1), an optional range tail, then optionally a unit of `kind` (group 2)."""
    return re.compile(_NUM + _RANGE + r"(?:\s*-?\s*" + _unit_rx(kind)[0].pattern + ")?", re.IGNORECASE)
_BIG_UNITS = {"mm", "cc", "kW", "PS", "hp"}  # "1.998 cc", "4.727 mm": a lone separator before 3 digits is thousands


@lru_cache(maxsize=4096)
def _unit_tag(text: str | None, kind: str) -> str | None:
    """Our tag for a unit as written ("Millimetres" -> "mm"), None when it is not one of `kind`'s units."""
    if not text:
        return None
    text = " ".join(text.lower().split())
    for rx, tag in _unit_rx(kind)[1]:
        if rx.fullmatch(text):
            return tag
    return None


def _to_float(text: str, big: bool = False) -> float | None:
    """A number as written: "4 727", "31.740,5", "1,234.5", "186,1"; `big`: "1.998" means 1998, not 1.998."""
    t = _SPACES.sub("", text)
    seps = [c for c in t if c in ".,"]
    try:
        if not seps:
            return float(t)
        if len(set(seps)) == 2:  # both: the last one is the decimal mark
            dec = seps[-1]
            if t.count(dec) > 1:
                return None
            return float(t.replace("," if dec == "." else ".", "").replace(dec, "."))
        head, *groups = t.split(seps[0])
        if len(groups) > 1:  # 1.234.567: thousands only
            return float(head + "".join(groups)) if all(len(g) == 3 for g in groups) else None
        if big and len(groups[0]) == 3:
            return float(head + groups[0])
        return float(head + "." + groups[0])
    except ValueError:
        return None


def _tokens(value: str, kind: str) -> list[tuple[str, str | None, int, int]]:
    """(number text, unit tag or None, start, end) of each number in `value`, with the unit written after it."""
    out = []
    for m in _token_rx(kind).finditer(value):
        out.append((m.group(1), _unit_tag(m.group(2), kind), m.start(), m.end()))
    return out


def parse_length(value: str, hint: str) -> tuple:
    """(magnitude, unit): "4727 mm" -> (4727.0, "mm"); "186.1" -> (186.1, "in") unless the key says otherwise."""
    for num, unit, _, _ in _tokens(value, "length"):
        unit = unit or _unit_tag(hint, "length") or "in"
        return _to_float(num, unit in _BIG_UNITS), unit
    return None, None


def parse_displacement(value: str, hint: str, strict: bool = False) -> tuple:
    """(magnitude, unit): "2.0 L/122" -> (2.0, "l"), "1998 cm³" -> (1998.0, "cc"); a bare number only with a
    unit hint, and never when `strict` (an engine description: "2.0 TSI" says nothing certain)."""
    toks = _tokens(value, "displacement")
    for num, unit, _, _ in toks:
        if unit:
            return _to_float(num, unit in _BIG_UNITS), unit
    unit = None if strict else _unit_tag(hint, "displacement")
    if toks and unit:
        return _to_float(toks[0][0], unit in _BIG_UNITS), unit
    return None, None


def parse_power(value: str, hint: str, strict: bool = False) -> tuple:
    """(magnitude, unit, rpm): "188 kW (255 PS)" -> (188.0, "kW", None); "300hp @ 5,600 rpm" -> (300.0, "hp", 5600).
    The kW figure wins when both are given; a bare number is hp (or the key's unit) unless `strict`."""
    rpm, spans = None, []
    for m in _rx(_RPM).finditer(value):
        spans.append((m.start(), m.end()))
        if rpm is None:
            rpm = _to_float(m.group(1) or m.group(2), big=True)
    toks = [t for t in _tokens(value, "power") if not any(s <= t[2] < e for s, e in spans)]
    best = next((t for t in toks if t[1] == "kW"), None) or next((t for t in toks if t[1]), None)
    if best is None and toks and not strict:
        best = (toks[0][0], _unit_tag(hint, "power") or "hp")
    if best is None:
        return None, None, rpm
    return _to_float(best[0], True), best[1], rpm


def label_of(text: str) -> list[str]:
    """The consumption labels in `text`, in the order written ("(city)" -> ["city"])."""
    text = text.lower()
    found, taken = [], []
    for name, rx in _LABELS:
        for m in rx.finditer(text):
            if not any(s <= m.start() < e for s, e in taken):
                found.append((m.start(), name))
                taken.append(m.span())
    return [name for _, name in sorted(found)]


def parse_consumption(value: str, hint: str, label: str | None = None) -> tuple:
    """(city, highway, combined) as (magnitude, unit) pairs. "9.4 l/100 km (city) · 7.1 l/100 km (highway)",
    "25 mpg City/33 mpg Hwy", "City 25 / Hwy 33", "25/33 mpg" (city/highway); one unlabelled figure is combined."""
    toks = [t for t in _tokens(value, "consumption") if t[1] != "skip"]
    if not toks:
        return (None, None) * 3
    hinted = _unit_tag(hint, "consumption")
    units = [t[1] for t in toks]
    for i, u in enumerate(units):  # "25/33 mpg": a bare figure takes the next written unit, else the previous
        if u is None:
            units[i] = (next((x for x in units[i + 1:] if x), None) or next((x for x in units[i::-1] if x), None)
                        or (hinted if hinted != "skip" else None) or "mpg")
    # labels follow the figures ("25 mpg City") unless the text starts with one ("City: 25 mpg")
    starts, ends = [t[2] for t in toks], [t[3] for t in toks]
    if label_of(value[: starts[0]]):
        chunks = [value[a:b] for a, b in zip([0] + ends[:-1], starts, strict=True)]
    else:
        chunks = [value[a:b] for a, b in zip(ends, starts[1:] + [len(value)], strict=True)]
    labels = [label_of(c) for c in chunks]
    legend = next((ls for ls in labels if len(ls) > 1), None)  # "25/33 mpg (city/highway)"
    got: dict[str, int] = {}
    if legend:
        got = {name: i for i, name in enumerate(legend[: len(toks)])}
    elif any(labels):
        for i, ls in enumerate(labels):
            if ls and ls[0] not in got:
                got[ls[0]] = i
    elif label:  # the key named the figure: "Fuel consumption urban"
        got = {label: 0}
    elif len(toks) <= 3:
        got = {name: i for i, name in enumerate([["combined"], ["city", "highway"],
                                                ["city", "highway", "combined"]][len(toks) - 1])}
    out = []
    for name in ("city", "highway", "combined"):
        i = got.get(name)
        out += [None, None] if i is None else [_to_float(toks[i][0], False), units[i]]
    return tuple(out)


def parse_price(value: str, hint: str, default: str) -> tuple:
    """(amount, ISO currency): "EUR 31.740,00" -> (31740.0, "EUR"), "$34,500*" -> (34500.0, "USD"). `hint`: a
    currency from the key ("Price (EUR)") or offers.pricecurrency; `default`: the currency when none is found."""
    from price_parser import Price

    hint_iso = _iso(hint)
    price = Price.fromstring(value, currency_hint=hint_iso)
    if price.amount is None:
        return None, None
    amount = float(price.amount)
    if amount < 1000 and _rx(r"\d\s*k\b").search(value):  # "$34.5k"
        amount *= 1000
    cur = (price.currency or "").strip()  # the hint when the value itself names no currency
    return amount, (_iso(cur) or hint_iso) if cur else (default or None)


@lru_cache(maxsize=1024)
def _iso(symbol: str | None) -> str | None:
    """"€" -> "EUR", "usd" -> "USD"; None for an ambiguous or unknown symbol ("kr")."""
    symbol = (symbol or "").strip()
    if re.fullmatch(r"[A-Za-z]{3}", symbol):
        return symbol.upper()
    return CURRENCY_SYMBOLS.get(symbol.lower())


def parse_wheel(value: str, hint: str) -> tuple:
    """(diameter_in,): '20" x 8.5' -> 20; "225/45 R18" or "8J x 18" -> 18 (rims are sized in inches everywhere)."""
    m = (_rx(r"(?<![a-z])z?r\s?(\d{2})\b").search(value)  # tyre size
         or _rx(r"\d(?:[.,]\d)?\s*j\s*[x×]\s*(\d{2})\b").search(value)  # rim: width J x diameter
         or _rx(r"(\d+(?:\.\d+)?)").search(value.replace(",", "")))  # the first number, as before
    return (float(m.group(1)),) if m else (None,)
