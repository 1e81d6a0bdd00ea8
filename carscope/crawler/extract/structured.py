"""schema.org vehicles (JSON-LD or microdata, read by extruct) as spec pairs and a model-year identity.

    python -c "
    from carscope.crawler.extract.structured import flatten
    car = {'@type': 'Car', 'offers': {'@type': 'Offer', 'price': 34500, 'priceCurrency': 'USD'},
           'vehicleEngine': {'enginePower': {'value': 188, 'unitCode': 'KWT'}}}
    print(flatten(car))"   # -> [('offers.price', '34500 USD'), ('vehicleEngine.enginePower', '188 kW')]

`vehicles(items, types)` finds the items of the wanted types, inside `@graph` blocks and lists too.
`flatten(item)` turns one into (dotted property path, text) pairs, the form specs_raw.parquet keeps:
QuantitativeValue becomes "value unit" (UN/CEFACT unit codes spelled as units: MMT -> mm, KWT -> kW, ...),
an Offer's price carries its currency, lists are joined with " / ", and URLs of schema.org enumerations
keep their last segment ("https://schema.org/AllWheelDriveConfiguration" -> "AllWheelDriveConfiguration").
carscope/crawler/specs.py maps these paths onto the typed columns.
"""

from __future__ import annotations

from carscope.crawler.extract.fields import scalar_text

VEHICLE_TYPES = ("Car", "Vehicle", "Product", "MotorizedBicycle", "BusOrCoach", "Motorcycle")
UNIT_CODES = {
    "MMT": "mm", "CMT": "cm", "MTR": "m", "INH": "in", "FOT": "ft", "KMT": "km", "SMI": "mi",
    "LTR": "L", "CMQ": "cm³", "MLT": "ml", "GLL": "gal", "KWT": "kW", "BHP": "hp", "HP": "hp", "WTT": "W",
    "KGM": "kg", "LBR": "lb", "NU": "N·m", "KMH": "km/h", "HM": "mph", "KMQ": "kg/m³",
}
SKIP_KEYS = {"@context", "@type", "@id", "image", "url", "description", "sameAs", "potentialAction",
             "mainEntityOfPage", "logo", "review", "aggregateRating"}
SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/")


def _types(item: dict) -> set[str]:
    t = item.get("@type", item.get("type"))
    names = t if isinstance(t, list) else [t]
    return {str(n).rsplit("/", 1)[-1] for n in names if n}


def _microdata_to_jsonld(item):
    """extruct's microdata shape ({type, properties}) as JSON-LD's (@type and properties inline)."""
    if isinstance(item, list):
        return [_microdata_to_jsonld(i) for i in item]
    if not isinstance(item, dict) or "properties" not in item:
        return item
    out = {"@type": item.get("type")}
    for k, v in item["properties"].items():
        out[k] = _microdata_to_jsonld(v)
    return out


def vehicles(items: list, types=VEHICLE_TYPES, microdata: bool = False) -> list[dict]:
    """Every item (at any depth of @graph or lists) whose @type is one of `types`, in document order."""
    wanted, out = set(types), []

    def walk(node, depth=0):
        if depth > 8:
            return
        if isinstance(node, list):
            for n in node:
                walk(n, depth + 1)
        elif isinstance(node, dict):
            if microdata:
                node = _microdata_to_jsonld(node)
            if _types(node) & wanted:
                out.append(node)
            elif "@graph" in node:
                walk(node["@graph"], depth + 1)
            elif "mainEntity" in node:
                walk(node["mainEntity"], depth + 1)

    walk(items)
    return out


def _text(value) -> str | None:
    if isinstance(value, str):
        v = value.strip()
        for p in SCHEMA_PREFIXES:
            if v.startswith(p):
                return v[len(p):]
        return v or None
    return scalar_text(value)


def _quantity(node: dict) -> str | None:
    value = node.get("value", node.get("minValue"))
    if value is None:
        return None
    unit = node.get("unitText") or UNIT_CODES.get(str(node.get("unitCode", "")).upper()) or node.get("unitCode")
    text = " ".join(t for t in (_text(value), unit) if t)
    name = node.get("name")
    return f"{text} {name}" if name else text


def _flat(prefix: str, value, out: list) -> None:
    if isinstance(value, list):
        texts, nested = [], False
        for v in value:
            if isinstance(v, dict) and not _is_leafish(v):
                nested = True
                _flat(prefix, v, out)
            else:
                t = _leaf(v)
                if t:
                    texts.append(t)
        if texts and not nested:
            out.append((prefix, " / ".join(texts)))
        return
    if isinstance(value, dict):
        if _is_leafish(value):
            t = _leaf(value)
            if t:
                out.append((prefix, t))
            return
        if "price" in value and value.get("priceCurrency"):  # an Offer / PriceSpecification
            out.append((f"{prefix}.price", f"{_text(value['price'])} {value['priceCurrency']}"))
        for k, v in value.items():
            if k in SKIP_KEYS or (k in ("price", "priceCurrency") and value.get("priceCurrency")):
                continue
            _flat(f"{prefix}.{k}" if prefix else k, v, out)
        return
    t = _text(value)
    if t:
        out.append((prefix, t))


def _is_leafish(value: dict) -> bool:
    """A QuantitativeValue, or a thing known only by its name (a Brand, an enumeration member)."""
    if "value" in value or "minValue" in value:
        return True
    keys = {k for k in value if k not in ("@type", "@id", "@context")}
    return keys <= {"name"} and "name" in keys


def _leaf(value) -> str | None:
    if isinstance(value, dict):
        if "value" in value or "minValue" in value:
            return _quantity(value)
        return _text(value.get("name"))
    return _text(value)


def flatten(item: dict) -> list[tuple[str, str]]:
    """(dotted path, text) pairs of one schema.org item, in its property order."""
    out: list[tuple[str, str]] = []
    _flat("", item, out)
    return out


def identity(item: dict) -> dict[str, str]:
    """year / make / model as a vehicle item names them (brand or manufacturer; model; its model date)."""
    out = {}
    brand = item.get("brand") or item.get("manufacturer")
    if isinstance(brand, list) and brand:
        brand = brand[0]
    make = _text(brand.get("name")) if isinstance(brand, dict) else _text(brand)
    model = item.get("model")
    model = _text(model.get("name")) if isinstance(model, dict) else _text(model)
    for key in ("vehicleModelDate", "modelDate", "productionDate", "releaseDate", "dateVehicleFirstRegistered"):
        year = _text(item.get(key))
        if year and year[:4].isdigit():
            out["year"] = year[:4]
            break
    if make:
        out["make"] = make
    if model:
        out["model"] = model
    return out


def images(item: dict) -> list[str]:
    """The photo URLs a vehicle item lists under `image` (strings or ImageObjects)."""
    raw = item.get("image")
    raw = raw if isinstance(raw, list) else [raw] if raw else []
    out = []
    for r in raw:
        url = r.get("contentUrl") or r.get("url") if isinstance(r, dict) else r
        if isinstance(url, str) and url.strip():
            out.append(url.strip())
    return out
