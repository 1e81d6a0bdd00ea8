"""Admission under overload: requests that would wait in the queue past a bound are refused at once, first in line.

    carscope serve --bundle demo-work/bundle --max-queue-ms 1000     # the default; 0 never refuses

waitress reads every request on its main loop and queues it for its worker threads (`--threads`), first come first
served. When more clients send than the models can answer, that queue grows and every request waits longer; with
nothing to bound it, a client may wait many seconds for an answer it has long given up on. `AdmissionDispatcher`
is waitress's task dispatcher with one decision added where a request joins the queue: its predicted wait is the
requests ahead of it times the time a worker thread spends on one request, shared by the threads
(depth x service / threads, Little's law for a pool that is busy, which it is whenever anyone queues). A POST whose
predicted wait exceeds the bound is put at the head of the queue instead of the tail, marked refused: the next
free thread answers it 503 with Retry-After (carscope/serve/app.py), counted in `carscope_shed_requests_total`,
without reading its upload. Nothing refused was started, and everything admitted is answered in arrival order.
GETs (health, readiness, metrics, pages) are always admitted, so a monitor still sees an overloaded server.
"""

from __future__ import annotations

import threading
import time

from waitress.task import ThreadedTaskDispatcher

DEFAULT_MAX_QUEUE_MS = 1000.0  # a person waits a second for an answer; past that, "try again" sooner is kinder
SERVICE_EWMA = 0.05  # weight of the newest request in the mean service time (about the last 20 requests)
RETRY_AFTER_S = 1  # what a refused client is told to wait: about the bound itself

_current = threading.local()  # the queued request a worker thread is serving now


def refused() -> float | None:
    """In a worker thread: the predicted wait in seconds when the request it serves was refused at arrival,
    else None (also outside a server, e.g. under Flask's test client)."""
    task = getattr(_current, "task", None)
    return task.refused if task is not None else None


class _Queued:
    """One request in the queue: waitress's channel, whether it was refused, and its dispatcher to time it."""

    __slots__ = ("channel", "refused", "dispatcher")

    def __init__(self, channel, refused: float | None, dispatcher: AdmissionDispatcher):
        self.channel, self.refused, self.dispatcher = channel, refused, dispatcher

    def service(self) -> None:
        _current.task = self
        t0 = time.perf_counter()
        try:
            self.channel.service()
        finally:
            _current.task = None
            if self.refused is None:
                self.dispatcher.served(time.perf_counter() - t0)

    def cancel(self) -> None:
        self.channel.cancel()


class AdmissionDispatcher(ThreadedTaskDispatcher):
    """waitress's thread pool and queue, refusing POSTs whose predicted wait exceeds `max_queue_s` (0: never)."""

    def __init__(self, threads: int, max_queue_s: float):
        super().__init__()
        self.pool_size = int(threads)
        self.max_queue_s = float(max_queue_s)
        self.service_s = 0.0  # mean time a worker thread spends on one admitted request (EWMA); 0 until one is done
        self.set_thread_count(self.pool_size)

    def served(self, seconds: float) -> None:
        s = self.service_s
        self.service_s = seconds if s == 0.0 else s + SERVICE_EWMA * (seconds - s)

    def predicted_wait(self, depth: int) -> float:
        """Seconds a request joining behind `depth` queued ones waits for a thread."""
        return depth * self.service_s / max(1, self.pool_size)

    def add_task(self, channel) -> None:
        refused = None
        if self.max_queue_s > 0:
            requests = getattr(channel, "requests", None)
            method = requests[0].command if requests else None
            depth = len(self.queue)  # len of a deque: atomic
            wait = self.predicted_wait(depth)
            if method == "POST" and depth >= self.pool_size and wait > self.max_queue_s:
                refused = wait
        task = _Queued(channel, refused, self)
        if refused is None:
            super().add_task(task)
            return
        with self.lock:  # first in line: a refusal is answered now, not after the queue it was spared
            self.queue.appendleft(task)
            self.queue_cv.notify()
