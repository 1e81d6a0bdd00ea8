"""The showroom's configuration: catalog size, seed, faults, markup layout. Pure Python, cheap to import.

    python -c "from carscope.showroom.config import ShowroomConfig; print(ShowroomConfig(makes=2))"

`ShowroomConfig` is what `create_app(config)`, `serve_in_thread(config)` and `build_catalog(config)` take.
Parsing helpers raise `CarscopeError` with a one-line reason, so the CLI turns bad input into exit 2.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from carscope.common.errors import CarscopeError

# Transient faults are drawn per (URL, attempt); permanent ones (corrupt, dup) per photo, in the catalog.
TRANSIENT_FAULTS = ("5xx", "429", "slow", "truncate", "redirect", "soft")
PERMANENT_FAULTS = ("corrupt", "dup")
FAULT_NAMES = TRANSIENT_FAULTS + PERMANENT_FAULTS
DEFAULT_DUP = 0.1  # some photos are always mirrored under /cdn/ (as real CDNs do), unless `dup=0` is given
MAX_FAULTY_ATTEMPTS = 2  # a URL faults on at most its first 2 attempts: 3 tries always get through

LAYOUTS = ("classic", "dl", "jsonld", "spa")  # markup families (SITE.md); the catalog is the same in all
LANGUAGES = ("en", "de", "fr")  # the classic spec pages' languages (carscope/showroom/language.py)
WIDTHS = (320, 640)  # the two srcset sizes; the 320 photo is the 640 one downscaled
HEIGHTS = {320: 240, 640: 480}
# bump when the drawing changes (draw.py, car.py, views.py, interior.py, non_car.py, closeups.py, conditions.py,
# render.py): it seeds every photo's draws
# and keys the disk cache (catalog_key). Here, not beside the drawing, so the config reads it without drawing.
RENDER_VERSION = 4

# Realism options (SITE.md "Realism options"): all off by default, and then nothing changes (no photo byte, no
# page, no catalog_key, no truth config entry). REALISTIC is the preset `--realistic` and benchmarks use:
# write_dataset(root, **REALISTIC).
VIEW_SETS = ("classic", "all")  # classic: side/front34/rear34 in turn; all: front, rear, front34, rear34, side
REALISM_DEFAULTS = {"generations": 0, "twins": 0.0, "views": "classic", "closeups": 0.0, "conditions": 0.0}
REALISTIC = dict(generations=4, twins=0.2, views="all", closeups=0.15, conditions=0.35)


@dataclass(frozen=True)
class Faults:
    """Fault rates in [0, 1]. Transient rates are exclusive events, so their sum must stay <= 1."""

    r5xx: float = 0.0
    r429: float = 0.0
    slow: float = 0.0
    truncate: float = 0.0
    redirect: float = 0.0
    soft: float = 0.0  # a "maintenance" HTML page with status 200 instead of an HTML page's content
    corrupt: float = 0.0
    dup: float = DEFAULT_DUP

    @property
    def transient_total(self) -> float:
        return self.r5xx + self.r429 + self.slow + self.truncate + self.redirect + self.soft

    def rate(self, name: str) -> float:
        return getattr(self, _ATTR[name])

    def spec(self) -> str:
        """The canonical `--faults` spelling of these rates (non-default entries only)."""
        parts = [f"{n}={self.rate(n):g}" for n in FAULT_NAMES
                 if self.rate(n) != (DEFAULT_DUP if n == "dup" else 0.0)]
        return ",".join(parts)


_ATTR = {"5xx": "r5xx", "429": "r429", "slow": "slow", "truncate": "truncate", "redirect": "redirect",
         "soft": "soft", "corrupt": "corrupt", "dup": "dup"}


def parse_faults(spec: str | None) -> Faults:
    """`"5xx=0.05,429=0.03"` -> Faults. Empty or None -> no transient faults (and the default dup rate)."""
    values: dict[str, float] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip().lower()
        if not sep:
            raise CarscopeError(f"bad --faults entry '{part}': expected name=rate, e.g. 5xx=0.05")
        if name not in _ATTR:
            raise CarscopeError(f"unknown fault '{name}' in --faults (known: {', '.join(FAULT_NAMES)})")
        if name in values:
            raise CarscopeError(f"fault '{name}' is given twice in --faults")
        try:
            rate = float(raw)
        except ValueError:
            raise CarscopeError(f"bad rate '{raw.strip()}' for fault '{name}': expected a number in [0, 1]") from None
        if not 0.0 <= rate <= 1.0:  # also rejects nan
            raise CarscopeError(f"rate {raw.strip()} for fault '{name}' is outside [0, 1]")
        values[name] = rate
    faults = Faults(**{_ATTR[k]: v for k, v in values.items()})
    if faults.transient_total > 1.0 + 1e-9:
        raise CarscopeError(f"transient fault rates ({', '.join(TRANSIENT_FAULTS)}) add up to "
                            f"{faults.transient_total:g}, more than 1")
    return faults


def parse_years(text: str | tuple[int, int]) -> tuple[int, int]:
    """`"2022-2023"` or `"2023"` -> (first, last), with 1950 <= first <= last <= 2100."""
    if isinstance(text, tuple):
        first, last = text
    else:
        s = str(text).strip()
        a, sep, b = s.partition("-")
        try:
            first = int(a)
            last = int(b) if sep else first
        except ValueError:
            raise CarscopeError(f"bad --years '{s}': expected A-B, e.g. 2022-2023") from None
    if not 1950 <= first <= 2100 or not 1950 <= last <= 2100:
        raise CarscopeError(f"--years {first}-{last} is outside 1950-2100")
    if first > last:
        raise CarscopeError(f"--years {first}-{last} runs backwards: the first year must not be after the last")
    if last - first >= 30:
        raise CarscopeError(f"--years {first}-{last} spans more than 30 years")
    return int(first), int(last)


@dataclass(frozen=True)
class ShowroomConfig:
    """Everything that decides what the site serves. Same config, same bytes."""

    makes: int = 6
    models_per_make: int = 4
    years: tuple[int, int] = (2022, 2023)
    photos: int = 24  # exterior photos per model-year; interiors are about a third of that
    others: int = 2  # non-car images (logos, banners, maps, ...: catalog.NON_CAR_SUBJECTS) per model-year gallery
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    crawl_delay: float = 0.0  # announced in robots.txt, not enforced
    slow_s: float = 0.5  # how long a `slow` fault delays a response
    retry_after_s: int = 1  # what a 429 asks the client to wait
    mixed_fraction: float = 0.2  # galleries shown as one mixed, unlabelled list instead of tabs
    per_page: int = 8  # models per make page
    cache_dir: str | None = None  # rendered photos are also kept here (keyed by catalog_key)
    cache_mb: int = 256  # in-memory LRU of rendered photo bytes
    render_threads: int = 0  # 0: os.cpu_count()
    layout: str = "classic"  # which markup family serves the catalog (LAYOUTS); not part of catalog_key
    generations: int = 0  # 0: every model-year its own look; N: looks shared by the years of an N-year generation
    twins: float = 0.0  # share of models that are badge-engineered twins of another make's model
    views: str = "classic"  # exterior poses: VIEW_SETS
    closeups: float = 0.0  # share of car photos that are close-ups of a part (wheel, lamp, grille, screen, ...)
    conditions: float = 0.0  # share of full exterior photos framed cut/small or under clutter/night/rain/blur/jpeg
    language: str = "en"  # the classic spec pages' language (LANGUAGES; language.py); not part of catalog_key
    # pages and JSON carry ETag / Last-Modified and answer conditional requests with 304, photos ask to be
    # revalidated (no-cache), the sitemap gives lastmod (SITE.md "Revalidation"); off: no byte or header changes
    revalidate: bool = False
    edition: int = 0  # a later edition of the catalog: every MSRP 2 % dearer per edition; photos unchanged

    def __post_init__(self):
        if isinstance(self.faults, str):  # allow ShowroomConfig(faults="5xx=0.1")
            object.__setattr__(self, "faults", parse_faults(self.faults))
        if not isinstance(self.years, tuple):
            object.__setattr__(self, "years", parse_years(self.years))
        self.validate()

    def validate(self) -> None:
        parse_years(self.years)
        checks = [
            (1 <= self.makes <= 60, f"--makes must be in 1..60, not {self.makes}"),
            (1 <= self.models_per_make <= 40, f"--models-per-make must be in 1..40, not {self.models_per_make}"),
            (1 <= self.photos <= 500, f"--photos must be in 1..500, not {self.photos}"),
            (0 <= self.others <= 20, f"--others must be in 0..20, not {self.others}"),
            (self.crawl_delay >= 0, "--crawl-delay must not be negative"),
            (0 <= self.slow_s <= 60, "--slow-s must be in 0..60 seconds"),
            (0 <= self.retry_after_s <= 3600, "retry_after_s must be in 0..3600"),
            (0 <= self.mixed_fraction <= 1, "mixed_fraction must be in [0, 1]"),
            (self.per_page >= 1, "per_page must be at least 1"),
            (self.cache_mb >= 0, "cache_mb must not be negative"),
            (self.render_threads >= 0, "render_threads must not be negative"),
            (self.layout in LAYOUTS, f"--layout must be one of {', '.join(LAYOUTS)}, not '{self.layout}'"),
            (isinstance(self.generations, int) and not isinstance(self.generations, bool) and 0 <= self.generations <= 30,
             f"--generations must be an integer in 0..30, not {self.generations!r}"),
            (_share(self.twins), f"--twins must be a number in [0, 1], not {self.twins!r}"),
            (self.views in VIEW_SETS, f"--views must be one of {', '.join(VIEW_SETS)}, not {self.views!r}"),
            (_share(self.closeups), f"--closeups must be a number in [0, 1], not {self.closeups!r}"),
            (_share(self.conditions), f"--conditions must be a number in [0, 1], not {self.conditions!r}"),
            (self.language in LANGUAGES, f"--language must be one of {', '.join(LANGUAGES)}, not {self.language!r}"),
            (self.language == "en" or self.layout == "classic",
             f"--language {self.language} is served by the classic layout only, not --layout {self.layout}"),
            (isinstance(self.revalidate, bool), f"revalidate must be true or false, not {self.revalidate!r}"),
            (isinstance(self.edition, int) and not isinstance(self.edition, bool) and 0 <= self.edition <= 100,
             f"--edition must be an integer in 0..100, not {self.edition!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise CarscopeError(msg)

    @property
    def year_list(self) -> list[int]:
        return list(range(self.years[0], self.years[1] + 1))

    @property
    def interiors(self) -> int:
        return max(1, round(self.photos / 3))

    def with_(self, **changes) -> ShowroomConfig:
        return replace(self, **changes)

    def catalog_key(self) -> str:
        """Hash of everything the catalog and the photo bytes depend on (the disk cache's folder name)."""
        d = {"makes": self.makes, "mpm": self.models_per_make, "years": list(self.years), "photos": self.photos,
             "others": self.others, "seed": self.seed, "corrupt": self.faults.corrupt, "dup": self.faults.dup,
             "mixed": self.mixed_fraction, "render": RENDER_VERSION}
        d.update(self.realism())  # only the options not at their defaults: older keys stay what they were
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def realism(self) -> dict:
        """The realism options that are not at their defaults (REALISM_DEFAULTS)."""
        return {k: getattr(self, k) for k, v in REALISM_DEFAULTS.items() if getattr(self, k) != v}

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in REALISM_DEFAULTS.keys() - self.realism().keys():  # as catalog_key: absent at their defaults
            del d[k]
        for k in ("revalidate", "edition"):  # absent at their defaults, as the realism options
            if not d[k]:
                del d[k]
        if self.language == "en":  # absent at its default, so the default truth stays what it was
            del d["language"]
        d["faults"] = self.faults.spec()
        d["years"] = f"{self.years[0]}-{self.years[1]}"
        return d


def _share(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and 0.0 <= x <= 1.0  # also rejects nan
