"""Politeness and retries, in one layer: who may be fetched, when, how often, and what a failure means.

    python -c "from carscope.crawler.politeness import parse_retry_after; print(parse_retry_after('120'))"

- Scope: only http(s), only the start URL's host, the adapter's `allowed_hosts` and `--allowed-hosts`.
- robots.txt (protego) is read once per host before its first request and obeyed, Crawl-delay included
  (the larger of it and `--delay` spaces request starts to that host).
- Concurrency: a global limit (`--concurrency`) and a per-host one (`--per-host`); a request holds its
  host's slot from its start to the end of its body.
- Retries: 5xx, 408, 429, timeouts, connection errors and truncated bodies are retried with exponential
  backoff and +-50% jitter; `Retry-After` (seconds or an HTTP-date) on 429/503 pauses the whole host, as
  RFC 9110 asks, and the URL is not retried before it; other 4xx are final. After `max_attempts` the URL
  fails with the last reason (a failures row).

Everything that talks to a server goes through `Politeness.slot()`: the aiohttp fetcher, robots.txt, and
every request a browser page makes (carscope/crawler/browser.py routes them here), so no limit can be bypassed.
"""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from carscope.crawler.urls import host_of, path_and_query

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
RETRY_ERRORS = frozenset({"timeout", "connection_error", "truncated", "server_disconnected"})


@dataclass
class Verdict:
    action: str  # ok / retry / fail
    reason: str | None = None
    delay: float = 0.0  # for retry: seconds before the next attempt


@dataclass
class HostState:
    sem: asyncio.Semaphore
    delay: float
    next_start: float = 0.0  # monotonic time before which no request may start
    paused_until: float = 0.0
    inflight: int = 0
    max_inflight: int = 0
    requests: int = 0
    robots: object = None  # protego.Protego, or ALLOW_ALL / DISALLOW_ALL
    robots_status: int | None = None
    robots_error: str | None = None  # why robots.txt could not be read (connection_error, timeout, ...)
    robots_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    robots_ready: bool = False


ALLOW_ALL, DISALLOW_ALL = "allow-all", "disallow-all"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now_dt = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max(0.0, (when - now_dt).total_seconds())


