"""Run the showroom in-process, and build labelled photos without a crawl: for tests, benchmarks and the demo.

    from carscope.showroom.testing import serve_in_thread
    with serve_in_thread(makes=2, models_per_make=2, photos=4) as base_url:
        ...  # http://127.0.0.1:<port>, stopped on exit whatever happens

    from carscope.showroom.testing import iter_photos
    for info, jpeg in iter_photos(ShowroomConfig(makes=2, photos=4)):
        ...  # info: model_id, view, make, model, year, body, pose, subject, id, corrupt (car photos only)

The server binds 127.0.0.1 port 0 (a free port) in a background thread with its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from carscope.showroom.config import ShowroomConfig


def _config(config: ShowroomConfig | None, overrides: dict) -> ShowroomConfig:
    config = config or ShowroomConfig()
    return config.with_(**overrides) if overrides else config


class ShowroomServer:
    """A showroom running in a background thread. `start()` returns once it accepts connections."""

    def __init__(self, config: ShowroomConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.config = config or ShowroomConfig()
        self.host, self.port = host, port
        self.app = None
        self.base_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner = None
        self._error: BaseException | None = None

    @property
    def state(self):
        """The app's state (catalog, photo store, stats): read it only while the server is idle."""
        from carscope.showroom.server import showroom_state

        return showroom_state(self.app)

    def start(self) -> ShowroomServer:
        from aiohttp import web

        from carscope.showroom.server import create_app

        self.app = create_app(self.config)
        ready = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        async def up():
            self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
            await site.start()
            host, port = self._runner.addresses[0][:2]
            self.port = port
            self.base_url = f"http://{host}:{port}"

        def main():
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(up())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                self._error = exc
                ready.set()
                try:
                    if self._runner is not None:
                        loop.run_until_complete(self._runner.cleanup())
                finally:
                    loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=main, name="showroom-server", daemon=True)
        self._thread.start()
        if not ready.wait(60):
            raise RuntimeError("the showroom did not start within 60 s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._thread = None

    def __enter__(self) -> ShowroomServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def serve_in_thread(config: ShowroomConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                    **overrides) -> Iterator[str]:
    """Serve the showroom on host:port (0: a free port) in a thread; yields its base URL; always stops it.

    `overrides` are ShowroomConfig fields, e.g. `serve_in_thread(makes=2, faults="5xx=0.1")`.
    """
    with ShowroomServer(_config(config, overrides), host, port) as server:
        yield server.base_url


def get_json(url: str, timeout: float = 60):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback test URLs only
        return json.loads(r.read())


def fetch_truth(base_url: str, sha256: bool = True) -> dict:
    """The site's ground truth (`/__truth.json`). `sha256=False` skips the photo hashes (no rendering)."""
    return get_json(base_url.rstrip("/") + "/__truth.json" + ("" if sha256 else "?sha256=0"))


def fetch_stats(base_url: str) -> dict:
    return get_json(base_url.rstrip("/") + "/__stats")


def reset_stats(base_url: str) -> None:
    """Zero /__stats and the fault attempt counters (so faults apply again from attempt 1)."""
    req = urllib.request.Request(base_url.rstrip("/") + "/__stats/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30):  # noqa: S310
        pass


@dataclass
class ShowroomSite:
    """What the `showroom_site` pytest fixture gives: a running site, its config and its ground truth."""

    base_url: str
    config: ShowroomConfig
    truth: dict = field(repr=False)
    server: ShowroomServer = field(repr=False)

    def url(self, path: str) -> str:
        return self.base_url + path

    def stats(self) -> dict:
        return fetch_stats(self.base_url)

    def reset_stats(self) -> None:
        reset_stats(self.base_url)


def tiny_config(**overrides) -> ShowroomConfig:
    """The tests' tiny showroom: 2 makes x 2 models x 2 years, 4 exterior + 1 interior photo and 2 non-car
    images (the default `others`) each, seed 0."""
    base = ShowroomConfig(makes=2, models_per_make=2, years=(2022, 2023), photos=4, seed=0)
    return base.with_(**overrides) if overrides else base


# ---------------------------------------------------------------- photos without a crawl

def iter_photos(config: ShowroomConfig, width: int = 640, *, include_corrupt: bool = False,
                views: tuple[str, ...] = ("exterior", "interior"),
                subjects: tuple[str, ...] = ("car",)) -> Iterator[tuple[dict, bytes]]:
    """Every photo of a showroom with its label, rendered directly (no server, no crawl).

    Yields (info, jpeg_bytes); info has id, model_id, make, model, year, body, view, pose, subject, corrupt, and
    the realism options' truth (SITE.md): framing, part, conditions, look (the generation's look id), twin_of.
    Only car photos unless `subjects` names others too (catalog.NON_CAR_SUBJECTS: the galleries' logos, maps,
    ...; a crawl stores them all, see showroom.offline). Corrupt photos are skipped unless `include_corrupt`.
    Duplicates (/cdn/) are not repeated.
    """
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.render import render_dataset_photo

    catalog = build_catalog(config)
    for my in catalog.model_years:
        for p in my.photos:
            if p.view not in views or p.subject not in subjects or (p.corrupt and not include_corrupt):
                continue
            info = {"id": p.id, "model_id": my.model_id, "make": my.make.name, "model": my.model.name,
                    "year": my.year, "body": my.model.body, "view": p.view, "pose": p.pose, "subject": p.subject,
                    "corrupt": p.corrupt, "framing": p.framing, "part": p.part, "conditions": list(p.conditions),
                    "look": my.generation["look"], "twin_of": my.twin_of}
            yield info, render_dataset_photo(catalog, p, width)
