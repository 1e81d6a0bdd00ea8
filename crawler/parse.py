"""Parsing, separate from fetching: HTML in, links / spec rows / photo references out, by the adapter's rules.

    python -c "
    from crawler.adapter import load_adapter; from crawler.parse import parse_page
    a = load_adapter('showroom'); pt, g = a.classify('/')
    print(parse_page(a, pt, g, 'http://h/', '<ul class=makes><li><a class=make-link href=/make/acme>A</a></ul>').links)"

One function per job; each takes an lxml tree so a browser-rendered page and a plain HTTP page are parsed
the same way. Pure functions of their input (no I/O), tested on in-memory HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.adapter import Adapter, PageType, PhotoRules, SpecRules, normalize_view
from crawler.dataset import make_model_id
from crawler.urls import canonicalize, largest_from_srcset

SRCSET_ATTRS = ("srcset", "data-srcset", "srcset-data")


@dataclass
class Specs:
    model_id: str
    make: str | None
    model: str | None
    year: int | None
    rows: list[tuple[str, str]]  # (key, value) exactly as on the page, in page order


@dataclass
class Photo:
    url: str
    view_hint: str  # exterior / interior / unknown


@dataclass
class Page:
    """What a handler sees: the page, its type, the URL pattern's groups and the parsed tree."""

    url: str
    page_type: PageType
    groups: dict[str, str]
    html: str
    tree: object = None  # lxml.html.HtmlElement, or None for an empty document

    @property
    def base_url(self) -> str:
        if self.tree is not None:
            base = self.tree.xpath("//base/@href")
            if base:
                return canonicalize(base[0], self.url) or self.url
        return self.url


@dataclass
class Parsed:
    links: list[tuple[str, str]] = field(default_factory=list)  # (canonical url, page type)
    ignored_links: list[str] = field(default_factory=list)  # canonical URLs that match no page type
    specs: Specs | None = None
    photos: list[Photo] = field(default_factory=list)


def parse_tree(html: str | bytes):
    import lxml.etree
    import lxml.html

    if not html or not (html.strip() if isinstance(html, str) else html.strip()):
        return None
    try:
        return lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return None


def make_page(adapter: Adapter, page_type: PageType, groups: dict, url: str, html: str | bytes) -> Page:
    if isinstance(html, bytes):
        html = html.decode("utf-8", errors="replace")
    return Page(url=url, page_type=page_type, groups=groups, html=html, tree=parse_tree(html))


def parse_page(adapter: Adapter, page_type: PageType, groups: dict, url: str, html: str | bytes) -> Parsed:
    page = make_page(adapter, page_type, groups, url, html)
    out = Parsed()
    if page.tree is None:
        return out
    out.links, out.ignored_links = extract_links(adapter, page)
    if page_type.specs is not None:
        out.specs = extract_specs(page_type.specs, page)
    if page_type.photos is not None:
        out.photos = extract_photos(page_type.photos, page)
    return out


def _select(node, selector: str) -> list:
    return node.cssselect(selector)


def _text(node) -> str:
    return " ".join(node.text_content().split())


def extract_links(adapter: Adapter, page: Page) -> tuple[list[tuple[str, str]], list[str]]:
    from crawler.urls import path_and_query

    seen, links, ignored = set(), [], []
    base = page.base_url
    for selector in page.page_type.links:
        for el in _select(page.tree, selector):
            href = el.get("href")
            url = canonicalize(href, base) if href else None
            if url is None or url in seen:
                continue
            seen.add(url)
            hit = adapter.classify(path_and_query(url))
            if hit is None:
                ignored.append(url)
            else:
                links.append((url, hit[0].name))
    return links, ignored


def _first_text(tree, selector: str | None) -> str | None:
    if not selector:
        return None
    found = _select(tree, selector)
    text = _text(found[0]) if found else ""
    return text or None


def extract_specs(rules: SpecRules, page: Page) -> Specs | None:
    rows: list[tuple[str, str]] = []
    for row in _select(page.tree, rules.row):
        keys, values = _select(row, rules.key), _select(row, rules.value)
        if not keys:
            continue
        key = _text(keys[0])
        if key:
            rows.append((key, _text(values[0]) if values else ""))
    make = _first_text(page.tree, rules.make)
    model = _first_text(page.tree, rules.model)
    year_text = _first_text(page.tree, rules.year) or page.groups.get("year")
    msrp = _first_text(page.tree, rules.msrp)
    if msrp and not any(k.strip().lower() == "msrp" for k, _ in rows):
        rows.insert(0, ("MSRP", msrp))  # the price sits outside the table on many catalogs
    try:
        year = int(str(year_text).strip()[:4]) if year_text else None
    except ValueError:
        year = None
    g = page.groups
    if {"year", "make", "model"} <= g.keys():  # the URL is the one identity photo pages share
        model_id = make_model_id(g["year"], g["make"], g["model"])
    elif make and model and year:
        model_id = make_model_id(year, make, model)
    else:
        return None  # a spec page we cannot name is useless to the dataset
    return Specs(model_id=model_id, make=make, model=model, year=year, rows=rows)


def photo_url(el, rules: PhotoRules, base: str) -> str | None:
    """The best URL an image element offers: the widest srcset candidate, else the first usable attribute."""
    for attr in rules.attrs:
        raw = el.get(attr)
        if not raw or not raw.strip():
            continue
        cand = largest_from_srcset(raw) if attr in SRCSET_ATTRS else raw.strip()
        if not cand or any(p.search(cand) for p in rules.ignore):
            continue
        url = canonicalize(cand, base)
        if url is not None:
            return url
    return None


def view_of(el, view_attr: str | None) -> str:
    """The view label on the image itself or on the nearest ancestor that has one (a tab panel)."""
    if not view_attr:
        return "unknown"
    node = el
    while node is not None:
        value = node.get(view_attr) if hasattr(node, "get") else None
        if value:
            return normalize_view(value)
        node = node.getparent()
    return "unknown"


def extract_photos(rules: PhotoRules, page: Page) -> list[Photo]:
    out, seen = [], set()
    base = page.base_url
    for el in _select(page.tree, rules.image):
        url = photo_url(el, rules, base)
        if url is None or url in seen:
            continue
        seen.add(url)
        out.append(Photo(url=url, view_hint=view_of(el, rules.view_attr)))
    return out


def model_id_for(page: Page, specs: Specs | None = None) -> str | None:
    g = page.groups
    if {"year", "make", "model"} <= g.keys():
        return make_model_id(g["year"], g["make"], g["model"])
    return specs.model_id if specs else None