class Politeness:
    def __init__(self, config, allowed_hosts: set[str], *, any_host: bool = False):
        self.config = config
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.any_host = any_host  # a URL list (`dataset import`): every http(s) host is in scope, robots.txt still rules
        self.global_sem = asyncio.Semaphore(config.concurrency)
        self.hosts: dict[str, HostState] = {}
        self.rng = random.Random()
        self.max_inflight = 0
        self.inflight = 0
        self.retry_after_waits = 0  # how many Retry-After pauses were honoured, and the longest
        self.retry_after_max = 0.0

    # -- scope ---------------------------------------------------------------------------------------------
    def host(self, host: str) -> HostState:
        hs = self.hosts.get(host)
        if hs is None:
            hs = self.hosts[host] = HostState(sem=asyncio.Semaphore(self.config.per_host), delay=self.config.delay)
        return hs

    def in_scope(self, url: str) -> str | None:
        """None when `url` may be fetched as far as scope goes, else the reason it may not."""
        if not url.startswith(("http://", "https://")):
            return "not_http"
        if not self.any_host and host_of(url) not in self.allowed_hosts:
            return "offsite"
        return None

    def robots_allows(self, url: str) -> bool:
        """Call after `ensure_robots(host)`."""
        if not self.config.obey_robots:
            return True
        hs = self.host(host_of(url))
        if hs.robots is None or hs.robots == ALLOW_ALL:
            return True
        if hs.robots == DISALLOW_ALL:
            return False
        return hs.robots.can_fetch(url, self.config.user_agent)

    async def ensure_robots(self, url: str, fetch_robots) -> None:
        """Read robots.txt of `url`'s host once (all callers wait for the first reader).

        `fetch_robots(robots_url)` -> (status, text or None, error or None), retries done by the caller. 4xx means no
        rules (allow all); 5xx or unreachable means "assume complete disallow" (RFC 9309 2.3.1.4)."""
        if not self.config.obey_robots:
            return
        hs = self.host(host_of(url))
        if hs.robots_ready:
            return
        async with hs.robots_lock:
            if hs.robots_ready:
                return
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            status, text, error = await fetch_robots(f"{parts.scheme}://{parts.netloc}/robots.txt")
            hs.robots_status, hs.robots_error = status, error
            if status is not None and 200 <= status < 300 and text is not None:
                from protego import Protego

                try:
                    hs.robots = Protego.parse(text)
                except Exception:  # an unparseable robots.txt is treated as absent, as browsers do
                    hs.robots = ALLOW_ALL
                else:
                    delay = hs.robots.crawl_delay(self.config.user_agent)
                    if delay:
                        hs.delay = max(hs.delay, float(delay))
                        hs.next_start = max(hs.next_start, time.monotonic() + hs.delay)  # robots.txt counts too
            elif status is not None and 400 <= status < 500:
                hs.robots = ALLOW_ALL
            else:
                hs.robots = DISALLOW_ALL
            hs.robots_ready = True

    # -- the gate ------------------------------------------------------------------------------------------
    @asynccontextmanager
    async def slot(self, url: str):
        """Hold a request slot for `url`: per-host limit, per-host spacing and pauses, then the global limit."""
        hs = self.host(host_of(url))
        async with hs.sem:
            while True:
                wait = max(hs.next_start, hs.paused_until) - time.monotonic()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            hs.next_start = time.monotonic() + hs.delay  # set before any await: spacing holds across tasks
            async with self.global_sem:
                hs.inflight += 1
                hs.requests += 1
                hs.max_inflight = max(hs.max_inflight, hs.inflight)
                self.inflight += 1
                self.max_inflight = max(self.max_inflight, self.inflight)
                try:
                    yield hs
                finally:
                    hs.inflight -= 1
                    self.inflight -= 1

    def pause_host(self, url: str, seconds: float) -> None:
        hs = self.host(host_of(url))
        hs.paused_until = max(hs.paused_until, time.monotonic() + seconds)

    # -- retries -------------------------------------------------------------------------------------------
    def backoff(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1` (attempt counts from 1): exponential with +-50% jitter."""
        base = min(self.config.backoff_max, self.config.backoff_base * 2 ** max(0, attempt - 1))
        return base * self.rng.uniform(0.5, 1.5)

    def verdict(self, reason: str, attempt: int, *, retryable: bool = True) -> Verdict:
        """The verdict on attempt `attempt` (from 1) when the response looked fine but the item still failed (a
        render error, a hook's fetch, a corrupt image): retried while attempts are left, after the backoff."""
        retry = retryable and attempt < self.config.max_attempts
        return Verdict("retry" if retry else "fail", reason, self.backoff(attempt))

    def classify(self, resp, attempt: int) -> Verdict:
        """What to do after attempt number `attempt` (from 1) of a request produced `resp` (fetch.Response)."""
        if resp.error is None and resp.status is not None and 200 <= resp.status < 300:
            return Verdict("ok")
        if resp.error is not None:
            reason, retryable = resp.error, resp.error in RETRY_ERRORS
        else:
            reason, retryable = f"http_{resp.status}", resp.status in RETRY_STATUSES
        if not retryable:
            return Verdict("fail", reason)
        if attempt >= self.config.max_attempts:
            return Verdict("fail", reason)
        delay = self.backoff(attempt)
        if resp.retry_after is not None and resp.status in (429, 503):
            wait = min(resp.retry_after, self.config.max_retry_after)
            self.pause_host(resp.url, wait)
            self.retry_after_waits += 1
            self.retry_after_max = max(self.retry_after_max, wait)
            delay = max(delay, wait)
        return Verdict("retry", reason, delay)

    def host_report(self) -> dict:
        return {h: {"requests": s.requests, "max_inflight": s.max_inflight, "delay_s": s.delay,
                    "robots_status": s.robots_status} for h, s in self.hosts.items()}


def robots_path(url: str) -> str:
    return path_and_query(url)
