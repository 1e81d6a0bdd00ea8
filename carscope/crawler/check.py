"""`carscope crawl --check URL`: what the adapter makes of one page, for adapter authors (like `scrapy parse`).

    carscope crawl --check http://127.0.0.1:8700/acme/road-star/2023/specifications
    carscope crawl --check http://127.0.0.1:8701/vehicle/123456 --site showroom-dl --json

It fetches the one URL politely (robots.txt first; the browser when the page type needs it, with the page
type's actions), reads it exactly as a crawl does (carscope/crawler/page.py: the browser or HTTP, forms, JSON
sources, hooks) and reports: the page type (after redirects), the links it would follow and why others are
dropped (off-site, robots.txt, no page type), the specs raw and cleaned, the model-year id and where each
part came from, the photos with their view hints, and any problems (bad JSON, missing paths, no model-year,
`content_missing: <rule>` when a `require` rule found nothing: a soft error the crawl retries).
Each photo (the first `CHECK_PHOTOS`) is downloaded and put through the crawl's image pipeline, so the report
shows the size it would be stored at (by default a JPEG of at most 1024 px; `--keep-original`: as downloaded)
beside its original size and format, the candidates it was chosen from (`<picture>`, srcset) and which won,
and a warning when every photo is a thumbnail (under 320 px). A URL that matches no page type and looks like a
sitemap (`*.xml`, `*.xml.gz`, `sitemap` in the path) or a robots.txt is read as the crawl's `--sitemap` reads it:
the sitemaps read (indexes followed), those that failed, and the pages listed by page type with their `lastmod`.
Nothing is written. A broken adapter is one line
with file:line: field, exit 2; a hook that raises is one line naming the hook, its file and line (`--traceback`
adds the traceback).
"""

from __future__ import annotations

import asyncio
import json

from carscope.common.errors import CarscopeError

CHECK_PHOTOS = 24  # photos downloaded to show their stored size; a listing of 200 thumbnails needs no more
CHECK_SITEMAPS = 50  # sitemaps a --check of a sitemap index reads (a crawl reads up to sitemaps.MAX_SITEMAPS)
CHECK_SITEMAP_SAMPLE = 20  # pages of a sitemap listed by name


def check(url: str, site: str = "showroom", *, browser: str = "auto", user_agent: str | None = None,
          chromium_path: str | None = None, timeout: float = 30.0, keep_original: bool = False) -> dict:
    """The report as a dict (what `--json` prints); CarscopeError on bad input or an unreachable page."""
    from carscope.crawler.adapter import load_adapter
    from carscope.crawler.config import CrawlConfig
    from carscope.crawler.urls import canonicalize

    adapter = load_adapter(site)
    start = canonicalize(url)
    if start is None:
        raise CarscopeError(f"--check {url}: expected an absolute http:// or https:// URL")
    config = CrawlConfig(start_url=start, out=".", site=site, browser=browser, log=False, progress=False,
                         timeout=timeout, chromium_path=chromium_path, keep_original=keep_original)
    if user_agent:
        config.user_agent = user_agent
    config.validate()
    return asyncio.run(_check(adapter, config, start))


async def _check(adapter, config, url: str) -> dict:
    from carscope.crawler.fetch import HttpFetcher
    from carscope.crawler.politeness import Politeness
    from carscope.crawler.urls import host_of, path_and_query

    allowed = {host_of(url), *adapter.allowed_hosts}
    politeness = Politeness(config, allowed)
    report: dict = {"url": url, "site": adapter.name, "adapter": str(adapter.path)}
    async with HttpFetcher(config, politeness) as http:
        first = adapter.classify(path_and_query(url))
        if first is None and _is_sitemap_url(url):
            report["sitemap"] = await _sitemap(adapter, http, url)
            return report
        resp = await http.fetch_retrying(url, kind="json" if first and first[0].content == "json" else "page")
        if resp.error == "robots_disallowed":
            raise CarscopeError(f"robots.txt of {host_of(url)} disallows {url}")
        if resp.error is not None:
            raise CarscopeError(f"cannot fetch {url}: {resp.error.replace('_', ' ')}")
        if resp.status is None or resp.status >= 400:
            raise CarscopeError(f"{url} answers HTTP {resp.status}")
        final = resp.final_url
        report.update(final_url=final, status=resp.status, redirects=resp.redirects)
        hit = adapter.classify(path_and_query(final)) or adapter.classify(path_and_query(url))
        if hit is None:
            types = ", ".join(f"{n} ({pt.match.pattern})" for n, pt in adapter.page_types.items())
            raise CarscopeError(f"{final} matches no page type of {adapter.path} (page types: {types})")
        pt, groups = hit
        report["page_type"] = pt.name
        report["url_groups"] = groups
        use_browser = config.browser == "always" or (pt.browser and config.browser == "auto")
        read, report["browser"] = await _read(adapter, config, http, pt, groups, final, resp.text(), use_browser)
        page, parsed = read.page, read.parsed
        report["fetched"] = read.fetched
        report["data"] = {name: _shape(value) for name, value in page.doc.data.items()}
        report["links"], report["dropped_links"] = await _links(politeness, http, config, parsed)
        report["model_year"] = _identity(parsed)
        report["specs"] = _specs(parsed, page, pt)
        report["photos"] = await _photos(http, config, parsed.photos)
        report["warnings"] = _warnings(pt.name, report["photos"])
        # a soft error first: a crawl would retry this page and, after its last attempt, record content_missing
        report["problems"] = [f"content_missing: {rule}" for rule in read.missing] + parsed.problems
    return report


