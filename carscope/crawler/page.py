"""Reading one page: rendered in the browser or taken as HTTP gave it, the adapter's hook, the extraction, the
hook's photos. The crawl (carscope/crawler/engine.py) and `carscope crawl --check` (carscope/crawler/check.py)
both read a page here, so `--check` shows exactly what a crawl would get.

    python -c "
    import asyncio; from carscope.crawler.adapter import load_adapter; from carscope.crawler.page import PageReader
    a = load_adapter('showroom'); pt, g = a.classify('/')
    html = '<ul class=makes><li><a class=make-link href=/make/acme>A</a></ul>'
    print(asyncio.run(PageReader(a, None, None).read(pt, g, 'http://h/', html, render=False)).parsed.links)"

What a caller does with a failure differs (the crawl retries the URL, --check reports it), so a failure comes
out as an exception that says what failed:
- `RenderFailed(reason)`: the browser rendered nothing usable (gallery_timeout, render_error, ...);
- `BrowserUnavailable` (a CarscopeError): Chromium would not start;
- `HookFetchError(resp, reason)`: a fetch through the `HookContext` failed (a JSON source, or a hook's own
  fetch); `step` says whether `photos_without_browser` or the extraction asked for it.
- `HookError`: anything else a hook raised (a bug in the hook): it names the hook function, its file and line,
  and keeps the exception with its traceback (`error`).

A soft error is no exception: a page that answered 200 without the content its page type's `require` rules name
(a "maintenance" page) comes back with those rules in `PageRead.missing`. The crawl retries it like a 503
(reason `content_missing`, never done); `--check` lists it among the problems.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from carscope.common.errors import CarscopeError
from carscope.crawler.parse import (  # noqa: F401 (HookError, HookFetchError: the crawl and --check catch them here)
    HookError,
    HookFetchError,
    Page,
    Parsed,
    call_hook,
    extract_page,
    make_page,
    photo_from,
)


class RenderFailed(Exception):
    """The browser rendered nothing usable; `reason` is the failures row's code."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BrowserUnavailable(CarscopeError):
    """Chromium would not start (the message says why)."""


class HookContext:
    """What an adapter hook may use: the crawl's polite fetcher (JSON and text) and its settings."""

    def __init__(self, http, config):
        self._http = http
        self.config = config
        self.extra = config.extra if config is not None else {}
        self.fetched: list[str] = []  # URLs fetched through this context (what --check reports)

    async def fetch_json(self, url: str):
        self.fetched.append(url)
        resp = await self._http.fetch_retrying(url, kind="json")
        if not resp.ok:
            raise HookFetchError(resp, resp.error or f"http_{resp.status}")
        try:
            return json.loads(resp.body)
        except (ValueError, UnicodeDecodeError):
            raise HookFetchError(resp, "bad_json") from None

    async def fetch_text(self, url: str) -> str:
        self.fetched.append(url)
        resp = await self._http.fetch_retrying(url, kind="asset")
        if not resp.ok:
            raise HookFetchError(resp, resp.error or f"http_{resp.status}")
        return (resp.body or b"").decode("utf-8", errors="replace")


@dataclass
class PageRead:
    page: Page
    parsed: Parsed
    rendered: object | None = None  # browser.Rendered, when the browser read the page
    fetched: list[str] = field(default_factory=list)  # URLs the hooks and JSON sources fetched
    missing: list[str] = field(default_factory=list)  # the `require` rules that gave nothing: a soft error


CONTENT_MISSING = "content_missing"  # the failures row's reason of a page that stayed a soft error


def missing_content(pt, doc) -> list[str]:
    """The page type's `require` rules (described) that select no value in `doc`: an empty list when the page
    has its content."""
    out = []
    for rule in pt.require:
        has = rule.values(doc) if rule.json is not None or doc.sel is not None else []
        if not has:
            out.append(rule.describe())
    return out


class PageReader:
    """Reads pages of one adapter: `http` (fetch.HttpFetcher) serves the hooks' fetches, `browser` (a
    browser.BrowserPool, or None) renders; `on_rendered(rendered)` runs after each successful render."""

    def __init__(self, adapter, http, config, browser=None, on_rendered=None):
        self.adapter, self.http, self.config = adapter, http, config
        self.browser, self.on_rendered = browser, on_rendered

    async def read(self, pt, groups: dict, url: str, html: str, *, render: bool,
                   inherited: dict | None = None) -> PageRead:
        """The page at `url` (its final URL) of page type `pt`, whose HTTP body is `html`. With `render`, the
        browser renders it first (with the page type's actions); without, a `browser = true` page type's photos
        come from the adapter's `photos_without_browser` hook when it has one."""
        ctx = HookContext(self.http, self.config)
        captured, from_hook, rendered = None, None, None
        hook = self.adapter.hook_fn("photos_without_browser")
        if render:
            try:
                rendered = await self.browser.render(url, html, wait_for=pt.wait_for, scroll=pt.scroll,
                                                     actions=pt.actions, capture_json=pt.capture_json)
            except BrowserUnavailable:
                raise
            except CarscopeError as exc:  # the pool's way of saying Chromium would not start
                raise BrowserUnavailable(str(exc), exit_code=exc.exit_code) from exc
            if rendered.error is not None:
                raise RenderFailed(rendered.error)
            html, captured = rendered.html, rendered.captured
            if self.on_rendered is not None:
                self.on_rendered(rendered)
        elif pt.browser and hook is not None:
            try:
                from_hook = await call_hook(hook, ctx, make_page(self.adapter, pt, groups, url, html))
            except HookFetchError as exc:
                exc.step = "photos_without_browser"
                raise
        page, parsed = await extract_page(self.adapter, pt, groups, url, html, ctx=ctx, captured=captured,
                                          inherited=inherited)
        missing = missing_content(pt, page.doc)
        if from_hook is not None:
            parsed.photos = [p for p in (photo_from(x, url) for x in from_hook) if p is not None]
            if parsed.photos and parsed.model_id is None and "no_model_year" not in parsed.problems:
                parsed.problems.append("no_model_year")
        return PageRead(page, parsed, rendered, ctx.fetched, missing)
