"""/__stats: request counts and the highest number of requests in flight, per client IP."""

import asyncio
import socket

import aiohttp
import pytest

from carscope.showroom.testing import fetch_stats, reset_stats, serve_in_thread, tiny_config


def _can_bind(addr):
    try:
        with socket.socket() as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


async def _burst(base, paths, local_addr=None, limit=100):
    conn = aiohttp.TCPConnector(limit=limit, local_addr=(local_addr, 0) if local_addr else None)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def one(p):
            async with s.get(base + p) as r:
                await r.read()
                return r.status
        return await asyncio.gather(*[one(p) for p in paths])


def test_max_inflight_counts_concurrent_requests_per_client():
    # every first attempt is slow (0.8 s: margin for a loaded machine), so requests sent together overlap
    with serve_in_thread(tiny_config(faults="slow=1", slow_s=0.8)) as base:
        statuses = asyncio.run(_burst(base, [f"/compare?page={i}" for i in range(7)], limit=5))
        assert statuses == [200] * 7
        st = fetch_stats(base)
        assert st["max_inflight"] == 5 and st["max_inflight_per_client"] == {"127.0.0.1": 5}
        assert st["inflight"] == 0 and st["requests"] == 7 and st["status"] == {"200": 7}
        assert st["faults"] == {"slow": 7}

        reset_stats(base)
        for i in range(2):  # one at a time: never more than one in flight
            asyncio.run(_burst(base, [f"/compare?page=x{i}"]))
        st = fetch_stats(base)
        assert st["max_inflight"] == 1 and st["requests"] == 2

        if not _can_bind("127.0.0.2"):
            pytest.skip("no 127.0.0.2 on this host")
        reset_stats(base)

        async def two_clients():
            await asyncio.gather(_burst(base, [f"/compare?page=a{i}" for i in range(3)], "127.0.0.1"),
                                 _burst(base, [f"/compare?page=b{i}" for i in range(2)], "127.0.0.2"))
        asyncio.run(two_clients())
        st = fetch_stats(base)
        assert st["max_inflight_per_client"] == {"127.0.0.1": 3, "127.0.0.2": 2} and st["max_inflight"] == 5


def test_counts_by_kind_path_and_status_and_harness_requests_are_apart(showroom_site):
    base, truth = showroom_site.base_url, showroom_site.truth
    showroom_site.reset_stats()
    my = truth["model_years"][0]
    paths = ["/", "/robots.txt", my["overview_url"], my["specifications_url"], my["photos_url"], my["gallery_url"],
             truth["photos"][0]["url"], truth["photos"][0]["url"], "/static/gallery.js", "/nope/nope/1/overview"]
    asyncio.run(_burst(base, paths, limit=1))
    st = showroom_site.stats()
    assert st["requests"] == len(paths)
    assert st["by_kind"] == {"home": 1, "robots_txt": 1, "overview": 2, "specifications": 1, "photos_page": 1,
                             "gallery_json": 1, "photo": 2, "static": 1}
    assert st["by_path"][truth["photos"][0]["url"]] == 2
    assert st["status"] == {"200": 9, "404": 1}
    assert st["disallowed_hits"] == 0 and st["harness_requests"] >= 1  # reading /__stats is not traffic
    fetch_stats(base)
    assert showroom_site.stats()["requests"] == len(paths)
