"""Site adapters: a declarative TOML file per site says what its pages are and where the data sits.

    python -c "from crawler.adapter import load_adapter; a = load_adapter('showroom'); print(list(a.page_types))"

A file (see crawler/sites/showroom.toml, the shipped example, for every field):

    [site]
    name = "showroom"
    hook = "showroom_hook.py"          # optional Python hook, path relative to this file (or a module name)
    allowed_hosts = []                 # hosts besides the start URL's that may be fetched

    [pages.<page_type>]
    match = '^/(?P<make>[^/]+)/(?P<model>[^/]+)/(?P<year>\\d{4})/photos$'  # regex on path(?query)
    links = ["a.specs-link"]          # CSS selectors whose href is followed (only to known page types)
    browser = true                    # this page type's content is built by JavaScript
    wait_for = "#gallery .gallery"    # browser: the selector that says the page is ready
    scroll = true                     # browser: scroll to the bottom to trigger lazy loading

    [pages.<page_type>.specs]         # a spec page: rows of (key, value), plus make / model / year
    row = "div.specs-set-item"  key = "span:nth-of-type(1)"  value = "span:nth-of-type(2)"
    make = "..."  model = "..."  year = "..."  msrp = "span.msrp"

    [pages.<page_type>.photos]        # a photo page: image elements and where the URL and view hint are
    image = "img.photo"  attrs = ["srcset", "data-src", "src"]  view_attr = "data-view"  ignore = ['^data:']

A model-year id comes from the URL pattern's named groups `year`, `make`, `model` when it has them, else
from the spec fields. Every error names the file, the line and the field, in one line.

The optional hook module may define `async def photos_without_browser(ctx, page) -> list[dict]`, used for a
`browser = true` page type when the crawl runs with `--browser never` (see crawler/sites/showroom_hook.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from carscope.errors import CarscopeError
from crawler.dataset import make_model_id

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SITES_DIR = Path(__file__).resolve().parent / "sites"
MODEL_YEAR_GROUPS = {"year", "make", "model"}
VIEW_NAMES = {"exterior": "exterior", "interior": "interior", "ext": "exterior", "int": "interior",
              "outside": "exterior", "inside": "interior", "cabin": "interior"}


@dataclass
class SpecRules:
    row: str
    key: str
    value: str
    make: str | None = None
    model: str | None = None
    year: str | None = None
    msrp: str | None = None
    title: str | None = None


@dataclass
class PhotoRules:
    image: str
    attrs: list[str] = field(default_factory=lambda: ["srcset", "data-srcset", "data-src", "src"])
    view_attr: str | None = "data-view"
    ignore: list[re.Pattern] = field(default_factory=list)


@dataclass
class PageType:
    name: str
    match: re.Pattern
    links: list[str] = field(default_factory=list)
    browser: bool = False
    wait_for: str | None = None
    scroll: bool = True
    specs: SpecRules | None = None
    photos: PhotoRules | None = None

    def groups(self, path: str) -> dict[str, str] | None:
        m = self.match.search(path)
        return None if m is None else {k: v for k, v in m.groupdict().items() if v is not None}


@dataclass
class Adapter:
    name: str
    path: Path
    page_types: dict[str, PageType]
    allowed_hosts: list[str] = field(default_factory=list)
    hook: ModuleType | None = None

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


class _Checker:
    """Validates fields and reports `file:line: field: problem`."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()

    def line_of(self, table: str, key: str | None) -> int:
        """Best-effort line of `key` inside `[table]` (or of the table header when key is None)."""
        header = re.compile(r"^\s*\[\[?\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]\]?\s*(#.*)?$")
        start = None
        for i, line in enumerate(self.lines):
            if header.match(line):
                start = i
                break
        if start is None:  # a dotted key or inline table: search for the key anywhere
            start = -1
        if key is None:
            return start + 1 if start >= 0 else 1
        key_re = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for i in range(start + 1, len(self.lines)):
            if i > start + 1 and re.match(r"^\s*\[", self.lines[i]) and start >= 0:
                break
            if key_re.match(self.lines[i]):
                return i + 1
        return start + 1 if start >= 0 else 1

    def fail(self, table: str, key: str | None, problem: str):
        fieldname = f"{table}.{key}" if key else table
        raise CarscopeError(f"{self.path}:{self.line_of(table, key)}: {fieldname}: {problem}")

    def get(self, table: dict, tname: str, key: str, kind, *, required=False, default=None):
        if key not in table:
            if required:
                self.fail(tname, None, f"missing required field '{key}'")
            return default
        value = table[key]
        if kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                self.fail(tname, key, "expected a list of non-empty strings")
            return value
        if kind is bool:
            if not isinstance(value, bool):
                self.fail(tname, key, f"expected true or false, got {value!r}")
            return value
        if not isinstance(value, str) or not value.strip():
            self.fail(tname, key, f"expected a non-empty string, got {value!r}")
        return value

    def selector(self, tname: str, key: str, sel: str | None) -> str | None:
        if sel is None:
            return None
        from cssselect import GenericTranslator, SelectorError

        try:
            GenericTranslator().css_to_xpath(sel)
        except SelectorError as exc:
            self.fail(tname, key, f"invalid CSS selector {sel!r} ({exc})")
        return sel

    def regex(self, tname: str, key: str, pattern: str) -> re.Pattern:
        try:
            return re.compile(pattern)
        except re.error as exc:
            self.fail(tname, key, f"invalid regular expression {pattern!r} ({exc})")
            raise  # unreachable


