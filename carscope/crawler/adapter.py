"""Site adapters: a declarative TOML file per site says what its pages are and where the data sits.

    python -c "from carscope.crawler.adapter import load_adapter; a = load_adapter('showroom'); print(list(a.page_types))"

The language is documented field by field in carscope/crawler/sites/README.md (the reference and a cookbook with one
worked adapter per markup family). In short, a file has a `[site]` table (name, hook, allowed_hosts,
drop_params, rewrite_links, sitemap, currency), an optional `[specs]` table (a site's own spec words:
`[specs.keys]` and `[specs.values.fuel|body|drivetrain]`, carscope/crawler/spec_map.py) and one `[pages.<type>]`
table per page type, tried in file order against each URL's path(?query):

    [pages.<type>]
    match = '^/(?P<make>[^/]+)/(?P<model>[^/]+)/(?P<year>\\d{4})/photos$'   # regex; named groups may name the model-year
    links = ["a.next", { json = "props.pageProps.items[*].href", from = "next" }]   # field rules giving URLs
    browser = true   wait_for = "#gallery"   scroll = true   actions = [{ click = "button.more" }]   capture_json = false
    content = "html"                  # or "json": the URL answers JSON, read as the data source "page"
    require = "div.specs-set"         # field rule(s) the real page always gives: without, a soft error (retried)
    [pages.<type>.data.<name>]        # JSON sources: script = "CSS" (+ var, attr), url = <field rule>, captured = 're'
    [pages.<type>.specs]              # row/key/value (+ msrp), and [[pages.<type>.specs.pairs]] forms:
                                      #   rows, text, dl, table, jsonld, microdata, json (carscope/crawler/extract/pairs.py)
    [pages.<type>.model_year]         # year / make / model / title field rules, inherit (carscope/crawler/extract/identity.py)
    [pages.<type>.photos]             # or [[...]]: elements, JSON or JSON-LD; rewrite, ignore, view hints
                                      #   (carscope/crawler/extract/photos.py)

Every error names the file, the line and the field, in one line.

The optional hook module (`[site] hook = "file.py"`) may define, each sync or async, taking `(ctx, page, found)`
and returning a replacement for `found` (or None to keep it): `links`, `specs`, `model_year`, `photos`; and
`photos_without_browser(ctx, page)`, used for a `browser = true` page type when the crawl runs with
`--browser never` (see carscope/crawler/sites/showroom_hook.py and carscope/crawler/sites/README.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from carscope.common.errors import CarscopeError
from carscope.crawler.checker import Checker
from carscope.crawler.dataset import make_model_id
from carscope.crawler.extract.document import DataSource
from carscope.crawler.extract.fields import FieldRule, parse_field
from carscope.crawler.extract.identity import IdentityRules
from carscope.crawler.extract.photos import PhotoSource
from carscope.crawler.spec_map import SpecMapping
from carscope.crawler.views import VIEW_NAMES, normalize_view  # noqa: F401 (hooks import them from here)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SITES_DIR = Path(__file__).resolve().parent / "sites"
MODEL_YEAR_GROUPS = {"year", "make", "model"}


HOOKS = ("links", "specs", "model_year", "photos", "photos_without_browser")


@dataclass
class SpecRules:
    """Where a page's specifications are: `pairs` forms in order, plus a price outside them (`msrp`)."""

    pairs: list = field(default_factory=list)  # crawler.extract.pairs forms
    msrp: FieldRule | None = None


