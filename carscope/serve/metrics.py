"""Prometheus metrics of one app, in its own registry (two apps in one process, as in tests, never collide).

    curl -s localhost:8080/metrics | grep carscope_

Under `carscope serve --processes N` (PROMETHEUS_MULTIPROC_DIR set by the supervisor) every process writes its
values to that directory and /metrics adds them up over all the processes (prometheus-client's multiprocess mode):
counters and histograms summed, `carscope_ready` and `carscope_in_flight_requests` summed over live processes.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (.002, .005, .01, .02, .035, .05, .075, .1, .15, .25, .5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("carscope_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("carscope_http_request_duration_seconds", "Time to answer a request, by route",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("carscope_batch_size", "Requests per onnxruntime batch", buckets=_BATCH_BUCKETS,
                                    registry=r)
        self.inference = Histogram("carscope_inference_seconds", "onnxruntime run time per batch, by model",
                                   ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("carscope_queue_wait_seconds", "Time a request waited for its batch to start",
                                    buckets=_LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("carscope_predictions", "Predictions by outcome", ["outcome"], registry=r)
        self.shed = Counter("carscope_shed_requests", "Requests refused with 503 at arrival: their predicted wait in "
                            "the queue exceeded --max-queue-ms", registry=r)
        self.rejected = Counter("carscope_rejected_uploads", "Uploads refused, by error code", ["code"], registry=r)
        self.ready = Gauge("carscope_ready", "Processes whose models are loaded and warm (1 for one process)",
                           registry=r, multiprocess_mode="livesum")
        self.in_flight = Gauge("carscope_in_flight_requests", "Requests being handled now", registry=r,
                               multiprocess_mode="livesum")

    def exposition(self) -> bytes:
        """The text /metrics answers: this app's registry, or the sum over all serving processes."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
