"""The crawler's own CPU path over stored image bytes, with no network: the ceiling a crawl or an import is held
against (`bench crawl`, `bench import`).

    from carscope.benchmarks.ceiling import ceiling
    ceiling(Path("dataset"), Path("/tmp/scratch"), max_images=3000)   # {"images_per_s": ..., "workers": ...}
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def ceiling(dataset: Path, scratch: Path, max_images: int) -> dict:
    """The crawler's CPU path (process_image + content-addressed write) over stored bytes, no network."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from carscope.crawler.dataset import image_relpath, load
    from carscope.crawler.images import ImageRules, process_image
    from carscope.crawler.writer import store_file

    ds = load(dataset)
    paths = [dataset / p for p in ds.images["path"].tolist()[:max_images]]
    blobs = [p.read_bytes() for p in paths]  # in memory first: the disk read is not the crawler's work
    rules = ImageRules()
    workers = os.cpu_count() or 2

    async def go() -> float:
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(workers * 4)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            async def one(data: bytes):
                async with sem:
                    r = await loop.run_in_executor(pool, process_image, data, rules, None)
                    await store_file(scratch, image_relpath(r.sha256), r.data)

            t0 = time.perf_counter()
            await asyncio.gather(*(one(b) for b in blobs))
            return time.perf_counter() - t0

    scratch.mkdir(parents=True, exist_ok=True)
    seconds = asyncio.run(go())
    return {"images": len(blobs), "seconds": round(seconds, 3), "images_per_s": len(blobs) / seconds,
            "workers": workers, "mb_per_s": sum(map(len, blobs)) / seconds / 1e6}
