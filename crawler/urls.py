"""URL canonicalisation and scope checks: one spelling per resource, so the frontier never fetches it twice.

    python -c "from crawler.urls import canonicalize as c; print(c('HTTP://Example.com:80/A/b/../c?b=2&utm_source=x&a=1#top'))"
    # -> http://example.com/A/c?a=1&b=2
"""

from __future__ import annotations

import posixpath
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

# Query parameters that only track the visitor; they never change the resource.
TRACKING_PARAMS = frozenset({
    "gclid", "dclid", "fbclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi",
    "mkt_tok", "srsltid",
})
TRACKING_PREFIXES = ("utm_",)
DEFAULT_PORTS = {"http": 80, "https": 443}
SCHEMES = ("http", "https")


def canonicalize(url: str, base: str | None = None) -> str | None:
    """The canonical form of `url` (resolved against `base`), or None when it is not a crawlable http(s) URL.

    Scheme and host are lower-cased, the default port dropped, dot segments resolved, the fragment removed,
    tracking parameters dropped and the rest of the query sorted. Path case is kept: servers differ on it.
    """
    url = (url or "").strip()
    if not url:
        return None
    if base is not None:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    if "." in path:  # resolve ./ and ../ but keep a trailing slash, which servers treat as a different URL
        trailing = path.endswith("/")
        path = posixpath.normpath(path)
        path = "/" if path in (".", "/", "//") else path.replace("//", "/")
        if trailing and not path.endswith("/"):
            path += "/"
    path = quote(path, safe="/%:@!$&'()*+,;=-._~")  # encode spaces etc.; keep existing escapes as they are
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k.lower() not in TRACKING_PARAMS and not k.lower().startswith(TRACKING_PREFIXES)]
    query.sort()
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def host_of(url: str) -> str:
    """`http://a.example:8080/x` -> `a.example:8080` (the politeness key: host and port)."""
    return urlsplit(url).netloc.lower()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def path_and_query(url: str) -> str:
    """`http://h/a/b?x=1` -> `/a/b?x=1`: what adapters' URL patterns and robots.txt rules match against."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def largest_from_srcset(srcset: str) -> str | None:
    """The URL of the widest candidate in a `srcset` value (`a.jpg 320w, b.jpg 640w` -> `b.jpg`)."""
    best, best_w = None, -1.0
    for cand in (srcset or "").split(","):
        bits = cand.strip().split()
        if not bits:
            continue
        width = 1.0
        if len(bits) > 1:
            desc = bits[-1].lower()
            try:
                width = float(desc[:-1]) if desc[-1] in "wx" else float(desc)
            except (ValueError, IndexError):
                width = 1.0
        if width > best_w:
            best, best_w = bits[0], width
    return best