def _is_sitemap_url(url: str) -> bool:
    from urllib.parse import urlsplit

    path = urlsplit(url).path.lower()
    return path.endswith(("/robots.txt", ".xml", ".xml.gz")) or "sitemap" in path


async def _sitemap(adapter, http, url: str) -> dict:
    """What a sitemap (or the sitemaps a robots.txt names) yields, as a crawl with `--sitemap` reads it."""
    from carscope.crawler.sitemaps import read_sitemaps, sitemap_roots
    from carscope.crawler.urls import origin_of, path_and_query

    roots = [url]
    if url.lower().endswith("/robots.txt"):
        _, text, _ = await http.robots(url)
        roots = sitemap_roots(text, origin_of(url))
    got = await read_sitemaps(http, roots, max_sitemaps=CHECK_SITEMAPS)
    by_type: dict[str, int] = {}
    sample = []
    for page, lastmod in got.pages:
        link = adapter.link_url(page)
        hit = adapter.classify(path_and_query(link)) if link else None
        name = hit[0].name if hit else None
        by_type[name or "(no page type)"] = by_type.get(name or "(no page type)", 0) + 1
        if len(sample) < CHECK_SITEMAP_SAMPLE:
            sample.append({"url": link or page, "page_type": name, "lastmod": lastmod})
    return {"roots": roots, "pages": len(got.pages), "by_page_type": by_type, "sample": sample,
            "read": [{"url": sm.url, "kind": sm.kind, "pages": len(sm.pages), "sitemaps": len(sm.sitemaps)}
                     for sm in got.read],
            "failures": [{"url": f.url, "reason": f.reason, "status": f.status} for f in got.failures]}


def _format_sitemap(r: dict) -> str:
    sm = r["sitemap"]
    lines = [r["url"], f"  sitemaps     from {', '.join(sm['roots'])}  (adapter {r['adapter']})"]
    for one in sm["read"]:
        what = f"{one['pages']} pages" if one["kind"] == "urlset" else f"index of {one['sitemaps']} sitemaps"
        lines.append(f"  read         {one['url']}: {what}")
    lines += [f"  failed       {f['url']}: {f['reason']}" for f in sm["failures"]]
    lines.append(f"\npages listed ({sm['pages']})")
    lines += [f"  {name:<18} {n}" for name, n in sm["by_page_type"].items()]
    if sm["sample"]:
        lines.append(f"first {len(sm['sample'])}")
        lines += [f"  {(s['page_type'] or '-'):<14} {s['lastmod'] or '':<26} {s['url']}" for s in sm["sample"]]
    return "\n".join(lines)


async def _photos(http, config, photos) -> list[dict]:
    """Each photo as the crawl would store it: downloaded (the first CHECK_PHOTOS) and processed."""
    from carscope.crawler.images import ImageRules, process_image

    rules = ImageRules(min_side=config.min_side, max_aspect=config.max_aspect, max_side=config.max_side,
                       quality=config.jpeg_quality, keep_original=config.keep_original, max_pixels=config.max_pixels)

    async def one(photo, fetch: bool) -> dict:
        out = {"url": photo.url, "view_hint": photo.view_hint,
               "candidates": [{"url": c.url, "width": int(c.width) if c.width else None, "origin": c.origin,
                               "won": c.won} for c in photo.candidates]}
        if not fetch:
            return out
        resp = await http.fetch_retrying(photo.url, kind="image")
        if not resp.ok:
            out["error"] = resp.error or f"http_{resp.status}"
            return out
        got = await asyncio.to_thread(process_image, resp.body, rules)
        out["original"] = {"width": got.orig_width, "height": got.orig_height, "format": got.orig_format,
                           "bytes": len(resp.body)}
        if got.ok:
            out["stored"] = {"width": got.width, "height": got.height, "format": "JPEG" if got.ext == "jpg" else
                             got.orig_format, "bytes": len(got.data)}
        else:
            out["error"] = got.reason
        return out

    return list(await asyncio.gather(*(one(p, i < CHECK_PHOTOS) for i, p in enumerate(photos))))


