"""The politeness layer's decisions, one at a time, on a fake clock: scope, robots.txt by status, Crawl-delay,
request spacing, pauses, the per-host and global limits, backoff, and what each response means. Fast and exact,
so that `make mutate` can hold every comparison in carscope/crawler/politeness.py (test_politeness.py drives the same
layer through real crawls of tiny servers)."""

import asyncio
import types
from datetime import datetime, timezone

import pytest

from carscope.crawler import politeness as pmod
from carscope.crawler.config import CrawlConfig
from carscope.crawler.fetch import Response
from carscope.crawler.politeness import (
    ALLOW_ALL,
    DISALLOW_ALL,
    RETRY_ERRORS,
    RETRY_STATUSES,
    Politeness,
    parse_retry_after,
)

T0 = 1000.0


@pytest.fixture
def clock(monkeypatch):
    """carscope.crawler.politeness sees virtual time: a sleep wakes when every task is blocked and its time is the
    earliest pending, so waits that overlap overlap on this clock too (run coroutines with `clock["run"]`)."""
    import heapq
    import itertools

    now = {"t": T0, "sleeps": []}
    timers: list = []
    order = itertools.count()
    real_sleep = asyncio.sleep

    async def sleep(seconds):
        now["sleeps"].append(seconds)
        if len(now["sleeps"]) > 10_000:  # a wait that never ends: fail, rather than spin on the virtual clock
            raise RuntimeError("the slot kept waiting: virtual time ran away")
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(timers, (now["t"] + max(0.0, seconds), next(order), fut))
        await fut

    async def ticker():
        while True:
            for _ in range(20):  # let every runnable task run until it blocks
                await real_sleep(0)
            if timers:
                when, _, fut = heapq.heappop(timers)
                now["t"] = max(now["t"], when)
                fut.set_result(None)

    def run(coro):
        async def main():
            tick = asyncio.ensure_future(ticker())
            try:
                return await coro
            finally:
                tick.cancel()

        return asyncio.run(main())

    now["run"] = run
    monkeypatch.setattr(pmod, "time", types.SimpleNamespace(monotonic=lambda: now["t"], time=lambda: now["t"]))
    monkeypatch.setattr(pmod, "asyncio", types.SimpleNamespace(Semaphore=asyncio.Semaphore, Lock=asyncio.Lock,
                                                               sleep=sleep))
    return now


def _pol(hosts=("h",), **kw) -> Politeness:
    return Politeness(CrawlConfig("http://h/", "x", **kw), set(hosts))


class _Edges:
    """A jitter source that always draws the low (or the high) end of its range."""

    def __init__(self, high: bool = False):
        self.high = high

    def uniform(self, a, b):
        return b if self.high else a


