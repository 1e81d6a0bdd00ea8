"""The showroom adapter's hook: photo pages without a browser (`carscope crawl --browser never`).

    carscope crawl --start-url http://127.0.0.1:8700/ --out dataset --browser never

The showroom's gallery is built by /static/gallery.js from `/api/gallery/<make>/<model>/<year>.json`
(the URL sits in `#gallery[data-gallery]`), so a plain HTTP fetch of the photos page sees no photo. Instead
of running the script, this hook reads the same JSON through the crawler's polite fetcher and returns what
the rendered page would show: the widest srcset candidate of every entry, with the entry's `view` as the
view hint (tabbed galleries label every photo; mixed ones have `view: null` -> unknown). With
`--browser auto|always` the page is rendered in Chromium instead and this hook is not called.

Hook contract (any adapter may ship one, named by `[site] hook = "file.py"`):
    async def photos_without_browser(ctx, page) -> list[dict(url=..., view_hint=...)]
`page` is crawler.parse.Page (url, groups, html, tree); `ctx.fetch_json(url)` / `ctx.fetch_text(url)` fetch
politely and raise on failure (the crawler then retries the page later).
"""

from __future__ import annotations

from carscope.crawler.urls import canonicalize, largest_from_srcset
from carscope.crawler.views import normalize_view


async def photos_without_browser(ctx, page) -> list[dict]:
    if page.tree is None:
        return []
    holders = page.tree.cssselect("#gallery[data-gallery]")
    if not holders:
        return []
    data_url = canonicalize(holders[0].get("data-gallery"), page.base_url)
    if data_url is None:
        return []
    data = await ctx.fetch_json(data_url)
    photos = data.get("photos") if isinstance(data, dict) else None
    tabbed = isinstance(data, dict) and data.get("layout") == "tabs"
    out = []
    for entry in photos or []:
        if not isinstance(entry, dict):
            continue
        raw = largest_from_srcset(entry.get("srcset") or "") or entry.get("src")
        url = canonicalize(raw, page.base_url) if raw else None  # the img would resolve it against the page
        if url is None:
            continue
        view = normalize_view(entry.get("view")) if tabbed else "unknown"
        out.append({"url": url, "view_hint": view})
    return out
