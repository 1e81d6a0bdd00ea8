"""One page as the extraction forms see it: the parsed HTML (a parsel Selector), its JSON data sources, and
its schema.org items, each parsed at most once.

    python -c "
    from carscope.crawler.extract.document import Document
    doc = Document.from_html('http://h/', '<script id=d type=application/json>{\\"a\\": {\\"b\\": [1, 2]}}</script>')
    doc.add_script_source('d', 'script#d'); print(doc.json_values('a.b', 'd'))"

Data sources (`[pages.<type>.data.<name>]` in an adapter) are JSON documents the page carries or names:

    script = "script#__NEXT_DATA__"    # a <script>'s text: JSON, or JavaScript holding an object literal
    var = "window.__APP_CONFIG__"      #   (optional) the assignment to read when the script holds code
    attr = "data-gallery"              #   (optional) read this attribute of the element instead of its text
    url = { json = "mediaApi", from = "config" }   # a field giving a URL, fetched politely as JSON
    captured = '/api/v2/media/'        # browser only: a JSON response the page fetched whose URL matches

JavaScript object literals (unquoted keys, single quotes, trailing commas) are read with chompjs. A source
that is absent or does not parse is recorded in `problems` (the crawler writes them to failures.parquet)
and reads as empty: one bad script costs its fields, not the page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

from carscope.crawler.extract.fields import FieldRule


@dataclass
class DataSource:
    name: str
    script: str | None = None
    var: str | None = None
    attr: str | None = None
    url: FieldRule | None = None
    captured: re.Pattern | None = None
    optional: bool = False  # absent on some pages of the type: no problem is recorded

    def describe(self) -> str:
        if self.script:
            return f"script {self.script!r}" + (f" var {self.var}" if self.var else "") + (
                f" attr {self.attr}" if self.attr else "")
        if self.url is not None:
            return f"JSON from the URL at {self.url.describe()}"
        return f"captured response matching {self.captured.pattern!r}"


def parse_tree(html: str | bytes):
    """The lxml tree of a page, or None for an empty or unparseable one."""
    import lxml.etree
    import lxml.html

    if not html or not (html.strip() if isinstance(html, str) else html.strip()):
        return None
    try:
        return lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return None


@lru_cache(maxsize=512)
def compiled_jmespath(expr: str):
    import jmespath

    return jmespath.compile(expr)


def parse_js_data(text: str, var: str | None = None):
    """JSON, or the object literal a script assigns (to `var` when given); ValueError when there is none."""
    text = text.strip()
    if var:
        m = re.search(re.escape(var) + r"\s*=\s*", text)
        if m is None:
            raise ValueError(f"no assignment to {var}")
        text = text[m.end():]
    elif text[:1] in "{[":
        try:
            return json.loads(text)
        except ValueError:
            pass  # not strict JSON: a JavaScript literal, read below
    import chompjs

    try:
        return chompjs.parse_js_object(text)
    except Exception as exc:  # chompjs raises ValueError, and occasionally others, on text it cannot read
        raise ValueError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


@dataclass
class Document:
    url: str
    base_url: str
    html: str = ""
    tree: object = None  # lxml.html.HtmlElement, or None for an empty document
    sel: object = None  # parsel.Selector over `tree`
    data: dict = field(default_factory=dict)  # name -> parsed JSON (absent: the source gave nothing)
    problems: list[str] = field(default_factory=list)
    _structured: dict = field(default_factory=dict)

    @classmethod
    def from_html(cls, url: str, html: str | bytes, tree=None) -> Document:
        from carscope.crawler.urls import canonicalize

        if isinstance(html, bytes):
            html = html.decode("utf-8", errors="replace")
        if tree is None:
            tree = parse_tree(html)
        base, sel = url, None
        if tree is not None:
            import parsel

            sel = parsel.Selector(root=tree, type="html")
            found = tree.xpath("//base/@href")
            if found:
                base = canonicalize(found[0], url) or url
        return cls(url=url, base_url=base, html=html, tree=tree, sel=sel)

    def problem(self, reason: str) -> None:
        if reason not in self.problems:
            self.problems.append(reason)

    # -- data sources --------------------------------------------------------------------------------------
    def add_script_source(self, name: str, script: str, var: str | None = None, optional: bool = False,
                          attr: str | None = None) -> None:
        nodes = self.sel.css(script) if self.sel is not None else []
        if attr:
            texts = [n.attrib[attr] for n in nodes if n.attrib.get(attr)]
        else:
            texts = [n.root.text_content() if hasattr(n.root, "text_content") else str(n.root) for n in nodes]
        if var:
            texts = [t for t in texts if var in t]
        if not texts:
            if not optional:
                self.problem(f"data_missing: {name}")
            return
        try:
            self.data[name] = parse_js_data(texts[0], var)
        except ValueError as exc:
            self.problem(f"bad_json: {name} ({exc})"[:200])

    def add_json_source(self, name: str, text_or_obj) -> None:
        if isinstance(text_or_obj, (bytes, str)):
            try:
                self.data[name] = json.loads(text_or_obj)
            except (ValueError, UnicodeDecodeError):
                self.problem(f"bad_json: {name}")
                return
        else:
            self.data[name] = text_or_obj

    def json_values(self, expr: str, source: str | None = None, required: bool = False) -> list:
        """What a JMESPath expression selects in a source, as a list (a list result is its items). A `required`
        path (a spec list, a photo list) that selects nothing is a problem of the page; a field's is not (a
        `next` link is null on the last page)."""
        if source is None:
            source = next(iter(self.data), None)
        if source not in self.data:
            return []
        got = compiled_jmespath(expr).search(self.data[source])
        if got is None:
            if required:
                self.problem(f"json_path_missing: {expr}" + (f" in {source}" if source else ""))
            return []
        return list(got) if isinstance(got, list) else [got]

    # -- schema.org ----------------------------------------------------------------------------------------
    def structured(self, syntax: str) -> list[dict]:
        """The page's JSON-LD (`json-ld`) or microdata (`microdata`) items, through extruct, parsed once."""
        if syntax not in self._structured:
            items: list = []
            marker = "application/ld+json" if syntax == "json-ld" else "itemscope"
            if self.tree is not None and marker in self.html:  # extruct costs a walk of the page: only if there is some
                try:
                    if syntax == "json-ld":
                        from extruct.jsonld import JsonLdExtractor

                        items = JsonLdExtractor().extract_items(self.tree, base_url=self.base_url)
                    else:
                        from extruct.w3cmicrodata import MicrodataExtractor

                        items = MicrodataExtractor().extract_items(self.tree, base_url=self.base_url)
                    items = list(items)
                except Exception as exc:  # extruct raises ValueError (and others) on a broken block
                    self.problem(f"bad_{syntax.replace('-', '')}: {type(exc).__name__}")
                    items = []
            self._structured[syntax] = items
        return self._structured[syntax]