def _build(data: dict, path: Path, text: str) -> Adapter:
    ck = _Checker(path, text)
    site = data.get("site", {})
    if not isinstance(site, dict):
        ck.fail("site", None, "expected a table")
    unknown = set(data) - {"site", "pages"}
    if unknown:
        ck.fail(sorted(unknown)[0], None, "unknown table (expected [site] and [pages.*])")
    name = ck.get(site, "site", "name", str, default=path.stem)
    allowed = ck.get(site, "site", "allowed_hosts", list, default=[]) if "allowed_hosts" in site else []
    hook_ref = ck.get(site, "site", "hook", str)
    pages = data.get("pages")
    if not isinstance(pages, dict) or not pages:
        ck.fail("pages", None, "at least one [pages.<type>] table is required")
    page_types: dict[str, PageType] = {}
    for pname, table in pages.items():
        tname = f"pages.{pname}"
        if not isinstance(table, dict):
            ck.fail(tname, None, "expected a table")
        known = {"match", "links", "browser", "wait_for", "scroll", "specs", "photos"}
        for key in table:
            if key not in known:
                ck.fail(tname, key, f"unknown field (known: {', '.join(sorted(known))})")
        pt = PageType(
            name=pname,
            match=ck.regex(tname, "match", ck.get(table, tname, "match", str, required=True)),
            links=[ck.selector(tname, "links", s) for s in ck.get(table, tname, "links", list, default=[])],
            browser=ck.get(table, tname, "browser", bool, default=False),
            wait_for=ck.selector(tname, "wait_for", ck.get(table, tname, "wait_for", str)),
            scroll=ck.get(table, tname, "scroll", bool, default=True),
        )
        if "specs" in table:
            st, sname = table["specs"], f"{tname}.specs"
            if not isinstance(st, dict):
                ck.fail(tname, "specs", "expected a table")
            sk = {"row", "key", "value", "make", "model", "year", "msrp", "title"}
            for key in st:
                if key not in sk:
                    ck.fail(sname, key, f"unknown field (known: {', '.join(sorted(sk))})")
            pt.specs = SpecRules(**{k: ck.selector(sname, k, ck.get(st, sname, k, str, required=k in
                                                                       ("row", "key", "value")))
                                    for k in sk})
        if "photos" in table:
            ph, pname2 = table["photos"], f"{tname}.photos"
            if not isinstance(ph, dict):
                ck.fail(tname, "photos", "expected a table")
            pk = {"image", "attrs", "view_attr", "ignore"}
            for key in ph:
                if key not in pk:
                    ck.fail(pname2, key, f"unknown field (known: {', '.join(sorted(pk))})")
            rules = PhotoRules(image=ck.selector(pname2, "image", ck.get(ph, pname2, "image", str, required=True)))
            if "attrs" in ph:
                rules.attrs = ck.get(ph, pname2, "attrs", list)
            if "view_attr" in ph:
                rules.view_attr = ck.get(ph, pname2, "view_attr", str)
            rules.ignore = [ck.regex(pname2, "ignore", p) for p in ck.get(ph, pname2, "ignore", list, default=[])]
            pt.photos = rules
        page_types[pname] = pt
    hook = _load_hook(hook_ref, path, ck) if hook_ref else None
    return Adapter(name=name, path=path, page_types=page_types, allowed_hosts=[h.lower() for h in allowed],
                   hook=hook)


def _load_hook(ref: str, path: Path, ck: _Checker) -> ModuleType:
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


def normalize_view(value: str | None) -> str:
    """A page's view label -> exterior / interior / unknown (never guessed from pixels)."""
    if not value:
        return "unknown"
    return VIEW_NAMES.get(str(value).strip().lower(), "unknown")
