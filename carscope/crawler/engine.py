"""The crawl: frontier -> polite fetch (aiohttp, or Chromium for JS pages) -> parse -> image pipeline -> writer.

    python -c "from carscope.crawler import crawl, CrawlConfig; print(crawl(CrawlConfig('http://127.0.0.1:8700/', 'dataset', browser='never')))"

`crawl(config) -> stats` is the Python API (the CLI, the demo and the benchmarks call it). It raises
CarscopeError for bad input (invalid start URL, unreachable host, broken adapter, unusable output directory)
and returns the stats dict (also written to stats.json) otherwise; `stats["exit_code"]` is 0 for a finished
crawl, 130/143 when SIGINT/SIGTERM stopped it (in-flight items finished, state saved: `--resume` continues).

Workers (`concurrency` of them) each claim one ready URL at a time from the SQLite frontier and run the
handler for its kind; the politeness layer decides when a request may start, so idle workers are cheap.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from carscope.common.errors import CarscopeError
from carscope.crawler import dataset as ds
from carscope.crawler.adapter import Adapter, load_adapter
from carscope.crawler.config import CrawlConfig
from carscope.crawler.frontier import IMAGE, PAGE, Frontier, Item
from carscope.crawler.shard import shard_of, shard_text
from carscope.crawler.urls import canonicalize, host_of, origin_of, path_and_query

ARTIFACTS = (ds.SPECS_FILE, ds.SPECS_RAW_FILE, ds.IMAGES_FILE, ds.FAILURES_FILE, ds.STATS_FILE, ds.FRONTIER_FILE,
             ds.FRONTIER_FILE + "-wal", ds.FRONTIER_FILE + "-shm", ds.IMAGES_DIR)
STOP_GRACE_S = 20.0  # after a stop signal, in-flight items get this long to finish before being cancelled
# what a page can fail to give while it is still read (carscope/crawler/extract/): the failures row's reason codes
PAGE_PROBLEMS = ("bad_json", "bad_jsonld", "bad_microdata", "bad_rewrite", "data_missing", "json_path_missing",
                 "no_jsonld_vehicle", "no_microdata_vehicle")
EXIT_CODES = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}


def crawl(config: CrawlConfig) -> dict:
    """Crawl `config.start_url` into `config.out`; see the module docstring."""
    config.validate()
    adapter = load_adapter(config.site)
    start = canonicalize(config.start_url)
    if config.shard is not None and not adapter.model_year_types():
        raise CarscopeError(f"--shard needs an adapter whose model-year pages name (?P<year>...), (?P<make>...) "
                            f"and (?P<model>...) in their match pattern; {adapter.path} has none")
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
                     discard=failed and fresh and not _has_results(root))  # bad input before any work


def close_output(frontier: Frontier, root: Path, created: bool, *, discard: bool) -> None:
    """Close the frontier; with `discard`, leave nothing behind (the directory too, if this run made it)."""
    try:
        frontier.close()
    except Exception:
        pass
    if discard:
        _remove_artifacts(root)
        if created:
            try:
                root.rmdir()
            except OSError:
                pass


def _has_results(root: Path) -> bool:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{root / ds.FRONTIER_FILE}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM urls WHERE state='done'").fetchone()[0] > 0
        finally:
            con.close()
    except sqlite3.Error:
        return False


def _remove_artifacts(root: Path) -> None:
    for name in ARTIFACTS:
        p = root / name
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink(missing_ok=True)


def prepare_output(config: CrawlConfig) -> tuple[Path, bool]:
    """Create / check the dataset directory: refuse to clobber, honour --resume / --overwrite, probe writes.
    Returns the directory and whether it was created now."""
    root = config.out_path
    created = not root.exists()
    if root.exists() and not root.is_dir():
        raise CarscopeError(f"output {root} exists and is not a directory")
    existing = root.is_dir() and any(root.iterdir())
    if existing and not (config.resume or config.overwrite):
        raise CarscopeError(f"output directory {root} is not empty; pass --resume to continue its crawl "
                            f"or --overwrite to start over")
    if existing and config.resume and not (root / ds.FRONTIER_FILE).is_file():
        raise CarscopeError(f"cannot resume: {root} has no {ds.FRONTIER_FILE} (not a crawl's output)")
    try:
        if existing and config.overwrite:
            _remove_artifacts(root)
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".carscope-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CarscopeError(f"cannot write to output directory {root}: {exc.strerror or exc}") from None
    from carscope.crawler.writer import sweep_temp

    sweep_temp(root)
    return root, created


class Crawler:
    def __init__(self, config: CrawlConfig, adapter: Adapter, root: Path, frontier: Frontier, start_url: str):
        self.config = config
        self.adapter = adapter
        self.root = root
        self.frontier = frontier
        self.start_url = start_url
        self.counters: dict[str, float] = {}
        self.stop_reason: str | None = None
        self.hard_stop = False
        self.inflight = 0
        self.inflight_by_kind = {PAGE: 0, IMAGE: 0}
        self._idle: deque = deque()  # futures of workers waiting for work (woken one per new URL)
        self.browser_pool = None
        self.use_browser_for: set[str] = set()
        self.notes: list[str] = []
        self._prefetched: dict = {}

    # -- setup ---------------------------------------------------------------------------------------------
    def _note(self, msg: str) -> None:
        self.notes.append(msg)
        if self.config.log:
            print(f"crawl: {msg}", file=sys.stderr, flush=True)

    def _count(self, name: str, n: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

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
            self._note(f"the site moved from {old} to {new}: {n} frontier URLs rebased")
            previous["start_url"] = self.start_url
            fr.set_meta("config", previous)
        back = fr.reopen()
        counts = fr.counts()
        self._note(f"resuming: {counts.get('page', {}).get('done', 0)} pages and {counts['images_stored']} images "
                   f"already done, {back} in-flight URLs back to pending")

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
            self._note("no Chromium found: JavaScript pages are read through the adapter's hook instead")
            self.use_browser_for = set()
        if needing - self.use_browser_for and self.adapter.hook_fn("photos_without_browser") is None:
            self._note(f"page types {sorted(needing - self.use_browser_for)} need a browser and the adapter has no "
                       f"photos_without_browser hook: their photos will be missed")

    # -- the run -------------------------------------------------------------------------------------------
    async def run(self) -> dict:
        from carscope.crawler.fetch import HttpFetcher
        from carscope.crawler.images import ImageRules
        from carscope.crawler.politeness import Politeness

        t0 = time.time()
        self.loop = asyncio.get_running_loop()
        self._check_resume()
        if self.config.shard is not None:
            self._note(f"shard {shard_text(self.config.shard)}: fetching the model-years this shard owns, and the "
                       f"listing pages every shard reads")
        self.base_counters = self.frontier.get_meta("counters", {}) or {}
        self.prev_elapsed = float(self.frontier.get_meta("elapsed_s", 0.0) or 0.0)
        self.politeness = self._make_politeness(Politeness)
        self.rules = ImageRules(min_side=self.config.min_side, max_aspect=self.config.max_aspect,
                                max_side=self.config.max_side, quality=self.config.jpeg_quality,
                                keep_original=self.config.keep_original, max_pixels=self.config.max_pixels)
        self.cpu = ThreadPoolExecutor(max_workers=self.config.cpu_workers or os.cpu_count() or 2,
                                      thread_name_prefix="carscope-img")
        self._plan_browser()
        self._install_signals()
        self.progress = self._make_progress()
        self.pages_done_start = self.frontier.counts().get(PAGE, {}).get("done", 0)
        flusher = None
        try:
            async with HttpFetcher(self.config, self.politeness, counters=self.counters) as http:
                self.http = http
                await self._preflight(http)
                if self.use_browser_for:
                    from carscope.crawler.browser import BrowserPool

                    self.browser_pool = BrowserPool(
                        self._browser_fetch, pages=self.config.browser_pages,
                        recycle_after=self.config.browser_recycle, timeout_s=self.config.browser_timeout,
                        chromium_path=self.config.chromium_path, user_agent=self.config.user_agent)
                flusher = asyncio.create_task(self._flush_loop())
                workers = [asyncio.create_task(self._worker(i)) for i in range(self.config.concurrency)]
                await self._supervise(workers)
        finally:
            if flusher is not None:
                flusher.cancel()
                await asyncio.gather(flusher, return_exceptions=True)
            if self.browser_pool is not None:
                await self.browser_pool.close()
            self.cpu.shutdown(wait=True)
            self.progress.close()
            if sys.exc_info()[0] is not None:
                self._remove_signals()
        try:  # signals stay ours while the final snapshot is written: a Ctrl-C now must not tear it
            return await asyncio.to_thread(self._finish, time.time() - t0)
        finally:
            self._remove_signals()

    def _make_progress(self) -> _Progress:
        return _Progress(self.config, self.frontier)

    def _make_politeness(self, politeness_cls):
        """The scope: the start URL's host, the adapter's `allowed_hosts` and `--allowed-hosts`."""
        allowed = {host_of(self.start_url), *self.adapter.allowed_hosts, *(h.lower() for h in self.config.allowed_hosts)}
        return politeness_cls(self.config, allowed)

    def _install_signals(self) -> None:
        self._signals = []
        if not self.config.install_signal_handlers:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(sig, self.request_stop, sig.name)
                self._signals.append(sig)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread, or no such support
                pass

    def _remove_signals(self) -> None:
        for sig in self._signals:
            try:
                self.loop.remove_signal_handler(sig)
            except Exception:
                pass

    def request_stop(self, reason: str = "SIGINT") -> None:
        """First signal: finish in-flight items, save, exit. Second: cancel in-flight items now."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._note(f"{reason}: finishing {self.inflight} in-flight items, then saving (again to stop now)")
        else:
            self.hard_stop = True
        self._notify_all()

    async def _supervise(self, workers: list[asyncio.Task]) -> None:
        pending = set(workers)
        stop_seen_at = None
        while pending:
            done, pending = await asyncio.wait(pending, timeout=0.5)
            errors = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
            if errors:  # e.g. Chromium would not start: stop everything, report the first reason
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)  # (retrieves their errors too)
                raise errors[0]
            if self.stop_reason is not None:
                stop_seen_at = stop_seen_at or time.monotonic()
                if self.hard_stop or time.monotonic() - stop_seen_at > STOP_GRACE_S:
                    for t in pending:
                        t.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    pending = set()

    # -- workers -------------------------------------------------------------------------------------------
    def _claimable_kinds(self) -> tuple[str, ...]:
        """Kinds a worker may claim now: a --max-pages / --max-images limit counts work in flight too."""
        kinds = []
        c, p = self.config, self.progress
        if c.max_pages is None or p.pages_done + self.inflight_by_kind[PAGE] < c.max_pages:
            kinds.append(PAGE)
        if c.max_images is None or p.images_stored + self.inflight_by_kind[IMAGE] < c.max_images:
            kinds.append(IMAGE)
        return tuple(kinds)

    def _notify(self, n: int = 1) -> None:
        """Wake up to `n` idle workers (one per new URL: no thundering herd on the frontier)."""
        while n > 0 and self._idle:
            fut = self._idle.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1

    def _notify_all(self) -> None:
        self._notify(len(self._idle))

    async def _idle_wait(self, timeout: float) -> None:
        fut = self.loop.create_future()
        self._idle.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            try:
                self._idle.remove(fut)
            except ValueError:
                pass

    async def _worker(self, wid: int) -> None:
        while self.stop_reason is None:
            kinds = self._claimable_kinds()
            item = self.frontier.claim(kinds=kinds) if kinds else None
            if item is None:
                if self.inflight == 0 and (not kinds or self.frontier.pending_count(kinds) == 0):
                    self._notify_all()  # nothing left anywhere: let the others see the end too
                    return
                next_at = self.frontier.next_ready_at(kinds) if kinds else None
                # new URLs wake a worker at once; the timeout only covers retries coming due
                wait = 1.0 if next_at is None else min(1.0, max(0.005, next_at - time.time()))
                await self._idle_wait(wait)
                continue
            self.inflight += 1
            self.inflight_by_kind[item.kind] += 1
            try:
                if item.kind == IMAGE:
                    await self._handle_image(item)
                else:
                    await self._handle_page(item)
            except asyncio.CancelledError:
                self.frontier.release(item)  # interrupted: it is redone on resume, never lost
                raise
            except CarscopeError:
                self.frontier.release(item)
                raise
            except Exception as exc:  # a bug or an odd page must cost one URL, not the crawl
                self._count("internal_errors")
                self.frontier.fail(item, reason=f"internal_{type(exc).__name__}", status=None)
                if self.counters["internal_errors"] <= 3:
                    self._note(f"unexpected {type(exc).__name__} on {item.url}: {exc}")
            finally:
                self.inflight -= 1
                self.inflight_by_kind[item.kind] -= 1
                self.frontier.commit()
                if self.inflight == 0:
                    self._notify_all()  # maybe the end; idle workers check
                elif self._claimable_kinds() != kinds:
                    self._notify(1)  # a limit's room opened again

    def _after_failure(self, item: Item, resp, verdict) -> None:
        if verdict.action == "retry":
            self._count("retries")
            self.frontier.retry(item, not_before=time.time() + verdict.delay, status=resp.status, error=verdict.reason)
        else:
            self.frontier.fail(item, reason=verdict.reason or "failed", status=resp.status)
            self.progress.error(item.kind)

    async def _browser_fetch(self, url: str, kind: str):
        """What a browser page's own requests go through: the polite fetcher, with in-place retries."""
        return await self.http.fetch_retrying(url, kind=kind)

    def page_type_of(self, url: str, fallback: str | None = None):
        """(page type, URL groups) of a URL; a URL that matches none keeps the type it was queued with."""
        hit = self.adapter.classify(path_and_query(url))
        if hit is None and fallback in self.adapter.page_types:
            return self.adapter.page_types[fallback], {}
        return hit

    async def _handle_page(self, item: Item) -> None:
        from carscope.crawler.parse import extract_page, make_page
        from carscope.crawler.politeness import Verdict

        hit = self.page_type_of(item.url, item.page_type)
        if hit is None:
            self.frontier.fail(item, reason="no_page_type", status=None)
            return
        kind = "json" if hit[0].content == "json" else "page"
        resp = self._prefetched.pop(item.url, None) or await self.http.fetch(item.url, kind=kind)
        verdict = self.politeness.classify(resp, item.attempts + 1)
        if verdict.action != "ok":
            self._after_failure(item, resp, verdict)
            return
        self._count("bytes_downloaded", len(resp.body or b""))
        html = (resp.body or b"").decode(_charset(resp.headers.get("content-type", "")), errors="replace")
        url = resp.final_url
        if url != item.url:  # a redirect: the page is what its final URL says it is
            landed = self.adapter.classify(path_and_query(url))
            if landed is None:
                self.frontier.fail(item, reason="redirect_no_page_type", status=resp.status)
                return
            hit = landed
            self.frontier.mark_seen(url, PAGE, page_type=landed[0].name)  # linked later: not fetched again
        pt, groups = hit
        photos_from_hook, captured = None, None
        if pt.name in self.use_browser_for:
            try:
                rendered = await self.browser_pool.render(url, html, wait_for=pt.wait_for, scroll=pt.scroll,
                                                          actions=pt.actions, capture_json=pt.capture_json)
            except CarscopeError as exc:  # Chromium would not start
                if self.config.browser == "always" or self.adapter.hook_fn("photos_without_browser") is None:
                    raise
                if self.use_browser_for:
                    self._note(f"{exc}; reading JavaScript pages through the adapter's hook instead")
                self.use_browser_for = set()
                self.frontier.release(item)
                return
            if rendered.error is not None:
                if self.stop_reason is not None:
                    self.frontier.release(item)
                    return
                retry = item.attempts + 1 < self.config.max_attempts
                self._after_failure(item, resp, Verdict("retry" if retry else "fail", rendered.error,
                                                        self.politeness.backoff(item.attempts + 1)))
                return
            html, captured = rendered.html, rendered.captured
            self._count("browser_pages")
            self._count("browser_clicks", rendered.clicks)
        elif pt.browser and self.adapter.hook_fn("photos_without_browser") is not None:
            hook = self.adapter.hook_fn("photos_without_browser")
            page = make_page(self.adapter, pt, groups, url, html)
            try:
                photos_from_hook = await hook(HookContext(self.http, self.config), page)
            except HookFetchError as exc:
                retry = item.attempts + 1 < self.config.max_attempts
                self._after_failure(item, exc.resp, Verdict("retry" if retry else "fail", exc.reason,
                                                            self.politeness.backoff(item.attempts + 1)))
                return
        try:
            _, parsed = await extract_page(self.adapter, pt, groups, url, html,
                                           ctx=HookContext(self.http, self.config), captured=captured,
                                           inherited=item.meta.get("referrer_model_year"))
        except HookFetchError as exc:  # a JSON source (or a hook's fetch) failed: the page is tried again
            retry = item.attempts + 1 < self.config.max_attempts
            self._after_failure(item, exc.resp, Verdict("retry" if retry else "fail", exc.reason,
                                                        self.politeness.backoff(item.attempts + 1)))
            return
        if photos_from_hook is not None:
            from carscope.crawler.parse import _photo_from

            parsed.photos = [p for p in (_photo_from(x, url) for x in photos_from_hook) if p is not None]
            if parsed.photos and parsed.model_id is None and "no_model_year" not in parsed.problems:
                parsed.problems.append("no_model_year")
        await self._enqueue_links(item, parsed.links, parsed.identity_parts())
        if parsed.specs is not None:
            s = parsed.specs
            self.frontier.put_specs(s.model_id, s.make, s.model, s.year, url, s.rows)
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
                    self._notify(1)
            self._count("photos_found", len(parsed.photos))
        self.frontier.done(item, resp.status)
        self.progress.page_done()

    async def _allowed(self, url: str, kind: str) -> bool:
        """Scope and robots.txt for a discovered URL; a refused one gets a failures row (never fetched)."""
        reason = self.politeness.in_scope(url)
        if reason is None and self.config.obey_robots:
            await self.politeness.ensure_robots(url, self.http.robots)
            if not self.politeness.robots_allows(url):
                reason = "robots_disallowed"
        if reason is not None:
            self.frontier.skip(url, "robots" if reason == "robots_disallowed" else kind, reason)
            self._count(f"skipped_{reason}")
            return False
        return True

    async def _enqueue_links(self, item: Item, links: list[tuple[str, str]], identity: dict | None = None) -> None:
        """Queue a page's links; a named page's model-year travels with them (for `model_year.inherit`)."""
        meta = {"referrer_model_year": identity} if identity else None
        for url, page_type in links:
            if self.config.shard is not None and not self._in_shard(url, page_type):
                self._count("skipped_other_shard")
                continue
            if not await self._allowed(url, PAGE):
                continue
            if item.depth + 1 > self.config.max_depth:
                self._count("skipped_max_depth")
                continue
            if self.frontier.add(url, PAGE, page_type=page_type, depth=item.depth + 1, meta=meta):
                self._notify(1)

    def _in_shard(self, url: str, page_type: str) -> bool:
        """True unless the URL names a model-year that another shard owns (carscope/crawler/shard.py)."""
        model_id = self.adapter.model_year_of(page_type, path_and_query(url))
        k, n = self.config.shard
        return model_id is None or shard_of(model_id, n) == k

    async def _handle_image(self, item: Item) -> None:
        from carscope.crawler.images import process_image
        from carscope.crawler.politeness import Verdict
        from carscope.crawler.writer import store_file

        resp = await self._fetch_image(item)
        verdict = self.politeness.classify(resp, item.attempts + 1)
        if verdict.action != "ok":
            self._after_failure(item, resp, verdict)
            return
        self._count("bytes_downloaded", len(resp.body))
        # hashing and decoding both run on the CPU pool (they release the GIL); a duplicate costs one decode
        processed = await self.loop.run_in_executor(self.cpu, process_image, resp.body, self.rules, None)
        meta = item.meta
        if self.frontier.has_source(processed.source_sha256):
            self._count("duplicates")
            self.frontier.improve_image(source_sha256=processed.source_sha256, model_id=meta.get("model_id"),
                                        view_hint=meta.get("view_hint"))
            self.frontier.done(item, resp.status)
            self.progress.image_dup()
            return
        if not processed.ok:
            # a body cut short without a Content-Length looks exactly like a corrupt file: one more try
            retry = processed.reason == "corrupt_image" and item.attempts == 0 and self.config.max_attempts > 1
            self._after_failure(item, resp, Verdict("retry" if retry else "fail", processed.reason,
                                                    self.politeness.backoff(1)))
            return
        if self.config.max_images is not None and self.progress.images_stored >= self.config.max_images:
            self.frontier.release(item)  # over the limit: left for a later --resume with a higher one
            return
        relpath = ds.image_relpath(processed.sha256, processed.ext)
        await store_file(self.root, relpath, processed.data)
        row = {"sha256": processed.sha256, "source_sha256": processed.source_sha256, "path": relpath,
               "model_id": meta.get("model_id"), "view_hint": meta.get("view_hint") or "unknown",
               "width": processed.width, "height": processed.height, "bytes": len(processed.data),
               "source_url": item.url, "page_url": meta.get("page_url"), "crawled_at": time.time(),
               "split": meta.get("split")}
        if self.frontier.put_image(row):
            self._count("bytes_stored", len(processed.data))
            self.progress.image_stored()
        else:
            self._count("duplicates")
            self.frontier.improve_image(sha256=processed.sha256, model_id=row["model_id"], view_hint=row["view_hint"])
            self.progress.image_dup()
        self.frontier.done(item, resp.status)

    async def _fetch_image(self, item: Item):
        """The image's bytes as a fetch.Response (`dataset import` also reads local files here)."""
        return await self.http.fetch(item.url, kind="image")

    # -- output --------------------------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        from carscope.crawler.writer import snapshot

        while True:
            await asyncio.sleep(max(1.0, self.config.flush_interval))
            self._save_counters()
            self.frontier.commit(force=True)
            try:
                await asyncio.to_thread(snapshot, self.root)
            except Exception as exc:  # a failed snapshot is retried at the next flush and at the end
                self._note(f"snapshot failed ({type(exc).__name__}: {exc}); will retry")

    def _save_counters(self, elapsed: float | None = None) -> dict:
        total = dict(self.base_counters)
        for k, v in self.counters.items():
            total[k] = total.get(k, 0) + v
        self.frontier.set_meta("counters", total)
        if elapsed is not None:
            self.frontier.set_meta("elapsed_s", self.prev_elapsed + elapsed)
        return total

    def _finish(self, elapsed: float) -> dict:
        from carscope.crawler.writer import snapshot

        total = self._save_counters(elapsed)
        runs = int(self.frontier.get_meta("runs", 0) or 0) + 1
        self.frontier.set_meta("runs", runs)
        self.frontier.commit(force=True)
        rows = snapshot(self.root)
        counts = self.frontier.counts()
        pages, images = counts.get(PAGE, {}), counts.get(IMAGE, {})
        pending = pages.get("pending", 0) + images.get("pending", 0)
        if self.stop_reason:
            status = "interrupted"
        elif pending:
            status = "limit_reached"
        else:
            status = "complete"
        run_pages = self.progress.pages_done - self.pages_done_start
        stats = {
            "status": status,
            "interrupted_by": self.stop_reason,
            "exit_code": EXIT_CODES.get(self.stop_reason, 0),
            "start_url": self.start_url,
            "site": self.adapter.name,
            "shard": shard_text(self.config.shard),
            "browser": {"mode": self.config.browser, "used_for": sorted(self.use_browser_for)},
            "pages": {"done": pages.get("done", 0), "failed": pages.get("failed", 0), "pending": pages.get("pending", 0),
                      "skipped": pages.get("skipped", 0)},
            "images": {"stored": counts["images_stored"], "duplicates": int(total.get("duplicates", 0)),
                       "failed": images.get("failed", 0), "pending": images.get("pending", 0),
                       "urls_done": images.get("done", 0)},
            "specs": counts["specs"],
            "rows": rows,
            "failures": counts["failures"],
            "failure_reasons": self._failure_reasons(),
            "retries": int(total.get("retries", 0)),
            **self._page_problems(),
            "status_histogram": {k[7:]: int(v) for k, v in sorted(total.items()) if k.startswith("status_")},
            "errors": {k[6:]: int(v) for k, v in sorted(total.items()) if k.startswith("error_")},
            "bytes_downloaded": int(total.get("bytes_downloaded", 0)),
            "bytes_stored": int(total.get("bytes_stored", 0)),
            "durations": {"this_run_s": round(elapsed, 3), "total_s": round(self.prev_elapsed + elapsed, 3),
                          "runs": runs},
            "rates": {"pages_per_s": round(run_pages / elapsed, 3) if elapsed else None,
                      "images_per_s": round(self.progress.run_images / elapsed, 3) if elapsed else None},
            "politeness": {"concurrency": self.config.concurrency, "per_host": self.config.per_host,
                           "delay_s": self.config.delay, "max_inflight": self.politeness.max_inflight,
                           "hosts": self.politeness.host_report(),
                           "retry_after_waits": self.politeness.retry_after_waits,
                           "retry_after_max_s": round(self.politeness.retry_after_max, 3)},
            "notes": self.notes,
        }
        if self.browser_pool is not None:
            bp = self.browser_pool
            stats["browser"].update({"rendered": bp.rendered, "contexts": bp.contexts_created,
                                     "subrequests": bp.subrequests, "blocked": bp.blocked, "clicks": bp.clicks})
        if status == "complete" and stats["pages"]["done"] and not (counts["specs"] or counts["images_stored"]):
            stats["notes"].append("nothing trainable: no model-year with specs and no photo was stored; check the "
                                  "adapter with `carscope crawl --check URL`")
        ds.write_json(stats, self.root / ds.STATS_FILE)
        return stats

    def _page_problems(self) -> dict:
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

    def _failure_reasons(self) -> dict[str, int]:
        return {r: n for r, n in self.frontier.db.execute(
            "SELECT reason, COUNT(*) FROM failures GROUP BY reason ORDER BY reason")}


