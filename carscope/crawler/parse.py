"""Parsing, separate from fetching: HTML in, links / spec rows / model-year / photos out, by the adapter's rules.

    python -c "
    from carscope.crawler.adapter import load_adapter; from carscope.crawler.parse import parse_page
    a = load_adapter('showroom'); pt, g = a.classify('/')
    print(parse_page(a, pt, g, 'http://h/', '<ul class=makes><li><a class=make-link href=/make/acme>A</a></ul>').links)"

`parse_page` is pure (no I/O): the page's own HTML and embedded JSON. `extract_page` is what the crawler and
`carscope crawl --check` run: the same, plus the JSON sources fetched from URLs the page names (through the
crawl's polite fetcher) and the adapter's Python hooks. The forms themselves live in carscope/crawler/extract/.
A browser-rendered page and a plain HTTP page are parsed the same way.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from carscope.crawler.adapter import Adapter, PageType
from carscope.crawler.extract.document import Document, parse_tree  # noqa: F401 (parse_tree: read here too)
from carscope.crawler.extract.identity import Identity, resolve
from carscope.crawler.urls import canonicalize, path_and_query
from carscope.crawler.views import normalize_view


@dataclass
class Specs:
    model_id: str
    make: str | None
    model: str | None
    year: int | None
    rows: list[tuple[str, str]]  # (key, value) as cleaning reads them: after [specs.keys/values] and the hook
    raw: list[tuple[str, str]] | None = None  # the page's own pairs (specs_raw) when they differ; None: `rows`


@dataclass
class Photo:
    url: str
    view_hint: str  # exterior / interior / unknown
    candidates: list = field(default_factory=list, compare=False)  # extract.photos.Candidate: what it won over


@dataclass
class Page:
    """What a hook sees: the page, its type, the URL pattern's groups, the parsed tree and the Document
    (`doc.sel`: a parsel Selector; `doc.data`: the JSON sources by name)."""

    url: str
    page_type: PageType
    groups: dict[str, str]
    html: str
    tree: object = None  # lxml.html.HtmlElement, or None for an empty document
    doc: Document | None = None

    @property
    def base_url(self) -> str:
        return self.doc.base_url if self.doc is not None else self.url

    @property
    def sel(self):
        return self.doc.sel if self.doc is not None else None


@dataclass
class Parsed:
    links: list[tuple[str, str]] = field(default_factory=list)  # (canonical url, page type)
    ignored_links: list[str] = field(default_factory=list)  # canonical URLs that match no page type
    specs: Specs | None = None
    identity: Identity | None = None
    photos: list[Photo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # bad JSON, missing paths, no model-year, ...

    @property
    def model_id(self) -> str | None:
        return self.identity.model_id if self.identity is not None else None

    def identity_parts(self) -> dict | None:
        """year / make / model of a named page, for the pages it links to (`model_year.inherit`)."""
        i = self.identity
        if i is None or i.model_id is None:
            return None
        return {"year": i.year, "make": i.make, "model": i.model}


def make_page(adapter: Adapter, page_type: PageType, groups: dict, url: str, html: str | bytes,
              captured: list | None = None) -> Page:
    """The page with its Document and embedded data sources (scripts, captured responses) read."""
    if page_type.content == "json":  # an API answer read as a page: its body is the data source "page"
        doc = Document.from_html(url, "")
        doc.add_json_source("page", html.encode() if isinstance(html, str) else html)
    else:
        doc = Document.from_html(url, html)
    for src in page_type.data:
        if src.script is not None:
            doc.add_script_source(src.name, src.script, src.var, optional=src.optional, attr=src.attr)
        elif src.captured is not None:
            hit = next((body for u, body in captured or [] if src.captured.search(u)), None)
            if hit is None:
                if not src.optional:
                    doc.problem(f"data_missing: {src.name} (no captured response)")
            else:
                doc.add_json_source(src.name, hit)
    text = html.decode("utf-8", errors="replace") if isinstance(html, bytes) else html
    return Page(url=url, page_type=page_type, groups=groups, html=text, tree=doc.tree, doc=doc)


async def fetch_sources(page: Page, fetch_json) -> None:
    """The `url` data sources, in order (one may name the next): `await fetch_json(url)` per source."""
    doc = page.doc
    for src in page.page_type.data:
        if src.url is None:
            continue
        raw = src.url.first(doc) if doc.sel is not None or src.url.json is not None else None
        url = canonicalize(raw, doc.base_url) if raw else None
        if url is None:
            if not src.optional:
                doc.problem(f"data_missing: {src.name} (no URL at {src.url.describe()})")
            continue
        doc.add_json_source(src.name, await fetch_json(url))


def parse_page(adapter: Adapter, page_type: PageType, groups: dict, url: str, html: str | bytes,
               captured: list | None = None, inherited: dict | None = None) -> Parsed:
    return extract(adapter, make_page(adapter, page_type, groups, url, html, captured), inherited)


def extract(adapter: Adapter, page: Page, inherited: dict | None = None) -> Parsed:
    """Every declarative rule of the page type on an already-made page (sources read or fetched)."""
    out = Parsed()
    pt, doc = page.page_type, page.doc
    out.links, out.ignored_links = extract_links(adapter, page)
    rows = extract_rows(pt, doc)
    if pt.specs is not None or pt.photos or pt.identity is not None:  # a listing page names no model-year
        out.identity = resolve(doc, page.groups, pt.identity, inherited)
    else:
        out.identity = Identity(model_id=None)
    out.specs = _specs(out.identity, rows, adapter.spec_map.apply(rows)) if pt.specs is not None else None
    for src in pt.photos:
        out.photos.extend(Photo(url=f.url, view_hint=f.view_hint, candidates=f.candidates) for f in src.photos(doc))
    out.photos = _unique(out.photos)
    if out.model_id is None and (out.photos or rows):
        doc.problem("no_model_year")  # never stored silently with an empty label: the crawl reports it
    out.problems = list(doc.problems)
    return out


def _unique(photos: list[Photo]) -> list[Photo]:
    seen, out = set(), []
    for p in photos:
        if p.url not in seen:
            seen.add(p.url)
            out.append(p)
    return out


def _specs(identity: Identity, page_rows: list[tuple[str, str]], rows: list[tuple[str, str]]) -> Specs | None:
    """`page_rows`: the pairs the rules read; `rows`: what cleaning reads (the adapter's mapping and the hook
    applied). specs_raw keeps the page's pairs, and a pair only the hook gives under a key cleaning does not know
    ("Front Brakes"): it has no other home in the dataset. With no rule-read pair, the hook's pairs are the page's."""
    if identity.model_id is None:
        return None  # a spec page we cannot name is useless to the dataset (counted as no_model_year)
    from carscope.crawler.aliases import canon_key

    raw = None
    if rows != page_rows and page_rows:
        on_page = {k for k, _ in page_rows}
        raw = page_rows + [(k, v) for k, v in rows if k not in on_page and canon_key(k)[0] is None]
    return Specs(model_id=identity.model_id, make=identity.make, model=identity.model, year=identity.year,
                 rows=rows, raw=raw)


def extract_links(adapter: Adapter, page: Page) -> tuple[list[tuple[str, str]], list[str]]:
    seen, links, ignored = set(), [], []
    if page.doc is None:
        return links, ignored
    base = page.base_url
    for rule in page.page_type.links:
        if rule.json is None and page.doc.sel is None:
            continue
        for href in rule.values(page.doc):
            url = canonicalize(href, base) if href else None
            if url is not None and (adapter.drop_params or adapter.link_rewrite):
                url = adapter.link_url(url)
            if url is None or url in seen:
                continue
            seen.add(url)
            hit = adapter.classify(path_and_query(url))
            if hit is None:
                ignored.append(url)
            else:
                links.append((url, hit[0].name))
    return links, ignored


def extract_rows(pt: PageType, doc: Document) -> list[tuple[str, str]]:
    """The spec pairs of every form, in order; a price outside them (`msrp`) first unless one is there."""
    rules = pt.specs
    if rules is None or (doc.sel is None and not doc.data):
        return []
    rows: list[tuple[str, str]] = []
    for form in rules.pairs:
        if doc.sel is None and form.reads_html:
            continue
        rows.extend(form.pairs(doc))
    msrp = rules.msrp.first(doc) if rules.msrp is not None and doc.sel is not None else None
    if msrp and not any(k.strip().lower() == "msrp" for k, _ in rows):
        rows.insert(0, ("MSRP", msrp))  # the price sits outside the table on many catalogs
    return rows


async def extract_page(adapter: Adapter, page_type: PageType, groups: dict, url: str, html: str | bytes, *,
                       ctx=None, captured: list | None = None,
                       inherited: dict | None = None) -> tuple[Page, Parsed]:
    """parse_page plus the fetched JSON sources and the adapter's hooks (crawler and --check). `inherited`: the
    model-year parts of the page that linked here (`model_year.inherit`)."""
    page = make_page(adapter, page_type, groups, url, html, captured)
    if page_type.fetches_data:
        if ctx is None:
            page.doc.problem("data_missing: URL sources need a fetcher")
        else:
            await fetch_sources(page, ctx.fetch_json)
    parsed = extract(adapter, page, inherited)
    await apply_hooks(adapter, ctx, page, parsed)
    return page, parsed


class HookFetchError(Exception):
    """A fetch through the HookContext failed: `resp` (fetch.Response) and a short `reason` (carscope/crawler/page.py
    raises it; it passes through `call_hook` unchanged, as the crawl retries the page)."""

    step = "extract"  # or "photos_without_browser": the hook that fetched

    def __init__(self, resp, reason: str):
        super().__init__(reason)
        self.resp, self.reason = resp, reason


class HookError(Exception):
    """An adapter hook raised: `hook` (the function's name), `file` and `line` (the hook file's innermost line in
    the traceback, else where the function starts) and `error` (the exception, its traceback attached)."""

    def __init__(self, fn, error: BaseException):
        code = getattr(fn, "__code__", None)
        self.hook = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
        self.file = code.co_filename if code is not None else "?"
        self.line = code.co_firstlineno if code is not None else 0
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.file:
                self.line = tb.tb_lineno  # the last one in the hook's own file: where it went wrong
            tb = tb.tb_next
        self.error = error
        first = str(error).splitlines()[0] if str(error).strip() else ""
        super().__init__(f"hook {self.hook}() at {self.file}:{self.line} raised {type(error).__name__}"
                         + (f": {first}" if first else ""))

    @property
    def reason(self) -> str:
        """The failures row's reason: `hook_error: NAME() at FILE:LINE: TYPE` (the file's name only)."""
        from pathlib import Path

        return f"hook_error: {self.hook}() at {Path(self.file).name}:{self.line}: {type(self.error).__name__}"


async def call_hook(fn, *args):
    """Call a hook (sync or async); what it raises comes out as a HookError naming it (a failed fetch through
    the context as itself)."""
    try:
        got = fn(*args)
        return await got if inspect.isawaitable(got) else got
    except HookFetchError:
        raise
    except Exception as exc:
        raise HookError(fn, exc) from exc



async def apply_hooks(adapter: Adapter, ctx, page: Page, parsed: Parsed) -> None:
    """The hook module's `links`, `specs`, `model_year`, `photos` (each optional), in that order."""
    fn = adapter.hook_fn("links")
    if fn is not None:
        got = await call_hook(fn, ctx, page, [u for u, _ in parsed.links])
        if got is not None:
            parsed.links, parsed.ignored_links = [], []
            for raw in got:
                url = canonicalize(str(raw), page.base_url)
                url = adapter.link_url(url) if url is not None else None
                if url is None:
                    continue
                hit = adapter.classify(path_and_query(url))
                (parsed.ignored_links.append(url) if hit is None else parsed.links.append((url, hit[0].name)))
    page_rows = extract_rows(page.page_type, page.doc) if page.page_type.specs is not None else []
    if parsed.specs is not None:
        page_rows = parsed.specs.raw if parsed.specs.raw is not None else parsed.specs.rows
    rows = adapter.spec_map.apply(page_rows)  # the hook gets the pairs as the adapter's own words made them
    fn = adapter.hook_fn("specs")
    if fn is not None:
        got = await call_hook(fn, ctx, page, list(rows))
        if got is not None:
            rows = [(str(k), "" if v is None else str(v)) for k, v in got]
    fn = adapter.hook_fn("model_year")
    if fn is not None:
        got = await call_hook(fn, ctx, page, parsed.identity)
        if got is not None:
            parsed.identity = _identity_from(got)
    if page.page_type.specs is not None or adapter.hook_fn("specs") is not None:
        parsed.specs = _specs(parsed.identity, page_rows, rows) if rows or parsed.specs is not None else None
    fn = adapter.hook_fn("photos")
    if fn is not None:
        got = await call_hook(fn, ctx, page, list(parsed.photos))
        if got is not None:
            parsed.photos = _unique([photo_from(p, page.base_url) for p in got if photo_from(p, page.base_url)])
    if adapter.hook_fn("model_year") is not None or adapter.hook_fn("photos") is not None:
        parsed.problems = [p for p in parsed.problems if p != "no_model_year"]
        if parsed.model_id is None and parsed.photos:
            parsed.problems.append("no_model_year")


def _identity_from(got) -> Identity:
    from carscope.crawler.dataset import make_model_id

    if isinstance(got, Identity):
        return got
    if isinstance(got, str):
        return Identity(model_id=got, sources={"model_id": "hook"})
    parts = dict(got)
    try:
        model_id = parts.get("model_id") or make_model_id(parts["year"], parts["make"], parts["model"])
    except (KeyError, ValueError, TypeError):
        model_id = None
    year = parts.get("year")
    return Identity(model_id=model_id, year=int(year) if str(year or "").isdigit() else None,
                    make=parts.get("make"), model=parts.get("model"), sources={"all": "hook"})


def photo_from(p, base: str) -> Photo | None:
    """What a hook returns for a photo (a Photo, a {"url", "view_hint"} dict or a URL) as a Photo; None if unusable."""
    if isinstance(p, Photo):
        return p
    if isinstance(p, dict) and p.get("url"):
        url = canonicalize(str(p["url"]), base)
        return Photo(url=url, view_hint=normalize_view(p.get("view_hint"))) if url else None
    if isinstance(p, str):
        url = canonicalize(p, base)
        return Photo(url=url, view_hint="unknown") if url else None
    return None
