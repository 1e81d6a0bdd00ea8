"""The work queue both a crawl and an import run on: workers, stop signals, supervision, the image pipeline,
periodic flushes, failure accounting and the final stats.

    python -c "from carscope.crawler.runner import Runner; help(Runner)"

Workers (`concurrency` of them) each claim one ready URL at a time from the SQLite frontier
(carscope/crawler/frontier.py) and run the handler for its kind; the politeness layer decides when a request may
start, so idle workers are cheap. A first SIGINT / SIGTERM lets in-flight items finish (for up to
`STOP_GRACE_S`) and saves; a second cancels them. Every item that fails is a failures row (or a retry).

A kind of run is a subclass that fills in the hooks below (the crawl: carscope/crawler/engine.py `Crawler`; the
import: carscope/crawler/importer.py `ImportRunner`); the rest is the same for both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from carscope.common.errors import CarscopeError
from carscope.crawler import dataset as ds
from carscope.crawler.config import CrawlConfig
from carscope.crawler.frontier import IMAGE, PAGE, Frontier, Item
from carscope.crawler.progress import Progress

STOP_GRACE_S = 20.0  # after a stop signal, in-flight items get this long to finish before being cancelled
EXIT_CODES = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}


class Runner:
    def __init__(self, config: CrawlConfig, root: Path, frontier: Frontier):
        self.config = config
        self.root = root
        self.frontier = frontier
        self.counters: dict[str, float] = {}
        self.stop_reason: str | None = None
        self.hard_stop = False
        self.inflight = 0
        self.inflight_by_kind = {PAGE: 0, IMAGE: 0}
        self._idle: deque = deque()  # futures of workers waiting for work (woken one per new URL)
        self.notes: list[str] = []
        self.refresh = None  # a crawl's running refresh round (carscope/crawler/refresh.py): photos asked conditionally
        self.total_counters: dict[str, float] = {}  # every run's counters, summed (set when the run finishes)

    # -- the hooks a kind of run fills in ---------------------------------------------------------------------
    def begin(self) -> None:
        """First thing in the run: check that a resumed run matches, say what this run will do."""

    def make_politeness(self):
        """The politeness layer (carscope/crawler/politeness.py) with this run's scope."""
        raise NotImplementedError

    def make_progress(self) -> Progress:
        return Progress(self.config, self.frontier)

    async def prepare(self, http) -> None:
        """With the fetcher open, before the workers start (the crawl's preflight, the import's parquet bytes)."""

    async def handle_page(self, item: Item) -> None:
        raise NotImplementedError(f"{type(self).__name__} queues no pages")

    async def fetch_image(self, item: Item):
        """The image's bytes as a fetch.Response."""
        return await self.http.fetch(item.url, kind="image")

    async def close(self) -> None:
        """After the workers stopped (the crawl closes its browser here)."""

    def describe(self, counts: dict) -> dict:
        """The stats fields that say what ran (after status and exit_code)."""
        return {}

    def page_stats(self) -> dict:
        """The stats fields about what pages could not give (after retries)."""
        return {}

    def complete_stats(self, stats: dict, counts: dict) -> None:
        """Last touches to the stats before stats.json is written."""

    def settle(self, complete: bool) -> None:
        """Before the final snapshot; `complete`: nothing is left to do (the crawl closes a refresh round here)."""

    # -- the run -------------------------------------------------------------------------------------------
    async def run(self) -> dict:
        from carscope.crawler.fetch import HttpFetcher
        from carscope.crawler.images import ImageRules

        t0 = time.time()
        self.loop = asyncio.get_running_loop()
        self.begin()
        self.base_counters = self.frontier.get_meta("counters", {}) or {}
        self.prev_elapsed = float(self.frontier.get_meta("elapsed_s", 0.0) or 0.0)
        self.politeness = self.make_politeness()
        self.rules = ImageRules(min_side=self.config.min_side, max_aspect=self.config.max_aspect,
                                max_side=self.config.max_side, quality=self.config.jpeg_quality,
                                keep_original=self.config.keep_original, max_pixels=self.config.max_pixels)
        self.cpu = ThreadPoolExecutor(max_workers=self.config.cpu_workers or os.cpu_count() or 2,
                                      thread_name_prefix="carscope-img")
        self._install_signals()
        self.progress = self.make_progress()
        self.pages_done_start = self.frontier.counts().get(PAGE, {}).get("done", 0)
        flusher = None
        try:
            async with HttpFetcher(self.config, self.politeness, counters=self.counters) as http:
                self.http = http
                await self.prepare(http)
                flusher = asyncio.create_task(self._flush_loop())
                workers = [asyncio.create_task(self._worker(i)) for i in range(self.config.concurrency)]
                await self._supervise(workers)
        finally:
            if flusher is not None:
                flusher.cancel()
                await asyncio.gather(flusher, return_exceptions=True)
            await self.close()
            self.cpu.shutdown(wait=True)
            self.progress.close()
            if sys.exc_info()[0] is not None:
                self._remove_signals()
        try:  # signals stay ours while the final snapshot is written: a Ctrl-C now must not tear it
            return await asyncio.to_thread(self._finish, time.time() - t0)
        finally:
            self._remove_signals()

    def note(self, msg: str) -> None:
        """A line for stats["notes"] (and stderr when logging)."""
        self.notes.append(msg)
        if self.config.log:
            print(f"crawl: {msg}", file=sys.stderr, flush=True)

    def count(self, name: str, n: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # -- stopping ------------------------------------------------------------------------------------------
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
            self.note(f"{reason}: finishing {self.inflight} in-flight items, then saving (again to stop now)")
        else:
            self.hard_stop = True
        self.notify_all()

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

    def notify(self, n: int = 1) -> None:
        """Wake up to `n` idle workers (one per new URL: no thundering herd on the frontier)."""
        while n > 0 and self._idle:
            fut = self._idle.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1

    def notify_all(self) -> None:
        self.notify(len(self._idle))

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
                    self.notify_all()  # nothing left anywhere: let the others see the end too
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
                    await self.handle_page(item)
            except asyncio.CancelledError:
                self.frontier.release(item)  # interrupted: it is redone on resume, never lost
                raise
            except CarscopeError:
                self.frontier.release(item)
                raise
            except Exception as exc:  # a bug or an odd page must cost one URL, not the crawl
                self.count("internal_errors")
                self.frontier.fail(item, reason=f"internal_{type(exc).__name__}", status=None)
                if self.counters["internal_errors"] <= 3:
                    self.note(f"unexpected {type(exc).__name__} on {item.url}: {exc}")
            finally:
                self.inflight -= 1
                self.inflight_by_kind[item.kind] -= 1
                self.frontier.commit()
                if self.inflight == 0:
                    self.notify_all()  # maybe the end; idle workers check
                elif self._claimable_kinds() != kinds:
                    self.notify(1)  # a limit's room opened again

    # -- failures ------------------------------------------------------------------------------------------
    def after_failure(self, item: Item, resp, verdict) -> None:
        """Record a failed attempt: a retry later (counted) or a failures row."""
        if verdict.action == "retry":
            self.count("retries")
            self.frontier.retry(item, not_before=time.time() + verdict.delay, status=resp.status, error=verdict.reason)
        else:
            self.frontier.fail(item, reason=verdict.reason or "failed", status=resp.status)
            self.progress.error(item.kind)

    def retry_or_fail(self, item: Item, resp, reason: str, *, retryable: bool = True) -> None:
        """The one retry verdict for a failure the response itself does not show (a render, a hook's fetch, a
        corrupt image): tried again while attempts are left (carscope/crawler/politeness.py `verdict`)."""
        self.after_failure(item, resp, self.politeness.verdict(reason, item.attempts + 1, retryable=retryable))

    # -- images --------------------------------------------------------------------------------------------
    async def _handle_image(self, item: Item) -> None:
        from carscope.crawler.images import process_image
        from carscope.crawler.writer import store_file

        ask = self.refresh.request_headers(item) if self.refresh is not None else None
        resp = await (self.http.fetch(item.url, kind="image", headers=ask) if ask else self.fetch_image(item))
        if resp.status == 304 and ask:  # a refresh's photo, unchanged: nothing downloaded
            self.count("refresh_photos_not_modified")
            self.frontier.remember(item, resp.headers, merge=True)
            self.frontier.done(item, resp.status)
            self.progress.image_dup()
            return
        verdict = self.politeness.classify(resp, item.attempts + 1)
        if verdict.action != "ok":
            self.after_failure(item, resp, verdict)
            return
        self.count("bytes_downloaded", len(resp.body))
        self.frontier.remember(item, resp.headers)  # what a refresh asks with next time
        # hashing and decoding both run on the CPU pool (they release the GIL); a duplicate costs one decode
        processed = await self.loop.run_in_executor(self.cpu, process_image, resp.body, self.rules, None)
        meta = item.meta
        if self.refresh is not None:  # new bytes under a known URL: its old row is gone (kept, marked)
            self.count("refresh_photos_replaced",
                       self.frontier.replace_image(item.url, processed.source_sha256, time.time()))
        if self.frontier.has_source(processed.source_sha256):
            self.count("duplicates")
            self.frontier.improve_image(source_sha256=processed.source_sha256, model_id=meta.get("model_id"),
                                        view_hint=meta.get("view_hint"))
            self.frontier.done(item, resp.status)
            self.progress.image_dup()
            return
        if not processed.ok:
            # a body cut short without a Content-Length looks exactly like a corrupt file: one more try
            self.retry_or_fail(item, resp, processed.reason,
                               retryable=processed.reason == "corrupt_image" and item.attempts == 0)
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
               "split": meta.get("split"), "orig_width": processed.orig_width,
               "orig_height": processed.orig_height, "orig_format": processed.orig_format}
        if self.frontier.put_image(row):
            self.count("bytes_stored", len(processed.data))
            self.count("images_stored_new")
            self.progress.image_stored()
        else:
            self.count("duplicates")
            self.frontier.improve_image(sha256=processed.sha256, model_id=row["model_id"], view_hint=row["view_hint"])
            self.progress.image_dup()
        self.frontier.done(item, resp.status)

    # -- output --------------------------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        from carscope.crawler.writer import snapshot

        while True:
            await asyncio.sleep(max(1.0, self.config.flush_interval))
            self.save_counters()
            self.frontier.commit(force=True)
            try:
                await asyncio.to_thread(snapshot, self.root)
            except Exception as exc:  # a failed snapshot is retried at the next flush and at the end
                self.note(f"snapshot failed ({type(exc).__name__}: {exc}); will retry")

    def save_counters(self, elapsed: float | None = None) -> dict:
        """This run's counters added to those of earlier runs, into the frontier's meta (committed by the caller)."""
        total = dict(self.base_counters)
        for k, v in self.counters.items():
            total[k] = total.get(k, 0) + v
        self.frontier.set_meta("counters", total)
        if elapsed is not None:
            self.frontier.set_meta("elapsed_s", self.prev_elapsed + elapsed)
        return total

    def _finish(self, elapsed: float) -> dict:
        from carscope.crawler.writer import snapshot

        total = self.save_counters(elapsed)
        runs = int(self.frontier.get_meta("runs", 0) or 0) + 1
        self.frontier.set_meta("runs", runs)
        self.frontier.commit(force=True)
        self.total_counters = total
        self.settle(not self.stop_reason and self.frontier.pending_count() == 0)
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
            **self.describe(counts),
            "images": {"stored": counts["images_stored"], "duplicates": int(total.get("duplicates", 0)),
                       "failed": images.get("failed", 0), "pending": images.get("pending", 0),
                       "urls_done": images.get("done", 0)},
            "specs": counts["specs"],
            "rows": rows,
            "failures": counts["failures"],
            "failure_reasons": self._failure_reasons(),
            "retries": int(total.get("retries", 0)),
            **self.page_stats(),
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
        self.complete_stats(stats, counts)
        ds.write_json(stats, self.root / ds.STATS_FILE)
        return stats

    def _failure_reasons(self) -> dict[str, int]:
        return {r: n for r, n in self.frontier.db.execute(
            "SELECT reason, COUNT(*) FROM failures GROUP BY reason ORDER BY reason")}
