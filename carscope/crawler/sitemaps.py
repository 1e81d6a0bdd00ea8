"""Sitemaps as a source of pages: robots.txt `Sitemap:` lines, sitemap indexes, gzipped sitemaps, `lastmod`.

    python -c "from carscope.crawler.sitemaps import parse_sitemap; print(parse_sitemap(b'<urlset><url><loc>http://h/a</loc><lastmod>2024-05-01</lastmod></url></urlset>', 'http://h/sitemap.xml'))"

`parse_sitemap(body, url)` is pure: a `<urlset>` gives its pages (`loc`, `lastmod`), a `<sitemapindex>` the
sitemaps it names; a body that starts with gzip's magic bytes is unpacked first (a `.xml.gz` file is served as
it is, not with Content-Encoding), with a cap on the unpacked size. `read_sitemaps(http, roots)` fetches a site's
sitemaps through the crawl's polite fetcher (robots.txt applies), following indexes, each sitemap once; a sitemap
that cannot be read is a `Failure` value (the crawl records it as a failures row of kind `sitemap`), never an
exception. `sitemap_roots` finds where to start: the robots.txt `Sitemap:` lines (read with protego), else
`/sitemap.xml`. The crawl (carscope/crawler/engine.py) queues the pages; `crawl --check URL` of a sitemap or a
robots.txt shows what it yields (carscope/crawler/check.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from carscope.crawler.urls import canonicalize

GZIP_MAGIC = b"\x1f\x8b"
MAX_SITEMAP_BYTES = 50 * 2**20  # the sitemaps.org limit for one file, unpacked
MAX_SITEMAPS = 1000  # sitemaps read per crawl (indexes included): a trap of endless indexes stops here


@dataclass
class Sitemap:
    url: str
    kind: str  # urlset / sitemapindex
    pages: list[tuple[str, str | None]] = field(default_factory=list)  # (url, lastmod) of a urlset
    sitemaps: list[str] = field(default_factory=list)  # the sitemaps an index names


@dataclass
class Failure:
    url: str
    reason: str  # http_404, connection_error, bad_sitemap, too_large, offsite, ...
    status: int | None = None


@dataclass
class SitemapRead:
    """What a site's sitemaps gave: the pages in order (each once), the sitemaps read and those that failed."""

    pages: list[tuple[str, str | None]] = field(default_factory=list)
    read: list[Sitemap] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


class BadSitemap(ValueError):
    """Not a sitemap: `reason` is the failures row's code."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def gunzip(body: bytes, limit: int = MAX_SITEMAP_BYTES) -> bytes:
    """The body unpacked when it starts with gzip's magic bytes (as it is otherwise); BadSitemap past `limit`."""
    if not body.startswith(GZIP_MAGIC):
        return body
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error:
        raise BadSitemap("bad_gzip") from None
    if len(out) > limit:
        raise BadSitemap("too_large")  # a gzip bomb, or a sitemap over the limit
    if not d.eof:
        raise BadSitemap("bad_gzip")  # cut short
    return out


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def parse_sitemap(body: bytes, url: str) -> Sitemap:
    """A sitemap's body (gzipped or not) -> Sitemap; relative or blank `loc`s resolved against `url` or dropped.
    BadSitemap when it is not a urlset or a sitemapindex."""
    from lxml import etree

    data = gunzip(body)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True, remove_comments=True,
                             huge_tree=True)  # entities off: no XXE from a hostile sitemap
    try:
        root = etree.fromstring(data.lstrip(), parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        root = None
    kind = _local(root.tag) if root is not None else ""
    if kind not in ("urlset", "sitemapindex"):
        raise BadSitemap("bad_sitemap")
    out = Sitemap(url=url, kind=kind)
    for entry in root:
        fields = {_local(child.tag): (child.text or "").strip() for child in entry}
        loc = canonicalize(fields.get("loc") or "", url) if fields.get("loc") else None
        if loc is None:
            continue
        if kind == "urlset":
            out.pages.append((loc, fields.get("lastmod") or None))
        else:
            out.sitemaps.append(loc)
    return out


def sitemap_roots(robots_text: str | None, origin: str) -> list[str]:
    """Where a site's sitemaps start: its robots.txt `Sitemap:` lines, else `<origin>/sitemap.xml`."""
    found: list[str] = []
    if robots_text:
        from protego import Protego

        try:
            lines = list(Protego.parse(robots_text).sitemaps)
        except Exception:  # an unparseable robots.txt names no sitemap
            lines = []
        for line in lines:
            url = canonicalize(line.strip(), origin + "/")
            if url is not None and url not in found:
                found.append(url)
    return found or [origin + "/sitemap.xml"]


async def read_sitemaps(http, roots: list[str], *, max_sitemaps: int = MAX_SITEMAPS) -> SitemapRead:
    """Fetch `roots` and every sitemap their indexes name (breadth first, each once, at most `max_sitemaps`)
    through `http` (fetch.HttpFetcher: scope, robots.txt, retries). Failures are values."""
    out = SitemapRead()
    queue, seen, pages_seen = list(roots), set(roots), set()
    while queue and len(out.read) + len(out.failures) < max_sitemaps:
        url = queue.pop(0)
        resp = await http.fetch_retrying(url, kind="sitemap", max_bytes=MAX_SITEMAP_BYTES)
        if not resp.ok:
            out.failures.append(Failure(url, resp.error or f"http_{resp.status}", resp.status))
            continue
        try:
            sm = parse_sitemap(resp.body or b"", resp.final_url)
        except BadSitemap as exc:
            out.failures.append(Failure(url, exc.reason, resp.status))
            continue
        out.read.append(sm)
        for page, lastmod in sm.pages:
            if page not in pages_seen:
                pages_seen.add(page)
                out.pages.append((page, lastmod))
        for child in sm.sitemaps:
            if child not in seen:
                seen.add(child)
                queue.append(child)
    for url in queue:  # over the limit: said, not silently dropped
        out.failures.append(Failure(url, "too_many_sitemaps"))
    return out
