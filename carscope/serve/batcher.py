"""Dynamic micro-batching: concurrent requests coalesced into one model call (Triton's dynamic batcher, small).

    python -c "from carscope.serve.batcher import Batcher; b = Batcher(lambda xs: [x * 2 for x in xs]); b.start(); \\
               print(b.submit(21).result()); b.stop()"

A worker thread runs the model. Request threads `submit()` an item and wait on a Future. The worker takes
the oldest item and everything queued behind it (up to `max_batch`) and runs them as one batch. While a batch
runs, new requests queue up, so under load batches fill by themselves. With `workers` > 1, that many batches
run at once (on a CPU, parallelism across batches instead of inside each operator). With `tell_alone=True`
the function is called as `fn(items, alone)`: `alone` is true when no other batch is running and nobody is
queued or announced, so the batch may take every core (carscope/serve/engine.py keeps sessions for that).

The wait is what usually makes a dynamic batcher cost latency at low load: a fixed `max_wait` is paid by every
lonely request. Here the worker waits only for requests it knows are coming: a request thread `announce()`s
itself when it starts decoding its upload, and the worker holds a batch open (at most `max_wait_ms` after its
oldest item arrived) only while announced requests have not been submitted yet. At concurrency 1 nobody else
is announced, so a request goes straight to the model: the batcher costs a queue hand-off, not `max_wait_ms`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("carscope.serve")


@dataclass
class BatchInfo:
    """What a request learns about the batch it rode in (for timings and metrics)."""

    size: int
    queue_s: float  # submit -> batch start
    run_s: float  # the model call for the whole batch


class Ticket:
    """A request that will submit soon (it is decoding). Submit once, or cancel; both are idempotent."""

    __slots__ = ("_batcher", "_open")

    def __init__(self, batcher: Batcher):
        self._batcher = batcher
        self._open = True

    def submit(self, item: Any) -> Future:
        return self._batcher._submit(item, self)

    def cancel(self) -> None:
        self._batcher._close_ticket(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


class BatcherStopped(RuntimeError):
    pass


class Batcher:
    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], *, max_batch: int = 16, max_wait_ms: float = 2.0,
                 on_batch: Callable[[int, float], None] | None = None, name: str = "batcher", workers: int = 1,
                 tell_alone: bool = False):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        self.fn = fn
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.on_batch = on_batch  # called (batch_size, run_seconds) after each batch, e.g. for metrics
        self.name = name
        self.workers = int(workers)  # >1: batches run concurrently (fn must be thread-safe, as ORT's run is)
        self.tell_alone = tell_alone
        self._running = 0  # batches being run now
        self._cv = threading.Condition()
        self._queue: deque[tuple[Any, Future, float]] = deque()
        self._announced = 0  # tickets open and not yet submitted
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # -- request side -----------------------------------------------------------------------------------
    def announce(self) -> Ticket:
        """Tell the worker a request is on its way; use the ticket to submit (or as a context manager)."""
        with self._cv:
            self._announced += 1
        return Ticket(self)

    def submit(self, item: Any) -> Future:
        """Submit without announcing first (the worker will not wait for anyone on its account)."""
        return self._submit(item, None)

    def _submit(self, item: Any, ticket: Ticket | None) -> Future:
        fut: Future = Future()
        with self._cv:
            if ticket is not None and ticket._open:
                ticket._open = False
                self._announced -= 1
            if self._stopping or not self._threads:
                fut.set_exception(BatcherStopped(f"{self.name} is not running"))
                return fut
            self._queue.append((item, fut, time.perf_counter()))
            self._cv.notify_all()
        return fut

    def _close_ticket(self, ticket: Ticket) -> None:
        with self._cv:
            if ticket._open:
                ticket._open = False
                self._announced -= 1
                self._cv.notify_all()  # the worker may be holding a batch open for this request

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> Batcher:
        with self._cv:
            if not self._threads:
                self._stopping = False
                self._threads = [threading.Thread(target=self._loop, name=f"{self.name}-{i}", daemon=True)
                                 for i in range(self.workers)]
                for t in self._threads:
                    t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued, then end the workers. Later submits fail with BatcherStopped."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
            threads = list(self._threads)
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout)
        with self._cv:
            self._threads = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def queued(self) -> int:
        with self._cv:
            return len(self._queue)

    # -- worker -----------------------------------------------------------------------------------------
    def _take(self) -> tuple[list[tuple[Any, Future, float]], bool] | None:
        """The next batch, and whether it runs alone; counts it as running (the caller calls _done)."""
        with self._cv:
            while not self._queue and not self._stopping:
                self._cv.wait()
            if not self._queue:
                return None  # stopping and drained
            deadline = self._queue[0][2] + self.max_wait_s
            while len(self._queue) < self.max_batch and self._announced > 0 and not self._stopping:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cv.wait(remaining)
            n = min(len(self._queue), self.max_batch)
            batch = [self._queue.popleft() for _ in range(n)]
            alone = self._running == 0 and not self._queue and self._announced == 0
            self._running += 1
            return batch, alone

    def _done(self) -> None:
        with self._cv:
            self._running -= 1

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            try:
                self._run(*taken)
            finally:
                self._done()

    def _run(self, batch: list[tuple[Any, Future, float]], alone: bool) -> None:
        # A Future cancelled by its waiter is skipped; set_running also makes its result un-cancellable.
        batch = [b for b in batch if b[1].set_running_or_notify_cancel()]
        if not batch:
            return
        t0 = time.perf_counter()
        try:
            items = [item for item, _, _ in batch]
            outputs = self.fn(items, alone) if self.tell_alone else self.fn(items)
            if len(outputs) != len(batch):
                raise RuntimeError(f"batch function returned {len(outputs)} results for {len(batch)} items")
        except BaseException as exc:  # noqa: B036 - every waiter must hear about the failure
            log.exception("%s: batch of %d failed", self.name, len(batch))
            for _, fut, _ in batch:
                fut.set_exception(exc)
            return
        run_s = time.perf_counter() - t0
        for (_, fut, t_in), out in zip(batch, outputs, strict=True):
            fut.set_result((out, BatchInfo(len(batch), t0 - t_in, run_s)))
        if self.on_batch is not None:
            try:
                self.on_batch(len(batch), run_s)
            except Exception:  # metrics must never take the worker down
                log.exception("%s: on_batch callback failed", self.name)
