r"""Model-year identity: which model-year a page is about, from the first source that names each part.

    python -c "
    from carscope.crawler.extract.document import Document; from carscope.crawler.extract.fields import FieldRule
    from carscope.crawler.extract.identity import IdentityRules, resolve
    import re; doc = Document.from_html('http://h/v/7', '<h1>2023 · Acme Motors · Road Star</h1>')
    rules = IdentityRules(title=FieldRule(css='h1', re=re.compile(r'(?P<year>\d{4}) · (?P<make>.+?) · (?P<model>.+)')))
    print(resolve(doc, {}, rules))"

Each of `year`, `make` and `model` is taken from the first of these that gives it:
1. the page type's URL pattern (named groups `year`, `make`, `model` of `match`);
2. the fields `year`, `make`, `model` (field rules, in `[pages.<type>.model_year]` or, as older adapters
   write them, in `[pages.<type>.specs]`);
3. `title`: a field rule whose regex has named groups `year`, `make`, `model` ("2023 · Vexa · Delta1");
4. the page's schema.org vehicle, JSON-LD then microdata (`brand.name`, `model`, `vehicleModelDate`),
   unless `structured = false`;
5. with `inherit = true`, the model-year of the page whose link led here (a gallery or a "more photos"
   fragment that does not name its car itself).
The `model_id` (e.g. `2023_acme_motors_road_star`) is made from the three parts; the names kept for the
dataset's `make` / `model` columns prefer page text over URL slugs. A page that names no complete model-year
gets no id: its photos are counted as `no_model_year`, never stored with an empty label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carscope.crawler.extract.fields import FieldRule

PARTS = ("year", "make", "model")


@dataclass
class IdentityRules:
    year: FieldRule | None = None
    make: FieldRule | None = None
    model: FieldRule | None = None
    title: FieldRule | None = None
    structured: bool = True
    inherit: bool = False

    def is_empty(self) -> bool:
        return not any((self.year, self.make, self.model, self.title))


@dataclass
class Identity:
    model_id: str | None
    year: int | None = None
    make: str | None = None
    model: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # part -> where it came from (url, field, title, jsonld)


def resolve(doc, groups: dict, rules: IdentityRules | None, inherited: dict | None = None) -> Identity:
    """`inherited`: year / make / model of the page that linked here (used with `inherit = true`)."""
    from carscope.crawler.dataset import make_model_id
    from carscope.crawler.extract.structured import identity as vehicle_identity
    from carscope.crawler.extract.structured import vehicles

    rules = rules or IdentityRules()
    found: dict[str, tuple[str, str]] = {}  # part -> (value, source)
    display: dict[str, str] = {}

    def offer(part: str, value, source: str) -> None:
        value = " ".join(str(value).split()) if value is not None else ""  # names: any space is a space
        if not value:
            return
        if part not in found:
            found[part] = (value, source)
        if source != "url" and part not in display:
            display[part] = value

    for part in PARTS:
        offer(part, groups.get(part), "url")
    for part in PARTS:
        rule = getattr(rules, part)
        if rule is not None and (doc.sel is not None or rule.json is not None):
            offer(part, rule.first(doc), "field")
    if rules.title is not None and (doc.sel is not None or rules.title.json is not None):
        for part, value in rules.title.groups(doc).items():
            if part in PARTS:
                offer(part, value, "title")
    if rules.structured and not found.keys() >= set(PARTS):  # only when a part is missing: extruct costs
        for syntax, name in (("json-ld", "jsonld"), ("microdata", "microdata")):
            items = vehicles(doc.structured(syntax), microdata=syntax == "microdata")
            if items:
                for part, value in vehicle_identity(items[0]).items():
                    offer(part, value, name)
                break
    if rules.inherit and inherited:
        for part in PARTS:
            if part in inherited:
                offer(part, inherited[part], "referrer")
    ident = Identity(model_id=None, sources={p: s for p, (_, s) in found.items()})
    year_text = found.get("year", (None,))[0]
    try:
        ident.year = int(str(year_text).strip()[:4]) if year_text else None
    except ValueError:
        ident.year = None
    ident.make = display.get("make") or found.get("make", (None,))[0]
    ident.model = display.get("model") or found.get("model", (None,))[0]
    if ident.year is not None and ident.make and ident.model:
        try:
            ident.model_id = make_model_id(ident.year, found["make"][0], found["model"][0])
        except ValueError:
            ident.model_id = None
    return ident
