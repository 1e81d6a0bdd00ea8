"""An adapter's own spec vocabulary: `[specs.keys]`, `[specs.values.<fuel|body|drivetrain>]` and `[site] currency`.

    python -c "from carscope.crawler.spec_map import SpecMapping; m = SpecMapping(keys={'ps-zahl': 'horsepower'}, values={'fuel': {'super e10': 'gasoline'}}, currency='EUR'); print(m.apply([('PS-Zahl', '150 PS'), ('Sprit', 'Super E10'), ('Kraftstoff', 'Super E10'), ('Preis', '29.990')]))"

The built-in vocabulary (carscope/crawler/aliases.py) already knows the common keys and words of English, German,
French, Spanish and Italian catalogs; this is for the words only one site uses. It is applied to the pairs a page
gave before cleaning, so `specs_raw.parquet` keeps the page's own keys and values and `specs.parquet` gets the
mapped ones (a `specs` hook, if any, receives the mapped pairs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from carscope.crawler.aliases import CANONICAL, canon_key, norm_key, split_unit

# `[specs.keys]` targets besides the canonical names: the specs.parquet columns they fill
TARGETS = {**{c: c for c in CANONICAL}, "msrp_usd": "msrp", "displacement_l": "displacement",
           "mpg": "mileage", "mpg_city": "mileage_city", "mpg_highway": "mileage_highway",
           "mpg_combined": "mileage_combined", "length": "length_in", "width": "width_in", "height": "height_in",
           "wheelbase": "wheelbase_in", "wheel_size": "wheel_size_in", "body": "body_style"}
# `[specs.values.<name>]` -> the canonical keys whose values it rewrites (fuel words also sit in engine texts)
VALUE_KEYS = {"fuel": ("fuel", "engine", "engine_type"), "body": ("body_style",), "drivetrain": ("drivetrain",)}


@dataclass
class SpecMapping:
    keys: dict[str, str] = field(default_factory=dict)  # normalised page key -> canonical name
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # fuel/body/drivetrain -> {word: replacement}
    currency: str | None = None  # ISO 4217: the currency of a price written without one

    def __bool__(self) -> bool:
        return bool(self.keys or self.values or self.currency)

    def apply(self, rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The pairs renamed and re-worded as the adapter says, plus a `price_currency` pair when the site has a
        default currency and the page names none."""
        out, canons = [], set()
        for key, value in rows:
            base, unit = split_unit(norm_key(key))
            target = self.keys.get(norm_key(key)) or self.keys.get(base)
            if target is not None:
                key = target if self.keys.get(norm_key(key)) or unit is None else f"{target} ({unit})"
            canon, _ = canon_key(key, self.keys)
            canons.add(canon)
            for name, words in self.values.items():
                if canon in VALUE_KEYS[name]:
                    value = _reword(value, words)
            out.append((key, value))
        if self.currency and canons & {"price", "msrp"} and "price_currency" not in canons:
            out.append(("price_currency", self.currency))
        return out

    @classmethod
    def build(cls, specs: dict, currency: str | None, ck, tname: str = "specs") -> SpecMapping:
        """From the adapter's `[specs]` table and `[site] currency`; a bad entry fails with file:line: field."""
        ck.known(specs, tname, {"keys", "values"})
        keys = {}
        if "keys" in specs:
            for page_key, target in ck.table(specs, tname, "keys").items():
                if not isinstance(target, str) or target.strip().lower() not in TARGETS:
                    ck.fail(f"{tname}.keys", page_key, f"unknown spec name {target!r} (known: "
                                                       f"{', '.join(sorted(TARGETS))})")
                keys[norm_key(page_key)] = TARGETS[target.strip().lower()]
        values = {}
        if "values" in specs:
            vt = ck.table(specs, tname, "values")
            for name in vt:
                if name not in VALUE_KEYS:
                    ck.fail(f"{tname}.values.{name}", None, f"unknown value table (known: {', '.join(VALUE_KEYS)})")
                words = ck.table(vt, f"{tname}.values", name)
                for word, repl in words.items():
                    if not isinstance(repl, str) or not repl.strip() or not word.strip():
                        ck.fail(f"{tname}.values.{name}", word, f"expected a non-empty word, got {repl!r}")
                values[name] = {" ".join(w.lower().split()): r.strip() for w, r in words.items()}
        if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
            ck.fail("site", "currency", f"expected an ISO 4217 code such as \"EUR\", got {currency!r}")
        return cls(keys=keys, values=values, currency=currency)


def _reword(value: str, words: dict[str, str]) -> str:
    """The whole value when it is one of `words` ("Benzin"), else each of them as a whole word inside it
    ("Benzin, Turbo" -> "gasoline, Turbo"), longest first; case-insensitive."""
    whole = words.get(" ".join(value.lower().split()))
    if whole is not None:
        return whole
    for word in sorted(words, key=len, reverse=True):
        value = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", lambda _m, w=word: words[w], value, flags=re.IGNORECASE)
    return value
