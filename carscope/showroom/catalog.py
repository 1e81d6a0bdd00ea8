"""The showroom's catalog: makes, models, model-years, their spec strings and values, and their photos, all
from the seed.

    python -c "from carscope.showroom.catalog import build_catalog; from carscope.showroom.config import ShowroomConfig; \
c = build_catalog(ShowroomConfig(makes=2)); print(c.model_years[0].model_id, c.model_years[0].specs)"

A model-year's `specs` are the classic page's strings; `values` are the same facts as US-unit numbers (SITE.md,
"Structured values"), which the other layouts write their own way. The catalog is the same in every layout.

Every random choice comes from a `random.Random` seeded with a hash of (seed, what, which), so one entity's
draws never depend on how many others exist, and the same config always gives the same catalog. The design
parameters that the renderer draws (a make's design language, a model's body, a year's facelift) live here
too, so that the catalog is the single source of truth for what a photo shows: the vocabularies in vocab.py, the
years' looks, generations and twins in generations.py, each photo's pose, framing, part and conditions in shots.py
(the realism options, SITE.md).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from carscope.crawler.dataset import make_model_id
from carscope.showroom.config import ShowroomConfig
from carscope.showroom.generations import model_years_looks, twin_models, twin_slug, yearly_look
from carscope.showroom.shots import plan_photo
from carscope.showroom.vocab import (
    ACCENTS,
    ARCHES,
    BADGE_SHAPES,
    GRILLE_SHAPES,
    LAMP_SHAPES,
    QUILTS,
    SCREENS,
    STRIPES,
    VENTS,
    WHEEL_SPOKES,
    WINDOW_TRIMS,
    seeded_rng,
)

BODY_TYPES = ("sedan", "suv", "pickup", "coupe", "hatchback", "van")

_MAKE_A = ["Vel", "Kor", "Ast", "Bram", "Cal", "Dor", "Fen", "Gal", "Hol", "Ist", "Jor", "Kav", "Lum", "Mar",
           "Nor", "Ost", "Pel", "Quar", "Rov", "Sol", "Tar", "Ulv", "Ver", "Wex", "Zan"]
_MAKE_B = ["ora", "vex", "ani", "ton", "ira", "ux", "enza", "ari", "ova", "ex", "ano", "ind", "ar", "eon"]
_MAKE_SUFFIX = ["", "", "", " Motors", " Auto", " Automotive"]
_MODEL_WORDS = ["Road Star", "Tern", "Meridian", "Cascade", "Kestrel", "Atlas", "Vista", "Summit", "Breeze",
                "Canyon", "Orbit", "Falcon", "Harbor", "Ridge", "Nova", "Pioneer", "Solstice", "Trek",
                "Vector", "Willow", "Zephyr", "Aurora", "Bolt", "Comet", "Drift", "Ember", "Fjord", "Glide",
                "Haven", "Ion", "Jetty", "Koda", "Lumen", "Mesa", "Nimbus", "Onyx", "Prairie", "Quill",
                "Rally", "Sable", "Tundra", "Urban", "Valor", "Wren", "Xenia", "Yukon", "Zenith", "Arrow",
                "Beacon", "Cirrus", "Delta", "Echo", "Forge", "Grove", "Horizon", "Inlet", "Juno", "Kite"]
_MODEL_SUFFIX = ["", "", "", " GT", " X", " Sport", " LX", " 500", " EV", " Plus"]

# Body templates: proportion ranges (height/length, clearance, wheel size...) and the spec strings that go
# with the body. Proportions also drive the drawing, so a long low coupe looks long and low.
BODY = {
    "sedan": dict(length=(182, 198), h_ratio=(0.29, 0.32), seats=(5,), doors=(4,), style="4dr Car",
                  epa=["Mid-Size Cars", "Large Cars", "Compact Cars"], mpg=(24, 33)),
    "suv": dict(length=(178, 200), h_ratio=(0.36, 0.40), seats=(5, 7), doors=(4,), style="Sport Utility",
                epa=["Small Sport Utility Vehicles 4WD", "Standard Sport Utility Vehicles 2WD",
                     "Small Sport Utility Vehicles 2WD"], mpg=(19, 27)),
    "pickup": dict(length=(210, 232), h_ratio=(0.34, 0.37), seats=(5, 6), doors=(4, 2),
                   style="Crew Cab Pickup", epa=["Standard Pick-up Trucks 4WD", "Small Pick-up Trucks 4WD"],
                   mpg=(16, 22)),
    "coupe": dict(length=(172, 188), h_ratio=(0.24, 0.27), seats=(4, 2), doors=(2,), style="2dr Car",
                  epa=["Minicompact Cars", "Subcompact Cars", "Two Seaters"], mpg=(18, 27)),
    "hatchback": dict(length=(160, 175), h_ratio=(0.34, 0.37), seats=(5,), doors=(4, 2), style="Hatchback",
                      epa=["Compact Cars", "Small Station Wagons"], mpg=(28, 36)),
    "van": dict(length=(196, 206), h_ratio=(0.42, 0.46), seats=(7, 8), doors=(4,), style="Mini-van, Passenger",
                epa=["Minivan - 2WD", "Minivan - 4WD"], mpg=(18, 24)),
}

PAINTS = [  # shared by every model: colour alone never identifies one
    (236, 236, 232), (22, 22, 26), (170, 174, 180), (92, 96, 104), (170, 22, 30), (24, 58, 140),
    (18, 30, 64), (34, 96, 60), (222, 186, 34), (214, 96, 24), (110, 20, 40), (120, 160, 200),
]

EXTERIOR_VIEWS = ("side", "front34", "rear34")

# What a gallery holds besides car photos (`ShowroomConfig.others` per model-year; SITE.md): a Photo's `subject`
# is "car" or one of these, and a non-car image's `pose` is its subject.
NON_CAR_SUBJECTS = ("logo", "banner", "portrait", "map", "brochure", "ad", "badge", "wheel")
OTHER_INTERIOR = 0.25  # the share of non-car images shown in the interior tab (the rest: exterior)


def url_slug(text: str) -> str:
    """`Acme Motors` -> `acme-motors` (SITE.md: lower-cased, non-alphanumerics -> `-`)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def model_id_for(year: int, make: str, model: str) -> str:
    """The dataset's model_id: the one rule, `crawler.dataset.make_model_id` (the format's owner)."""
    return make_model_id(year, make, model)


