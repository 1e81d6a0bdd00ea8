"""The crawl: frontier -> polite fetch (aiohttp, or Chromium for JS pages) -> parse -> image pipeline -> writer.

    python -c "from carscope.crawler import crawl, CrawlConfig; print(crawl(CrawlConfig('http://127.0.0.1:8700/', 'dataset', browser='never')))"

`crawl(config) -> stats` is the Python API (the CLI, the demo and the benchmarks call it). It raises
CarscopeError for bad input (invalid start URL, unreachable host, broken adapter, unusable output directory)
and returns the stats dict (also written to stats.json) otherwise; `stats["exit_code"]` is 0 for a finished
crawl, 130/143 when SIGINT/SIGTERM stopped it (in-flight items finished, state saved: `--resume` continues).

The crawl is a `Runner` (carscope/crawler/runner.py: workers, signals, images, flushes, stats) with a page
handler: each page is read by carscope/crawler/page.py (browser or HTTP, hooks, extraction), its links and
photos queued, its specs and problems recorded. The output directory: carscope/crawler/output.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from carscope.common.errors import CarscopeError
from carscope.crawler import dataset as ds
from carscope.crawler.adapter import Adapter, load_adapter
from carscope.crawler.config import CrawlConfig
from carscope.crawler.frontier import IMAGE, PAGE, Frontier, Item
from carscope.crawler.output import close_output, has_results, prepare_output
from carscope.crawler.page import (
    CONTENT_MISSING,
    BrowserUnavailable,
    HookError,
    HookFetchError,
    PageReader,
    RenderFailed,
)
from carscope.crawler.runner import Runner
from carscope.crawler.shard import shard_of, shard_text
from carscope.crawler.urls import canonicalize, host_of, origin_of, path_and_query

SITEMAP = "sitemap"  # the failures row's kind of a sitemap that could not be read
SITEMAPS_READ = "sitemaps_read"  # frontier meta: this crawl's sitemaps were read and their pages queued

# what a page can fail to give while it is still read (carscope/crawler/extract/): the failures row's reason codes
PAGE_PROBLEMS = ("bad_json", "bad_jsonld", "bad_microdata", "bad_rewrite", "data_missing", "json_path_missing",
                 "no_jsonld_vehicle", "no_microdata_vehicle")


def crawl(config: CrawlConfig) -> dict:
    """Crawl `config.start_url` into `config.out`; see the module docstring."""
    config.validate()
    adapter = load_adapter(config.site)
    start = canonicalize(config.start_url)
    if config.shard is not None and not adapter.model_year_types():
        raise CarscopeError(f"--shard needs an adapter whose model-year pages name (?P<year>...), (?P<make>...) "
                            f"and (?P<model>...) in their match pattern; {adapter.path} has none")
    if config.refresh and not (config.out_path / ds.FRONTIER_FILE).is_file():
        raise CarscopeError(f"--refresh updates a crawled dataset: {config.out_path} has no {ds.FRONTIER_FILE} "
                            f"(crawl it first)")
    root, created = prepare_output(config)
    fresh = not (root / ds.FRONTIER_FILE).exists()
    frontier = Frontier(root / ds.FRONTIER_FILE)
    failed = True
    try:
        crawler = Crawler(config, adapter, root, frontier, start)
        stats = asyncio.run(crawler.run())
        failed = False
        return stats
    finally:
        close_output(frontier, root, created,
                     discard=failed and fresh and not has_results(root))  # bad input before any work


class Crawler(Runner):
    """A site crawl: the Runner's work queue, with pages read through the adapter."""

    def __init__(self, config: CrawlConfig, adapter: Adapter, root: Path, frontier: Frontier, start_url: str):
        super().__init__(config, root, frontier)
        self.adapter = adapter
        self.start_url = start_url
        self.browser_pool = None
        self.use_browser_for: set[str] = set()
        self._prefetched: dict = {}
        self.refresh = None  # the running refresh round (carscope/crawler/refresh.py), if any
        self._refresh_finished: dict | None = None  # what closing the round marked (gone, back)

    # -- the Runner's hooks --------------------------------------------------------------------------------
    def begin(self) -> None:
        self._check_resume()
        if self.config.shard is not None:
            self.note(f"shard {shard_text(self.config.shard)}: fetching the model-years this shard owns, and the "
                      f"listing pages every shard reads")
        self._plan_browser()

    def make_politeness(self):
        """The scope: the start URL's host, the adapter's `allowed_hosts` and `--allowed-hosts`."""
        from carscope.crawler.politeness import Politeness

        allowed = {host_of(self.start_url), *self.adapter.allowed_hosts, *(h.lower() for h in self.config.allowed_hosts)}
        return Politeness(self.config, allowed)

    async def prepare(self, http) -> None:
        await self._preflight(http)
        if self.config.sitemap or self.adapter.sitemaps is not None:
            await self._read_sitemaps(http)
        if self.use_browser_for:
            from carscope.crawler.browser import BrowserPool

            self.browser_pool = BrowserPool(
                self._browser_fetch, pages=self.config.browser_pages,
                recycle_after=self.config.browser_recycle, timeout_s=self.config.browser_timeout,
                chromium_path=self.config.chromium_path, user_agent=self.config.user_agent)
        self.reader = PageReader(self.adapter, http, self.config, self.browser_pool, on_rendered=self._rendered)

    async def close(self) -> None:
        if self.browser_pool is not None:
            await self.browser_pool.close()

    # -- before the workers --------------------------------------------------------------------------------
    def _check_resume(self) -> None:
        fr = self.frontier
        previous = fr.get_meta("config")
        if previous is None:
            fr.set_meta("config", self.config.fingerprint())
            fr.set_meta("created_at", time.time())
            fr.commit(force=True)
            return
        if previous.get("site") != self.config.site and Path(str(previous.get("site"))).name != Path(
                str(self.config.site)).name:
            raise CarscopeError(f"{self.root} was crawled with --site {previous.get('site')}, not {self.config.site}")
        before, now = previous.get("shard"), self.config.fingerprint().get("shard")
        if before != now:
            was = f"as shard {before[0]}/{before[1]}" if before else "without --shard"
            resume = f"--shard {before[0]}/{before[1]}" if before else "no --shard"
            raise CarscopeError(f"{self.root} was crawled {was}; resume it with {resume} "
                                f"(a shard's share cannot change mid-crawl)")
        if bool(previous.get("keep_original")) != bool(self.config.keep_original):
            raise CarscopeError(f"{self.root} was crawled {'with' if previous.get('keep_original') else 'without'} "
                                f"--keep-original; resume it the same way")
        old, new = origin_of(previous["start_url"]), origin_of(self.start_url)
        if old != new:
            n = fr.rebase(old, new)
            self.note(f"the site moved from {old} to {new}: {n} frontier URLs rebased")
            previous["start_url"] = self.start_url
            fr.set_meta("config", previous)
        back = fr.reopen()
        if self.config.retry_failed:
            if fr.get_meta(SITEMAPS_READ):  # a sitemap that failed is read again, with the rest
                fr.db.execute("DELETE FROM failures WHERE kind=?", (SITEMAP,))
                fr.set_meta(SITEMAPS_READ, False)
            n = fr.requeue_failed()
            self.note(f"--retry-failed: {n} failed pages and photos queued again with {self.config.max_attempts} "
                      f"fresh attempts each")
        self._begin_refresh()
        counts = fr.counts()
        self.note(f"resuming: {counts.get('page', {}).get('done', 0)} pages and {counts['images_stored']} images "
                   f"already done, {back} in-flight URLs back to pending")

    def _begin_refresh(self) -> None:
        """`--refresh` starts a round (pages pending again, sitemaps read again) or continues a killed one; a
        `--resume` of a killed refresh continues it too."""
        from carscope.crawler.refresh import Refresh

        fr = self.frontier
        if self.config.refresh and Refresh.current(fr) is None:
            fr.set_meta(SITEMAPS_READ, False)  # committed with the round: their lastmod is read again
            self.refresh = Refresh.begin(fr)
            self.note(f"refresh round {self.refresh.round}: every page revisited (conditional requests, sitemap "
                      f"lastmod), new links crawled, photos fetched only when new or changed")
        else:
            self.refresh = Refresh.current(fr)
            if self.refresh is not None:
                self.note(f"continuing refresh round {self.refresh.round}")

    async def _preflight(self, http) -> None:
        """The start URL must be reachable and allowed before anything is queued: bad input fails fast."""
        first = self.adapter.classify(path_and_query(self.start_url))
        kind = "json" if first is not None and first[0].content == "json" else "page"
        resp = await http.fetch_retrying(self.start_url, kind=kind, max_bytes=self.config.max_page_bytes)
        hs = self.politeness.host(host_of(self.start_url))
        origin = origin_of(self.start_url)
        if resp.error == "robots_disallowed":
            if hs.robots_status is None:
                raise CarscopeError(f"cannot reach {origin}: {(hs.robots_error or 'no answer').replace('_', ' ')} "
                                    f"(fetching robots.txt)")
            if hs.robots_status >= 500:
                raise CarscopeError(f"robots.txt of {origin} answers HTTP {hs.robots_status}: crawling is not "
                                    f"allowed until it answers")
            raise CarscopeError(f"robots.txt of {origin} disallows the start URL {self.start_url}")
        if resp.error is not None and resp.status is None:
            raise CarscopeError(f"cannot reach {self.start_url}: {resp.error.replace('_', ' ')}")
        if resp.status is not None and resp.status >= 400:
            raise CarscopeError(f"start URL {self.start_url} answers HTTP {resp.status}")
        hit = self.adapter.classify(path_and_query(self.start_url))
        if hit is None and resp.final_url != self.start_url:  # a start URL that redirects: its target's type
            hit = self.adapter.classify(path_and_query(resp.final_url))
        if hit is None:
            where = f" (it redirects to {resp.final_url})" if resp.final_url != self.start_url else ""
            raise CarscopeError(f"start URL {self.start_url}{where} matches no page type of the '{self.adapter.name}' "
                                f"adapter ({self.adapter.path}); is it the right --site?")
        pt = hit[0]
        if self.frontier.add(self.start_url, PAGE, page_type=pt.name, depth=0) and resp.ok:
            self._prefetched[self.start_url] = resp  # handled as the first page: no second request
        self.frontier.commit(force=True)

    async def _read_sitemaps(self, http) -> None:
        """Queue the pages the site's sitemaps list (carscope/crawler/sitemaps.py), `lastmod` in each URL's meta; a
        sitemap that cannot be read is a failures row (kind `sitemap`). Once per crawl: the URLs, the rows and the
        mark that they were read commit together, and a crawl killed before that reads them again (idempotent)."""
        from carscope.crawler.sitemaps import read_sitemaps, sitemap_roots

        fr = self.frontier
        if fr.get_meta(SITEMAPS_READ):
            return
        origin = origin_of(self.start_url)
        roots = [canonicalize(u, origin + "/") for u in self.adapter.sitemaps or []]
        if not any(roots):
            _, text, _ = await http.robots(origin + "/robots.txt")
            roots = sitemap_roots(text, origin)
        got = await read_sitemaps(http, [u for u in roots if u])
        now = time.time()
        for f in got.failures:
            fr.record_failure(f.url, SITEMAP, f.reason, f.status, 1, now)
        queued = unknown = 0
        for url, lastmod in got.pages:
            url = self.adapter.link_url(url)
            hit = self.adapter.classify(path_and_query(url)) if url else None
            if hit is None:
                unknown += 1  # a sitemap lists every page of a site; the adapter's page types say which to read
                continue
            if self.config.shard is not None and not self._in_shard(url, hit[0].name):
                continue
            if not await self._allowed(url, PAGE):
                continue
            if fr.add(url, PAGE, page_type=hit[0].name, depth=1, meta={"lastmod": lastmod} if lastmod else None):
                queued += 1
            elif lastmod:
                fr.note_lastmod(url, lastmod)
        self.count("sitemap_pages", queued)
        fr.set_meta(SITEMAPS_READ, True)
        fr.commit(force=True)
        self.note(f"sitemaps: {len(got.read)} read, {len(got.failures)} failed; {len(got.pages)} pages listed, "
                  f"{queued} queued, {unknown} match no page type")

    def _plan_browser(self) -> None:
        from carscope.crawler.browser import browser_available

        needing = {name for name, pt in self.adapter.page_types.items() if pt.browser}
        mode = self.config.browser
        if mode == "never":
            self.use_browser_for = set()
        elif mode == "always":
            self.use_browser_for = set(self.adapter.page_types)
        else:
            self.use_browser_for = needing
        if self.use_browser_for and not browser_available(self.config.chromium_path):
            if mode == "always":
                raise CarscopeError("--browser always: no Chromium found (install chromium or run "
                                    "`playwright install chromium`)")
            self.note("no Chromium found: JavaScript pages are read through the adapter's hook instead")
            self.use_browser_for = set()
        if needing - self.use_browser_for and self.adapter.hook_fn("photos_without_browser") is None:
            self.note(f"page types {sorted(needing - self.use_browser_for)} need a browser and the adapter has no "
                      f"photos_without_browser hook: their photos will be missed")

    # -- pages ---------------------------------------------------------------------------------------------
    async def _browser_fetch(self, url: str, kind: str):
        """What a browser page's own requests go through: the polite fetcher, with in-place retries."""
        return await self.http.fetch_retrying(url, kind=kind)

    def page_type_of(self, url: str, fallback: str | None = None):
        """(page type, URL groups) of a URL; a URL that matches none keeps the type it was queued with."""
        hit = self.adapter.classify(path_and_query(url))
        if hit is None and fallback in self.adapter.page_types:
            return self.adapter.page_types[fallback], {}
        return hit

    async def handle_page(self, item: Item) -> None:
        hit = self.page_type_of(item.url, item.page_type)
        if hit is None:
            self.frontier.fail(item, reason="no_page_type", status=None)
            return
        kind = "json" if hit[0].content == "json" else "page"
        rf, ask = self.refresh, None
        if rf is not None and item.url not in self._prefetched:
            unchanged = rf.skip_reason(item)  # a sitemap lastmod not newer than the last visit, or still fresh
            if unchanged is not None:
                return self._unchanged(item, item.url, None, f"refresh_pages_{unchanged}")
            ask = rf.request_headers(item)
        resp = self._prefetched.pop(item.url, None) or await self.http.fetch(item.url, kind=kind, headers=ask)
        if resp.status == 304 and ask is not None:
            return self._unchanged(item, resp.final_url, resp, "refresh_pages_not_modified")
        verdict = self.politeness.classify(resp, item.attempts + 1)
        if verdict.action != "ok":
            self.after_failure(item, resp, verdict)
            return
        self.count("bytes_downloaded", len(resp.body or b""))
        url = resp.final_url
        if url != item.url:  # a redirect: the page is what its final URL says it is
            landed = self.adapter.classify(path_and_query(url))
            if landed is None:
                self.frontier.fail(item, reason="redirect_no_page_type", status=resp.status)
                return
            hit = landed
            self.frontier.mark_seen(url, PAGE, page_type=landed[0].name)  # linked later: not fetched again
        pt, groups = hit
        try:
            read = await self.reader.read(pt, groups, url, resp.text(), render=pt.name in self.use_browser_for,
                                          inherited=item.meta.get("referrer_model_year"))
        except BrowserUnavailable as exc:  # Chromium would not start
            if self.config.browser == "always" or self.adapter.hook_fn("photos_without_browser") is None:
                raise
            if self.use_browser_for:
                self.note(f"{exc}; reading JavaScript pages through the adapter's hook instead")
            self.use_browser_for = set()
            self.frontier.release(item)
            return
        except RenderFailed as exc:
            if self.stop_reason is not None:
                self.frontier.release(item)
                return
            self.retry_or_fail(item, resp, exc.reason)
            return
        except HookFetchError as exc:  # a JSON source (or a hook's fetch) failed: the page is tried again
            self.retry_or_fail(item, exc.resp, exc.reason)
            return
        except HookError as exc:  # a bug in the hook: the same next time, so a failures row now, and a note
            self.count("hook_errors")
            self.frontier.fail(item, reason=exc.reason[:300], status=resp.status)
            self.progress.error(PAGE)
            if self.counters["hook_errors"] <= 3:
                self.note(f"{exc} on {url} (see it with `carscope crawl --check {url} --traceback`)")
            return
        if read.missing:  # a soft error (a 200 "maintenance" page): retried like a 503, never done
            self.count("soft_errors")
            self.retry_or_fail(item, resp, CONTENT_MISSING)
            return
        parsed = read.parsed
        # a page read from more than itself (a gallery's JSON, a browser's requests) keeps no validator
        self.frontier.remember(item, resp.headers, keep=not read.fetched and read.rendered is None)
        if rf is not None:  # what the page says now replaces what it said (problems too)
            self.count("refresh_pages_read")
            self.frontier.db.execute("DELETE FROM failures WHERE url=? AND kind=?", (url, PAGE))
        await self._enqueue_links(item, parsed.links, parsed.identity_parts())
        if parsed.specs is not None:
            s = parsed.specs
            self.frontier.put_specs(s.model_id, s.make, s.model, s.year, url, s.rows if s.raw is None else s.raw,
                                    None if s.raw is None else s.rows)  # the page's pairs raw, the mapped cleaned
        if parsed.problems:  # the page is done; what it could not give is on record (one row per page)
            ordered = sorted(parsed.problems, key=lambda p: p != "no_model_year")
            self.frontier.record_failure(url, PAGE, "; ".join(ordered)[:300], resp.status, item.attempts + 1,
                                         time.time())
        if parsed.photos:
            # a photo whose page names no model-year is still stored (the view classifier can learn from it),
            # never silently: the page has a no_model_year failures row and the summary counts it
            model_id = parsed.model_id
            for photo in parsed.photos:
                target = canonicalize(photo.url, url)
                if target is None or not await self._allowed(target, IMAGE):
                    continue
                if self.frontier.add(target, IMAGE, depth=item.depth + 1,
                                     meta={"model_id": model_id, "view_hint": photo.view_hint, "page_url": url}):
                    self.notify(1)
                if rf is not None and self.frontier.list_photos("url=?", (target,), rf.round, time.time()):
                    self.notify(1)  # listed again, and stale or failed: asked again
            self.count("photos_found", len(parsed.photos))
        self.frontier.done(item, resp.status)
        self.progress.page_done()

    def _unchanged(self, item: Item, url: str, resp, counter: str) -> None:
        """A refresh found the page unchanged (304, lastmod or fresh): what it gave stays, seen again now."""
        self.count(counter)
        if resp is not None:
            self.frontier.remember(item, resp.headers, merge=True)
        if self.refresh.unchanged_page(url):
            self.notify_all()
        self.frontier.done(item, resp.status if resp is not None else None)
        self.progress.page_done()

    def _rendered(self, rendered) -> None:
        self.count("browser_pages")
        self.count("browser_clicks", rendered.clicks)

    async def _allowed(self, url: str, kind: str) -> bool:
        """Scope and robots.txt for a discovered URL; a refused one gets a failures row (never fetched)."""
        reason = self.politeness.in_scope(url)
        if reason is None and self.config.obey_robots:
            await self.politeness.ensure_robots(url, self.http.robots)
            if not self.politeness.robots_allows(url):
                reason = "robots_disallowed"
        if reason is not None:
            self.frontier.skip(url, "robots" if reason == "robots_disallowed" else kind, reason)
            self.count(f"skipped_{reason}")
            return False
        return True

    async def _enqueue_links(self, item: Item, links: list[tuple[str, str]], identity: dict | None = None) -> None:
        """Queue a page's links; a named page's model-year travels with them (for `model_year.inherit`)."""
        meta = {"referrer_model_year": identity} if identity else None
        for url, page_type in links:
            if self.config.shard is not None and not self._in_shard(url, page_type):
                self.count("skipped_other_shard")
                continue
            if not await self._allowed(url, PAGE):
                continue
            if item.depth + 1 > self.config.max_depth:
                self.count("skipped_max_depth")
                continue
            if self.frontier.add(url, PAGE, page_type=page_type, depth=item.depth + 1, meta=meta):
                self.notify(1)

    def _in_shard(self, url: str, page_type: str) -> bool:
        """True unless the URL names a model-year that another shard owns (carscope/crawler/shard.py)."""
        model_id = self.adapter.model_year_of(page_type, path_and_query(url))
        k, n = self.config.shard
        return model_id is None or shard_of(model_id, n) == k

    # -- the stats -----------------------------------------------------------------------------------------
    def describe(self, counts: dict) -> dict:
        pages = counts.get(PAGE, {})
        return {
            "start_url": self.start_url,
            "site": self.adapter.name,
            "shard": shard_text(self.config.shard),
            "browser": {"mode": self.config.browser, "used_for": sorted(self.use_browser_for)},
            "pages": {"done": pages.get("done", 0), "failed": pages.get("failed", 0), "pending": pages.get("pending", 0),
                      "skipped": pages.get("skipped", 0)},
        }

    def complete_stats(self, stats: dict, counts: dict) -> None:
        if self.browser_pool is not None:
            bp = self.browser_pool
            stats["browser"].update({"rendered": bp.rendered, "contexts": bp.contexts_created,
                                     "subrequests": bp.subrequests, "blocked": bp.blocked, "clicks": bp.clicks})
        stats["warnings"] = self.thumbnail_warnings()
        if self.refresh is not None:
            stats["refresh"] = self.refresh.report(self.total_counters, self._refresh_finished)
        if stats["status"] == "complete" and stats["pages"]["done"] and not (counts["specs"] or counts["images_stored"]):
            stats["notes"].append("nothing trainable: no model-year with specs and no photo was stored; check the "
                                  "adapter with `carscope crawl --check URL`")

    def settle(self, complete: bool) -> None:
        if self.refresh is not None and complete:
            self._refresh_finished = self.refresh.finish()

    def thumbnail_warnings(self) -> list[str]:
        """One line per page type whose every stored photo is a thumbnail (carscope/crawler/images.py)."""
        from carscope.crawler.images import thumbnail_warning

        rows = self.frontier.db.execute(
            "SELECT u.page_type, MAX(MAX(i.width, i.height)), COUNT(*) FROM images i JOIN urls u "
            "ON u.url = i.page_url AND u.kind = ? WHERE u.page_type IS NOT NULL GROUP BY u.page_type "
            "ORDER BY u.page_type", (PAGE,))
        return [w for page_type, largest, _ in rows if (w := thumbnail_warning(page_type, [largest]))]

    def page_stats(self) -> dict:
        """Pages without a model-year and other extraction problems, from the failures table and the stored
        images themselves (not from counters: a page redone after a kill is counted once)."""
        db = self.frontier.db
        problems: dict[str, int] = {}
        pages = 0
        for (reason,) in db.execute("SELECT reason FROM failures WHERE kind = ? AND attempts > 0", (PAGE,)):
            for part in (reason or "").split("; "):
                code = part.split(":")[0]
                if code == "no_model_year":
                    pages += 1
                elif code in PAGE_PROBLEMS:
                    problems[code] = problems.get(code, 0) + 1
        photos = db.execute("SELECT COUNT(*) FROM images WHERE model_id IS NULL").fetchone()[0]
        return {"no_model_year": {"pages": pages, "photos": photos}, "page_problems": dict(sorted(problems.items()))}
