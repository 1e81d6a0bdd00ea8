"""The drawing helpers shared by every showroom picture: the frame size, a few colours, shading and mixing,
gradients, the backgrounds, the design shapes (lamp / grille / badge vocabulary) and the wheels.

    python -m carscope.showroom.render --out /tmp/showroom-photos --makes 2 --photos 6   # writes contact sheets

The car (car.py), the interiors (interior.py) and the galleries' non-car images (non_car.py) draw with these;
render.py puts a photo together. A change to anything drawn here changes photo bytes: bump
`config.RENDER_VERSION`.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw

W, H = 640, 480
TYRE = (24, 24, 26)
CHROME = (205, 208, 214)
DARK = (18, 18, 20)


def shade(c, f):
    return tuple(max(0, min(255, int(v * f))) for v in c)


def mix(a, b, t):
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b, strict=False))


# ---------------------------------------------------------------- backgrounds

def vgrad(h: int, w: int, top, bottom) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(col, (h, w, 3))


def background(rng: random.Random, kind: str) -> tuple[Image.Image, int]:
    """An RGB background and the ground line (y) the car stands on."""
    horizon = int(H * rng.uniform(0.42, 0.58))
    arr = np.empty((H, W, 3), np.float32)
    if kind == "showroom":
        wall = mix((226, 224, 218), (200, 206, 214), rng.random())
        arr[:horizon] = vgrad(horizon, W, shade(wall, 1.05), shade(wall, 0.85))
        floor = mix((170, 168, 164), (120, 116, 112), rng.random())
        arr[horizon:] = vgrad(H - horizon, W, shade(floor, 1.1), shade(floor, 0.8))
    else:
        sky = mix((96, 150, 214), (170, 196, 226), rng.random())
        arr[:horizon] = vgrad(horizon, W, shade(sky, 0.85), mix(sky, (235, 238, 240), 0.6))
        ground = (96, 98, 102) if kind == "road" else mix((92, 120, 70), (150, 140, 110), rng.random())
        arr[horizon:] = vgrad(H - horizon, W, shade(ground, 1.1), shade(ground, 0.75))
    img = Image.fromarray(arr.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    if kind == "showroom":  # floor tiles in perspective and ceiling spots
        for k in range(-8, 9):
            d.line([(W / 2 + k * 40, horizon), (W / 2 + k * 160, H)], fill=shade(floor, 0.7), width=1)
        for k in range(1, 6):
            y = horizon + (H - horizon) * (k / 6) ** 1.7
            d.line([(0, y), (W, y)], fill=shade(floor, 0.72), width=1)
        for _ in range(rng.randint(2, 4)):
            x = rng.uniform(0, W)
            d.ellipse((x - 40, 10, x + 40, 34), fill=shade(wall, 1.15))
    elif kind == "road":
        d.polygon([(0, H), (W, H), (W, horizon + 8), (0, horizon + 8)], fill=(72, 74, 78))
        y = horizon + 8 + (H - horizon) * 0.35
        for x in range(rng.randint(-40, 0), W, 90):
            d.rectangle((x, y, x + 46, y + 5), fill=(226, 220, 190))
        d.rectangle((0, horizon + 4, W, horizon + 8), fill=(150, 150, 146))
    elif kind == "clutter":  # buildings and trees behind the car
        x = rng.uniform(-30, 0)
        while x < W:
            bw, bh = rng.uniform(40, 110), rng.uniform(40, horizon * 0.8)
            c = mix((120, 118, 124), (190, 170, 150), rng.random())
            d.rectangle((x, horizon - bh, x + bw, horizon), fill=c)
            for wy in range(int(horizon - bh + 8), horizon - 10, 18):
                d.line([(x + 6, wy), (x + bw - 6, wy)], fill=shade(c, 0.75), width=4)
            x += bw + rng.uniform(0, 30)
        for _ in range(rng.randint(2, 5)):
            tx, tr = rng.uniform(0, W), rng.uniform(18, 40)
            d.rectangle((tx - 3, horizon - tr, tx + 3, horizon), fill=(80, 60, 40))
            d.ellipse((tx - tr, horizon - 2.6 * tr, tx + tr, horizon - 0.6 * tr), fill=(52, 100, 50))
    else:  # "sky": a few clouds and distant hills
        for _ in range(rng.randint(1, 4)):
            cx, cy, cw = rng.uniform(0, W), rng.uniform(20, horizon * 0.6), rng.uniform(40, 120)
            d.ellipse((cx - cw, cy - cw * 0.25, cx + cw, cy + cw * 0.25), fill=(236, 238, 242))
        pts = [(0, horizon)] + [(x, horizon - rng.uniform(4, 30)) for x in range(0, W + 80, 80)] + [(W, horizon)]
        d.polygon(pts, fill=(110, 130, 120))
    return img, horizon


# ---------------------------------------------------------------- shapes and wheels

def poly_shape(d: ImageDraw.ImageDraw, shape: str, box, fill, outline=None, width=1):
    """Draw a design shape (lamp / grille / badge vocabulary) inside box = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if shape in ("round", "circle"):
        d.ellipse(box, fill=fill, outline=outline, width=width)
    elif shape in ("oval",):
        d.ellipse(box, fill=fill, outline=outline, width=width)
    elif shape in ("rect", "wide", "square"):
        d.rectangle(box, fill=fill, outline=outline, width=width)
    elif shape == "slit" or shape == "slot":
        d.rectangle((x0, cy - h * 0.22, x1, cy + h * 0.22), fill=fill, outline=outline, width=width)
    elif shape == "boomerang":
        d.polygon([(x0, y0), (x1, y0 + h * .15), (x1 - w * .25, cy), (x1, y1), (x0, y1 - h * .25)], fill=fill,
                  outline=outline)
    elif shape in ("triangle",):
        d.polygon([(x0, y1), (cx, y0), (x1, y1)], fill=fill, outline=outline)
    elif shape == "diamond":
        d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill, outline=outline)
    elif shape == "shield":
        d.polygon([(x0, y0), (x1, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill, outline=outline)
    elif shape == "hex":
        d.polygon([(x0 + w * .2, y0), (x1 - w * .2, y0), (x1, cy), (x1 - w * .2, y1), (x0 + w * .2, y1), (x0, cy)],
                  fill=fill, outline=outline)
    elif shape == "trapezoid":
        d.polygon([(x0, y0), (x1, y0), (x1 - w * .15, y1), (x0 + w * .15, y1)], fill=fill, outline=outline)
    elif shape == "kidney":
        g = w * 0.06
        d.rounded_rectangle((x0, y0, cx - g, y1), radius=min(w, h) * .2, fill=fill, outline=outline)
        d.rounded_rectangle((cx + g, y0, x1, y1), radius=min(w, h) * .2, fill=fill, outline=outline)
    elif shape == "star":
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            r = (0.5 if k % 2 == 0 else 0.22) * min(w, h)
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
        d.polygon(pts, fill=fill, outline=outline)
    else:
        d.rectangle(box, fill=fill, outline=outline)



RIMS = {  # finish -> (spokes / face, what shows between the spokes)
    "silver": ((206, 208, 214), (40, 40, 44)),
    "black": ((30, 30, 33), (128, 128, 134)),
    "bronze": ((178, 132, 72), (38, 36, 34)),
}


def draw_wheel(d, cx, cy, r, style, spin, s, finish="silver"):
    face, gap = RIMS[finish]
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=TYRE)
    rr = r * 0.66
    lw = max(1, int(s))
    if style == "disc":
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=face, outline=gap, width=int(2 * s))
        d.ellipse((cx - rr * .45, cy - rr * .45, cx + rr * .45, cy + rr * .45), outline=gap, width=int(2 * s))
    elif style == "turbine":
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=gap)
        for k in range(8):
            a = spin + k * math.pi / 4
            d.pieslice((cx - rr, cy - rr, cx + rr, cy + rr), math.degrees(a), math.degrees(a) + 22, fill=face)
    elif style == "mesh":
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=face)
        for k in range(14):
            a = spin + k * math.pi / 7
            d.line([(cx, cy), (cx + rr * math.cos(a), cy + rr * math.sin(a))], fill=gap, width=lw)
        d.ellipse((cx - rr * .6, cy - rr * .6, cx + rr * .6, cy + rr * .6), outline=gap, width=lw)
    else:
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=gap)
        n, width = {"spoke5": (5, 0.32), "spoke10": (10, 0.1), "split": (10, 0.12)}[style]
        for k in range(n):
            a = spin + k * 2 * math.pi / n + (0.18 * (k % 2) if style == "split" else 0)
            p = [(cx + rr * .2 * math.cos(a + math.pi / 2), cy + rr * .2 * math.sin(a + math.pi / 2)),
                 (cx + rr * math.cos(a + width), cy + rr * math.sin(a + width)),
                 (cx + rr * math.cos(a - width), cy + rr * math.sin(a - width)),
                 (cx + rr * .2 * math.cos(a - math.pi / 2), cy + rr * .2 * math.sin(a - math.pi / 2))]
            d.polygon(p, fill=face)
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), outline=face, width=max(1, int(2 * s)))
    hub = r * 0.14
    d.ellipse((cx - hub, cy - hub, cx + hub, cy + hub), fill=(90, 90, 96))