def _charset(content_type: str) -> str:
    import codecs

    for part in content_type.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k.lower() == "charset" and v:
            try:
                return codecs.lookup(v.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


class HookFetchError(Exception):
    def __init__(self, resp, reason: str):
        super().__init__(reason)
        self.resp, self.reason = resp, reason


class HookContext:
    """What an adapter hook may use: the crawl's polite fetcher (JSON and text) and its settings."""

    def __init__(self, http, config: CrawlConfig):
        self._http = http
        self.config = config
        self.extra = config.extra
        self.fetched: list[str] = []  # URLs fetched through this context (what --check reports)

    async def fetch_json(self, url: str):
        import json

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


class _Progress:
    """tqdm bars (pages, images) on a terminal; otherwise a status line every 10 s when logging."""

    def __init__(self, config: CrawlConfig, frontier: Frontier, *, kinds: tuple[str, ...] = (PAGE, IMAGE),
                 image_total: int | None = None):
        counts = frontier.counts()
        self.pages_done = counts.get(PAGE, {}).get("done", 0)
        self.images_stored = counts["images_stored"]
        self.run_images = 0
        self.dups = 0
        self.errors = {PAGE: 0, IMAGE: 0}
        self.enabled = sys.stderr.isatty() if config.progress is None else bool(config.progress)
        self.log = config.log and not self.enabled
        self.last_log = time.monotonic()
        self.t0 = time.monotonic()
        self.bars = None
        if self.enabled:
            from tqdm import tqdm

            made = {
                PAGE: lambda pos: tqdm(desc="pages ", unit="page", initial=self.pages_done, position=pos,
                                       dynamic_ncols=True),
                IMAGE: lambda pos: tqdm(desc="images", unit="img", initial=self.images_stored, position=pos,
                                        total=image_total, dynamic_ncols=True),
            }
            self.bars = {kind: made[kind](pos) for pos, kind in enumerate(kinds)}

    def _tick(self) -> None:
        if self.bars is not None:
            if PAGE in self.bars:
                self.bars[PAGE].set_postfix(errors=self.errors[PAGE], refresh=False)
            self.bars[IMAGE].set_postfix(dups=self.dups, errors=self.errors[IMAGE], refresh=False)
        elif self.log and time.monotonic() - self.last_log >= 10:
            self.last_log = time.monotonic()
            rate = self.run_images / max(1e-9, self.last_log - self.t0)
            print(f"crawl: {self.pages_done} pages, {self.images_stored} images ({rate:.1f}/s), {self.dups} duplicates, "
                  f"{self.errors[PAGE] + self.errors[IMAGE]} failed", file=sys.stderr, flush=True)

    def page_done(self) -> None:
        self.pages_done += 1
        if self.bars is not None and PAGE in self.bars:
            self.bars[PAGE].update(1)
        self._tick()

    def image_stored(self) -> None:
        self.images_stored += 1
        self.run_images += 1
        if self.bars is not None:
            self.bars[IMAGE].update(1)
        self._tick()

    def image_dup(self) -> None:
        self.dups += 1
        self._tick()

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self._tick()

    def close(self) -> None:
        if self.bars is not None:
            for bar in self.bars.values():
                bar.close()
