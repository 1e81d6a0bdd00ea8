"""Closed-loop HTTP load on a carscope-style prediction API, and the photos it sends: what `bench serve` and
`bench shutdown` measure servers with.

    from carscope.benchmarks.load import closed_loop, load_photos
    photos, source = load_photos(bundle, "demo-work/dataset", 32)
    row = closed_loop("http://127.0.0.1:8080", photos, concurrency=16, n_requests=2000)

`load_chunk` is one raw run (every latency, status and answer), `summarize` turns several chunks of one setup
(interleaved with other setups' chunks) into one row of figures (requests/s, percentiles, accuracy, CPU per
request, batch sizes). The server's CPU seconds and RSS are read with psutil over its whole process tree.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def load_photos(bundle, data_dir: str | None, n: int) -> tuple[list[tuple[bytes, str]], str]:
    """(jpeg bytes, true label) of up to n photos of served classes: test split first, exterior first."""
    labels = set(bundle.models["model"].labels)
    data_dir = data_dir or bundle.meta.get("source", {}).get("data")
    if data_dir and Path(data_dir, "images.parquet").is_file():
        from carscope.crawler.dataset import load as load_dataset

        images = load_dataset(data_dir).images
        images = images[images["model_id"].astype(str).isin(labels)].copy()
        split_file = bundle.models["model"].meta.get("source", {}).get("splits")
        if split_file and Path(split_file).is_file():
            import pandas as pd

            splits = pd.read_parquet(split_file)[["sha256", "split"]]
            # images.parquet has a `split` column of its own (a published split; empty for a crawl)
            images = images.drop(columns=["split"], errors="ignore").merge(splits, on="sha256", how="left")
            images["order"] = images["split"].map({"test": 0, "val": 1}).fillna(2)
        else:
            images["order"] = 0
        images["ext"] = (images["view_hint"].astype(str) == "interior").astype(int)
        # Spread over classes: the i-th photo of every class before the (i+1)-th of any.
        images = images.sort_values(["order", "ext", "model_id", "sha256"])
        images["rank"] = images.groupby("model_id").cumcount()
        images = images.sort_values(["order", "rank", "ext", "model_id"]).head(n)
        photos = [(Path(data_dir, p).read_bytes(), str(m)) for p, m in zip(images["path"], images["model_id"],
                                                                            strict=True)]
        if photos:
            return photos, f"{len(photos)} photos from {data_dir}"
    photos = []
    for label in bundle.models["model"].labels:
        for rel in bundle.thumbs(label).get("exterior", []):
            photos.append(((bundle.root / rel).read_bytes(), label))
    if not photos:
        from carscope.common.errors import CarscopeError

        raise CarscopeError("no photos to send: give --data (a dataset) or a bundle with thumbnails")
    return photos[:n], f"{min(len(photos), n)} bundle thumbnails (no dataset found)"


def process_cpu(pid: int | None) -> float:
    if not pid:
        return 0.0
    import psutil

    total = 0.0
    for proc in process_tree(pid):  # with --processes, the serving children do the work
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def process_tree(pid: int):
    """The process and its descendants (psutil.Process objects)."""
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def load_chunk(url: str, photos: list[tuple[bytes, str]], concurrency: int, n_requests: int,
               path: str = "/api/v1/predict", timeout: float = 120.0, server_pid: int | None = None,
               retry_after: bool = False) -> dict[str, Any]:
    """One closed-loop run, raw: `concurrency` clients, each sending its next request as soon as its last one
    is answered, until `n_requests` were sent. With `server_pid`, the server's CPU seconds are measured too. With
    `retry_after`, a client answered 503 waits what its Retry-After says before its next request, as a polite
    client does (else it would resend at once). Per client: the latencies of its answered (2xx) requests."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    bodies = [(*multipart(data), label) for data, label in photos]
    counter = itertools.count()
    lock = threading.Lock()
    lat: list[float] = []
    lat_ok: list[float] = []
    clients: list[list[float]] = []  # per client, the latencies of its answered requests
    statuses: Counter = Counter()
    answers: list[tuple[int, str | None, float | None, int | None]] = []  # photo index, top-1, queue ms, batch

    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        mine_lat, mine_ok, mine_status, mine_answers = [], [], Counter(), []
        try:
            while True:
                i = next(counter)  # atomic under the GIL
                if i >= n_requests:
                    break
                body, ctype, _ = bodies[i % len(bodies)]
                t0 = time.perf_counter()
                try:
                    conn.request("POST", path, body, {"Content-Type": ctype})
                    resp = conn.getresponse()
                    data = resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    mine_status[type(exc).__name__] += 1
                    continue
                mine_lat.append(time.perf_counter() - t0)
                mine_status[status] += 1
                if 200 <= status < 300:
                    mine_ok.append(mine_lat[-1])
                elif status == 503 and retry_after:
                    time.sleep(min(10.0, float(resp.getheader("Retry-After") or 1)))
                if status == 200:
                    j = json.loads(data)
                    top = (j.get("model") or {}).get("top") or [{}]
                    t = j.get("timings_ms", {})
                    mine_answers.append((i % len(bodies), top[0].get("label"), t.get("queue"), j.get("batch_size")))
        finally:
            conn.close()
            with lock:
                lat.extend(mine_lat)
                lat_ok.extend(mine_ok)
                clients.append(mine_ok)
                statuses.update(mine_status)
                answers.extend(mine_answers)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    server_cpu0 = process_cpu(server_pid)
    client_cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if not statuses.get(200):
        from carscope.common.errors import CarscopeError

        raise CarscopeError(f"no request to {url} succeeded (answers: {dict(statuses)})")
    return {"concurrency": concurrency, "requests": n_requests, "seconds": seconds, "lat": lat, "lat_ok": lat_ok,
            "clients": clients,
            "statuses": statuses, "answers": answers, "client_cpu": cpu_seconds() - client_cpu0,
            "server_cpu": process_cpu(server_pid) - server_cpu0 if server_pid else None}


