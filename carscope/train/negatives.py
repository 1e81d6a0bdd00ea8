"""Generic "not a car photo" images, drawn procedurally: the view classifier's `other` class, and the synthetic
frames an export and `carscope bench ood` measure the out-of-distribution score on.

    python -c "from carscope.train.negatives import draw_negative; draw_negative(7, 224).save('neg.jpg')"

Nothing here knows what a car looks like or what photos users send: the families are generic image statistics
(flat and nearly flat frames, sensor noise, smooth and fractal textures, gradients, geometry, document-like
text, tilings), plus, when photos are given, *scrambles* of them (tiles of real training photos shuffled, or one
photo's colours over another's blur), which keep the photos' colours and textures and lose the object. Each image
comes from `random.Random(seed)` alone, so the same seed always draws the same image.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

FAMILIES = ("flat", "noise", "fractal", "gradient", "shapes", "document", "tiling", "scramble")


def _arr(img):
    import numpy as np

    return np.asarray(img, dtype=np.float32)


def _img(a):
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def _colour(r: random.Random) -> tuple[int, int, int]:
    return (r.randrange(256), r.randrange(256), r.randrange(256))


def _fractal(r: random.Random, h: int, w: int, channels: int = 3, octaves: int = 5):
    """Multi-scale value noise (a sum of upsampled random grids): clouds, grass, gravel, stone, bark."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(r.randrange(2**32))
    out = np.zeros((h, w, channels), np.float32)
    falloff = r.uniform(0.35, 0.8)
    amp, total = 1.0, 0.0
    cells = r.choice((2, 3, 4))
    for _ in range(octaves):
        grid = rng.random((cells, cells, channels)).astype(np.float32) * 255
        layer = np.stack([np.asarray(Image.fromarray(grid[..., c].astype(np.uint8)).resize((w, h),
                                                                                      Image.Resampling.BICUBIC),
                                     dtype=np.float32) for c in range(channels)], axis=-1)
        out += amp * layer
        total += amp
        amp *= falloff
        cells *= 2
    return out / total


