"""The politeness layer on tiny local servers: Retry-After, Crawl-delay, per-host limit, robots.txt, scope,
retries with a give-up, redirect limit, content-type and size checks, User-Agent."""

import time
from email.utils import formatdate

import pytest
from aiohttp import web

from carscope.crawler import crawl
from carscope.crawler.config import CrawlConfig
from carscope.crawler.dataset import load
from carscope.crawler.fetch import Response
from carscope.crawler.politeness import Politeness, parse_retry_after
from tests.crawler.helpers import PHOTO_ADAPTER, app_in_thread, config, tiny_jpeg


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("120") == 120.0
    now = time.time()
    assert 29 <= parse_retry_after(formatdate(now + 30, usegmt=True), now=now) <= 30
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_retry_policy_backs_off_with_jitter_and_gives_up():
    pol = Politeness(CrawlConfig("http://h/", "x", max_attempts=4, backoff_base=1.0), {"h"})
    resp = Response("http://h/a", "http://h/a", status=503)
    delays = [pol.classify(resp, attempt).delay for attempt in (1, 2, 3)]
    assert 0.5 <= delays[0] <= 1.5 and 1.0 <= delays[1] <= 3.0 and 2.0 <= delays[2] <= 6.0
    assert pol.classify(resp, 4).action == "fail" and pol.classify(resp, 4).reason == "http_503"
    assert pol.classify(Response("http://h/a", "http://h/a", status=404), 1).action == "fail"  # no retry
    assert pol.classify(Response("http://h/a", "http://h/a", error="timeout"), 1).action == "retry"
    ra = pol.classify(Response("http://h/a", "http://h/a", status=429, retry_after=7.0), 1)
    assert ra.action == "retry" and ra.delay >= 7.0