@dataclass(frozen=True)
class Make:
    index: int
    name: str
    slug: str
    design: dict  # grille, lamp, badge, badge colour, stripe, arches, window trim, interior style


@dataclass(frozen=True)
class Model:
    make: Make
    index: int
    name: str
    slug: str
    body: str
    proportions: dict  # length_in, h_ratio, wheelbase fraction, wheel size... (drawing and specs agree)


@dataclass(frozen=True)
class Photo:
    id: str
    model_id: str
    view: str  # exterior / interior (a non-car image: the tab it is shown in)
    index: int  # within its model-year and view (a non-car image: within the model-year's non-car images)
    pose: str  # side / front34 / rear34 for exteriors; dash / seats / console for interiors; else the subject
    dup: bool  # also served under /cdn/
    corrupt: bool  # its bytes are permanently broken (valid JPEG header, truncated data)
    subject: str = "car"  # "car", or one of NON_CAR_SUBJECTS (a logo, a map, ... in the gallery)
    framing: str = "full"  # full / cut / small / closeup (shots.py; SITE.md "Realism options")
    part: str | None = None  # a close-up's part: wheel, lamp, grille, badge, screen, steering, seat
    conditions: tuple = ()  # clutter, night, rain, blur, jpeg (the `conditions` option)

    @property
    def car(self) -> bool:
        return self.subject == "car"

    def url(self, width: int = 640, cdn: bool = False) -> str:
        return f"/{'cdn' if cdn else 'photos'}/{self.id}-{width}.jpg"

    def srcset(self, cdn: bool = False) -> str:
        return f"{self.url(320, cdn)} 320w, {self.url(640, cdn)} 640w"