def summarize(chunks: list[dict[str, Any]], photos: list[tuple[bytes, str]]) -> dict[str, Any]:
    """Several raw chunks of one setup (interleaved with other setups' chunks) -> one row of figures."""
    from carscope.benchmarks.common import percentiles

    lat = [x for c in chunks for x in c["lat"]]
    statuses: Counter = sum((c["statuses"] for c in chunks), Counter())
    answers = [a for c in chunks for a in c["answers"]]
    seconds = sum(c["seconds"] for c in chunks)
    ok = statuses.get(200, 0)
    out = {"concurrency": chunks[0]["concurrency"], "requests": sum(c["requests"] for c in chunks),
           "chunks": len(chunks), "seconds": round(seconds, 3), "rps": ok / seconds if seconds > 0 else 0.0,
           "rps_by_round": [c["statuses"].get(200, 0) / c["seconds"] if c["seconds"] > 0 else 0.0 for c in chunks],
           **percentiles(lat), "status": {str(k): v for k, v in sorted(statuses.items(), key=str)}, "ok": ok,
           "accuracy": (sum(a[1] == photos[a[0]][1] for a in answers) / len(answers)) if answers else None,
           "client_cpu_ms_per_request": 1000.0 * sum(c["client_cpu"] for c in chunks) / max(1, len(lat))}
    if all(c["server_cpu"] is not None for c in chunks):
        out["server_cpu_ms_per_request"] = 1000.0 * sum(c["server_cpu"] for c in chunks) / max(1, len(lat))
    queue = sorted(a[2] for a in answers if a[2] is not None)
    if queue:
        out["server_queue_ms_p50"] = queue[len(queue) // 2]
    batches = [a[3] for a in answers if a[3] is not None]
    if batches:
        out["batch_size_mean"] = sum(batches) / len(batches)
        out["batch_size_max"] = max(batches)
    return out


def closed_loop(url: str, photos: list[tuple[bytes, str]], concurrency: int, n_requests: int,
                server_pid: int | None = None, **kw) -> dict[str, Any]:
    """One closed-loop run, summarised (its answers under "_answers")."""
    chunk = load_chunk(url, photos, concurrency, n_requests, server_pid=server_pid, **kw)
    return {**summarize([chunk], photos), "_answers": chunk["answers"]}


def consistency(reference: dict[int, str], answers) -> float | None:
    """Share of answers equal to the same photo's answer when it was sent alone (batching must not change them)."""
    same = [reference[i] == label for i, label, _, _ in answers if i in reference]
    return sum(same) / len(same) if same else None


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its descendants (the supervisor and its serving processes, with
    --processes), in bytes."""
    import psutil

    try:
        tree = process_tree(pid)
    except psutil.Error:  # it ended between two samples
        return 0
    total = 0
    for proc in tree:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakRss:
    """`with PeakRss(pid, every_s) as peak:` samples tree_rss(pid) in a thread; `peak.bytes` is the largest seen."""

    def __init__(self, pid: int, every_s: float = 0.2):
        import threading

        self.pid, self.every_s, self.bytes = pid, every_s, tree_rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.bytes = max(self.bytes, tree_rss(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, tree_rss(self.pid))


def cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
