"""Rendered photo bytes behind a memory LRU and an optional disk cache: what the server answers /photos/ from.

    python -c "from carscope.showroom.catalog import build_catalog; from carscope.showroom.config import ShowroomConfig; \
from carscope.showroom.photo_store import PhotoStore; s = PhotoStore(build_catalog(ShowroomConfig(makes=1))); \
print(s.sha256(next(iter(s.catalog.photos))))"

The bytes are render.render_photo_bytes's; the disk cache is keyed by `ShowroomConfig.catalog_key()`, which
holds `config.RENDER_VERSION`, so a change to the drawing never reads an old photo.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from carscope.showroom.catalog import Catalog
from carscope.showroom.render import render_photo_bytes


class PhotoStore:
    """Rendered photo bytes behind a thread-safe LRU (by bytes) and an optional disk cache.

    The disk cache lives in `<cache_dir>/<catalog_key>/` so caches of different configs never mix.
    """

    def __init__(self, catalog: Catalog, cache_dir: str | os.PathLike | None = None, max_bytes: int = 256 << 20):
        self.catalog = catalog
        self.max_bytes = max_bytes
        self._lru: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}
        self.renders = 0
        self.hits = 0
        self.disk_hits = 0
        self.dir = Path(cache_dir) / catalog.config.catalog_key() if cache_dir else None
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    def _put(self, key, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if key in self._lru:
                return
            self._lru[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, old = self._lru.popitem(last=False)
                self._size -= len(old)

    def cached(self, photo_id: str, width: int) -> bytes | None:
        with self._lock:
            data = self._lru.get((photo_id, width))
            if data is not None:
                self._lru.move_to_end((photo_id, width))
                self.hits += 1
            return data

    def get(self, photo_id: str, width: int) -> bytes:
        """Bytes of a photo at a width (KeyError for an unknown id). Blocking: call it off the event loop."""
        data = self.cached(photo_id, width)
        if data is not None:
            return data
        photo = self.catalog.photos[photo_id]
        # one render per photo even when both sizes are asked for at once
        with self._lock:
            ev = self._inflight.get(photo_id)
            owner = ev is None
            if owner:
                ev = self._inflight[photo_id] = threading.Event()
        if not owner:
            ev.wait()
            data = self.cached(photo_id, width)
            if data is not None:
                return data
        try:
            both = self._load_disk(photo_id) if self.dir else None
            if both is None:
                both = render_photo_bytes(self.catalog, photo)
                with self._lock:
                    self.renders += 1
                if self.dir:
                    self._save_disk(photo_id, both)
            else:
                with self._lock:
                    self.disk_hits += 1
            for w, b in both.items():
                self._put((photo_id, w), b)
            return both[width]
        finally:
            if owner:
                with self._lock:
                    self._inflight.pop(photo_id, None)
                ev.set()

    def _load_disk(self, photo_id: str) -> dict[int, bytes] | None:
        out = {}
        for w in (640, 320):
            p = self.dir / f"{photo_id}-{w}.jpg"
            try:
                out[w] = p.read_bytes()
            except OSError:
                return None
        return out

    def _save_disk(self, photo_id: str, both: dict[int, bytes]) -> None:
        for w, b in both.items():
            p = self.dir / f"{photo_id}-{w}.jpg"
            tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                tmp.write_bytes(b)
                os.replace(tmp, p)  # atomic: a reader never sees half a photo
            except OSError:
                tmp.unlink(missing_ok=True)

    def sha256(self, photo_id: str) -> str:
        return hashlib.sha256(self.get(photo_id, 640)).hexdigest()


def prerender(store: PhotoStore, photo_ids=None, threads: int | None = None,
              stop: threading.Event | None = None, jobs: int = 1) -> float:
    """Render (or load) every photo into the store; returns the seconds it took. For benchmarks and warm-up.

    jobs > 1 with a disk cache: that many processes draw the photos missing from the disk (drawing holds the GIL,
    so threads share one core; 200,000 photos take about 45 min on one core), and the memory cache is left cold.
    Setting `stop` makes the remaining photos be skipped (so a Ctrl-C does not wait for the whole catalog)."""
    import time

    ids = list(photo_ids if photo_ids is not None else store.catalog.photos)
    t0 = time.perf_counter()
    if jobs > 1 and store.dir is not None:
        _render_in_processes(store, ids, jobs, stop)
        return time.perf_counter() - t0
    from concurrent.futures import ThreadPoolExecutor

    def one(pid):
        if stop is None or not stop.is_set():
            store.get(pid, 640)

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 2) as ex:
        list(ex.map(one, ids))
    return time.perf_counter() - t0


_WORKER_STORE: PhotoStore | None = None


def _worker_init(config, cache_dir: str) -> None:
    global _WORKER_STORE
    from carscope.showroom.catalog import build_catalog

    _WORKER_STORE = PhotoStore(build_catalog(config), cache_dir, max_bytes=0)


def _worker_render(ids: list[str]) -> int:
    store = _WORKER_STORE
    for pid in ids:
        store._save_disk(pid, render_photo_bytes(store.catalog, store.catalog.photos[pid]))
    return len(ids)


def _render_in_processes(store: PhotoStore, ids: list[str], jobs: int, stop: threading.Event | None) -> None:
    """Draw the photos of `ids` that the disk cache lacks, in `jobs` spawned processes, chunk by chunk."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    missing = [pid for pid in ids if not all((store.dir / f"{pid}-{w}.jpg").exists() for w in (640, 320))]
    chunks = [missing[i:i + 256] for i in range(0, len(missing), 256)]
    cache_root = str(store.dir.parent)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(store.catalog.config, cache_root)) as ex:
        pending, todo = set(), iter(chunks)
        while True:
            while len(pending) < 2 * jobs and (stop is None or not stop.is_set()):
                chunk = next(todo, None)
                if chunk is None:
                    break
                pending.add(ex.submit(_worker_render, chunk))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                f.result()