def _warnings(page_type: str, photos: list[dict]) -> list[str]:
    from carscope.crawler.images import thumbnail_warning

    sides = [max(p["stored"]["width"], p["stored"]["height"]) for p in photos if "stored" in p]
    warning = thumbnail_warning(page_type, sides)
    return [warning] if warning else []


async def _read(adapter, config, http, pt, groups: dict, url: str, html: str, use_browser: bool):
    """The page read as a crawl reads it (carscope/crawler/page.py), each failure one line; with the browser, in
    a pool of one page that lives as long as the read."""
    from contextlib import AsyncExitStack

    from carscope.crawler.page import BrowserUnavailable, HookError, HookFetchError, PageReader, RenderFailed

    async with AsyncExitStack() as stack:
        pool = None
        if use_browser:
            from carscope.crawler.browser import BrowserPool, browser_available

            if not browser_available(config.chromium_path):
                raise CarscopeError(f"page type {pt.name} needs a browser and no Chromium was found (install "
                                    f"chromium or `playwright install chromium`, or pass --browser never)")

            async def fetch(u, kind):
                return await http.fetch_retrying(u, kind=kind)

            pool = await stack.enter_async_context(BrowserPool(
                fetch, pages=1, timeout_s=config.browser_timeout, chromium_path=config.chromium_path,
                user_agent=config.user_agent))
        actions = [a.describe() for a in pt.actions]
        try:
            read = await PageReader(adapter, http, config, pool).read(pt, groups, url, html, render=use_browser)
        except RenderFailed as exc:
            raise CarscopeError(f"rendering {url} failed: {exc.reason} (wait_for {pt.wait_for!r}, "
                                f"actions {actions})") from None
        except HookFetchError as exc:
            if exc.step == "photos_without_browser":
                raise CarscopeError(f"the hook's fetch failed: {exc.reason}") from None
            raise CarscopeError(f"a JSON source could not be fetched: {exc.resp.url}: {exc.reason}") from None
        except BrowserUnavailable:  # Chromium would not start: its own message
            raise
        except HookError as exc:  # one line; `--traceback` prints the traceback kept in exc.error
            raise CarscopeError(f"{exc} (--traceback shows the traceback)") from exc
        except Exception as exc:  # a hook is user code: one line, not a traceback
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise CarscopeError(f"the adapter's hook raised {type(exc).__name__}: {first}") from None
        info = None
        if read.rendered is not None:
            r = read.rendered
            info = {"rendered": r.error is None, "error": r.error, "clicks": r.clicks, "subrequests": pool.subrequests,
                    "captured": [u for u, _ in r.captured], "actions": actions}
    return read, info


async def _links(politeness, http, config, parsed) -> tuple[list[dict], list[dict]]:
    follow, dropped = [], []
    for url, page_type in parsed.links:
        reason = politeness.in_scope(url)
        if reason is None and config.obey_robots:
            await politeness.ensure_robots(url, http.robots)
            if not politeness.robots_allows(url):
                reason = "robots_disallowed"
        if reason is None:
            follow.append({"url": url, "page_type": page_type})
        else:
            dropped.append({"url": url, "page_type": page_type, "reason": reason})
    dropped.extend({"url": u, "page_type": None, "reason": "no_page_type"} for u in parsed.ignored_links)
    return follow, dropped


def _identity(parsed) -> dict:
    ident = parsed.identity
    if ident is None:
        return {"model_id": None}
    return {"model_id": ident.model_id, "year": ident.year, "make": ident.make, "model": ident.model,
            "sources": ident.sources}


def _specs(parsed, page, pt) -> dict | None:
    if pt.specs is None and parsed.specs is None:
        return None
    from carscope.crawler.parse import extract_rows

    rows = parsed.specs.rows if parsed.specs is not None else extract_rows(pt, page.doc)  # what cleaning reads
    raw = parsed.specs.raw if parsed.specs is not None and parsed.specs.raw is not None else rows
    out = {"raw": [[k, v] for k, v in raw], "cleaned": {}, "named": parsed.specs is not None}
    if rows:
        import pandas as pd

        from carscope.crawler.specs import clean_specs

        mid = parsed.model_id or "unnamed"
        raw = pd.DataFrame({"model_id": [mid] * len(rows), "key": [k for k, _ in rows], "value": [v for _, v in rows]})
        cleaned = clean_specs(raw).drop(columns=["model_id", "make", "model", "year", "page_url", "crawled_at"],
                                        errors="ignore")
        row = cleaned.iloc[0]
        out["cleaned"] = {c: _plain(row[c]) for c in cleaned.columns if not _missing(row[c])}
    return out


