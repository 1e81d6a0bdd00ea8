"""`carscope predict --engine ray`: the same rows as `carscope predict`, from a pool of Ray actors, each holding one
loaded bundle (the Python API's Recognizer), on this machine or a Ray cluster (`--ray-address`).

    carscope predict --bundle bundle photos/ --out predictions.parquet --engine ray --actors 2 --actor-cpus 0.5

Ray Data reads the list of photo paths, `map_batches` sends each batch to an actor (`_Predict`), which answers its
photos as `carscope predict` does (carscope/serve/rows.py `predict_rows` and `row_for`), and the rows come
back in input order to the same writer. Ray is an optional extra (`pip install 'carscope[ray]'`). On a cluster,
every node must see the bundle and the photos at the same paths (a shared file system).

Each actor takes `--actor-cpus` CPUs (fractions are fine): an actor pool that claims every CPU leaves none for Ray
Data's own read and hand-over tasks, and the run stalls without an error. The default leaves half a CPU free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError
from carscope.export.bundle import json_value

DEFAULT_BATCH = 256  # photos per actor call: large enough to fill micro-batches, small enough to stream


class _Predict:
    """A Ray actor: one loaded bundle, answering batches of photo paths with `carscope predict`'s rows."""

    def __init__(self, bundle: str, options: dict[str, Any], jobs: int):
        from carscope.serve.api import load

        self.recognizer = load(bundle, **options)
        self.top_k, self.jobs = self.recognizer.config.top_k, jobs

    def __call__(self, batch):
        import pandas as pd

        from carscope.serve.rows import predict_rows, row_for

        paths = [Path(p) for p in batch["path"]]
        rows = [row_for(path, result, error, self.top_k)
                for path, result, error in predict_rows(self.recognizer, paths, self.jobs)]
        return pd.DataFrame(rows, columns=list(row_for(Path(), None, None, self.top_k))).astype(object)


def ray_rows(bundle: str, photos: list[Path], options: dict[str, Any], *, actors: int | None = None,
             actor_cpus: float | None = None, jobs: int = 16, batch_size: int = DEFAULT_BATCH,
             address: str | None = None) -> Iterator[dict[str, Any]]:
    """`carscope predict`'s rows for `photos`, in order, computed by `actors` Ray actors (default: one per 2 CPUs of
    this machine, each claiming what leaves half a CPU to Ray Data's own tasks)."""
    try:
        import ray
    except ImportError:
        raise CarscopeError("--engine ray needs Ray: pip install 'carscope[ray]'") from None
    cpus = os.cpu_count() or 1
    actors = actors or max(1, cpus // 2)
    actor_cpus = actor_cpus or max(0.25, (cpus - 0.5) / actors)
    if actors < 1 or not 0 < actor_cpus <= cpus * 64:
        raise CarscopeError(f"--actors must be >= 1 and --actor-cpus > 0 (got {actors}, {actor_cpus})")
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                 configure_logging=True)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # rows in input order, as `carscope predict` writes them
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"path": str(p)} for p in photos], override_num_blocks=max(1, actors * 2))
        # an actor's onnxruntime threads: the CPUs it claims, rounded up (Ray sets OMP_NUM_THREADS=1 in actors,
        # which would leave a 1.5-CPU actor on one thread)
        options = {"threads": max(1, math.ceil(actor_cpus)), **options}
        answered = ds.map_batches(_Predict, fn_constructor_args=(str(Path(bundle).resolve()), options, jobs),
                                  batch_size=batch_size, batch_format="pandas", num_cpus=actor_cpus,
                                  concurrency=actors)
        for row in answered.iter_rows():  # numpy scalars and NaN back to the local engine's plain values
            yield {k: json_value(v) for k, v in row.items()}
    finally:
        if started:
            ray.shutdown()