# ---------------------------------------------------------------- car parts (car.py, views.py)

def grille(d, shape, pattern, box, s):
    x0, y0, x1, y1 = box
    poly_shape(d, shape, box, fill=(22, 22, 24), outline=CHROME, width=max(1, int(1.5 * s)))
    w, h = x1 - x0, y1 - y0
    if shape == "slot":  # a thin slot has no room for a pattern
        return
    ix0, iy0, ix1, iy1 = x0 + w * .12, y0 + h * .18, x1 - w * .12, y1 - h * .18
    c, lw = (150, 152, 158), max(1, int(1.2 * s))
    if pattern == "hbars":
        for k in range(1, 4):
            y = iy0 + (iy1 - iy0) * k / 4
            d.line([(ix0, y), (ix1, y)], fill=c, width=lw * 2)
    elif pattern == "vbars":
        for k in range(1, 8):
            x = ix0 + (ix1 - ix0) * k / 8
            d.line([(x, iy0), (x, iy1)], fill=c, width=lw * 2)
    elif pattern == "mesh":
        for k in range(1, 7):
            x = ix0 + (ix1 - ix0) * k / 7
            d.line([(x - (iy1 - iy0) * .3, iy0), (x + (iy1 - iy0) * .3, iy1)], fill=c, width=lw)
            d.line([(x + (iy1 - iy0) * .3, iy0), (x - (iy1 - iy0) * .3, iy1)], fill=c, width=lw)
    elif pattern == "dots":
        r = max(1.5, h * .06)
        for i in range(1, 7):
            for j in range(1, 3):
                x, y = ix0 + (ix1 - ix0) * i / 7, iy0 + (iy1 - iy0) * j / 3
                d.ellipse((x - r, y - r, x + r, y + r), fill=c)
    elif pattern == "solid":
        d.rectangle((ix0, (iy0 + iy1) / 2 - h * .08, ix1, (iy0 + iy1) / 2 + h * .08), fill=c)


