"""Class names -> model-years: what `carscope dataset import --label-pattern` does with a folder name or a label.

    python -c "from carscope.crawler.labels import LabelParser; p = LabelParser('auto'); \
print(p.parse('AM General Hummer SUV 2000'), p.parse('2023_acme_roadster'))"

A pattern is a regex with named groups `year`, `make` and `model` (any of them), searched in the label:

- `auto` (the default) tries the two spellings catalogs and public sets use, year first ("2023_acme_roadster",
  "2023 Acme Road Star") and year last ("AM General Hummer SUV 2000", Stanford Cars' class names), with the
  multi-word makes in `MULTIWORD_MAKES` kept whole. A label neither matches is kept as a class without a year;
- `none` keeps every label as a class without a year;
- any other regex: a label it does not match is a failure (`label_unparsed`), never a guess.

A label with a year becomes `2023_acme_roadster` (crawler.dataset.make_model_id), exactly as a crawl names it;
one without a year becomes the slug of its make and model, or of the label itself ("acme_roadster"), and
trains as a plain class (see `carscope train model --help`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from carscope.common.errors import CarscopeError
from carscope.crawler.dataset import make_model_id, slugify

GROUPS = ("year", "make", "model")
MIN_YEAR, MAX_YEAR = 1885, 2100
# makes of more than one word, as public sets spell them (Stanford Cars: AM General, Aston Martin, Land Rover)
MULTIWORD_MAKES = ("AM General", "Alfa Romeo", "Aston Martin", "De Tomaso", "Great Wall", "Land Rover",
                   "Lynk & Co", "Mercedes Benz", "Rolls Royce", "Range Rover")
_MAKES = "|".join(re.escape(m).replace(r"\ ", r"[ _]") for m in MULTIWORD_MAKES)
_YEAR = r"(?P<year>(?:18|19|20)\d{2})"
AUTO_PATTERNS = (
    re.compile(rf"^\s*{_YEAR}[ _/-]+(?P<make>{_MAKES}|[^ _/]+?)[ _/-]+(?P<model>.+?)\s*$", re.I),
    re.compile(rf"^\s*(?P<make>{_MAKES}|[^ _/]+)[ _/]+(?P<model>.+?)[ _/-]+{_YEAR}\s*$", re.I),
)


@dataclass(frozen=True)
class Identity:
    model_id: str
    make: str | None
    model: str | None
    year: int | None
    label: str


class LabelParser:
    def __init__(self, pattern: str = "auto"):
        self.pattern = pattern
        if pattern in ("auto", "none"):
            self.regex = None
            return
        try:
            self.regex = re.compile(pattern)
        except re.error as exc:
            raise CarscopeError(f"--label-pattern {pattern!r} is not a valid regex: {exc}") from None
        names = set(self.regex.groupindex)
        unknown = sorted(names - set(GROUPS))
        if unknown:
            raise CarscopeError(f"--label-pattern names group(s) {', '.join(unknown)}; the groups it may name are "
                                f"year, make and model")
        if not names:
            raise CarscopeError("--label-pattern names no group: give (?P<year>...), (?P<make>...) and/or "
                                "(?P<model>...)")

    @property
    def strict(self) -> bool:
        """True for a user's regex: a label it cannot parse is a failure, not a plain class."""
        return self.regex is not None

    def parse(self, label: str | None, *, make: str | None = None, model: str | None = None,
              year: str | None = None) -> Identity | str:
        """The label's (or the make / model / year columns') model-year; a reason code (str) when it has none."""
        label = (label or "").strip()
        if make or model or year:  # columns say it outright: the label is only what the row calls it
            return self._identity(label or " ".join(filter(None, [year, make, model])), make, model, year)
        if not label:
            return "no_label"
        if self.pattern == "none":
            return self._identity(label, None, None, None)
        regexes = AUTO_PATTERNS if self.regex is None else (self.regex,)
        for rx in regexes:
            m = rx.search(label)
            if m:
                g = m.groupdict()
                got = self._identity(label, _clean(g.get("make")), _clean(g.get("model")), g.get("year"))
                if isinstance(got, Identity) or self.strict:
                    return got
        if self.strict:
            return "label_unparsed"
        return self._identity(label, None, None, None)

    def _identity(self, label: str, make: str | None, model: str | None, year: str | None) -> Identity | str:
        y = None
        if year is not None and str(year).strip():
            try:
                y = int(float(str(year).strip()))
            except ValueError:
                return "bad_year"
            if not MIN_YEAR <= y <= MAX_YEAR:
                return "bad_year"
        if y is not None and make and model:
            model_id = make_model_id(y, make, model)
        elif make or model:
            model_id = "_".join(filter(None, [str(y) if y else None, slugify(make or ""), slugify(model or "")]))
        else:
            model_id = slugify(label)
        if not model_id or (y is not None and model_id == str(y)):
            return "label_unparsed"
        return Identity(model_id, make, model, y, label)


def _clean(text: str | None) -> str | None:
    """A matched make / model: underscores back to spaces, the spacing tidied."""
    if text is None:
        return None
    text = " ".join(text.replace("_", " ").split())
    return text or None