@dataclass(frozen=True)
class ModelYear:
    model: Model
    year: int
    model_id: str
    facelift: dict  # wheel style, grille pattern, lamp variant, trim
    specs: tuple  # ((key, raw string), ...) in page order; missing keys are absent
    layout: str  # tabs / mixed
    photos: tuple = field(default=(), repr=False)
    values: dict = field(default_factory=dict, repr=False)  # the specs as US-unit numbers (SITE.md), None: not shown
    generation: dict = field(default_factory=dict, repr=False)  # index, name, phase, years, look (generations.py)
    twin_of: str | None = None  # a badge-engineered twin's donor, "make-slug/model-slug"
    proportions: dict = field(default_factory=dict, repr=False)  # what the drawing uses; {}: the model's

    @property
    def shape(self) -> dict:
        """The proportions the drawing uses: the generation's, else the model's."""
        return self.proportions or self.model.proportions

    @property
    def make(self) -> Make:
        return self.model.make

    @property
    def path(self) -> str:
        return f"/{self.make.slug}/{self.model.slug}/{self.year}"

    @property
    def msrp(self) -> str | None:
        return dict(self.specs).get("MSRP")


@dataclass
class Catalog:
    config: ShowroomConfig
    makes: list[Make]
    models: list[Model]
    model_years: list[ModelYear]
    photos: dict[str, Photo]  # id -> photo
    by_path: dict[tuple[str, str, int], ModelYear] = field(default_factory=dict)
    by_model_id: dict[str, ModelYear] = field(default_factory=dict)

    def __post_init__(self):
        for my in self.model_years:
            self.by_path[(my.make.slug, my.model.slug, my.year)] = my
            self.by_model_id[my.model_id] = my
        self.make_by_slug = {m.slug: m for m in self.makes}
        self.models_of = {m.slug: [md for md in self.models if md.make is m] for m in self.makes}

    def photo_model_year(self, photo: Photo) -> ModelYear:
        return self.by_model_id[photo.model_id]

    def gallery_entries(self, my: ModelYear) -> list[tuple[Photo, bool]]:
        """The gallery in page order as (photo, cdn): the photos (shuffled in mixed galleries), then each
        duplicate again, under /cdn/. Every layout shows its photos in this order.

        Mixed galleries shuffle the car photos alone, then put each non-car image back at its place in
        `my.photos`, so the car photos keep the order they had before galleries held anything else."""
        rng = seeded_rng(self.config.seed, "gallery-order", my.model_id)
        photos = list(my.photos)
        if my.layout == "mixed":
            photos = [p for p in my.photos if p.car]
            rng.shuffle(photos)
            for i, p in enumerate(my.photos):  # ascending: each lands at its own index
                if not p.car:
                    photos.insert(i, p)
        return [(p, False) for p in photos] + [(p, True) for p in photos if p.dup]

    def gallery(self, my: ModelYear) -> list[dict]:
        """The gallery JSON's photo entries (SITE.md): duplicates listed again under /cdn/."""
        return [{"id": p.id, "view": p.view if my.layout == "tabs" else None, "src": p.url(640, cdn=cdn),
                 "srcset": p.srcset(cdn=cdn)} for p, cdn in self.gallery_entries(my)]

    def memo(self, key: str, build):
        """A table derived from the catalog (e.g. a layout's opaque ids), built once: `build(catalog)`."""
        memo = self.__dict__.setdefault("_memo", {})
        if key not in memo:
            memo[key] = build(self)
        return memo[key]


def _names(seed: int, n: int, parts_a, parts_b, suffixes, tag: str) -> list[str]:
    rng = seeded_rng(seed, tag)
    pool = sorted({a + b for a in parts_a for b in parts_b})
    rng.shuffle(pool)
    out, seen = [], set()
    for i, base in enumerate(pool):
        if len(out) == n:
            break
        name = base + suffixes[seeded_rng(seed, tag, "suffix", i).randrange(len(suffixes))]
        if url_slug(name) not in seen:
            seen.add(url_slug(name))
            out.append(name)
    return out