def lamp(d, shape, variant, box, color, s):
    """A head or tail lamp: the make's shape, the year's graphics (DRL line, double, hollow)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    dark = shade(color, 0.35)
    if variant == "double":
        g = w * 0.1
        poly_shape(d, shape, (x0, y0, x0 + w / 2 - g / 2, y1), fill=color, outline=dark)
        poly_shape(d, shape, (x0 + w / 2 + g / 2, y0, x1, y1), fill=color, outline=dark)
    elif variant == "hollow":
        poly_shape(d, shape, box, fill=dark, outline=color, width=max(2, int(2.5 * s)))
        poly_shape(d, shape, (x0 + w * .3, y0 + h * .3, x1 - w * .3, y1 - h * .3), fill=color)
    else:
        poly_shape(d, shape, box, fill=color, outline=dark, width=max(1, int(s)))
    if variant == "drl":
        d.line([(x0 - w * .05, y1 + h * .25), (x1 + w * .05, y1 + h * .25)], fill=(250, 250, 255),
               width=max(2, int(2.5 * s)))


def roof_color(paint):
    """A roof that contrasts with the paint: black on light cars, light grey on dark ones."""
    return (22, 22, 24) if sum(paint) > 270 else (214, 214, 218)


def trim_color(kind: str, paint):
    return {"black": (26, 26, 28), "chrome": CHROME, "body": shade(paint, 0.8)}[kind]


def mark(marks: dict, names, box) -> None:
    """Note where a part was drawn: marks[name] lists its boxes (x0, y0, x1, y1) in the layer's pixels, for
    close-ups to crop around and night photos to light (conditions.py). `names`: one name or a tuple of them."""
    for name in (names,) if isinstance(names, str) else names:
        marks.setdefault(name, []).append(tuple(box))


class ScaledDraw:
    """An ImageDraw whose coordinates, line widths and radii are multiplied by k: a picture drawn in 640x480
    coordinates onto a k-times larger image (the interiors' close-ups)."""

    def __init__(self, draw: ImageDraw.ImageDraw, k: float):
        self.draw, self.k = draw, k

    def _xy(self, xy):
        if isinstance(xy, int | float):
            return xy * self.k
        return type(xy)(self._xy(v) for v in xy) if isinstance(xy, tuple | list) else xy

    def __getattr__(self, name):
        method = getattr(self.draw, name)

        def scaled(xy, *args, **kw):
            for key in ("width", "radius"):
                if key in kw:
                    kw[key] = max(1, int(round(kw[key] * self.k)))
            return method(self._xy(xy), *args, **kw)
        return scaled
