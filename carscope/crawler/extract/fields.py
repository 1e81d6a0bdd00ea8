r"""Field rules: what an adapter says to pick one value (or a list of values) out of a page.

    python -c "
    from carscope.crawler.extract.fields import FieldRule; from carscope.crawler.extract.document import Document
    doc = Document.from_html('http://h/v/1', '<h1 class=t>2023 · Acme Motors · Road Star</h1>')
    rule = FieldRule(css='h1.t', re=r'^(?P<year>\d{4}) · (?P<make>.+?) · (?P<model>.+)$')
    print(rule.first(doc), rule.groups(doc))"

A rule is written in the adapter either as a plain string (a CSS selector; the value is the element's text,
whitespace collapsed) or as an inline table:

    { css = "h1", attr = "text" }              # attr: "text" (default) or an attribute name ("href", "data-x")
    { xpath = "//meta[@property='og:title']/@content" }   # XPath may return attributes or text directly
    { json = "props.pageProps.vehicle.year", from = "next" }   # JMESPath into a [data.<name>] source
    { css = "h1", re = '(?P<year>\d{4})' }     # a regex on the selected text: the named group `value`, else the
                                               # first group, else the whole match; non-matches are dropped
    { css = "li.tag", join = ", " }            # all matches joined into one value (default: each is a value)
    { css = "span.x", strip = false }          # keep the text as it is (default: whitespace collapsed)
    { json = "items[*].id", format = "/cars/{}" }   # each value put into a template ({} or {value}, and the
                                               # regex's named groups): ids -> URLs

Pure functions of the document; nothing is fetched here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

FIELD_KEYS = ("css", "xpath", "json", "from", "attr", "re", "join", "strip", "format")
_ASCII_SPACE = re.compile(r"[ \t\n\r\f\v]+")


def collapse(text: str) -> str:
    """Runs of ASCII whitespace as one space, trimmed. Non-breaking and thin spaces are kept: in "31\u202f740 €"
    they are the page's thousands separator, and specs_raw.parquet keeps values as written."""
    return _ASCII_SPACE.sub(" ", text).strip(" ")


def node_text(node, strip: bool = True) -> str:
    """The text of a parsel Selector / lxml element / string, with whitespace collapsed when `strip`."""
    root = getattr(node, "root", node)
    if isinstance(root, str):
        text = root
    elif hasattr(root, "text_content"):
        text = root.text_content()
    elif hasattr(root, "xpath"):
        text = root.xpath("string()")
    else:
        text = scalar_text(root)
    return collapse(text) if strip else text