@dataclass
class PageType:
    name: str
    match: re.Pattern
    links: list[FieldRule] = field(default_factory=list)
    browser: bool = False
    wait_for: str | None = None
    scroll: bool = True
    actions: list = field(default_factory=list)  # crawler.extract.actions.Action
    capture_json: bool = False
    content: str = "html"  # or "json": the URL answers JSON (an API), read as the data source "page"
    data: list[DataSource] = field(default_factory=list)
    specs: SpecRules | None = None
    identity: IdentityRules | None = None
    photos: list[PhotoSource] = field(default_factory=list)
    require: list[FieldRule] = field(default_factory=list)  # each must give a value, else the page is a soft error

    def groups(self, path: str) -> dict[str, str] | None:
        """The pattern's named groups, percent-decoded (and `+` as a space in the query): the URL's words."""
        from urllib.parse import unquote, unquote_plus

        m = self.match.search(path)
        if m is None:
            return None
        query_at = path.find("?")
        out = {}
        for k, v in m.groupdict().items():
            if v is not None:
                out[k] = unquote_plus(v) if 0 <= query_at < m.start(k) else unquote(v)
        return out

    @property
    def fetches_data(self) -> bool:
        """Whether reading this page type fetches JSON from a URL the page names."""
        return any(d.url is not None for d in self.data)


@dataclass
class Adapter:
    name: str
    path: Path
    page_types: dict[str, PageType]
    allowed_hosts: list[str] = field(default_factory=list)
    hook: ModuleType | None = None
    drop_params: list[str] = field(default_factory=list)  # query parameters removed from every link
    link_rewrite: list[tuple[re.Pattern, str]] = field(default_factory=list)  # regex substitutions on links
    sitemaps: list[str] | None = None  # None: not read; []: robots.txt's Sitemap lines (else /sitemap.xml); URLs
    spec_map: SpecMapping = field(default_factory=SpecMapping)  # [specs.keys], [specs.values.*], [site] currency

    def link_url(self, url: str) -> str | None:
        """A link as the crawl queues it: the site's parameters dropped, its rewrites applied, canonical."""
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        from carscope.crawler.urls import canonicalize

        if self.drop_params:
            parts = urlsplit(url)
            query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in self.drop_params]
            url = urlunsplit(parts._replace(query=urlencode(query)))
        for pattern, repl in self.link_rewrite:
            url = pattern.sub(repl, url)
        return canonicalize(url)

    def classify(self, path: str) -> tuple[PageType, dict[str, str]] | None:
        """The first page type (in file order) whose pattern matches this path(?query)."""
        for pt in self.page_types.values():
            groups = pt.groups(path)
            if groups is not None:
                return pt, groups
        return None

    def model_year_types(self) -> list[str]:
        """Page types whose URL names a model-year: their pattern has `year`, `make` and `model` groups."""
        return [name for name, pt in self.page_types.items() if MODEL_YEAR_GROUPS <= set(pt.match.groupindex)]

    def model_year_of(self, page_type: str, path: str) -> str | None:
        """The model id a URL of this page type names (e.g. 2023_acme_roadster), or None when it names none."""
        pt = self.page_types.get(page_type)
        groups = pt.groups(path) if pt is not None else None
        if not groups or not MODEL_YEAR_GROUPS <= groups.keys():
            return None
        try:
            return make_model_id(groups["year"], groups["make"], groups["model"])
        except ValueError:  # a `year` group that is not a number: the pattern is looser than it says
            return None

    def hook_fn(self, name: str):
        return getattr(self.hook, name, None) if self.hook is not None else None


def shipped_adapters() -> list[str]:
    return sorted(p.stem for p in SITES_DIR.glob("*.toml"))


