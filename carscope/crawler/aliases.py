"""The spec vocabulary cleaning understands: key spellings (English, German, French, Spanish, Italian) -> one
canonical name, and the value words for fuel, body and drive. One home for the words; carscope/crawler/specs.py
cleans with them and carscope/crawler/spec_map.py (an adapter's own `[specs.keys]` / `[specs.values.*]`) adds
a site's words on top.

    python -c "from carscope.crawler.aliases import canon_key; print(canon_key('Verbrauch kombiniert (l/100 km)'), canon_key('Hubraum'))"

Keys are matched lower-cased, spaces collapsed, a trailing colon dropped; a key not found as written is looked
up again without a trailing "(unit)", which then becomes the value's unit hint. Only words that mean one thing
in every language listed are here ("Transmission" is a gearbox in English and the driven wheels in French, so it
is left to an adapter's `[specs.keys]`). Cheap to import: plain dicts and regex strings.
"""

from __future__ import annotations

import re

from carscope.crawler.spec_values import label_of

# values that mean "not given": English, German (keine Angabe, nicht verfügbar), French (non communiqué),
# Spanish (no disponible), Italian (non disponibile)
MISSING = {"", "n/a", "na", "-", "--", "—", "–", "tbd", "none", "not available", "null",
           "k. a.", "k.a.", "keine angabe", "n. v.", "n.v.", "nc", "n.c.", "n. c.", "non communiqué",
           "n/d", "n.d.", "nd", "no disponible", "non disponibile"}

# English spellings -> canonical name (the names clean_specs pivots on; most are specs.parquet columns)
KEY_ALIASES = {
    "msrp": "msrp", "starting msrp": "msrp", "base msrp": "msrp",
    "price": "price", "offers.price": "price", "offers.pricecurrency": "price_currency",
    "body style": "body_style", "body type": "body_style", "body": "body_style", "bodytype": "body_style",
    "epa class": "epa_class",
    "drivetrain": "drivetrain", "drive type": "drivetrain", "drive": "drivetrain",
    "drivewheelconfiguration": "drivetrain",
    "engine type": "engine", "engine": "engine", "vehicleengine.name": "engine",
    "vehicleengine.enginetype": "engine_type",
    "fuel type": "fuel", "fuel": "fuel", "fueltype": "fuel", "vehicleengine.fueltype": "fuel",
    "displacement": "displacement", "engine displacement": "displacement",
    "vehicleengine.enginedisplacement": "displacement",
    "sae net horsepower @ rpm": "horsepower", "horsepower": "horsepower", "horsepower @ rpm": "horsepower",
    "power": "horsepower", "engine power": "horsepower", "max power": "horsepower",
    "maximum power": "horsepower", "vehicleengine.enginepower": "horsepower",
    "gas mileage": "mileage", "fuel economy": "mileage", "epa fuel economy": "mileage",
    "fuel consumption": "mileage", "fuelefficiency": "mileage", "fuelconsumption": "mileage",
    "length, overall (in)": "length_in", "length overall (in)": "length_in", "length (in)": "length_in",
    "length": "length_in", "length, overall": "length_in", "length overall": "length_in",
    "overall length": "length_in",
    "width, max w/o mirrors (in)": "width_in", "width max w/o mirrors (in)": "width_in", "width (in)": "width_in",
    "width": "width_in", "width, max w/o mirrors": "width_in", "width max w/o mirrors": "width_in",
    "overall width": "width_in",
    "height, overall (in)": "height_in", "height overall (in)": "height_in", "height (in)": "height_in",
    "height": "height_in", "height, overall": "height_in", "height overall": "height_in",
    "overall height": "height_in",
    "wheelbase (in)": "wheelbase_in", "wheelbase": "wheelbase_in",
    "front wheel size (in)": "wheel_size_in", "wheel size (in)": "wheel_size_in", "wheel size": "wheel_size_in",
    "wheels": "wheel_size_in", "front wheel size": "wheel_size_in",
    "passenger capacity": "seats", "seats": "seats", "seating capacity": "seats",
    "vehicleseatingcapacity": "seats", "seatingcapacity": "seats",
    "passenger doors": "doors", "doors": "doors", "numberofdoors": "doors",
}

# canonical name -> the spellings of German, French, Spanish and Italian catalogs (consumption keys are found by
# MILEAGE_WORDS and their city / highway / combined word instead: "Verbrauch kombiniert", "Consumo urbano")
FOREIGN_KEYS = {
    "price": ["preis", "preis ab", "grundpreis", "listenpreis", "neupreis", "uvp", "kaufpreis",
              "prix", "prix de base", "prix à partir de", "à partir de", "tarif", "prix catalogue",
              "precio", "precio desde", "precio base", "pvp",
              "prezzo", "prezzo da", "prezzo di listino", "listino"],
    "body_style": ["karosserie", "karosserieform", "karosserietyp", "aufbau", "bauform",
                   "carrosserie", "type de carrosserie", "silhouette",
                   "carrocería", "tipo de carrocería", "carroceria",
                   "carrozzeria", "tipo di carrozzeria"],
    "drivetrain": ["antrieb", "antriebsart", "motricité", "roues motrices", "tracción", "traccion", "trazione"],
    "engine": ["motor", "motorisierung", "moteur", "motorisation", "motore", "motorizzazione"],
    "fuel": ["kraftstoff", "kraftstoffart", "treibstoff", "energie", "énergie", "carburant", "type de carburant",
             "combustible", "tipo de combustible", "alimentazione", "carburante"],
    "displacement": ["hubraum", "cylindrée", "cilindrada", "cilindrata"],
    "horsepower": ["leistung", "motorleistung", "max. leistung", "höchstleistung", "nennleistung",
                   "systemleistung", "puissance", "puissance max.", "puissance maximale", "potencia",
                   "potencia máxima", "potenza", "potenza massima"],
    "length_in": ["länge", "fahrzeuglänge", "gesamtlänge", "longueur", "longitud", "largo", "lunghezza"],
    "width_in": ["breite", "fahrzeugbreite", "gesamtbreite", "largeur", "anchura", "ancho", "larghezza"],
    "height_in": ["höhe", "fahrzeughöhe", "gesamthöhe", "hauteur", "altura", "alto", "altezza"],
    "wheelbase_in": ["radstand", "empattement", "distancia entre ejes", "batalla", "passo"],
    "wheel_size_in": ["felgen", "räder", "felgengröße", "radgröße", "jantes", "taille des jantes", "llantas",
                      "cerchi", "cerchioni"],
    "seats": ["sitzplätze", "sitze", "anzahl sitze", "sitzanzahl", "places", "nombre de places", "sièges",
              "plazas", "asientos", "número de plazas", "posti", "numero di posti"],
    "doors": ["türen", "anzahl türen", "türanzahl", "portes", "nombre de portes", "puertas", "número de puertas",
              "porte", "numero di porte"],
}
ALIASES = {**{w: canon for canon, words in FOREIGN_KEYS.items() for w in words}, **KEY_ALIASES}
MILEAGE_NAMES = ("mileage_city", "mileage_highway", "mileage_combined")
CANONICAL = frozenset(KEY_ALIASES.values()) | frozenset(MILEAGE_NAMES)

