"""The classic layout's HTML pages (SITE.md shapes), as plain string templates: no template engine needed.
The /compare trap, 404 and error pages here serve every layout.

Every function returns a complete HTML document. Class names and link shapes are the contract the crawler's
showroom adapter reads, so change them only together with SITE.md.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from carscope.showroom.catalog import Catalog, Make, ModelYear


def _doc(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} | Showroom</title>
<link rel="stylesheet" href="/static/site.css">
</head>
<body>
<header class="site"><a href="/">Showroom</a> &mdash; new car prices, specs and photos</header>
{body}
<footer>Showroom is a generated catalog for testing. <a href="/sitemap.xml">Sitemap</a></footer>
</body>
</html>
"""


def _crumbs(my: ModelYear) -> str:
    return (f'<nav class="breadcrumb"><a href="/make/{my.make.slug}">{escape(my.make.name)}</a> '
            f'<a href="{my.path}/overview">{escape(my.model.name)}</a> '
            f'<a href="{my.path}/overview">{my.year}</a></nav>')


def home(catalog: Catalog) -> str:
    items = "\n".join(f'  <li><a class="make-link" href="/make/{m.slug}">{escape(m.name)}</a></li>'
                      for m in catalog.makes)
    return _doc("New cars by make", f"""<div class="global-container">
<h1>New cars by make</h1>
<ul class="makes">
{items}
</ul>
</div>""")


def make_page(catalog: Catalog, make: Make, page: int, pages: int, models) -> str:
    years = catalog.config.year_list
    cards = []
    for md in models:
        base = f"/{make.slug}/{md.slug}"
        sel = " ".join(f'<a href="{base}/{y}/overview">{y}</a>' for y in reversed(years))
        cards.append(f'<div class="model-card"><div class="name"><a href="{base}/{years[-1]}/overview">'
                     f'{escape(md.name)}</a></div><div class="year-selector">{sel}</div></div>')
    nav = []
    if page > 1:
        nav.append(f'<a class="prev" rel="prev" href="/make/{make.slug}?page={page - 1}">Previous</a>')
    nav.append(f'<span class="page">Page {page} of {pages}</span>')
    if page < pages:
        nav.append(f'<a class="next" rel="next" href="/make/{make.slug}?page={page + 1}">Next</a>')
    return _doc(f"{make.name} models", f"""<div class="global-container">
<nav class="breadcrumb"><a href="/">All makes</a> <a href="/make/{make.slug}">{escape(make.name)}</a></nav>
<h1>{escape(make.name)} models</h1>
{chr(10).join(cards)}
<div class="pagination">{' '.join(nav)}</div>
</div>""")


def overview(catalog: Catalog, my: ModelYear) -> str:
    specs = dict(my.specs)
    msrp = specs.get("MSRP", "N/A")
    others = " ".join(f'<a href="/{my.make.slug}/{my.model.slug}/{y}/overview">{y}</a>'
                      for y in reversed(catalog.config.year_list) if y != my.year)
    ids = quote(my.model_id)
    return _doc(f"{my.year} {my.make.name} {my.model.name}", f"""<div class="global-container">
{_crumbs(my)}
<h1>{my.year} {escape(my.make.name)} {escape(my.model.name)}</h1>
<p class="intro">The {my.year} {escape(my.make.name)} {escape(my.model.name)} is a
{escape(specs.get("Body Style", "vehicle"))} starting at <span class="msrp">{escape(msrp)}</span>.</p>
<ul class="sections">
  <li><a class="specs-link" href="{my.path}/specifications">Specifications</a></li>
  <li><a class="photos-link" href="{my.path}/photos">Photos</a></li>
  <li><a class="compare" href="/compare?ids={ids}">Compare with other cars</a></li>
</ul>
<div class="other-years">Other years: {others or "none"}</div>
</div>""")


def specifications(my: ModelYear, language: str = "en") -> str:
    """`language`: "de" / "fr" write the keys, words and numbers as that country does (showroom/language.py)."""
    from carscope.showroom.language import PRICE_LABEL, spec_pairs

    pairs = spec_pairs(my, language)
    items = "\n".join(f'    <div class="specs-set-item"><span>{escape(k)}</span><span>{escape(v)}</span></div>'
                      for k, v in pairs)
    msrp = (my.msrp if language == "en" else pairs[0][1]) or "N/A"  # MSRP is always the first pair
    return _doc(f"{my.year} {my.make.name} {my.model.name} Specifications", f"""<div class="global-container">
  {_crumbs(my)}
  <h1>{my.year} {escape(my.make.name)} {escape(my.model.name)} Specifications</h1>
  <div class="price">{PRICE_LABEL[language]} <span class="msrp">{escape(msrp)}</span></div>
  <div class="specs-set">
{items}
  </div>
  <p><a class="photos-link" href="{my.path}/photos">Photos</a> <a class="overview-link" href="{my.path}/overview">Overview</a></p>
</div>""")


def photos(my: ModelYear) -> str:
    # No photo URL anywhere in this HTML: the gallery exists only once gallery.js has run.
    api = f"/api/gallery/{my.make.slug}/{my.model.slug}/{my.year}.json"
    return _doc(f"{my.year} {my.make.name} {my.model.name} Photos", f"""<div class="global-container">
{_crumbs(my)}
<h1>{my.year} {escape(my.make.name)} {escape(my.model.name)} Photos</h1>
<div id="gallery" data-gallery="{api}"></div>
<noscript>The photo gallery needs JavaScript.</noscript>
<p><a class="specs-link" href="{my.path}/specifications">Specifications</a></p>
</div>
<script src="/static/gallery.js"></script>""")


def compare(catalog: Catalog, ids: list[str], page: int, known: list[str] | None = None) -> str:
    """The crawler trap: every compare page links to more compare pages, without end. `known`: the ids its
    links add (default: model_ids; each layout names model-years its own way)."""
    known = known or [my.model_id for my in catalog.model_years]
    links = []
    for k in range(4):
        extra = known[(page * 4 + k + len(ids)) % len(known)]
        nxt = (ids + [extra])[-6:]  # bounded URL length, unbounded URL space through the page number
        links.append(f'<li><a class="compare" href="/compare?ids={quote(",".join(nxt))}&amp;page={page + 1 + k}">'
                     f'Compare {escape(" vs ".join(nxt))}</a></li>')
    return _doc("Compare cars", f"""<div class="global-container">
<h1>Compare: {escape(" vs ".join(ids) or "pick cars")}</h1>
<p>Page {page}. Add another car to the comparison:</p>
<ul class="compare-links">
{chr(10).join(links)}
</ul>
</div>""")


def not_found(message: str = "Page not found") -> str:
    return _doc("Not found", f'<div class="global-container"><h1>Not found</h1><p>{escape(message)}</p>'
                             '<p><a href="/">All makes</a></p></div>')


def error_page(status: int) -> str:
    return _doc(f"Error {status}", f'<div class="global-container"><h1>Error {status}</h1>'
                                   '<p>Something went wrong on our side. Please try again.</p></div>')


def maintenance_page() -> str:
    """A soft error (the `soft` fault): what a site under maintenance answers, with status 200."""
    return _doc("Wartungsarbeiten", '<div class="global-container"><h1>Wartungsarbeiten</h1>'
                                    '<p>This site is undergoing maintenance. Please come back in a few minutes.</p>'
                                    '</div>')
