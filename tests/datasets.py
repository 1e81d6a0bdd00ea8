"""A tiny synthetic dataset in the crawl format (carscope/crawler/dataset.py), for tests of train, export and serve.

    from tests.datasets import make_tiny_dataset
    root = make_tiny_dataset(tmp_path / "data", n_classes=3, per_class=8)

Each class (a model-year, `2023_make<i>_model<i>`) has exterior photos (a body whose shape and accent colour
follow the class, on a sky/road background, with colour, position, scale and noise jitter) and interior photos
(a dark cabin with a wheel and a screen). Small JPEGs drawn with Pillow: milliseconds per dataset, learnable by a
few-conv net at 32-64 px in a few epochs. Deterministic given `seed`.
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

SHAPES = ("rect", "ellipse", "triangle", "trapezoid", "diamond", "bars")
ACCENTS = [(220, 30, 30), (30, 160, 40), (40, 60, 220), (230, 200, 20), (200, 40, 200), (20, 200, 210),
           (250, 130, 20), (120, 70, 20), (255, 255, 255), (0, 0, 0)]


def _exterior(cls: int, year_offset: int, rng: random.Random, size: tuple[int, int]):
    from PIL import Image, ImageDraw, ImageFilter

    w, h = size
    img = Image.new("RGB", size)
    d = ImageDraw.Draw(img)
    sky = tuple(min(255, c + rng.randint(-25, 25)) for c in (150, 190, 235))
    road = tuple(max(0, c + rng.randint(-20, 20)) for c in (95, 95, 100))
    d.rectangle([0, 0, w, int(h * 0.6)], fill=sky)
    d.rectangle([0, int(h * 0.6), w, h], fill=road)
    s = rng.uniform(0.75, 1.0)
    bw, bh = int(w * 0.6 * s), int(h * 0.35 * s)
    x0 = int((w - bw) / 2 + rng.randint(-w // 12, w // 12))
    y0 = int(h * 0.62 - bh + rng.randint(-h // 16, h // 16))
    body = (rng.randint(60, 200), rng.randint(60, 200), rng.randint(60, 200))
    shape = SHAPES[cls % len(SHAPES)]
    box = [x0, y0, x0 + bw, y0 + bh]
    if shape == "rect":
        d.rectangle(box, fill=body)
    elif shape == "ellipse":
        d.ellipse(box, fill=body)
    elif shape == "triangle":
        d.polygon([(x0, y0 + bh), (x0 + bw, y0 + bh), (x0 + bw // 2, y0)], fill=body)
    elif shape == "trapezoid":
        d.polygon([(x0, y0 + bh), (x0 + bw, y0 + bh), (x0 + 3 * bw // 4, y0), (x0 + bw // 4, y0)], fill=body)
    elif shape == "diamond":
        d.polygon([(x0, y0 + bh // 2), (x0 + bw // 2, y0), (x0 + bw, y0 + bh // 2), (x0 + bw // 2, y0 + bh)], fill=body)
    else:
        for i in range(3):
            d.rectangle([x0, y0 + i * bh // 3, x0 + bw, y0 + i * bh // 3 + bh // 5], fill=body)
    accent = ACCENTS[(cls // len(SHAPES) + cls) % len(ACCENTS)]
    d.rectangle([x0 + bw // 5, y0 + bh // 3, x0 + 4 * bw // 5, y0 + bh // 3 + max(2, bh // 5)], fill=accent)
    r = max(2, bh // 4)
    for cx in (x0 + bw // 5, x0 + 4 * bw // 5):  # wheels
        d.ellipse([cx - r, y0 + bh - r, cx + r, y0 + bh + r], fill=(20, 20, 20))
    if year_offset:  # a "facelift": a small lamp whose place follows the year
        d.rectangle([x0 + 2, y0 + 2, x0 + 2 + max(2, bw // 10), y0 + 2 + max(2, bh // 8)], fill=(255, 250, 200))
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.6)))


def _interior(cls: int, rng: random.Random, size: tuple[int, int]):
    from PIL import Image, ImageDraw

    w, h = size
    base = rng.randint(25, 60)
    img = Image.new("RGB", size, (base, base, base + 5))
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(h * 0.55), w, h], fill=(base + 30, base + 20, base + 10))  # dashboard
    cx, cy, r = int(w * rng.uniform(0.25, 0.4)), int(h * rng.uniform(0.5, 0.65)), int(h * rng.uniform(0.22, 0.3))
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(10, 10, 10), width=max(2, r // 4))  # steering wheel
    sx = int(w * rng.uniform(0.55, 0.65))
    d.rectangle([sx, int(h * 0.3), sx + w // 4, int(h * 0.5)], fill=ACCENTS[cls % len(ACCENTS)])  # screen
    return img


def _jpeg(img, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_tiny_dataset(root, n_classes: int = 3, per_class: int = 8, *, interior_per_class: int = 4,
                      unknown_per_class: int = 0, years: tuple[int, ...] = (2023,), size: tuple[int, int] = (96, 72),
                      corrupt: int = 0, seed: int = 0, class_sizes: dict[int, int] | None = None) -> Path:
    """Write a dataset directory (specs.parquet, images.parquet, images/..) and return its path.

    n_classes models (make<i>/model<i>) for each year in `years`; per model-year `per_class` exterior,
    `interior_per_class` interior and `unknown_per_class` unlabelled photos (alternately exterior and interior
    pictures with view_hint "unknown", like a mixed gallery). `class_sizes` overrides the exterior count of
    some classes (e.g. {2: 1} for a class with one photo). `corrupt` extra exterior rows of class 0 whose files
    are broken JPEGs."""
    import pandas as pd

    from carscope.crawler.dataset import (
        IMAGES_COLUMNS,
        SPECS_COLUMNS,
        image_relpath,
        make_model_id,
        write_table,
    )

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    specs, images = [], []
    now = pd.Timestamp("2024-01-01", tz="UTC")

    def store(data: bytes, model_id: str, view: str) -> None:
        sha = hashlib.sha256(data).hexdigest()
        rel = image_relpath(sha)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        images.append({"sha256": sha, "path": rel, "model_id": model_id, "view_hint": view, "width": size[0],
                       "height": size[1], "bytes": len(data), "source_url": f"http://test/{sha[:12]}.jpg",
                       "page_url": f"http://test/{model_id}", "crawled_at": now})

    for yi, year in enumerate(sorted(years)):
        for c in range(n_classes):
            make, model = f"Make{c}", f"Model{c}"
            model_id = make_model_id(year, make, model)
            specs.append({"model_id": model_id, "make": make, "model": model, "year": year,
                          "msrp_usd": 20000 + 1000 * c, "body_style": SHAPES[c % len(SHAPES)],
                          "page_url": f"http://test/{model_id}", "crawled_at": now})
            n_ext = (class_sizes or {}).get(c, per_class)
            for _ in range(n_ext):
                store(_jpeg(_exterior(c, yi, rng, size), rng.randint(70, 95)), model_id, "exterior")
            for _ in range(interior_per_class):
                store(_jpeg(_interior(c, rng, size), rng.randint(70, 95)), model_id, "interior")
            for k in range(unknown_per_class):
                img = _exterior(c, yi, rng, size) if k % 2 == 0 else _interior(c, rng, size)
                store(_jpeg(img, rng.randint(70, 95)), model_id, "unknown")
    first = make_model_id(sorted(years)[-1], "Make0", "Model0")
    for k in range(corrupt):
        data = _jpeg(_exterior(0, 0, rng, size), 90)
        store(data[: len(data) // 3] + bytes([k % 256]) * 7, first, "exterior")  # truncated: decode fails
    write_table(pd.DataFrame(specs), root / "specs.parquet", SPECS_COLUMNS)
    write_table(pd.DataFrame(images), root / "images.parquet", IMAGES_COLUMNS)
    return root


def make_showroom_dataset(root, config=None, *, width: int = 640, threads: int = 2, **overrides) -> Path:
    """carscope.showroom.offline.write_dataset: the crawl of a showroom written without a server or a crawl."""
    from carscope.showroom.offline import write_dataset

    return write_dataset(root, config, width=width, threads=threads, **overrides)


def tiny_photos(n_classes: int = 3, per_class: int = 8, *, interior_per_class: int = 4, size=(96, 72),
                seed: int = 0):
    """(class index, view, JPEG bytes) of the tiny dataset's photos, without a dataset around them: what
    `carscope dataset import` tests lay out as folders, manifests and parquet files."""
    rng = random.Random(seed)
    for c in range(n_classes):
        for _ in range(per_class):
            yield c, "exterior", _jpeg(_exterior(c, 0, rng, size), rng.randint(70, 95))
        for _ in range(interior_per_class):
            yield c, "interior", _jpeg(_interior(c, rng, size), rng.randint(70, 95))


def make_photo_folder(root, n_classes: int = 3, per_class: int = 8, *, interior_per_class: int = 4,
                      class_name=lambda c: f"2023_make{c}_model{c}", splits: bool = False, views: bool = True,
                      seed: int = 0) -> Path:
    """ROOT/[train|test/]<class>/[exterior|interior/]NNN.jpg (every fifth photo of a class in test/ with
    `splits`); returns ROOT."""
    root = Path(root)
    counts: dict = {}
    for c, view, data in tiny_photos(n_classes, per_class, interior_per_class=interior_per_class, seed=seed):
        n = counts[c] = counts.get(c, 0) + 1
        folder = root
        if splits:
            folder = folder / ("test" if n % 5 == 0 else "train")
        folder = folder / class_name(c)
        if views:
            folder = folder / view
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n:03d}.jpg").write_bytes(data)
    return root