# -- Retry-After ---------------------------------------------------------------------------------------------
def test_retry_after_values():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 7 ") == 7.0  # stripped
    assert parse_retry_after("0") == 0.0
    for unreadable in (None, "", "   ", "soon", "-5", "1.5", "Mon, 99 Foo 2026"):
        assert parse_retry_after(unreadable) is None, unreadable
    now = datetime(2026, 12, 1, 15, 0, 0, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after("Tue, 01 Dec 2026 15:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Tue, 01 Dec 2026 14:59:00 GMT", now=now) == 0.0  # in the past: no wait
    # "-0000" means "UTC, source unknown": Python reads it as a naive datetime, which must still count as UTC
    assert parse_retry_after("Tue, 01 Dec 2026 15:00:10 -0000", now=now) == 10.0
    # another zone is converted, not ignored
    assert parse_retry_after("Tue, 01 Dec 2026 16:00:20 +0100", now=now) == 20.0


def test_retry_after_date_without_now_uses_the_wall_clock(clock):
    clock["t"] = datetime(2026, 12, 1, 15, 0, 0, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after("Tue, 01 Dec 2026 15:00:45 GMT") == 45.0


# -- scope ---------------------------------------------------------------------------------------------------
def test_scope():
    pol = _pol(hosts=("H.example:8080",))  # hosts compare lower-case, port included
    assert pol.in_scope("http://h.example:8080/a") is None
    assert pol.in_scope("https://H.EXAMPLE:8080/a") is None
    assert pol.in_scope("http://h.example/a") == "offsite"  # another port is another host
    assert pol.in_scope("http://other.example:8080/a") == "offsite"
    for url in ("ftp://h.example:8080/a", "file:///etc/passwd", "javascript:alert(1)", "h.example:8080/a"):
        assert pol.in_scope(url) == "not_http", url
    anyhost = Politeness(CrawlConfig("http://h/", "x"), set(), any_host=True)
    assert anyhost.in_scope("http://anywhere.example/x") is None
    assert anyhost.in_scope("ftp://anywhere.example/x") == "not_http"  # any host, still only http(s)


# -- robots.txt ----------------------------------------------------------------------------------------------
def _robots(status, text=None, error=None):
    calls = []

    async def fetch_robots(url):
        calls.append(url)
        await asyncio.sleep(0)
        return status, text, error

    return fetch_robots, calls


RULES = "User-agent: *\nDisallow: /private\n"


def test_robots_is_read_once_per_host_by_all_waiters(clock):
    pol = _pol(hosts=("h:81", "g"))
    fetch, calls = _robots(200, RULES)

    async def main():
        await asyncio.gather(*(pol.ensure_robots(f"http://h:81/p{i}?q=1", fetch) for i in range(5)))
        await pol.ensure_robots("https://g/x", fetch)
        await pol.ensure_robots("http://h:81/again", fetch)

    asyncio.run(main())
    assert calls == ["http://h:81/robots.txt", "https://g/robots.txt"]
    assert pol.robots_allows("http://h:81/public") and not pol.robots_allows("http://h:81/private/a.jpg")
    assert pol.hosts["h:81"].robots_status == 200 and pol.hosts["h:81"].robots_error is None


@pytest.mark.parametrize("status, text, rule", [
    (200, RULES, "parsed"), (299, RULES, "parsed"),
    (200, None, DISALLOW_ALL),  # a 2xx without a body read is not a robots.txt
    (300, RULES, DISALLOW_ALL), (199, RULES, DISALLOW_ALL),
    (400, None, ALLOW_ALL), (404, None, ALLOW_ALL), (499, None, ALLOW_ALL),  # no rules: allow all
    (500, None, DISALLOW_ALL), (503, None, DISALLOW_ALL), (None, None, DISALLOW_ALL),  # unreachable: disallow all
])
def test_robots_status_decides(clock, status, text, rule):
    pol = _pol()
    fetch, _ = _robots(status, text, None if status else "connection_error")
    asyncio.run(pol.ensure_robots("http://h/", fetch))
    hs = pol.hosts["h"]
    assert hs.robots_ready and hs.robots_status == status
    if rule == "parsed":
        assert hs.robots not in (ALLOW_ALL, DISALLOW_ALL)
        assert pol.robots_allows("http://h/ok") and not pol.robots_allows("http://h/private")
    else:
        assert hs.robots == rule
        assert pol.robots_allows("http://h/private") is (rule == ALLOW_ALL)
        assert pol.robots_allows("http://h/ok") is (rule == ALLOW_ALL)
    if status is None:
        assert hs.robots_error == "connection_error"


def test_an_unparseable_robots_txt_counts_as_absent(clock, monkeypatch):
    import protego

    def broken(text):
        raise ValueError("bad robots.txt")

    monkeypatch.setattr(protego.Protego, "parse", staticmethod(broken))
    pol = _pol()
    asyncio.run(pol.ensure_robots("http://h/", _robots(200, "garbage")[0]))
    assert pol.hosts["h"].robots == ALLOW_ALL and pol.robots_allows("http://h/private")


def test_robots_are_not_read_or_obeyed_when_told_not_to(clock):
    pol = _pol(obey_robots=False)
    fetch, calls = _robots(200, "User-agent: *\nDisallow: /\n")
    asyncio.run(pol.ensure_robots("http://h/", fetch))
    assert calls == [] and pol.robots_allows("http://h/anything")


def test_robots_allows_before_any_robots_txt_is_read():
    assert _pol().robots_allows("http://h/private")  # nothing read yet: no rule to apply


def test_robots_rules_are_per_user_agent(clock):
    text = "User-agent: carscope\nDisallow: /cars\n\nUser-agent: *\nDisallow: /private\n"
    pol = _pol(user_agent="carscope/1.0")
    asyncio.run(pol.ensure_robots("http://h/", _robots(200, text)[0]))
    assert not pol.robots_allows("http://h/cars/x") and pol.robots_allows("http://h/private")


@pytest.mark.parametrize("delay, crawl_delay, want", [(0.0, 2.0, 2.0), (3.0, 2.0, 3.0), (0.5, None, 0.5),
                                                      (0.5, 0.0, 0.5)])
def test_crawl_delay_raises_the_host_delay_and_counts_from_the_robots_request(clock, delay, crawl_delay, want):
    text = RULES + (f"Crawl-delay: {crawl_delay}\n" if crawl_delay is not None else "")
    pol = _pol(delay=delay)
    asyncio.run(pol.ensure_robots("http://h/", _robots(200, text)[0]))
    hs = pol.hosts["h"]
    assert hs.delay == want
    # robots.txt was a request too: with a Crawl-delay the next start waits for it
    assert hs.next_start == (T0 + want if crawl_delay else 0.0)


# -- the slot: spacing, pauses, limits -----------------------------------------------------------------------
def _starts(clock, pol, urls, hold=0.0):
    """When (on the fake clock) each request got its slot, and what it saw of the host."""
    starts = []

    async def one(url):
        async with pol.slot(url) as hs:
            starts.append((url, pmod.time.monotonic(), hs.inflight))
            await pmod.asyncio.sleep(hold)

    async def main():
        await asyncio.gather(*(one(u) for u in urls))

    clock["run"](main())
    return starts


def test_request_starts_are_spaced_by_the_delay_per_host(clock):
    pol = _pol(hosts=("h", "g"), delay=1.5, per_host=4)
    starts = _starts(clock, pol, ["http://h/1", "http://h/2", "http://h/3"])
    assert [t for _, t, _ in starts] == [T0, T0 + 1.5, T0 + 3.0]
    # each wait is exactly what is left of the spacing; a request that wakes at its start time goes at once
    assert sorted(s for s in clock["sleeps"] if s) == [1.5, 1.5, 1.5] and clock["sleeps"].count(0.0) == 3
    g = _starts(clock, pol, ["http://g/1"])  # another host is not held back by h's spacing
    assert g[0][1] == T0 + 3.0  # (the clock has not moved since h's last start)
    assert pol.hosts["h"].requests == 3 and pol.hosts["g"].requests == 1


def test_no_delay_means_no_wait(clock):
    pol = _pol(per_host=2)
    starts = _starts(clock, pol, [f"http://h/{i}" for i in range(4)])
    assert {t for _, t, _ in starts} == {T0} and clock["sleeps"] == [0.0] * 4  # only the requests' own holds


def test_a_pause_holds_every_request_to_the_host_and_never_shortens(clock):
    pol = _pol(hosts=("h", "g"))
    pol.pause_host("http://h/a", 10.0)
    pol.pause_host("http://h/b", 2.0)  # a shorter pause later does not cut the first one short
    starts = _starts(clock, pol, ["http://h/1", "http://g/1"])
    assert dict((u, t) for u, t, _ in starts) == {"http://g/1": T0, "http://h/1": T0 + 10.0}
    assert pol.hosts["h"].paused_until == T0 + 10.0


def test_per_host_limit_is_used_up_and_never_exceeded(clock):
    pol = _pol(per_host=2, concurrency=10)
    starts = _starts(clock, pol, [f"http://h/{i}" for i in range(5)], hold=1.0)
    assert max(n for _, _, n in starts) == 2 and pol.hosts["h"].max_inflight == 2
    assert pol.hosts["h"].inflight == 0 and pol.inflight == 0
    assert [t for _, t, _ in starts] == [T0, T0, T0 + 1.0, T0 + 1.0, T0 + 2.0]


def test_global_limit_across_hosts(clock):
    pol = _pol(hosts=("h", "g"), per_host=5, concurrency=3)
    _starts(clock, pol, [f"http://{h}/{i}" for i in range(4) for h in "hg"], hold=1.0)
    assert pol.max_inflight == 3 and pol.inflight == 0
    assert pol.hosts["h"].requests == 4 and pol.hosts["g"].requests == 4


def test_a_failed_request_gives_its_slot_back(clock):
    pol = _pol(per_host=1)

    async def main():
        with pytest.raises(RuntimeError):
            async with pol.slot("http://h/a"):
                raise RuntimeError("boom")
        async with pol.slot("http://h/b") as hs:
            return hs.inflight

    assert asyncio.run(main()) == 1 and pol.hosts["h"].inflight == 0 and pol.inflight == 0


def test_host_report(clock):
    pol = _pol(delay=0.25)
    asyncio.run(pol.ensure_robots("http://h/", _robots(404)[0]))
    _starts(clock, pol, ["http://h/1", "http://h/2"])
    assert pol.host_report() == {"h": {"requests": 2, "max_inflight": 1, "delay_s": 0.25, "robots_status": 404}}


# -- retries -------------------------------------------------------------------------------------------------
def test_backoff_doubles_from_the_base_with_half_jitter_and_a_cap():
    pol = _pol(backoff_base=0.5, backoff_max=3.0)
    pol.rng = _Edges()
    assert [pol.backoff(a) for a in (0, 1, 2, 3, 4, 5)] == [0.25, 0.25, 0.5, 1.0, 1.5, 1.5]
    pol.rng = _Edges(high=True)
    assert [pol.backoff(a) for a in (1, 2, 3, 4)] == [0.75, 1.5, 3.0, 4.5]
    pol.rng = __import__("random").Random(0)
    draws = [pol.backoff(1) for _ in range(200)]
    assert 0.25 <= min(draws) < 0.3 and 0.7 < max(draws) <= 0.75  # the whole +-50% range is drawn


def _r(status=None, error=None, retry_after=None):
    return Response("http://h/a", "http://h/a", status=status, error=error, retry_after=retry_after)


RETRIED = [408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524]  # timeouts, too early, too many, 5xx, CDN
FINAL = [199, 300, 304, 400, 401, 403, 404, 407, 409, 410, 426, 428, 451, 501, 505, 519, 525, 599]


def test_what_a_response_means():
    pol = _pol(max_attempts=3)
    assert RETRY_STATUSES == frozenset(RETRIED)
    assert RETRY_ERRORS == {"timeout", "connection_error", "truncated", "server_disconnected"}
    for status in (200, 204, 299):
        assert pol.classify(_r(status), 1).action == "ok"
    for status in FINAL:
        v = pol.classify(_r(status), 1)
        assert (v.action, v.reason) == ("fail", f"http_{status}"), status
    for status in RETRIED:
        v = pol.classify(_r(status), 1)
        assert (v.action, v.reason) == ("retry", f"http_{status}"), status
    for error in ("timeout", "connection_error", "truncated", "server_disconnected"):
        v = pol.classify(_r(error=error), 1)
        assert (v.action, v.reason) == ("retry", error), error
    for error in ("too_large", "bad_content_type", "too_many_redirects"):
        assert pol.classify(_r(error=error), 1).action == "fail"
    # an error wins over a 2xx status (a body cut short after its headers said 200)
    v = pol.classify(_r(200, error="truncated"), 1)
    assert (v.action, v.reason) == ("retry", "truncated")
    assert pol.classify(_r(200, error="too_large"), 1).action == "fail"
    assert pol.classify(_r(), 1).action == "fail"  # no status and no error: nothing usable came back


def test_retries_stop_at_max_attempts_with_the_last_reason():
    pol = _pol(max_attempts=3, backoff_base=1.0)
    pol.rng = _Edges()
    assert [(v.action, v.delay) for v in (pol.classify(_r(503), a) for a in (1, 2))] == [("retry", 0.5),
                                                                                       ("retry", 1.0)]
    for attempt in (3, 4):
        v = pol.classify(_r(503), attempt)
        assert (v.action, v.reason) == ("fail", "http_503")
    assert _pol(max_attempts=1).classify(_r(error="timeout"), 1).action == "fail"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_pauses_the_host(clock, status):
    pol = _pol(backoff_base=1.0)
    pol.rng = _Edges()
    v = pol.classify(_r(status, retry_after=7.0), 1)
    assert (v.action, v.delay) == ("retry", 7.0)
    assert pol.hosts["h"].paused_until == T0 + 7.0
    assert (pol.retry_after_waits, pol.retry_after_max) == (1, 7.0)
    v = pol.classify(_r(status, retry_after=0.1), 2)  # shorter than the backoff: the backoff rules the URL
    assert v.delay == 1.0 and pol.hosts["h"].paused_until == T0 + 7.0
    assert (pol.retry_after_waits, pol.retry_after_max) == (2, 7.0)


def test_retry_after_is_capped_and_ignored_where_it_does_not_apply(clock):
    pol = _pol(backoff_base=1.0, max_retry_after=120.0)
    pol.rng = _Edges()
    v = pol.classify(_r(429, retry_after=3600.0), 1)
    assert v.delay == 120.0 and pol.hosts["h"].paused_until == T0 + 120.0 and pol.retry_after_max == 120.0
    other = _pol(backoff_base=1.0, max_attempts=2)
    other.rng = _Edges()
    v = other.classify(_r(500, retry_after=60.0), 1)  # Retry-After counts on 429 and 503 only
    assert v.delay == 0.5 and other.retry_after_waits == 0 and "h" not in other.hosts
    v = other.classify(_r(429, retry_after=60.0), 2)  # the last attempt: fail now, pause nothing
    assert v.action == "fail" and other.retry_after_waits == 0 and "h" not in other.hosts


def test_a_fresh_layer_reports_nothing_yet():
    pol = _pol()
    assert (pol.max_inflight, pol.inflight, pol.retry_after_waits, pol.retry_after_max) == (0, 0, 0, 0.0)
    pol.host("h")
    assert pol.host_report() == {"h": {"requests": 0, "max_inflight": 0, "delay_s": 0.0, "robots_status": None}}
    hs = pol.hosts["h"]
    assert (hs.paused_until, hs.next_start, hs.robots_ready, hs.robots_error) == (0.0, 0.0, False, None)
    assert pol.classify(_r(200), 1) == pmod.Verdict("ok", None, 0.0)


def test_robots_path():
    assert pmod.robots_path("http://h/a/b?x=1") == "/a/b?x=1"
    assert pmod.robots_path("http://h") == "/"