def draw_negative(seed: int, size: int = 224, photos: Sequence[Any] = (), family: str | None = None):
    """One negative image (PIL RGB, `size` x `size`). `photos`: PIL images or paths for the scramble family
    (without them it draws another family)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    r = random.Random(seed)
    fam = family or r.choice(FAMILIES if photos else FAMILIES[:-1])
    h = w = int(size)
    rng = np.random.default_rng(r.randrange(2**32))
    if fam == "flat":  # blank frames: black, white, grey, any colour, with a little sensor noise or banding
        base = r.choice([(0, 0, 0), (255, 255, 255), (128, 128, 128), _colour(r), _colour(r)])
        a = np.empty((h, w, 3), np.float32)
        a[:] = base
        a += rng.normal(0, r.choice((0, 0, 1.5, 4, 8)), a.shape)
        img = _img(a)
    elif fam == "noise":  # uniform, gaussian, salt-and-pepper, coloured or grey, sometimes blurred
        kind = r.choice(("uniform", "gauss", "salt", "grey"))
        if kind == "uniform":
            a = rng.random((h, w, 3)) * 255
        elif kind == "gauss":
            a = rng.normal(r.uniform(60, 190), r.uniform(20, 80), (h, w, 3))
        elif kind == "salt":
            a = np.full((h, w, 3), r.uniform(0, 255))
            mask = rng.random((h, w)) < r.uniform(0.05, 0.5)
            a[mask] = rng.choice([0.0, 255.0], size=(int(mask.sum()), 1))
        else:
            a = np.repeat(rng.random((h, w, 1)) * 255, 3, axis=2)
        img = _img(a)
        if r.random() < 0.3:
            img = img.filter(ImageFilter.GaussianBlur(r.uniform(0.5, 3)))
    elif fam == "fractal":  # natural-looking textures, tinted or grey
        a = _fractal(r, h, w, 3 if r.random() < 0.5 else 1)
        if a.shape[2] == 1:
            tint = np.array([_colour(r), _colour(r)], np.float32)
            t = a / 255.0
            a = tint[0] * (1 - t) + tint[1] * t
        contrast = r.uniform(0.8, 2.5)
        a = (a - a.mean()) * contrast + r.uniform(60, 190)
        img = _img(a)
    elif fam == "gradient":  # linear or radial, two or three colours
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        if r.random() < 0.5:
            ang = r.uniform(0, np.pi)
            t = (np.cos(ang) * xx + np.sin(ang) * yy)
        else:
            cx, cy = r.uniform(0, w), r.uniform(0, h)
            t = np.hypot(xx - cx, yy - cy)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        c0, c1 = np.array(_colour(r), np.float32), np.array(_colour(r), np.float32)
        a = c0 * (1 - t[..., None]) + c1 * t[..., None]
        img = _img(a)
    elif fam == "shapes":  # circles, polygons and lines on a plain or textured ground
        img = Image.new("RGB", (w, h), _colour(r)) if r.random() < 0.6 else _img(_fractal(r, h, w))
        d = ImageDraw.Draw(img)
        for _ in range(r.randrange(1, 12)):
            x0, y0 = r.uniform(-0.2, 1) * w, r.uniform(-0.2, 1) * h
            s = r.uniform(0.05, 0.6) * size
            kind = r.choice(("ellipse", "rect", "poly", "line"))
            if kind == "ellipse":
                d.ellipse((x0, y0, x0 + s, y0 + s * r.uniform(0.5, 1.5)), fill=_colour(r))
            elif kind == "rect":
                d.rectangle((x0, y0, x0 + s, y0 + s * r.uniform(0.3, 1.5)), fill=_colour(r))
            elif kind == "poly":
                pts = [(x0 + r.uniform(-s, s), y0 + r.uniform(-s, s)) for _ in range(r.randrange(3, 7))]
                d.polygon(pts, fill=_colour(r))
            else:
                d.line((x0, y0, r.uniform(0, w), r.uniform(0, h)), fill=_colour(r), width=r.randrange(1, 12))
    elif fam == "document":  # a page of text: rows of dark word-bars on paper, sometimes columns and a box
        paper = tuple(int(v) for v in np.clip(np.array((245, 243, 235)) + rng.normal(0, 8, 3), 0, 255))
        img = Image.new("RGB", (w, h), paper)
        d = ImageDraw.Draw(img)
        ink = r.choice([(20, 20, 25), (40, 40, 60), _colour(r)])
        line_h = r.uniform(0.02, 0.07) * h
        cols = r.choice((1, 1, 2, 3))
        margin = r.uniform(0.04, 0.12) * w
        col_w = (w - 2 * margin) / cols
        for c in range(cols):
            y = margin
            while y < h - margin:
                x = margin + c * col_w
                while x < margin + (c + 1) * col_w - 0.05 * col_w:
                    word = r.uniform(0.03, 0.15) * w
                    x1 = min(x + word, margin + (c + 1) * col_w - 4)
                    if x1 > x:
                        d.rectangle((x, y, x1, y + line_h * 0.55), fill=ink)
                    x += word + line_h * 0.5
                y += line_h * r.uniform(1.4, 1.9)
        if r.random() < 0.3:
            d.rectangle((w * 0.55, h * 0.1, w * 0.9, h * 0.35), fill=_colour(r))
    elif fam == "tiling":  # stripes, checkerboards, grids, dots
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        period = r.uniform(4, size / 3)
        kind = r.choice(("stripes", "checker", "dots"))
        ang = r.uniform(0, np.pi)
        u = np.cos(ang) * xx + np.sin(ang) * yy
        v = -np.sin(ang) * xx + np.cos(ang) * yy
        if kind == "stripes":
            t = (np.floor(u / period) % 2)
        elif kind == "checker":
            t = (np.floor(u / period) + np.floor(v / period)) % 2
        else:
            t = ((np.mod(u, period) - period / 2) ** 2 + (np.mod(v, period) - period / 2) ** 2 < (period / 3) ** 2)
        c0, c1 = np.array(_colour(r), np.float32), np.array(_colour(r), np.float32)
        img = _img(c0 * (1 - t[..., None]) + c1 * t[..., None])
    else:  # scramble: real photos' colours and textures without their object
        srcs = [im for im in (_open(photos[r.randrange(len(photos))], size) for _ in range(r.randrange(1, 5)))
                if im is not None]
        if not srcs:  # the photos drawn do not decode (a crawl keeps corrupt ones): a texture instead
            return draw_negative(seed, size, (), family="fractal")
        if r.random() < 0.6:  # a jigsaw of tiles from one to four photos
            n = r.choice((3, 4, 6, 8))
            tile = max(1, size // n)
            a = np.zeros((h, w, 3), np.float32)
            arrs = [_arr(s) for s in srcs]
            for i in range(n):
                for j in range(n):
                    src = arrs[r.randrange(len(arrs))]
                    y, x = r.randrange(0, h - tile + 1), r.randrange(0, w - tile + 1)
                    a[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = src[y:y + tile, x:x + tile]
            img = _img(a)
        else:  # one photo heavily blurred and rotated, its channels shuffled
            a = _arr(srcs[0].filter(ImageFilter.GaussianBlur(r.uniform(4, 12))).rotate(r.choice((90, 180, 270))))
            img = _img(a[..., rng.permutation(3)])
    if r.random() < 0.25 and fam not in ("flat",):  # some JPEG-ish softness
        img = img.filter(ImageFilter.GaussianBlur(r.uniform(0.3, 1.2)))
    return img


def _open(photo, size: int):
    """The photo as a `size` square, or None when it does not decode."""
    from PIL import Image

    try:
        im = photo if isinstance(photo, Image.Image) else Image.open(photo)
        return im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def write_negatives(folder, count: int, *, seed: int = 0, size: int = 256, photos: Sequence[Any] = (),
                    threads: int = 2) -> list[tuple[str, str]]:
    """Draw `count` negatives into `folder` as JPEGs named by their sha256; returns [(sha256, path)] in draw
    order. Drawn again from the same seed they are the same bytes, so a resumed run finds its files."""
    import hashlib
    import io
    import os
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photos = list(photos)

    def one(i: int) -> tuple[str, str]:
        img = draw_negative(seed * 1_000_003 + i, size, photos)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=random.Random(seed * 7 + i).choice((75, 85, 92)))
        data = buf.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        path = folder / f"{sha}.jpg"
        if not path.exists():
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return sha, str(path)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return list(pool.map(one, range(int(count))))