def _model_name(r, words: list[str], used: set[str]) -> str:
    """A model name unique across the catalog: a word and a suffix (600 names), drawn until one is free; past
    64 draws (a catalog of more models than that space holds comfortably), the last draw numbered in series
    ("Tern GT 2", "Tern GT 3"), so that a catalog of 60 makes x 40 models is built and never loops forever."""
    for _ in range(64):
        name = words[r.randrange(len(words))] + _MODEL_SUFFIX[r.randrange(len(_MODEL_SUFFIX))]
        if name not in used:
            return name
    n = 2
    while f"{name} {n}" in used:
        n += 1
    return f"{name} {n}"


def _make_design(seed: int, i: int) -> dict:
    """A make's design language. Consecutive makes take distinct grilles/lamps/badges so makes stay apart."""
    rng = seeded_rng(seed, "make-design", i)
    k = seeded_rng(seed, "make-perm")  # a per-seed permutation of each vocabulary, indexed by make
    grilles, lamps, badges, stripes = list(GRILLE_SHAPES), list(LAMP_SHAPES), list(BADGE_SHAPES), list(STRIPES)
    for lst in (grilles, lamps, badges, stripes):
        k.shuffle(lst)
    # accents in palette order from a seed-chosen start: the first makes get the most distinct colours
    start = k.randrange(len(ACCENTS))
    accents = [(start + j) % len(ACCENTS) for j in range(len(ACCENTS))]
    return {
        "grille": grilles[i % len(grilles)],
        "lamp": lamps[i % len(lamps)],
        "badge": badges[i % len(badges)],
        "badge_color": ACCENTS[accents[i % len(accents)]],
        "stripe": stripes[i % len(stripes)],
        "arches": ARCHES[(i + rng.randrange(2)) % len(ARCHES)],
        "window_trim": WINDOW_TRIMS[i % 2],
        "screen": SCREENS[i % len(SCREENS)],
        "wheel_spokes": WHEEL_SPOKES[i % len(WHEEL_SPOKES)],
        "vents": VENTS[i % len(VENTS)],
        "quilt": QUILTS[(i + i // len(QUILTS)) % len(QUILTS)],
        "grille_scale": rng.uniform(0.85, 1.15),
    }


def _model_bodies(seed: int, make_index: int, n: int) -> list[str]:
    """Distinct bodies for the models of one make (repeating only past six, then with other proportions)."""
    rng = seeded_rng(seed, "bodies", make_index)
    bodies = list(BODY_TYPES)
    rng.shuffle(bodies)
    return [bodies[j % len(bodies)] for j in range(n)]


def _proportions(seed: int, make_index: int, j: int, body: str, repeat: int) -> dict:
    rng = seeded_rng(seed, "proportions", make_index, j)
    t = BODY[body]
    # a repeated body (7th+ model of a make) takes the other end of the ranges so it still looks different
    lo, hi = (0.0, 0.5) if repeat % 2 == 0 else (0.5, 1.0)

    def pick(a_b):
        a, b = a_b
        return a + (b - a) * rng.uniform(lo, hi)
    length = round(pick(t["length"]), 1)
    return {
        "length_in": length,
        "h_ratio": pick(t["h_ratio"]),
        "wheelbase": rng.uniform(0.58, 0.64),  # fraction of length
        "wheel_r": rng.uniform(0.095, 0.115) * (1.1 if body in ("suv", "pickup") else 1.0),
        "roof_len": rng.uniform(0.9, 1.1),  # stretches the cabin
        "nose": rng.uniform(0.9, 1.1),  # stretches the hood
        "width_in": round(rng.uniform(70.5, 80.0) if body in ("suv", "pickup", "van") else rng.uniform(69.5, 75.5), 1),
    }


# classic spec key -> the `values` fields it carries (None in `values` when the page omits the key or says N/A)
VALUE_FIELDS = {
    "MSRP": ("msrp_usd",), "Body Style": ("body_style",), "EPA Class": ("epa_class",),
    "Drivetrain": ("drivetrain",), "Engine Type": ("engine",), "Displacement": ("displacement_l",),
    "SAE Net Horsepower @ RPM": ("horsepower", "horsepower_rpm"), "Gas Mileage": ("mpg_city", "mpg_highway"),
    "Length, Overall (in)": ("length_in",), "Width, Max w/o mirrors (in)": ("width_in",),
    "Height, Overall (in)": ("height_in",), "Wheelbase (in)": ("wheelbase_in",),
    "Front Wheel Size (in)": ("wheel_size_in",), "Passenger Capacity": ("seats",), "Passenger Doors": ("doors",),
}


def _spec_strings(seed: int, model: Model, year: int, year_index: int, edition: int = 0) -> tuple[tuple, dict]:
    """The spec table as a real catalog writes it (messy, inconsistent, a few values missing or N/A), and the
    same facts as structured US-unit `values` (SITE.md): ((key, string), ...), {field: value or None}."""
    rng = seeded_rng(seed, "specs", model.make.index, model.index)  # per model: stable across its years
    ry = seeded_rng(seed, "specs-year", model.make.index, model.index, year)
    t, p = BODY[model.body], model.proportions
    electric = rng.random() < 0.15
    hybrid = not electric and rng.random() < 0.2
    msrp = int(rng.uniform(22, 68) * 1000 / 50) * 50
    msrp = int(msrp * (1.03 ** year_index) / 50) * 50  # a little dearer every year
    if edition:  # a later price list (ShowroomConfig.edition): 2 % dearer each; no other draw changes
        msrp = int(msrp * (1.02 ** edition) / 50) * 50
    if model.body == "pickup":
        msrp += 8000
    specs: list[tuple[str, str]] = []
    v: dict = {"msrp_usd": msrp}
    specs.append(("MSRP", rng.choice(["${:,}", "${:,}", "${:,}", "$ {:,}", "${:,}*"]).format(msrp)))
    v["body_style"] = t["style"] if not (model.body == "hatchback" and rng.random() < 0.5) else "4dr Car"
    specs.append(("Body Style", v["body_style"]))
    v["epa_class"] = rng.choice(t["epa"])
    specs.append(("EPA Class", v["epa_class"]))
    drive = rng.choice({"suv": ["All Wheel Drive", "Four Wheel Drive", "Front Wheel Drive"],
                        "pickup": ["Four Wheel Drive", "Rear Wheel Drive"],
                        "coupe": ["Rear Wheel Drive", "All Wheel Drive"]}.get(
        model.body, ["Front Wheel Drive", "All Wheel Drive", "Front Wheel Drive"]))
    v["drivetrain"] = drive
    specs.append(("Drivetrain", drive))
    if electric:
        hp, rpm = rng.choice([201, 255, 320, 402, 480]), None
        specs.append(("Engine Type", "Electric"))
        specs.append(("Displacement", "N/A"))
        specs.append(("SAE Net Horsepower @ RPM", f"{hp + 5 * year_index}"))
        e_city = rng.randint(98, 130)
        e_hwy = e_city - rng.randint(8, 20)
        specs.append(("Gas Mileage", f"{e_city} MPGe City/{e_hwy} MPGe Hwy"))
        v.update(engine="Electric", displacement_l=None, horsepower=hp + 5 * year_index, horsepower_rpm=None,
                 mpg_city=e_city, mpg_highway=e_hwy)
    else:
        cyl, disp = rng.choice([(4, 1.5), (4, 2.0), (4, 2.5), (6, 3.0), (6, 3.5), (8, 5.0), (8, 5.7)])
        if model.body == "pickup" and cyl == 4:
            cyl, disp = 6, 3.5
        layout = "I" if cyl <= 4 else "V"
        turbo = rng.random() < 0.5
        fuel = "Hybrid" if hybrid else rng.choice(["Gas", "Gas", "Gas", "Flex Fuel", "Gas/E85"])
        engine = f"{disp:.1f}L {layout}{cyl}{' Turbo' if turbo else ''} {fuel}"
        if rng.random() < 0.15:  # the same thing, written the other way round
            engine = f"{'Turbo ' if turbo else ''}Regular Unleaded {layout}-{cyl} {disp:.1f} L/{round(disp * 61.02)}"
        specs.append(("Engine Type", engine))
        specs.append(("Displacement", rng.choice(["{:.1f} L/{}", "{:.1f}L/{}", "{:.1f} L / {}"]).format(
            disp, round(disp * 61.02))))
        hp = int(disp * rng.uniform(55, 75) * (1.3 if turbo else 1.0)) + 3 * year_index
        rpm = rng.choice([5000, 5200, 5500, 5600, 6000, 6400])
        hp_fmt = rng.choice(["{} @ {}", "{} @ {}", "{} @ {:,}", "{}hp @ {} rpm"])
        specs.append(("SAE Net Horsepower @ RPM", hp_fmt.format(hp, rpm)))
        city = max(12, int(rng.uniform(*t["mpg"]) - (cyl - 4) * 1.5 + (8 if hybrid else 0)))
        hwy = city + rng.randint(4, 9)
        specs.append(("Gas Mileage", rng.choice(["{} mpg City/{} mpg Hwy", "{} mpg City/{} mpg Hwy",
                                                 "{}/{} mpg", "{} City / {} Hwy"]).format(city, hwy)))
        v.update(engine=engine, displacement_l=disp, horsepower=hp, horsepower_rpm=rpm, mpg_city=city,
                 mpg_highway=hwy)
    length = p["length_in"] + (0.4 if year_index % 2 else 0.0) * ry.random()
    height = length * p["h_ratio"] * 0.95
    dims = {"length_in": f"{length:.1f}", "width_in": f"{p['width_in']:.1f}", "height_in": f"{height:.1f}",
            "wheelbase_in": f"{length * p['wheelbase']:.1f}"}
    specs.append(("Length, Overall (in)", dims["length_in"]))
    specs.append(("Width, Max w/o mirrors (in)", dims["width_in"]))
    specs.append(("Height, Overall (in)", dims["height_in"]))
    specs.append(("Wheelbase (in)", dims["wheelbase_in"]))
    v.update({k: float(s) for k, s in dims.items()})
    wheel_in = int(round(15 + p["wheel_r"] * 40 + (year_index % 2)))
    specs.append(("Front Wheel Size (in)", rng.choice(["{} x {}", "{} x {}", "{} X {}", "{}\" x {}\""]).format(
        wheel_in, rng.choice(["7.0", "7.5", "8", "8.5", "9.0"]))))
    v["wheel_size_in"] = wheel_in
    v["seats"] = rng.choice(t["seats"])
    specs.append(("Passenger Capacity", str(v["seats"])))
    v["doors"] = rng.choice(t["doors"])
    specs.append(("Passenger Doors", str(v["doors"])))
    # a few values missing or N/A, decided per model-year (real catalogs are patchy year to year)
    out = []
    for key, value in specs:
        u = ry.random()
        if key in ("MSRP",):
            out.append((key, value))
        elif u < 0.04:
            continue  # not on the page at all
        elif u < 0.08:
            out.append((key, "N/A"))
        else:
            out.append((key, value))
    shown = {k for k, s in out if s != "N/A"}
    values = {f: (v[f] if key in shown else None) for key, fields in VALUE_FIELDS.items() for f in fields}
    values["electric"] = electric
    return tuple(out), values


def _photo_id(seed: int, model_id: str, view: str, index: int) -> str:
    return hashlib.sha256(f"{seed}|{model_id}|{view}|{index}".encode()).hexdigest()[:12]


def _others(seed: int, mid: str, config: ShowroomConfig, n_cars: int) -> list[tuple[int, Photo]]:
    """A model-year's non-car images as (index in its photo list, Photo), to be inserted in order. Subjects
    go round a per-model-year shuffle of NON_CAR_SUBJECTS (distinct until all are used); each image's tab,
    flags and place come from its own id, and the car photos keep their ids, flags and relative order."""
    subjects = list(NON_CAR_SUBJECTS)
    seeded_rng(seed, "other-subjects", mid).shuffle(subjects)
    out = []
    for k in range(config.others):
        pid = _photo_id(seed, mid, "other", k)
        r = seeded_rng(seed, "other", pid)
        view = "interior" if r.random() < OTHER_INTERIOR else "exterior"
        at = r.randint(0, n_cars + k)  # anywhere among the photos listed so far, the end included
        pr = seeded_rng(seed, "photo-flags", pid)
        subject = subjects[k % len(subjects)]
        out.append((at, Photo(pid, mid, view, k, subject, dup=pr.random() < config.faults.dup,
                              corrupt=pr.random() < config.faults.corrupt, subject=subject)))
    return out


def _own_generation(model: Model, year: int, yi: int) -> dict:
    """Without `generations`, every model-year is a generation and a look of its own."""
    return {"index": yi, "name": f"G{yi + 1}", "phase": "early", "years": [year, year],
            "look": f"{model.make.slug}/{model.slug}/{year}"}


def build_catalog(config: ShowroomConfig) -> Catalog:
    """The whole catalog for a config (cached: the same config object gives the same Catalog)."""
    return _build_catalog(config)


@lru_cache(maxsize=8)
def _build_catalog(config: ShowroomConfig) -> Catalog:
    seed = config.seed
    make_names = _names(seed, config.makes, _MAKE_A, _MAKE_B, _MAKE_SUFFIX, "make-names")
    makes = [Make(i, name, url_slug(name), _make_design(seed, i)) for i, name in enumerate(make_names)]
    words = list(_MODEL_WORDS)
    seeded_rng(seed, "model-names").shuffle(words)
    models: list[Model] = []
    used: set[str] = set()
    for make in makes:
        bodies = _model_bodies(seed, make.index, config.models_per_make)
        for j in range(config.models_per_make):
            name = _model_name(seeded_rng(seed, "model-name", make.index, j), words, used)
            used.add(name)
            body = bodies[j]
            models.append(Model(make, j, name, url_slug(name), body,
                                _proportions(seed, make.index, j, body, j // len(BODY_TYPES))))
    models, donors = twin_models(config, models)  # a twin: its donor's body and proportions under its own badge
    looks = model_years_looks(config, models, donors)
    all_ids = [model_id_for(y, m.make.name, m.name) for m in models for y in config.year_list]
    # exactly round(fraction * n) mixed galleries (at least one when there are several), picked by hash, so
    # that even a tiny showroom has both layouts
    n_mixed = round(config.mixed_fraction * len(all_ids))
    if config.mixed_fraction > 0 and len(all_ids) > 1:
        n_mixed = max(1, n_mixed)
    mixed = set(sorted(all_ids, key=lambda i: seeded_rng(seed, "layout", i).random())[:n_mixed])
    model_years, photos = [], {}
    for model in models:
        for yi, year in enumerate(config.year_list):
            mid = model_id_for(year, model.make.name, model.name)
            layout = "mixed" if mid in mixed else "tabs"
            plist = []
            for view, n in (("exterior", config.photos), ("interior", config.interiors)):
                for k in range(n):
                    pid = _photo_id(seed, mid, view, k)
                    pr = seeded_rng(seed, "photo-flags", pid)
                    pose = (EXTERIOR_VIEWS[k % 3] if view == "exterior" else ("dash", "seats", "console")[k % 3])
                    ph = plan_photo(config, Photo(pid, mid, view, k, pose, dup=pr.random() < config.faults.dup,
                                                  corrupt=pr.random() < config.faults.corrupt))
                    plist.append(ph)
                    photos[pid] = ph
            for at, ph in _others(seed, mid, config, len(plist)):
                plist.insert(at, ph)
                photos[ph.id] = ph
            specs, values = _spec_strings(seed, model, year, yi, config.edition)
            facelift, generation, shape = looks.get((model.make.index, model.index, yi)) or (
                yearly_look(seed, model.make.index, model.index, yi), None, {})
            model_years.append(ModelYear(model, year, mid, facelift, specs, layout, tuple(plist), values,
                                         generation or _own_generation(model, year, yi),
                                         twin_slug(donors, model), shape))
    return Catalog(config, makes, models, model_years, photos)