def _site(log: list, robots: str):
    """Home links a second page; images exercise every fault the politeness layer must handle."""
    counts: dict[str, int] = {}
    images = ["ok1", "ok2", "r429", "r429date", "dead", "gone", "html", "big", "loop", "redir"]
    home = "".join(f'<img src="/img/{n}.jpg">' for n in images)
    home += '<img src="/private/secret.jpg"><img src="http://elsewhere.invalid/x.jpg"><a class="next" href="/more">'

    async def handler(request):
        path = request.path_qs
        log.append((time.monotonic(), path, request.headers.get("User-Agent")))
        n = counts[request.path] = counts.get(request.path, 0) + 1
        name = request.path.rsplit("/", 1)[-1].removesuffix(".jpg")
        if request.path == "/robots.txt":
            return web.Response(text=robots)
        if request.path == "/":
            return web.Response(text=home, content_type="text/html")
        if request.path == "/more":
            return web.Response(text='<img src="/img/ok3.jpg">', content_type="text/html")
        if name == "r429" and n == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if name == "r429date" and n == 1:
            return web.Response(status=429, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)})
        if name == "dead":
            return web.Response(status=503)
        if name == "gone":
            return web.Response(status=404)
        if name == "html":
            return web.Response(text="<html></html>", content_type="text/html")
        if name == "loop":
            return web.Response(status=302, headers={"Location": f"/img/loop.jpg?n={n}"})
        if name == "redir":
            return web.Response(status=301, headers={"Location": "/img/ok4.jpg"})
        body = tiny_jpeg(sum(map(ord, name)))
        if name == "big":
            body += bytes(30_000)  # over the 20 kB cap of this test
        return web.Response(body=body, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


def test_faults_scope_and_robots_on_a_tiny_site(tmp_path):
    log: list = []
    adapter = tmp_path / "tiny.toml"
    adapter.write_text(PHOTO_ADAPTER)
    robots = "User-agent: *\nDisallow: /private\nCrawl-delay: 0.08\n"
    with app_in_thread(_site(log, robots)) as base:
        stats = crawl(config(base, tmp_path / "ds", site=str(adapter), max_attempts=3, per_host=4,
                             max_image_bytes=20_000, user_agent="carscope-test/1.0 (+tests)"))
    assert stats["status"] == "complete"
    ds = load(tmp_path / "ds")
    fails = ds.failures.set_index("url")
    reasons = {u.split("/")[-1].split("?")[0]: (r, a) for u, r, a in zip(fails.index, fails.reason, fails.attempts, strict=True)}
    assert reasons["dead.jpg"] == ("http_503", 3)  # retried, then given up with its reason
    assert reasons["gone.jpg"] == ("http_404", 1)  # other 4xx: no retry
    assert reasons["html.jpg"][0] == "bad_content_type"
    assert reasons["big.jpg"][0] == "too_large"
    assert reasons["loop.jpg"][0] == "too_many_redirects"
    assert reasons["secret.jpg"] == ("robots_disallowed", 0)
    assert reasons["x.jpg"] == ("offsite", 0)
    stored = {u.split("/")[-1] for u in ds.images.source_url}
    assert stored == {"ok1.jpg", "ok2.jpg", "ok3.jpg", "r429.jpg", "r429date.jpg", "redir.jpg"}

    paths = [p for _, p, _ in log]
    assert "/private/secret.jpg" not in paths and paths[0] == "/robots.txt"
    assert {ua for _, _, ua in log} == {"carscope-test/1.0 (+tests)"}
    # Crawl-delay 0.08 s: request starts to the host are spaced (measured at the server, so allow jitter;
    # without the delay these gaps are a few milliseconds)
    starts = [t for t, _, _ in log]
    gaps = [(round(b - a, 3), p) for a, b, p in zip(starts[:-1], starts[1:], paths[1:], strict=True)]
    # the client spaces request starts by 0.08 s; arrival at the server can bunch up by scheduling noise on a busy
    # machine (one request slow to arrive, the next on time), so hold the median to the delay and every gap to a
    # quarter of it (no delay gives gaps of a few ms; the unit tests hold the spacing exactly on a virtual clock)
    assert sorted(g for g, _ in gaps)[len(gaps) // 2] >= 0.072, gaps
    assert min(gaps)[0] >= 0.02, gaps
    # Retry-After: that URL is not asked again before the wait (the server's clock: the retry cannot arrive early
    # whatever the load), and the whole host pauses meanwhile. Counted, not timed to a tight window: the pause
    # starts when the client reads the 429, after the server logged it, so during `wait` from that log line only
    # requests already in flight may arrive (at most per_host - 1 = 3); without the pause the crawl goes on at one
    # request per Crawl-delay, 12 in that second. (r429date's wait is 1-2 s: an HTTP-date counts whole seconds.)
    # (tests/crawler/test_politeness_unit.py holds the pause itself to the millisecond on a virtual clock.)
    for name, wait in (("/img/r429.jpg", 1.0), ("/img/r429date.jpg", 1.0)):
        hits = [t for t, p, _ in log if p == name]
        assert len(hits) == 2 and hits[1] - hits[0] >= wait - 0.02, (name, hits)
        during = [p for t, p, _ in log if hits[0] < t < hits[0] + wait]  # the pause ends after hits[0] + wait
        assert len(during) <= 3, (name, during)
    assert stats["politeness"]["retry_after_waits"] == 2


def test_per_host_limit_is_never_exceeded(tmp_path):
    state = {"now": 0, "max": 0}

    async def slow_image(request):
        import asyncio

        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.1)
        state["now"] -= 1
        return web.Response(body=tiny_jpeg(int(request.match_info["n"])), content_type="image/jpeg")

    async def home(request):
        return web.Response(text="".join(f'<img src="/i/{n}.jpg">' for n in range(12)), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/i/{n}.jpg", slow_image)
    adapter = tmp_path / "tiny.toml"
    adapter.write_text(PHOTO_ADAPTER)
    with app_in_thread(app) as base:
        stats = crawl(config(base, tmp_path / "ds", site=str(adapter), concurrency=16, per_host=3))
    assert stats["images"]["stored"] == 12
    assert state["max"] == 3  # used up to the limit, never beyond
    assert stats["politeness"]["max_inflight"] <= 3


@pytest.mark.parametrize("robots_status", [503])
def test_a_site_whose_robots_txt_fails_is_not_crawled(tmp_path, robots_status):
    from carscope.common.errors import CarscopeError

    async def robots(request):
        return web.Response(status=robots_status)

    async def home(request):
        return web.Response(text="<p>hi</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/robots.txt", robots)
    app.router.add_get("/", home)
    adapter = tmp_path / "tiny.toml"
    adapter.write_text(PHOTO_ADAPTER)
    with app_in_thread(app) as base:
        with pytest.raises(CarscopeError, match="robots.txt .* answers HTTP 503"):
            crawl(config(base, tmp_path / "ds", site=str(adapter), max_attempts=2))


@pytest.mark.parametrize("delay, crawl_delay", [(0.12, 0.03), (0.01, 0.12)])
def test_delay_and_crawl_delay_the_larger_wins(tmp_path, delay, crawl_delay):
    """--delay and robots.txt's Crawl-delay together: request starts to the host are spaced by the larger."""
    log: list = []
    adapter = tmp_path / "tiny.toml"
    adapter.write_text(PHOTO_ADAPTER)
    robots = f"User-agent: *\nDisallow: /private\nCrawl-delay: {crawl_delay}\n"
    with app_in_thread(_site(log, robots)) as base:
        stats = crawl(config(base, tmp_path / "ds", site=str(adapter), max_attempts=1, per_host=4, delay=delay,
                             max_image_bytes=20_000))
    want = max(delay, crawl_delay)
    hosts = stats["politeness"]["hosts"]
    assert [h["delay_s"] for h in hosts.values()] == [pytest.approx(want)]
    starts = [t for t, _, _ in log]
    gaps = sorted(b - a for a, b in zip(starts[:-1], starts[1:], strict=True))
    # the smaller of the two would give gaps of 0.01-0.03 s: the median must be near the larger one
    assert gaps[len(gaps) // 2] >= 0.9 * want, gaps
