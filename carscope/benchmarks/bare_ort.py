"""The bundle's two onnxruntime sessions alone, on preprocessed tensors: the ceiling `bench serve` holds serve
against (what serve runs per photo, minus HTTP, decoding, preprocessing and the batcher).

    bare = Bare(bundle, photos, args)          # args: providers, variant (bench serve's options)
    sweep = bare.sweep(max_seconds=3.0)        # img/s at batch 1..32 per worker plan; the fastest is the ceiling
    images, seconds, calls = bare.chunk(sweep["best_batch"], 5.0)   # the ceiling again, between serve's chunks
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from carscope.benchmarks.load import cpu_seconds


class Bare:
    """The two sessions alone, on preprocessed tensors (what serve runs per photo, minus everything else)."""

    def __init__(self, bundle, photos, args):
        import numpy as np

        from carscope.serve.imageio import decode_image
        from carscope.serve.preprocess import Preprocessor

        self.bundle, self.args = bundle, args
        pre = {k: Preprocessor(bundle.models[k].input_spec) for k in ("view", "model")}
        images = [decode_image(data).image for data, _ in photos]
        self.tensors = {k: np.stack([pre[k](im) for im in images]) for k in pre}
        self.n_images = len(images)
        self.engine = self.b1_engine = None
        self.b1_alone = False  # the batch-1 reference runs as serve's lone batch (the parallel plan)
        self.workers = 1
        self.result: dict[str, Any] = {}

    def _inputs(self, b: int):
        import numpy as np

        idx = np.arange(b) % self.n_images
        return self.tensors["view"][idx], self.tensors["model"][idx]

    def _measure(self, engine, batch: int, workers: int, seconds: float, alone: bool = False
                 ) -> tuple[int, float, list[float], float]:
        """`workers` threads each running batches of `batch` for about `seconds`:
        (images, wall seconds, per-call seconds, CPU seconds). The first call of each thread is untimed.
        `alone`: each call runs as serve runs a lone batch (the engine's alone plan)."""
        xv, xm = self._inputs(batch)
        calls: list[list[float]] = [[] for _ in range(workers)]
        for _ in range(workers):
            engine.infer(xv, xm, alone)  # wakes onnxruntime's threads (and the first run of a shape) off the clock
        start = threading.Barrier(workers + 1)

        def work(i: int):
            start.wait()
            t_end = time.perf_counter() + seconds
            while True:
                t0 = time.perf_counter()
                engine.infer(xv, xm, alone)
                t1 = time.perf_counter()
                calls[i].append(t1 - t0)
                if t1 >= t_end and len(calls[i]) >= 3:
                    return

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        start.wait()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        flat = [x for c in calls for x in c]
        return batch * len(flat), wall, flat, cpu_seconds() - c0

    def sweep(self, max_seconds: float = 3.0) -> dict[str, Any]:
        """img/s at batch 1..32 and batch-1 latency, for one worker with every core (serve's sessions for a batch
        that runs alone), the same with onnxruntime's thread spinning on, and one single-threaded worker per core
        (serve's --workers auto under load); the fastest configuration is the ceiling, and is what the interleaved
        chunks run."""
        from carscope.benchmarks.common import percentiles
        from carscope.serve.engine import Engine

        cores = os.cpu_count() or 1
        variants = {"1_worker": (False, 1), "1_worker_spinning": (True, 1)}
        if cores > 1:
            variants[f"{cores}_workers"] = (False, cores)
        configs, engines = {}, {}
        for key, (spinning, workers) in variants.items():
            engine = Engine(self.bundle, providers=self.args.providers, variant=self.args.variant, max_batch=32,
                            spinning=spinning, workers=workers, alone="off")
            engine.load(warmup=True)
            res: dict[str, Any] = {"providers": engine.providers, "variants": dict(engine.variants),
                                   "spinning": spinning, "workers": workers,
                                   "intra_op_threads": engine.intra_op_threads, "batches": {}}
            for b in (1, 2, 4, 8, 16, 32):
                images, wall, calls, cpu = self._measure(engine, b, workers, max_seconds)
                res["batches"][str(b)] = {"img_per_s": images / wall, "cpu_ms_per_img": 1000.0 * cpu / images,
                                          **percentiles(calls)}
            b1 = res["batches"]["1"]
            res["batch1"] = {k: v for k, v in b1.items() if k.endswith("_ms") or k == "n"}
            best = max(res["batches"], key=lambda k: res["batches"][k]["img_per_s"])
            res["best_batch"] = int(best)
            res["best_img_per_s"] = res["batches"][best]["img_per_s"]
            res["cpu_ms_per_img_at_best"] = res["batches"][best]["cpu_ms_per_img"]
            configs[key], engines[key] = res, engine
        if cores > 1:  # serve's parallel plan for a lone batch: both models at once, half the threads each
            engine = Engine(self.bundle, providers=self.args.providers, variant=self.args.variant, max_batch=1,
                            workers=cores, alone="parallel")
            engine.load(warmup=True)
            if engine.alone_plan == "parallel":  # not on CUDA, which has no lone-batch plans
                _, _, calls, _ = self._measure(engine, 1, 1, max_seconds, alone=True)
                configs["models_in_parallel"] = {
                    "providers": engine.providers, "variants": dict(engine.variants), "spinning": False,
                    "workers": 1, "intra_op_threads": engine.alone_split, "batch1": percentiles(calls),
                    "best_img_per_s": None, "best_batch": None}  # batch 1 only: a lone request's plan
                engines["models_in_parallel"] = engine
        best_key = max((k for k in configs if configs[k]["best_img_per_s"] is not None),
                       key=lambda k: configs[k]["best_img_per_s"])
        b1_key = min(configs, key=lambda k: configs[k]["batch1"]["p50_ms"])
        self.engine, self.workers = engines[best_key], configs[best_key]["workers"]
        self.b1_engine = engines[b1_key]  # the batch-1 latency reference: the fastest single call there is
        self.b1_alone = b1_key == "models_in_parallel"
        engines.clear()
        # The model classifier alone at that batch, for reference (serve runs both models per photo).
        from carscope.benchmarks.common import time_calls

        best_batch = configs[best_key]["best_batch"]
        _, xm = self._inputs(best_batch)
        stats = percentiles(time_calls(lambda: self.engine.models["model"].run(xm), warmup=3, repeat=60,
                                       max_seconds=max_seconds))
        out = dict(configs[best_key])
        out["config"] = best_key
        out["model_only_img_per_s_at_best"] = best_batch / (stats["p50_ms"] / 1000.0)
        # the c=1 latency target is held against the fastest batch-1 p50 of any configuration
        out["batch1"] = configs[b1_key]["batch1"]
        out["batch1_config"] = b1_key
        out["configs"] = {k: {"best_img_per_s": v["best_img_per_s"], "best_batch": v["best_batch"],
                              "batch1_p50_ms": v["batch1"]["p50_ms"], "workers": v["workers"],
                              "intra_op_threads": v["intra_op_threads"], "spinning": v["spinning"]}
                          for k, v in configs.items()}
        self.result = out
        return out

    def chunk(self, batch: int, seconds: float) -> tuple[int, float, list[float]]:
        """The fastest configuration for about `seconds`: (images, wall seconds, per-call seconds)."""
        images, wall, calls, _ = self._measure(self.engine, batch, self.workers, seconds)
        return images, wall, calls

    def latency_chunk(self, seconds: float) -> list[float]:
        """Batch-1 calls, one at a time, on the configuration with the fastest batch-1 p50 (per-call seconds)."""
        return self._measure(self.b1_engine, 1, 1, seconds, self.b1_alone)[2]