def scalar_text(value) -> str | None:
    """A JSON value as page text: numbers without a spurious `.0`, bools and null as None, containers as JSON."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass
class FieldRule:
    css: str | None = None
    xpath: str | None = None
    json: str | None = None
    source: str | None = None  # `from`: which [data.<name>] a `json` path reads (default: the first one)
    attr: str = "text"
    re: re.Pattern | None = None
    join: str | None = None
    strip: bool = True
    format: str | None = None

    def describe(self) -> str:
        how = (f"css {self.css!r}" if self.css else f"xpath {self.xpath!r}" if self.xpath
               else f"json {self.json!r}" + (f" from {self.source}" if self.source else ""))
        return how + (f" attr {self.attr}" if self.attr != "text" else "")

    # -- selection -----------------------------------------------------------------------------------------
    def raw_values(self, doc, node=None) -> list[str]:
        """Every selected value before the regex: text or attribute of each match, in document order."""
        if self.json is not None:
            return [t for t in (scalar_text(v) for v in doc.json_values(self.json, self.source)) if t is not None]
        scope = node if node is not None else doc.sel
        if scope is None:
            return []
        out: list[str] = []
        if self.css is not None:
            for el in scope.css(self.css):
                out.append(node_text(el, self.strip) if self.attr == "text" else el.attrib.get(self.attr) or "")
        else:
            for got in scope.xpath(self.xpath):
                root = got.root
                if isinstance(root, str):
                    out.append(collapse(root) if self.strip else root)
                elif self.attr == "text":
                    out.append(node_text(got, self.strip))
                else:
                    out.append(got.attrib.get(self.attr) or "")
        return out

    def values(self, doc, node=None) -> list[str]:
        out = []
        for v in self.raw_values(doc, node):
            groups: dict[str, str] = {}
            if self.re is not None:
                m = self.re.search(v)
                if m is None:
                    continue
                gd = m.groupdict()
                if "value" in gd:
                    got = gd["value"]
                elif m.re.groups:
                    got = next((g for g in m.groups() if g is not None), None)
                else:
                    got = m.group(0)
                if got is None:
                    continue
                v = got.strip() if self.strip else got
                groups = {k: g for k, g in gd.items() if g is not None and k != "value"}
            if not v:
                continue
            if self.format is not None:
                v = self.format.format(v, value=v, **groups)
            out.append(v)
        if self.join is not None:
            return [self.join.join(out)] if out else []
        return out

    def first(self, doc, node=None) -> str | None:
        vals = self.values(doc, node)
        return vals[0] if vals else None

    def groups(self, doc, node=None) -> dict[str, str]:
        """The named groups of the regex on the first selected value it matches ({} without a regex)."""
        if self.re is None:
            return {}
        for v in self.raw_values(doc, node):
            m = self.re.search(v)
            if m is not None:
                return {k: g.strip() for k, g in m.groupdict().items() if g is not None and g.strip()}
        return {}


def parse_field(ck, tname: str, key: str, value, *, default_attr: str = "text") -> FieldRule:
    """A field rule from the adapter (a CSS string or an inline table), validated with file:line:field."""
    if isinstance(value, str):
        if not value.strip():
            ck.fail(tname, key, "expected a CSS selector or a table such as { css = \"h1\" }")
        return FieldRule(css=ck.selector(tname, key, value), attr=default_attr)
    if not isinstance(value, dict):
        ck.fail(tname, key, f"expected a CSS selector or an inline table, got {value!r}")
    for k in value:
        if k not in FIELD_KEYS:
            ck.fail(tname, key, f"unknown key '{k}' in the field rule (known: {', '.join(FIELD_KEYS)})")
    how = [k for k in ("css", "xpath", "json") if k in value]
    if len(how) != 1:
        ck.fail(tname, key, "a field rule needs exactly one of css, xpath or json")
    for k in ("css", "xpath", "json", "from", "attr", "re", "join"):
        if k in value and (not isinstance(value[k], str) or (k != "join" and not value[k].strip())):
            ck.fail(tname, key, f"'{k}' must be a non-empty string, got {value[k]!r}")
    if "strip" in value and not isinstance(value["strip"], bool):
        ck.fail(tname, key, f"'strip' must be true or false, got {value['strip']!r}")
    if "from" in value and "json" not in value:
        ck.fail(tname, key, "'from' goes with 'json' (the data source a JSON path reads)")
    rule = FieldRule(attr=value.get("attr", default_attr), join=value.get("join"), strip=value.get("strip", True),
                     source=value.get("from"))
    if "css" in value:
        rule.css = ck.selector(tname, key, value["css"])
    elif "xpath" in value:
        rule.xpath = ck.xpath(tname, key, value["xpath"])
    else:
        rule.json = ck.jmespath(tname, key, value["json"])
    if "re" in value:
        rule.re = ck.regex(tname, key, value["re"])
    if "format" in value:
        fmt = value["format"]
        if not isinstance(fmt, str):
            ck.fail(tname, key, f"'format' must be a string such as \"/cars/{{}}\", got {fmt!r}")
        names = set(rule.re.groupindex) if rule.re is not None else set()
        try:
            fmt.format("x", value="x", **dict.fromkeys(names - {"value"}, "x"))
        except (KeyError, IndexError, ValueError) as exc:
            ck.fail(tname, key, f"bad format {fmt!r} ({type(exc).__name__}: {exc}); use {{}}, {{value}} or the "
                                f"regex's named groups")
        rule.format = fmt
    return rule