def _missing(v) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    return v


def _shape(value) -> str:
    if isinstance(value, dict):
        keys = list(value)[:8]
        return "object {" + ", ".join(map(str, keys)) + (", ..." if len(value) > 8 else "") + "}"
    if isinstance(value, list):
        return f"list of {len(value)}"
    return type(value).__name__


def format_report(r: dict) -> str:
    """The report as text: one section per question an adapter author asks."""
    if "sitemap" in r:
        return _format_sitemap(r)
    lines = [f"{r['url']}", f"  page type    {r['page_type']}  (adapter {r['adapter']})"]
    if r.get("final_url") != r["url"]:
        lines.append(f"  redirected   to {r['final_url']} ({r.get('redirects', 0)} hops)")
    if r.get("url_groups"):
        lines.append("  URL groups   " + ", ".join(f"{k}={v}" for k, v in r["url_groups"].items()))
    b = r.get("browser")
    if b:
        clicks = f"{b['clicks']} click{'' if b['clicks'] == 1 else 's'}"
        lines.append(f"  browser      rendered, {clicks}, {b['subrequests']} subrequests"
                     + (f", captured {len(b['captured'])} JSON responses" if b["captured"] else ""))
    for name, shape in (r.get("data") or {}).items():
        lines.append(f"  data         {name}: {shape}")
    for url in r.get("fetched") or []:
        lines.append(f"  fetched      {url}")
    my = r["model_year"]
    if my.get("model_id"):
        src = ", ".join(f"{k} from {v}" for k, v in my.get("sources", {}).items())
        lines.append(f"  model-year   {my['model_id']}  ({my.get('year')} / {my.get('make')} / {my.get('model')}; {src})")
    else:
        lines.append("  model-year   none" + (f" (found: {my.get('sources')})" if my.get("sources") else ""))
    lines.append(f"\nlinks to follow ({len(r['links'])})")
    lines += [f"  {lk['page_type']:<14} {lk['url']}" for lk in r["links"]]
    if r["dropped_links"]:
        lines.append(f"links dropped ({len(r['dropped_links'])})")
        lines += [f"  {lk['reason']:<18} {lk['url']}" for lk in r["dropped_links"]]
    specs = r.get("specs")
    if specs is not None:
        lines.append(f"\nspecs: {len(specs['raw'])} raw pairs" + ("" if specs["named"] or not specs["raw"]
                                                                 else " (not stored: no model-year)"))
        width = max([len(k) for k, _ in specs["raw"]] + [len(k) for k in specs["cleaned"]] + [10])
        lines += [f"  {k:<{width}}  {v}" for k, v in specs["raw"]]
        if specs["cleaned"]:
            lines.append("cleaned")
            lines += [f"  {k:<{width}}  {v}" for k, v in specs["cleaned"].items()]
    lines.append(f"\nphotos ({len(r['photos'])})")
    for p in r["photos"]:
        lines.append(f"  {p['view_hint']:<9} {p['url']}")
        lines += [f"            {line}" for line in _photo_lines(p)]
    for warning in r.get("warnings") or []:
        lines.append(f"  warning: {warning}")
    if r["problems"]:
        lines.append("\nproblems")
        lines += [f"  {p}" for p in r["problems"]]
    return "\n".join(lines)


def _photo_lines(p: dict) -> list[str]:
    """Under a photo: its stored size (or why it would not be stored), its original, what it won over."""
    out = []
    orig = p.get("original")
    was = f" (original {orig['width']}x{orig['height']} {orig['format']})" if orig and orig.get("width") else ""
    if "stored" in p:
        st = p["stored"]
        out.append(f"stored {st['width']}x{st['height']} {st['format']}, {st['bytes']:,} bytes{was}")
    elif "error" in p:
        out.append(f"not stored: {p['error']}{was}")
    if p.get("candidates"):
        out.append(f"chosen from {len(p['candidates'])} candidates:")
        for c in p["candidates"]:
            mark = "*" if c["won"] else " "
            width = f"{c['width']}w" if c["width"] else "width unknown"
            out.append(f"  {mark} {width:<13} {c['origin']:<18} {c['url']}")
    return out


def run(args) -> int:
    try:
        report = check(args.check, args.site, browser=args.browser, user_agent=args.user_agent,
                       keep_original=getattr(args, "keep_original", False))
    except CarscopeError as exc:
        hook_error = exc.__cause__
        if getattr(args, "traceback", False) and hook_error is not None and hasattr(hook_error, "error"):
            import sys
            import traceback

            print("".join(traceback.format_exception(hook_error.error)).rstrip(), file=sys.stderr)
            raise CarscopeError(str(hook_error)) from hook_error
        raise
    print(json.dumps(report, indent=1, default=str) if args.json else format_report(report))
    return 0
