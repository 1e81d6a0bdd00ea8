r"""Spec pair forms: the shapes in which catalog pages write (key, value) specifications.

    python -c "
    from carscope.crawler.extract.document import Document; from carscope.crawler.extract.pairs import DefinitionList
    doc = Document.from_html('http://h/', '<dl class=f><dt>Price</dt><dd>€ 31.740</dd><dt>Seats</dt><dd>5</dd></dl>')
    print(DefinitionList(select='dl.f').pairs(doc))"

Each form is one small class with one job, `pairs(doc) -> [(key, value), ...]` in page order, and a
`build(table, ck, tname)` that validates its adapter table; `reads_html` says whether it needs the page's HTML
(a JSON-only page has none). An adapter lists them under
`[[pages.<type>.specs.pairs]]` with `form = "..."`:

| form | fields (defaults) | reads |
|---|---|---|
| `rows` | `row`, `key`, `value` (CSS; required) | a row element per spec, key and value inside it |
| `dl` | `select = "dl"` | each `<dt>` with the `<dd>` that follows it (several `<dd>`: joined with " / ") |
| `text` | `select` (required CSS), `split = '\s*[:：]\s*'` | each element's text cut at the first `split` match: "Engine: 2.0L I4" |
| `table` | `select = "table"`, `header = false`, `row = 1` | `th`/`td` pairs per row; with `header = true` the header row names the columns of value row `row` |
| `jsonld` | `types = ["Car", "Vehicle", "Product", ...]` | the first schema.org item of those types, flattened (carscope/crawler/extract/structured.py) |
| `microdata` | `types` as above | the same from microdata (`itemscope`/`itemprop`) |
| `json` | `items` (JMESPath; required), `from`, `key = "key"`, `value = "value"` | an object (each member a pair), a list of objects (`key`/`value` sub-paths), or a list of [key, value] lists |

Values keep the page's text (whitespace collapsed); cleaning happens later, from specs_raw.parquet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from carscope.crawler.extract.fields import collapse, node_text, scalar_text
from carscope.crawler.extract.structured import VEHICLE_TYPES, flatten, vehicles


@dataclass
class Rows:
    row: str
    key: str
    value: str
    keys = {"form", "row", "key", "value"}
    reads_html = True

    @classmethod
    def build(cls, t: dict, ck, tname: str) -> Rows:
        return cls(**{k: ck.selector(tname, k, ck.get(t, tname, k, str, required=True)) for k in ("row", "key", "value")})

    def pairs(self, doc) -> list[tuple[str, str]]:
        out = []
        for row in doc.sel.css(self.row):
            keys, values = row.css(self.key), row.css(self.value)
            key = node_text(keys[0]) if keys else ""
            if key:
                out.append((key, node_text(values[0]) if values else ""))
        return out


@dataclass
class DefinitionList:
    select: str = "dl"
    keys = {"form", "select"}
    reads_html = True

    @classmethod
    def build(cls, t: dict, ck, tname: str) -> DefinitionList:
        return cls(select=ck.selector(tname, "select", ck.get(t, tname, "select", str, default="dl")))

    def pairs(self, doc) -> list[tuple[str, str]]:
        out = []
        for dl in doc.sel.css(self.select):
            names: list[str] = []
            values: list[str] = []
            # dt/dd children, also inside the <div> wrappers HTML allows in a <dl>
            for node in [*dl.xpath("./dt | ./dd | ./div/dt | ./div/dd"), None]:
                tag = node.root.tag.lower() if node is not None and hasattr(node.root, "tag") else ""
                if node is None or (tag == "dt" and values):  # a group ends: each name gets the values
                    if names and values:
                        joined = " / ".join(v for v in values if v)
                        out.extend((n, joined) for n in names)
                    names, values = [], []
                if node is None:
                    break
                text = node_text(node)
                if tag == "dt":
                    if text:
                        names.append(text)
                else:
                    values.append(text)
        return out


@dataclass
class Text:
    select: str
    split: re.Pattern = field(default_factory=lambda: re.compile(r"\s*[:：]\s*"))
    keys = {"form", "select", "split"}
    reads_html = True

    @classmethod
    def build(cls, t: dict, ck, tname: str) -> Text:
        out = cls(select=ck.selector(tname, "select", ck.get(t, tname, "select", str, required=True)))
        if "split" in t:
            out.split = ck.regex(tname, "split", ck.get(t, tname, "split", str))
        return out

    def pairs(self, doc) -> list[tuple[str, str]]:
        out = []
        for el in doc.sel.css(self.select):
            parts = self.split.split(node_text(el), maxsplit=1)
            if len(parts) == 2 and parts[0].strip():
                out.append((parts[0].strip(), parts[1].strip()))
        return out


@dataclass
class Table:
    select: str = "table"
    header: bool = False
    row: int = 1
    keys = {"form", "select", "header", "row"}
    reads_html = True

    @classmethod
    def build(cls, t: dict, ck, tname: str) -> Table:
        row = t.get("row", 1)
        if not isinstance(row, int) or isinstance(row, bool) or row < 1:
            ck.fail(tname, "row", f"expected a whole number >= 1 (the value row under the header), got {row!r}")
        return cls(select=ck.selector(tname, "select", ck.get(t, tname, "select", str, default="table")),
                   header=ck.get(t, tname, "header", bool, default=False), row=row)

    def pairs(self, doc) -> list[tuple[str, str]]:
        out = []
        for table in doc.sel.css(self.select):
            rows = table.xpath("./tr | ./thead/tr | ./tbody/tr | ./tfoot/tr")
            if self.header:
                if len(rows) <= self.row:
                    continue
                heads = [node_text(c) for c in rows[0].xpath("./th | ./td")]
                cells = [node_text(c) for c in rows[self.row].xpath("./th | ./td")]
                out.extend((h, v) for h, v in zip(heads, cells, strict=False) if h)
                continue
            for tr in rows:
                cells = tr.xpath("./th | ./td")
                if len(cells) < 2:
                    continue
                ths = [i for i, c in enumerate(cells) if c.root.tag.lower() == "th"]
                k = ths[0] if ths else 0
                if k + 1 >= len(cells):
                    continue
                key = node_text(cells[k])
                if key:
                    out.append((key, node_text(cells[k + 1])))
        return out


@dataclass
class JsonLd:
    types: list[str] = field(default_factory=lambda: list(VEHICLE_TYPES))
    syntax = "json-ld"
    keys = {"form", "types"}
    reads_html = True

    @classmethod
    def build(cls, t: dict, ck, tname: str):
        return cls(types=ck.get(t, tname, "types", list, default=list(VEHICLE_TYPES)))

    def pairs(self, doc) -> list[tuple[str, str]]:
        found = vehicles(doc.structured(self.syntax), self.types, microdata=self.syntax == "microdata")
        if not found:
            doc.problem(f"no_{self.syntax.replace('-', '')}_vehicle")
            return []
        return flatten(found[0])


@dataclass
class Microdata(JsonLd):
    syntax = "microdata"


@dataclass
class Json:
    items: str
    source: str | None = None
    key: str = "key"
    value: str = "value"
    keys = {"form", "items", "from", "key", "value"}
    reads_html = False

    @classmethod
    def build(cls, t: dict, ck, tname: str) -> Json:
        return cls(items=ck.jmespath(tname, "items", ck.get(t, tname, "items", str, required=True)),
                   source=ck.get(t, tname, "from", str),
                   key=ck.jmespath(tname, "key", ck.get(t, tname, "key", str, default="key")),
                   value=ck.jmespath(tname, "value", ck.get(t, tname, "value", str, default="value")))

    def pairs(self, doc) -> list[tuple[str, str]]:
        from carscope.crawler.extract.document import compiled_jmespath

        out = []
        got = doc.json_values(self.items, self.source, required=True)
        if len(got) == 1 and isinstance(got[0], dict):  # one object: each member is a pair
            for k, v in got[0].items():
                text = scalar_text(v)
                if text is not None and not isinstance(v, (dict, list)):
                    out.append((str(k), collapse(text)))
            return out
        for entry in got:
            if isinstance(entry, dict):
                k, v = compiled_jmespath(self.key).search(entry), compiled_jmespath(self.value).search(entry)
            elif isinstance(entry, list) and len(entry) == 2:
                k, v = entry
            else:
                continue
            k, v = scalar_text(k), scalar_text(v)
            if k:
                out.append((collapse(k), collapse(v or "")))
        return out


FORMS = {"rows": Rows, "dl": DefinitionList, "text": Text, "table": Table, "jsonld": JsonLd, "microdata": Microdata, "json": Json}