def load_adapter(site: str) -> Adapter:
    """`showroom` (a shipped adapter) or a path to a TOML file -> Adapter; CarscopeError when it is broken."""
    path = Path(site)
    if not site.endswith(".toml") and (SITES_DIR / f"{site}.toml").is_file():
        path = SITES_DIR / f"{site}.toml"
    if not path.is_file():
        known = ", ".join(shipped_adapters()) or "none"
        raise CarscopeError(f"--site {site}: no such adapter file (shipped adapters: {known})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CarscopeError(f"{path}: cannot read the adapter ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "... (at line N, column M)"; lead with file:line like a compiler does
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            where = f"{path}:{m.group(1)}"
        elif "end of document" in msg:
            where = f"{path}:{max(1, len(text.splitlines()))}"
        else:
            where = str(path)
        msg = re.sub(r" ?[(]at (line|end of document).*", "", msg)
        raise CarscopeError(f"{where}: TOML syntax error: {msg}") from None
    return _build(data, path, text)


PAGE_KEYS = {"match", "content", "links", "browser", "wait_for", "scroll", "actions", "capture_json", "data",
             "specs", "model_year", "photos", "require"}
LEGACY_SPEC_KEYS = {"row", "key", "value", "make", "model", "year", "msrp", "title"}
PHOTO_KEYS = PhotoSource.keys


def _build(data: dict, path: Path, text: str) -> Adapter:
    ck = Checker(path, text)
    site = data.get("site", {})
    if not isinstance(site, dict):
        ck.fail("site", None, "expected a table")
    unknown = set(data) - {"site", "pages", "specs"}
    if unknown:
        ck.fail(sorted(unknown)[0], None, "unknown table (expected [site], [specs] and [pages.*])")
    ck.known(site, "site", {"name", "hook", "allowed_hosts", "drop_params", "rewrite_links", "sitemap", "currency"})
    specs = data.get("specs", {})
    if not isinstance(specs, dict):
        ck.fail("specs", None, "expected a table ([specs.keys], [specs.values.fuel], ...)")
    spec_map = SpecMapping.build(specs, ck.get(site, "site", "currency", str), ck)
    drop = ck.get(site, "site", "drop_params", list, default=[])
    link_rewrite = ck.rewrites("site", "rewrite_links", site.get("rewrite_links", []))
    name = ck.get(site, "site", "name", str, default=path.stem)
    allowed = ck.get(site, "site", "allowed_hosts", list, default=[]) if "allowed_hosts" in site else []
    hook_ref = ck.get(site, "site", "hook", str)
    sitemap = site.get("sitemap", False)
    if sitemap is True:
        sitemaps = []
    elif sitemap is False:
        sitemaps = None
    elif isinstance(sitemap, list) and sitemap and all(isinstance(u, str) and u.strip() for u in sitemap):
        sitemaps = [u.strip() for u in sitemap]
    else:
        ck.fail("site", "sitemap", f"expected true, false or a list of sitemap URLs or paths, got {sitemap!r}")
    pages = data.get("pages")
    if not isinstance(pages, dict) or not pages:
        ck.fail("pages", None, "at least one [pages.<type>] table is required")
    page_types: dict[str, PageType] = {}
    for pname, table in pages.items():
        page_types[pname] = _page_type(ck, pname, table)
    hook = _load_hook(hook_ref, path, ck) if hook_ref else None
    return Adapter(name=name, path=path, page_types=page_types, allowed_hosts=[h.lower() for h in allowed],
                   hook=hook, drop_params=drop, link_rewrite=link_rewrite, sitemaps=sitemaps, spec_map=spec_map)


def _page_type(ck: Checker, pname: str, table) -> PageType:
    from carscope.crawler.extract.actions import parse_actions

    tname = f"pages.{pname}"
    if not isinstance(table, dict):
        ck.fail(tname, None, "expected a table")
    ck.known(table, tname, PAGE_KEYS)
    pt = PageType(
        name=pname,
        match=ck.regex(tname, "match", ck.get(table, tname, "match", str, required=True)),
        browser=ck.get(table, tname, "browser", bool, default=False),
        wait_for=ck.selector(tname, "wait_for", ck.get(table, tname, "wait_for", str)),
        scroll=ck.get(table, tname, "scroll", bool, default=True),
        capture_json=ck.get(table, tname, "capture_json", bool, default=False),
    )
    pt.content = ck.get(table, tname, "content", str, default="html")
    if pt.content not in ("html", "json"):
        ck.fail(tname, "content", f"expected \"html\" or \"json\", got {pt.content!r}")
    if pt.content == "json" and pt.browser:
        ck.fail(tname, "browser", "a JSON page type is read as it is: it cannot be rendered in the browser")
    links = table.get("links", [])
    if not isinstance(links, list):
        ck.fail(tname, "links", "expected a list of CSS selectors or field rules")
    pt.links = [parse_field(ck, tname, "links", v, default_attr="href") for v in links]
    if "actions" in table:
        pt.actions = parse_actions(ck, tname, table["actions"])
        if pt.actions and not pt.browser:
            ck.fail(tname, "actions", "browser actions need `browser = true` on the page type")
    if pt.capture_json and not pt.browser:
        ck.fail(tname, "capture_json", "capturing the JSON a page fetches needs `browser = true`")
    if "data" in table:
        data = ck.table(table, tname, "data")
        for dname in data:
            pt.data.append(_data_source(ck, f"{tname}.data.{dname}", dname, data[dname], pt))
    names = {d.name for d in pt.data} | ({"page"} if pt.content == "json" else set())
    for rule in pt.links:
        _check_source(ck, tname, "links", rule.source, names)
    require = table.get("require", [])
    if not isinstance(require, (list, str, dict)) or (isinstance(require, list) and not all(
            isinstance(r, (str, dict)) for r in require)):
        ck.fail(tname, "require", "expected a field rule (a CSS selector or a table) or a list of them")
    pt.require = [parse_field(ck, tname, "require", r) for r in (require if isinstance(require, list) else [require])]
    for rule in pt.require:
        _check_source(ck, tname, "require", rule.source, names)
    if "specs" in table:
        pt.specs, legacy_identity = _specs(ck, f"{tname}.specs", ck.table(table, tname, "specs"), names)
        pt.identity = legacy_identity
    if "model_year" in table:
        mt, mname = ck.table(table, tname, "model_year"), f"{tname}.model_year"
        ck.known(mt, mname, {"year", "make", "model", "title", "structured", "inherit"})
        ident = pt.identity or IdentityRules()
        for part in ("year", "make", "model", "title"):
            if part in mt:
                rule = parse_field(ck, mname, part, mt[part])
                _check_source(ck, mname, part, rule.source, names)
                setattr(ident, part, rule)
        ident.structured = ck.get(mt, mname, "structured", bool, default=True)
        ident.inherit = ck.get(mt, mname, "inherit", bool, default=False)
        if ident.title is not None and (ident.title.re is None or not {"year", "make", "model"} & set(
                ident.title.re.groupindex)):
            ck.fail(mname, "title", "a title rule needs a regex with named groups (?P<year>...), (?P<make>...) "
                                    "or (?P<model>...)")
        pt.identity = ident
    if "photos" in table:
        raw = table["photos"]
        entries = raw if isinstance(raw, list) else [raw]
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                ck.fail(tname, "photos", "expected a table ([pages.<type>.photos]) or tables ([[...]])")
            photos = PhotoSource.build(entry, ck.at(i), f"{tname}.photos")
            _check_source(ck.at(i), f"{tname}.photos", "from", photos.source, names)
            pt.photos.append(photos)
    return pt


def _check_source(ck: Checker, tname: str, key: str, source: str | None, names: set[str]) -> None:
    if source is not None and source not in names:
        ck.fail(tname, key, f"no data source '{source}' (this page type has: {', '.join(sorted(names)) or 'none'})")


def _data_source(ck: Checker, tname: str, name: str, t, pt: PageType) -> DataSource:
    if not isinstance(t, dict):
        ck.fail(tname, None, "expected a table")
    ck.known(t, tname, {"script", "var", "attr", "url", "captured", "optional"})
    kinds = [k for k in ("script", "url", "captured") if k in t]
    if len(kinds) != 1:
        ck.fail(tname, None, "a data source needs exactly one of script, url or captured")
    src = DataSource(name=name, optional=ck.get(t, tname, "optional", bool, default=False))
    if "script" in t:
        src.script = ck.selector(tname, "script", ck.get(t, tname, "script", str))
        src.var = ck.get(t, tname, "var", str)
        src.attr = ck.get(t, tname, "attr", str)
    elif "url" in t:
        src.url = parse_field(ck, tname, "url", t["url"])
        _check_source(ck, tname, "url", src.url.source,
                      {d.name for d in pt.data} | ({"page"} if pt.content == "json" else set()))
    else:
        if not pt.browser or not pt.capture_json:
            ck.fail(tname, "captured", "a captured source needs `browser = true` and `capture_json = true`")
        src.captured = ck.regex(tname, "captured", ck.get(t, tname, "captured", str))
    for k in ("var", "attr"):
        if k in t and src.script is None:
            ck.fail(tname, k, f"'{k}' goes with 'script'")
    return src


def _specs(ck: Checker, sname: str, st: dict, names: set[str]) -> tuple[SpecRules, IdentityRules | None]:
    from carscope.crawler.extract.pairs import FORMS, Rows

    ck.known(st, sname, LEGACY_SPEC_KEYS | {"pairs"})
    rules = SpecRules()
    legacy = {k: st[k] for k in ("row", "key", "value") if k in st}
    if legacy:
        if len(legacy) != 3:
            missing = sorted({"row", "key", "value"} - legacy.keys())[0]
            ck.fail(sname, None, f"missing required field '{missing}' (row, key and value go together)")
        rules.pairs.append(Rows.build(st, ck, sname))
    pairs = st.get("pairs", [])
    if not isinstance(pairs, list):
        ck.fail(sname, "pairs", "expected [[...specs.pairs]] tables")
    for i, entry in enumerate(pairs):
        pname, ck = f"{sname}.pairs", ck.at(i)
        if not isinstance(entry, dict):
            ck.fail(pname, None, "expected a table")
        form = entry.get("form")
        if form not in FORMS:
            ck.fail(pname, "form", f"expected one of {', '.join(FORMS)}, got {form!r}", index=i)
        cls = FORMS[form]
        for key in entry:
            if key not in cls.keys:
                ck.fail(pname, key, f"unknown field for form {form} (known: {', '.join(sorted(cls.keys))})",
                        index=i)
        built = cls.build(entry, ck, pname)
        _check_source(ck, pname, "from", getattr(built, "source", None), names)
        rules.pairs.append(built)
    if not rules.pairs and "msrp" not in st:
        ck.fail(sname, None, "a specs table needs row/key/value or [[...specs.pairs]] forms")
    if "msrp" in st:
        rules.msrp = parse_field(ck, sname, "msrp", st["msrp"])
    ident = None
    if any(k in st for k in ("make", "model", "year")):
        ident = IdentityRules(**{k: parse_field(ck, sname, k, st[k]) for k in ("make", "model", "year") if k in st})
    return rules, ident


def _load_hook(ref: str, path: Path, ck: Checker) -> ModuleType:
    """A hook is a .py file next to the adapter (or a path relative to it) or an importable module name."""
    if ref.endswith(".py"):
        file = (path.parent / ref).resolve()
        if not file.is_file():
            ck.fail("site", "hook", f"hook file {file} does not exist")
        mod_name = "carscope_site_hook_" + re.sub(r"\W", "_", file.stem)
        spec = importlib.util.spec_from_file_location(mod_name, file)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a hook is user code: report, do not crash with a traceback
            ck.fail("site", "hook", f"hook {file} failed to import: {type(exc).__name__}: {exc}")
        sys.modules.setdefault(mod_name, module)
        return module
    try:
        return importlib.import_module(ref)
    except Exception as exc:
        ck.fail("site", "hook", f"cannot import hook module {ref!r}: {type(exc).__name__}: {exc}")
        raise  # unreachable