# a key that names fuel consumption, in any of the languages (its city/highway/combined word: spec_values._LABELS)
MILEAGE_WORDS = (r"fuel consumption|fuel economy|fuel efficiency|consumption|mileage|\bmpg\b"
                 r"|verbrauch|consommation|consumo")

# value words -> our labels, first pattern found wins (so "diesel" before "gas", which "gasóleo" also contains)
DRIVETRAINS = [  # also schema.org's AllWheelDriveConfiguration etc. (names or URLs)
    (r"\ball[- ]wheel\b|\bawd\b|allwheel|^\s*all\s*$|allrad|int[ée]gral|\btotal\b", "AWD"),
    (r"\bfour[- ]wheel\b|\b4wd\b|\b4x4\b|fourwheel|vierrad", "4WD"),
    (r"\bfront[- ]wheel\b|\bfwd\b|frontwheel|^\s*front\s*$|frontantrieb|vorderrad|traction|delantera|anteriore",
     "FWD"),
    (r"\brear[- ]wheel\b|\brwd\b|rearwheel|^\s*rear\s*$|heckantrieb|hinterrad|propulsion|trasera|posteriore", "RWD"),
]
FUELS = [(r"plug-?in|rechargeable|enchufable", "Plug-in Hybrid"),
         (r"hybrid|hybride|h[ií]brid[oa]|ibrid[oa]", "Hybrid"),
         (r"electric|\bev\b|elektr|[ée]lectrique|el[ée]ctric|elettric", "Electric"),
         (r"diesel|gazole|gasoil|gas[oó]leo|gasolio", "Diesel"),
         (r"flex|e85|[ée]thanol", "Flex Fuel"),
         (r"gas|petrol|unleaded|premium|benzin|essence|sans plomb", "Gas")]
# body words of other languages -> one English word; a body not listed stays as written ("4dr Car", "SUV")
BODIES = [(r"limousine|berline|berlina|sed[aá]n\b", "Sedan"),
          (r"kombi\b|\bbreak\b|familiar|ranchera|familiare|station ?wagon", "Wagon"),
          (r"schr[äa]gheck|kompaktwagen|compacte|citadine|compacto|compatta|utilitaria", "Hatchback"),
          (r"cabrio|descapotable|roadster", "Convertible"),
          (r"coup[ée]\b", "Coupe"),
          (r"gel[äa]ndewagen|todoterreno|fuoristrada", "SUV"),
          (r"monospace|monovolum|kleinbus|großraumlimousine", "Minivan")]
VALUE_TABLES = {"fuel": FUELS, "drivetrain": DRIVETRAINS, "body_style": BODIES}

_KEY_UNIT = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
_MILEAGE_KEY = re.compile(MILEAGE_WORDS)


def norm_key(key: str) -> str:
    return " ".join(str(key).lower().split()).rstrip(":").rstrip()


def split_unit(key: str) -> tuple[str, str | None]:
    """("length", "mm") from "length (mm)" (a normalised key); (key, None) when it ends in no "(unit)"."""
    m = _KEY_UNIT.match(key)
    return (m.group(1), m.group(2).strip() or None) if m else (key, None)


def canon_key(key: str, extra: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    """(canonical name, unit hint or None): "Length (mm)" -> ("length_in", "mm"); "Hubraum" -> ("displacement",
    None). A consumption key that names one figure ("Fuel consumption urban (l/100 km)", "Verbrauch kombiniert")
    -> mileage_city / _highway / _combined. `extra`: a site's own spellings (normalised key -> canonical name),
    looked up first. A canonical name is its own spelling ("horsepower", "mileage_combined")."""
    k = norm_key(key)
    base, hint = split_unit(k)
    canon = None
    for table in (extra or {}, ALIASES):
        canon = canon or table.get(k) or table.get(base)
    if canon is None and (k in CANONICAL or base in CANONICAL):
        canon = k if k in CANONICAL else base
    if canon in (None, "mileage") and _MILEAGE_KEY.search(base):
        labels = label_of(k)
        if len(set(labels)) == 1:
            return f"mileage_{labels[0]}", hint
        canon = canon or "mileage"  # "Consumption (WLTP)": a consumption figure all the same
    return canon, hint if canon else None
