"""carscope/serve/batcher.py: coalescing under concurrency, no waiting when alone, failures reach every waiter."""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from carscope.serve.batcher import Batcher, BatcherStopped


class Recorder:
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, items):
        with self.lock:
            self.sizes.append(len(items))
        if self.delay:
            time.sleep(self.delay)
        return [x * 10 for x in items]


def test_concurrent_requests_share_batches_and_get_their_own_results():
    rec = Recorder(delay=0.03)
    b = Batcher(rec, max_batch=8, max_wait_ms=5).start()
    try:
        results = {}

        def client(i):
            results[i] = b.submit(i).result(timeout=10)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {i: r[0] for i, r in results.items()} == {i: i * 10 for i in range(20)}
        assert sum(rec.sizes) == 20 and max(rec.sizes) > 1  # while one batch runs, the next one fills
        assert max(rec.sizes) <= 8
        assert all(r[1].size in rec.sizes for r in results.values())
    finally:
        b.stop()


def test_max_batch_is_respected():
    rec = Recorder(delay=0.02)
    b = Batcher(rec, max_batch=3, max_wait_ms=0).start()
    try:
        futures = [b.submit(i) for i in range(10)]
        assert [f.result(timeout=10)[0] for f in futures] == [i * 10 for i in range(10)]
        assert max(rec.sizes) <= 3 and sum(rec.sizes) == 10
    finally:
        b.stop()


def test_alone_a_request_does_not_wait_for_max_wait():
    # max_wait is huge; with nobody announced the worker must not hold the batch open.
    b = Batcher(Recorder(), max_batch=16, max_wait_ms=500).start()
    try:
        b.submit(0).result(timeout=5)  # thread warm
        costs = []
        for i in range(200):
            with b.announce() as ticket:
                t0 = time.perf_counter()
                fut = ticket.submit(i)
            fut.result(timeout=5)
            costs.append(time.perf_counter() - t0)
        # the bug this guards is a lone request held for max_wait (500 ms); 50 ms leaves room for 2 shared cores
        assert statistics.median(costs) < 0.05
    finally:
        b.stop()


def test_worker_waits_for_an_announced_request():
    rec = Recorder()
    b = Batcher(rec, max_batch=16, max_wait_ms=2000).start()
    try:
        ticket = b.announce()  # a request that is still decoding
        first = b.submit(1)
        time.sleep(0.05)
        assert not first.done()  # held open for the announced one
        second = ticket.submit(2)
        assert first.result(timeout=5)[1].size == 2 and second.result(timeout=5)[1].size == 2
        assert rec.sizes == [2]
    finally:
        b.stop()


def test_wait_is_bounded_by_max_wait_and_released_by_cancel():
    b = Batcher(Recorder(), max_batch=16, max_wait_ms=100).start()
    try:
        ticket = b.announce()
        t0 = time.perf_counter()
        b.submit(1).result(timeout=5)
        waited = time.perf_counter() - t0
        assert 0.08 < waited < 1.0  # the announced request never came: max_wait, then go
        ticket.cancel()
    finally:
        b.stop()
    # a cancel releases the wait at once: with a 2 s max_wait, a cancel that did nothing costs 2 s
    b = Batcher(Recorder(), max_batch=16, max_wait_ms=2000).start()
    try:
        ticket2 = b.announce()
        fut = b.submit(2)
        t0 = time.perf_counter()
        ticket2.cancel()  # that request failed to decode: stop waiting for it at once
        fut.result(timeout=5)
        assert time.perf_counter() - t0 < 1.0
    finally:
        b.stop()


def test_a_failing_batch_fails_every_waiter_and_the_worker_survives():
    calls = []
    gate = threading.Event()

    def fn(items):
        calls.append(list(items))
        if "hold" in items:  # keeps the worker busy while the next four queue up: they become one batch
            gate.wait(5)
            return items
        if 0 in items:
            raise ValueError("boom")
        return items

    b = Batcher(fn, max_batch=4, max_wait_ms=0).start()
    try:
        held = b.submit("hold")
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.005)
        waiters = [b.submit(i) for i in range(4)]
        gate.set()
        held.result(timeout=5)
        for fut in waiters:  # every waiter of the failing batch gets the error, not only the one with item 0
            with pytest.raises(ValueError, match="boom"):
                fut.result(timeout=5)
        assert calls[1] == [0, 1, 2, 3]
        assert b.submit(5).result(timeout=5)[0] == 5  # and the worker goes on
        assert calls[-1] == [5]
    finally:
        b.stop()


def test_stop_finishes_queued_work_then_refuses():
    rec = Recorder(delay=0.01)
    b = Batcher(rec, max_batch=2, max_wait_ms=0).start()
    futures = [b.submit(i) for i in range(6)]
    b.stop()
    assert [f.result(timeout=5)[0] for f in futures] == [i * 10 for i in range(6)]
    assert not b.running
    with pytest.raises(BatcherStopped):
        b.submit(1).result(timeout=1)


def test_bad_settings():
    with pytest.raises(ValueError):
        Batcher(lambda x: x, max_batch=0)
    with pytest.raises(ValueError):
        Batcher(lambda x: x, max_wait_ms=-1)


def test_several_workers_run_batches_at_once():
    rec = Recorder(delay=1.0)
    b = Batcher(rec, max_batch=1, max_wait_ms=0, workers=2).start()
    try:
        t0 = time.perf_counter()
        futures = [b.submit(i) for i in range(2)]
        assert [f.result(timeout=10)[0] for f in futures] == [0, 10]
        # two batches of 1 s side by side take ~1 s; one after the other, 2 s: the margin is the bug's size
        assert time.perf_counter() - t0 < 1.6
        assert b.running
    finally:
        b.stop()
    assert not b.running
    with pytest.raises(ValueError):
        Batcher(lambda x: x, workers=0)


def test_a_batch_is_told_whether_it_runs_alone():
    """alone: no other batch running, nobody queued or announced; the engine then gives it every thread."""
    seen: list[tuple[list[int], bool]] = []
    release = threading.Event()

    def fn(items, alone):
        seen.append((list(items), alone))
        if items == [1]:
            release.wait(5)  # keep the first worker busy while the second batch starts
        return items

    b = Batcher(fn, max_batch=1, max_wait_ms=0, workers=2, tell_alone=True).start()
    try:
        assert b.submit(0).result(timeout=5)[0] == 0  # a lone request
        first = b.submit(1)
        deadline = time.monotonic() + 5
        while not seen[1:] and time.monotonic() < deadline:
            time.sleep(0.005)
        second = b.submit(2)  # runs beside the busy first batch
        assert second.result(timeout=5)[0] == 2
        release.set()
        assert first.result(timeout=5)[0] == 1
        with b.announce():  # someone is decoding: the batch will have company, so it takes its share only
            assert b.submit(3).result(timeout=5)[0] == 3
    finally:
        release.set()
        b.stop()
    assert seen == [([0], True), ([1], True), ([2], False), ([3], False)]
