"""The showroom without a server: its crawl written straight to a dataset directory (the same photos and labels a
crawl would store: what tests and `carscope bench gpu` train on), and its galleries' drawn non-car images.

    python -c "from carscope.showroom.offline import write_dataset; write_dataset('dataset', makes=2, models_per_make=2)"
    python -c "from carscope.showroom.offline import write_dataset; from carscope.showroom.config import REALISTIC; \
write_dataset('dataset', makes=2, **REALISTIC)"      # generations, twins, all views, close-ups, conditions
    python -c "from carscope.showroom.offline import non_car_images; print(next(non_car_images(makes=1))[0])"
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path


def write_dataset(root, config=None, *, width: int = 640, threads: int = 2, **overrides) -> Path:
    """Write the crawl of a showroom (carscope/showroom/render.py) without a server or a crawl: same photos, same labels.

    view_hint is what a crawl sees: the photo's view in a tabbed gallery, "unknown" in a mixed one. The
    galleries' non-car images (`config.others`: logos, maps, ...) are stored too, labelled with their page's
    model_id and their tab's view_hint, as a crawl stores them. Corrupt photos (the `corrupt` fault) keep their
    broken bytes, like a crawl that stored them."""
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from carscope.crawler.dataset import IMAGES_COLUMNS, SPECS_COLUMNS, image_relpath, write_table
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.config import ShowroomConfig
    from carscope.showroom.render import render_dataset_photo

    config = config or ShowroomConfig()
    if overrides:
        config = config.with_(**overrides)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    catalog = build_catalog(config)
    now = pd.Timestamp("2024-01-01", tz="UTC")
    jobs = [(my, p) for my in catalog.model_years for p in my.photos]

    def render(job):
        my, p = job
        return my, p, render_dataset_photo(catalog, p, width)

    images, seen = [], set()
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for my, p, data in pool.map(render, jobs):
            sha = hashlib.sha256(data).hexdigest()
            if sha in seen:
                continue
            seen.add(sha)
            rel = image_relpath(sha)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            images.append({"sha256": sha, "path": rel, "model_id": my.model_id,
                           "view_hint": p.view if my.layout == "tabs" else "unknown", "width": width,
                           "height": int(width * 3 / 4), "bytes": len(data), "source_url": f"showroom:{p.id}",
                           "page_url": f"showroom:{my.model_id}", "crawled_at": now})
    specs = [{"model_id": my.model_id, "make": my.make.name, "model": my.model.name, "year": my.year,
              "body_style": my.model.body, "page_url": f"showroom:{my.model_id}", "crawled_at": now}
             for my in catalog.model_years]
    write_table(pd.DataFrame(specs), root / "specs.parquet", SPECS_COLUMNS)
    write_table(pd.DataFrame(images), root / "images.parquet", IMAGES_COLUMNS)
    return root


def non_car_images(config=None, *, subjects: tuple[str, ...] | None = None, width: int = 640,
                   **overrides) -> Iterator[tuple[str, bytes]]:
    """(subject, bytes) of each non-car image in a showroom's galleries (a logo, a map, ...: catalog.NON_CAR_SUBJECTS),
    in catalog order, drawn one at a time as they are asked for: the bytes the site serves for them at `width`.

    `subjects` keeps only those kinds; the config is `config` (default ShowroomConfig()) with `overrides`, as in
    `write_dataset`. What needs a picture that is not a car (a "not a car" check, an OOD benchmark) takes it here."""
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.config import ShowroomConfig
    from carscope.showroom.render import render_dataset_photo

    config = config or ShowroomConfig()
    if overrides:
        config = config.with_(**overrides)
    catalog = build_catalog(config)
    for my in catalog.model_years:
        for p in my.photos:
            if not p.car and (subjects is None or p.subject in subjects):
                yield p.subject, render_dataset_photo(catalog, p, width)
