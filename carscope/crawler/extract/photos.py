r"""Photo sources: where a page keeps its photo URLs, and the view hint (exterior / interior) next to each.

    python -c "
    from carscope.crawler.extract.document import Document; from carscope.crawler.extract.photos import PhotoSource
    doc = Document.from_html('http://h/v/1', '<figure class=\"shot interior\"><img src=/m/1/thumb.jpg></figure>')
    src = PhotoSource(image='figure.shot img', view_from=['class'], rewrite=[(__import__('re').compile('/thumb'), '/full')])
    print(src.photos(doc))"

An adapter lists one `[pages.<type>.photos]` table, or several as `[[pages.<type>.photos]]`. Each reads:
- elements (`image = "CSS"`): the first usable attribute of `attrs`, in order. An attribute whose name holds
  `srcset` gives its widest candidate; `style` gives a CSS `background-image: url(...)`; an `<img>` inside a
  `<picture>` (with `picture = true`, the default) competes with its `<source srcset>` candidates (`pick`):
  the widest wins, except that an `<img src>` whose width nothing states is taken as the full-size photo (a
  `<source>`'s `400w` proves nothing about it), unless a srcset lists that same URL with a width;
- JSON (`json = "items"`, `from = "<data source>"`): a list of URL strings, or of objects whose URL sits at the
  first of `url = [...]` sub-paths that is present (a `srcset` sub-path wins when present), view at `view`;
- JSON-LD (`jsonld = true`): the `image` list of the page's schema.org vehicle.
Then `rewrite = [{ pattern = '...', replace = '...' }]` (regex substitutions, in order: thumbnail -> full
size) and `ignore = ['regex', ...]` (placeholders, data: URLs) apply.

The view hint comes from the first of `view_from` that names one: `attr:NAME` (on the element or its nearest
ancestor that has it), `class` (class tokens of the element and its ancestors), `alt` (alt / title, or those of an `<img>` inside),
`caption` (the `caption` CSS inside the element or its nearest ancestor that holds no other photo,
default `figcaption`), `text`.
A text names a view when one of its words (runs of letters: "tab-exterior" is "tab" and "exterior") is in
`view_words` (defaults below), or through `view_regex`'s `view` group. Nothing found is `view_hint` (default
`unknown`; set it for a source that holds one view only, such as an interior tab): never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from carscope.crawler.extract.fields import node_text
from carscope.crawler.views import DEFAULT_VIEW_WORDS, VIEW_NAMES

BACKGROUND_URL = re.compile(r"background(?:-image)?\s*:[^;]*?url\(\s*(['\"]?)(.*?)\1\s*\)", re.I)
DEFAULT_JSON_URL = ["url", "src", "href", "contentUrl", "full", "large"]
GOOD_SOURCE_TYPES = ("", "image/jpeg", "image/jpg", "image/png", "image/webp", "image/gif")


@dataclass
class Candidate:
    """One URL a photo could be taken from, as the page offers it (what `crawl --check` lists)."""

    url: str
    width: float | None  # a srcset's `w` descriptor (an `x` one as a multiple of 1000); None: nothing says
    origin: str  # where it was found: "<source> srcset", "<img> srcset", "<img> src", an attribute, "json srcset"
    won: bool = False  # the one taken (before `rewrite`)


@dataclass
class Found:
    url: str
    view_hint: str  # exterior / interior / unknown
    candidates: list[Candidate] = field(default_factory=list)  # what competed (empty when only one was offered)


def srcset_candidates(srcset: str) -> list[tuple[str, float]]:
    """(url, width) of each candidate: `w` descriptors as given, `x` as a multiple of 1000, none as 0."""
    out = []
    for cand in re.split(r",\s+|,(?=\S+\s+\d)", srcset or ""):
        bits = cand.strip().split()
        if not bits:
            continue
        width = 0.0
        if len(bits) > 1:
            d = bits[1].lower()
            try:
                width = float(d[:-1]) * (1000 if d.endswith("x") else 1) if d[-1] in "wx" else 0.0
            except ValueError:
                width = 0.0
        out.append((bits[0].strip(","), width))
    return out


def widest(srcset: str) -> tuple[str, float] | None:
    cands = srcset_candidates(srcset)
    return max(cands, key=lambda c: c[1]) if cands else None


@dataclass
class PhotoSource:
    image: str | None = None
    json: str | None = None
    source: str | None = None
    jsonld: bool = False
    attrs: list[str] = field(default_factory=lambda: ["srcset", "data-srcset", "data-src", "src"])
    picture: bool = True
    url: list[str] = field(default_factory=lambda: list(DEFAULT_JSON_URL))
    srcset: str | None = "srcset"
    view: str | None = "view"
    view_from: list[str] = field(default_factory=lambda: ["attr:data-view"])
    view_words: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_VIEW_WORDS))
    view_regex: re.Pattern | None = None
    caption: str = "figcaption"
    view_hint: str = "unknown"  # the view of every photo of this source that names none itself
    ignore: list[re.Pattern] = field(default_factory=list)
    rewrite: list[tuple[re.Pattern, str]] = field(default_factory=list)
    keys = {"image", "json", "from", "jsonld", "attrs", "picture", "url", "srcset", "view", "view_attr", "view_from",
            "view_words", "view_regex", "view_hint", "caption", "ignore", "rewrite"}

    @classmethod
    def build(cls, ph: dict, ck, tname: str) -> PhotoSource:
        """One `[pages.<type>.photos]` table, validated field by field (`ck`: carscope/crawler/checker.py)."""
        ck.known(ph, tname, cls.keys)
        how = [k for k in ("image", "json", "jsonld") if k in ph]
        if not how:
            ck.fail(tname, None, "missing required field 'image' (or 'json', or jsonld = true)")
        src = cls()
        if "image" in ph:
            src.image = ck.selector(tname, "image", ck.get(ph, tname, "image", str))
        if "json" in ph:
            src.json = ck.jmespath(tname, "json", ck.get(ph, tname, "json", str))
            src.source = ck.get(ph, tname, "from", str)
        elif "from" in ph:
            ck.fail(tname, "from", "'from' goes with 'json'")
        src.jsonld = ck.get(ph, tname, "jsonld", bool, default=False)
        if "attrs" in ph:
            src.attrs = ck.get(ph, tname, "attrs", list)
        src.picture = ck.get(ph, tname, "picture", bool, default=True)
        if "url" in ph:
            url = ph["url"]
            src.url = [url] if isinstance(url, str) else ck.get(ph, tname, "url", list)
            src.url = [ck.jmespath(tname, "url", u) for u in src.url]
        for key in ("srcset", "view"):
            if key in ph:
                setattr(src, key, ck.jmespath(tname, key, ck.get(ph, tname, key, str)))
        if "view_attr" in ph:
            src.view_from = [f"attr:{ck.get(ph, tname, 'view_attr', str)}"]
        if "view_from" in ph:
            src.view_from = ck.get(ph, tname, "view_from", list)
            for v in src.view_from:
                if v not in ("class", "alt", "caption", "text") and not (v.startswith("attr:") and len(v) > 5):
                    ck.fail(tname, "view_from", f"unknown view source {v!r} (attr:NAME, class, alt, caption, text)")
        if "view_words" in ph:
            words = ph["view_words"]
            if not isinstance(words, dict) or not set(words) <= {"exterior", "interior"} or not all(
                    isinstance(w, list) and all(isinstance(x, str) for x in w) for w in words.values()):
                ck.fail(tname, "view_words", "expected { exterior = [words...], interior = [words...] }")
            src.view_words = {k: tuple(dict.fromkeys([*v, *(x.lower() for x in words.get(k, []))]))
                              for k, v in DEFAULT_VIEW_WORDS.items()}  # added to the defaults
        if "view_regex" in ph:
            src.view_regex = ck.regex(tname, "view_regex", ck.get(ph, tname, "view_regex", str))
        if "view_hint" in ph:
            src.view_hint = ck.get(ph, tname, "view_hint", str)
            if src.view_hint not in ("exterior", "interior", "unknown"):
                ck.fail(tname, "view_hint", f"expected exterior, interior or unknown, got {src.view_hint!r}")
        if "caption" in ph:
            src.caption = ck.selector(tname, "caption", ck.get(ph, tname, "caption", str))
        src.ignore = [ck.regex(tname, "ignore", p) for p in ck.get(ph, tname, "ignore", list, default=[])]
        src.rewrite = ck.rewrites(tname, "rewrite", ph.get("rewrite", []))
        return src

    # -- views ---------------------------------------------------------------------------------------------
    def view_of_text(self, text: str | None) -> str:
        if not text:
            return "unknown"
        if self.view_regex is not None:
            m = self.view_regex.search(text)
            if m is None:
                return "unknown"
            text = m.groupdict().get("view") or m.group(0)
        exact = VIEW_NAMES.get(text.strip().lower())
        if exact:
            return exact
        for word in re.findall(r"[^\W\d_]+", text.lower()):
            for view, words in self.view_words.items():
                if word in words:
                    return view
        return "unknown"

    def view_of_element(self, el) -> str:
        for how in self.view_from:
            view = "unknown"
            if how.startswith("attr:"):
                name, node = how[5:], el.root
                while node is not None and hasattr(node, "get"):
                    value = node.get(name)
                    if value:
                        view = self.view_of_text(value)
                        break
                    node = node.getparent()
            elif how == "class":
                node, depth = el.root, 0
                while node is not None and hasattr(node, "get") and depth < 8 and view == "unknown":
                    view = self.view_of_text(node.get("class"))
                    node, depth = node.getparent(), depth + 1
            elif how == "alt":  # the element's alt / title, or those of the <img> inside it (a link to a photo)
                inner = el.css("img")
                view = self.view_of_text(el.attrib.get("alt") or el.attrib.get("title") or (
                    inner[0].attrib.get("alt") or inner[0].attrib.get("title") if inner else None))
            elif how == "caption":
                node, depth = el, 0
                tag = getattr(el.root, "tag", "*")
                while node is not None and depth < 6 and view == "unknown":
                    if depth and len(node.root.findall(f".//{tag}")) > 1:
                        break  # this container holds other photos too: its caption is not this photo's
                    caps = node.css(self.caption)
                    if caps:
                        view = self.view_of_text(node_text(caps[0]))
                        break
                    parent = node.root.getparent() if hasattr(node.root, "getparent") else None
                    node = type(el)(root=parent) if parent is not None else None
                    depth += 1
            elif how == "text":
                view = self.view_of_text(node_text(el))
            if view != "unknown":
                return view
        return "unknown"

    # -- URLs ----------------------------------------------------------------------------------------------
    def _usable(self, raw: str | None) -> str | None:
        raw = (raw or "").strip()
        if not raw or any(p.search(raw) for p in self.ignore):
            return None
        return raw

    def url_of_element(self, el) -> str | None:
        return self.pick(el)[0]

    def pick(self, el) -> tuple[str | None, list[Candidate]]:
        """The element's photo URL (as written on the page) and the candidates it was chosen from."""
        root = el.root
        if self.picture and getattr(root, "tag", "") == "img":
            parent = root.getparent()
            for _ in range(3):  # HTML parsers that do not know <source> is void nest the <img> inside it
                if parent is None or parent.tag == "picture":
                    break
                parent = parent.getparent()
            if parent is not None and parent.tag == "picture":
                got = self._pick_in_picture(root, parent)
                if got is not None:
                    return got
        for attr in self.attrs:
            raw = root.get(attr) if hasattr(root, "get") else None
            if not raw or not raw.strip():
                continue
            cands: list[Candidate] = []
            if attr in ("style", "background-image"):
                m = BACKGROUND_URL.search(raw)
                cand = m.group(2) if m else None
            elif "srcset" in attr:
                cands = [Candidate(u, w or None, attr) for u, w in srcset_candidates(raw) if self._usable(u)]
                w = widest(raw)
                cand = w[0] if w else None
            else:
                cand = raw.strip()
            cand = self._usable(cand)
            if cand:
                return cand, cands if len(cands) > 1 else []
        return None, []

    def _pick_in_picture(self, img, picture) -> tuple[str, list[Candidate]] | None:
        """`<picture>`: the widest stated width wins, but never over an `<img src>` of unknown width, which is
        the one URL a browser without `<source>` support shows: the full-size photo, as far as anyone knows.
        None when no candidate states a width (the `<img>`'s own attributes then decide, as outside a picture)."""
        cands: list[Candidate] = []
        for node in [*picture.iter("source"), img]:
            if node.tag == "source" and (node.get("type") or "").lower() not in GOOD_SOURCE_TYPES:
                continue
            for a in ("srcset", "data-srcset"):
                cands.extend(Candidate(u, w or None, f"<{node.tag}> {a}")
                             for u, w in srcset_candidates(node.get(a) or "") if self._usable(u))
        if not cands or not any(c.width for c in cands):
            return None
        src = next((self._usable(img.get(a)) for a in self.attrs if "srcset" not in a and a not in (
            "style", "background-image") and self._usable(img.get(a))), None)
        if src is not None and src.lower().startswith("data:"):
            src = None  # an inline placeholder is no photo
        if src is not None:
            stated = max((c.width or 0 for c in cands if c.url == src), default=0)
            cands.append(Candidate(src, stated or None, "<img> src"))
            if not stated:  # nothing proves a larger photo than the one the <img> itself shows
                return src, cands
        best = max(cands, key=lambda c: (c.width or 0, c.origin == "<img> src"))
        return best.url, cands

    def finish(self, raw: str, doc) -> str | None:
        """Resolve against the page, apply the rewrites, check `ignore` again, canonicalise."""
        from carscope.crawler.urls import canonicalize

        url = canonicalize(raw, doc.base_url)
        if url is None:
            return None
        for pattern, repl in self.rewrite:
            try:
                url = pattern.sub(repl, url)
            except (re.error, IndexError) as exc:
                doc.problem(f"bad_rewrite: {pattern.pattern} ({exc})")
                return None
        if any(p.search(url) for p in self.ignore):
            return None
        return canonicalize(url, doc.base_url)

    def photos(self, doc) -> list[Found]:
        from carscope.crawler.extract.document import compiled_jmespath
        from carscope.crawler.extract.structured import images, vehicles
        from carscope.crawler.urls import canonicalize

        found: list[tuple[str | None, str]] = []
        offered: dict[str, list[Candidate]] = {}  # raw URL -> the candidates it won over
        if self.image is not None and doc.sel is not None:
            for el in doc.sel.css(self.image):
                raw, cands = self.pick(el)
                if raw and cands:
                    offered[raw] = cands
                found.append((raw, self.view_of_element(el)))
        if self.json is not None:
            for entry in doc.json_values(self.json, self.source, required=True):
                if isinstance(entry, str):
                    found.append((self._usable(entry), "unknown"))
                    continue
                if not isinstance(entry, dict):
                    continue
                raw = None
                if self.srcset:
                    s = compiled_jmespath(self.srcset).search(entry)
                    w = widest(s) if isinstance(s, str) else None
                    raw = self._usable(w[0]) if w else None
                    if raw and len(srcset_candidates(s)) > 1:
                        offered[raw] = [Candidate(u, wd or None, "json srcset") for u, wd in srcset_candidates(s)]
                for path in self.url if raw is None else []:
                    v = compiled_jmespath(path).search(entry)
                    if isinstance(v, str) and self._usable(v):
                        raw = v.strip()
                        break
                view = compiled_jmespath(self.view).search(entry) if self.view else None
                found.append((raw, self.view_of_text(view if isinstance(view, str) else None)))
        if self.jsonld:
            items = vehicles(doc.structured("json-ld"))
            for url in images(items[0]) if items else []:
                found.append((self._usable(url), "unknown"))
        out, seen = [], set()
        for raw, view in found:
            url = self.finish(raw, doc) if raw else None
            if url is None or url in seen:
                continue
            seen.add(url)
            cands, won = [], False
            for c in offered.get(raw, []):
                cands.append(Candidate(canonicalize(c.url, doc.base_url) or c.url, c.width, c.origin,
                                       won=not won and c.url == raw))
                won = won or c.url == raw
            out.append(Found(url, view if view != "unknown" else self.view_hint, cands))
        return out
