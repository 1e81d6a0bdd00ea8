"""Helpers shared by the crawler tests: run a crawl, compare a dataset with the showroom's ground truth,
and tiny aiohttp servers for component tests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path

from aiohttp import web

from carscope.crawler.config import CrawlConfig


def config(base_url: str, out, **kw) -> CrawlConfig:
    kw.setdefault("browser", "never")
    kw.setdefault("progress", False)
    kw.setdefault("log", False)
    kw.setdefault("backoff_base", 0.05)  # tests: retries after ~50 ms, not 250 ms
    return CrawlConfig(start_url=base_url + "/", out=str(out), **kw)


def expected_view(truth: dict, photo: dict) -> str:
    layout = {my["model_id"]: my["layout"] for my in truth["model_years"]}[photo["model_id"]]
    return photo["view"] if layout == "tabs" else "unknown"


def good_photos(truth: dict) -> dict[str, dict]:
    """sha256 -> photo, for every photo that is not corrupt (each stored exactly once in a good crawl)."""
    return {p["sha256"]: p for p in truth["photos"] if not p["corrupt"]}


def specs_by_model(ds) -> dict[str, list[tuple[str, str]]]:
    raw = ds.specs_raw
    return {mid: list(zip(g["key"], g["value"], strict=True)) for mid, g in raw.groupby("model_id", sort=True)}


def truth_specs(truth: dict) -> dict[str, list[tuple[str, str]]]:
    return {my["model_id"]: list(my["specs"].items()) for my in truth["model_years"]}


def assert_files_intact(root: Path, images) -> None:
    """Every row's file exists, hashes to its name, and fully decodes; no temp files anywhere."""
    from PIL import Image

    for row in images.itertuples():
        data = (root / row.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
        with Image.open(root / row.path) as im:
            im.load()
            assert im.size == (row.width, row.height)
    leftovers = [p for p in root.rglob("*") if p.name.endswith((".part", ".tmp"))]
    assert leftovers == []


def frontier_done(root: Path) -> int:
    """URLs a crawl in `root` has finished so far (read while it runs, from its crawl.sqlite)."""
    import sqlite3

    if not (root / "crawl.sqlite").exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{root / 'crawl.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM urls WHERE state='done'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def comparable_specs(ds):
    return ds.specs.drop(columns=["crawled_at"]).sort_values("model_id").reset_index(drop=True)


@contextlib.asynccontextmanager
async def tiny_server(routes: list[tuple[str, str, object]]):
    """An aiohttp server on 127.0.0.1:0 inside the running loop; yields its base URL; always cleaned up."""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run(coro):
    return asyncio.run(coro)


@contextlib.contextmanager
def app_in_thread(app: web.Application):
    """Serve an aiohttp app on 127.0.0.1:0 from a background thread (so a crawl can run in this one)."""
    import threading

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box = {}

    async def up():
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"], box["url"] = runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    def main():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(up())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(box["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["url"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def tiny_jpeg(seed: int, size=(160, 120)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, 120)).save(buf, "JPEG")
    return buf.getvalue()


PHOTO_ADAPTER = """
[site]
name = "tiny"

[pages.home]
match = '^/$'
links = ["a.next"]

[pages.more]
match = '^/more$'

[pages.home.photos]
image = "img"
attrs = ["src"]

[pages.more.photos]
image = "img"
attrs = ["src"]
"""
