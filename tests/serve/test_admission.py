"""Overload: uploads predicted to wait past --max-queue-ms are refused at once (503, Retry-After, counted), the
others all answered (carscope/serve/admission.py)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from carscope.serve.server import serve_in_thread
from tests.serve.http import Client, multipart
from tests.serve.tinybundle import EXPECTED, photo

SLOW_S = 0.05  # each batch takes this long: a queue builds at once under a burst


def _slow(handle) -> None:
    """Batches of one that take SLOW_S each, so that 16 clients on 2 threads queue far past the bound."""
    engine = handle.predictor.engine
    infer_all = engine.infer_all

    def slow(*a, **kw):
        time.sleep(SLOW_S)
        return infer_all(*a, **kw)

    engine.infer_all = slow


def _burst(url: str, n: int) -> list[tuple[int, str, dict, float, dict]]:
    """n clients at once, one upload each: (status, colour, answer, seconds, headers) per client."""
    out, lock = [], threading.Lock()
    go = threading.Barrier(n)

    def one(i: int) -> None:
        client = Client(url)
        colour = sorted(EXPECTED)[i % len(EXPECTED)]
        body, ctype = multipart("image", photo(colour, seed=i))
        go.wait()
        t0 = time.perf_counter()
        status, headers, data = client.request("POST", "/api/v1/predict", body, {"Content-Type": ctype})
        with lock:
            out.append((status, colour, json.loads(data), time.perf_counter() - t0, headers))
        client.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _metric(url: str, name: str) -> float:
    status, _, body = Client(url).request("GET", "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


@pytest.mark.parametrize("max_queue_ms", [20.0, 0.0])
def test_a_burst_past_the_bound_is_refused_at_once_and_the_rest_answered(bundle_dir, max_queue_ms):
    config = {"providers": "cpu", "max_batch": 1, "workers": 1, "intra_op_threads": 1, "max_queue_ms": max_queue_ms}
    with serve_in_thread(bundle_dir, config, threads=2) as server:
        _slow(server)
        client = Client(server.url)
        assert client.predict(photo("red"))[0] == 200  # one request timed: the queue now has a service time
        results = []
        for _ in range(2):
            results += _burst(server.url, 16)
        answered = [r for r in results if r[0] == 200]
        refused = [r for r in results if r[0] == 503]
        assert len(answered) + len(refused) == len(results)  # nothing else: no 500, no reset connection
        for _, colour, answer, _, _ in answered:  # everything admitted is answered, and answered right
            assert answer["model"]["top"][0]["label"] == EXPECTED[colour]
        if max_queue_ms == 0:  # never refuse: all 32 wait their turn
            assert not refused and _metric(server.url, "carscope_shed_requests_total") == 0
            return
        # 16 at once on 2 threads of 50 ms: from the third in line on, the predicted wait is past 20 ms
        assert len(refused) >= 16 and len(answered) >= 4
        for _, _, answer, seconds, headers in refused:
            assert answer["error"]["code"] == "overloaded" and headers["Retry-After"] == "1"
            assert seconds < 8 * SLOW_S  # answered at once, not after the queue it was spared
        assert _metric(server.url, "carscope_shed_requests_total") == len(refused)
        # below the bound (two clients on two threads): every upload answered
        ok = [Client(server.url).predict(photo("blue"))[0] for _ in range(4)]
        assert ok == [200] * 4
        assert Client(server.url).request("GET", "/healthz")[0] == 200
